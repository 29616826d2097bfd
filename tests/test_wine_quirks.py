"""The Windows run's reruns (tests/wine_quirks.py) rerun Wine's silent failures and nothing else."""
import subprocess

import pytest

import wine_quirks


def outcomes(monkeypatch, *results):
    """Make each call of the wrapped run return (or raise) the next of `results`; count the calls."""
    calls = []

    def run_once(*args, **kwargs):
        calls.append(args[0])
        outcome = results[len(calls) - 1]
        if isinstance(outcome, BaseException):
            raise outcome
        stdout = outcome[2] if len(outcome) > 2 else b""
        return subprocess.CompletedProcess(args[0], outcome[0], stdout, outcome[1])

    monkeypatch.setattr(wine_quirks, "_run_once", run_once)
    monkeypatch.setattr(wine_quirks, "reruns", [])
    return calls


def test_a_silent_openssl_failure_is_run_again_and_listed(monkeypatch):
    calls = outcomes(monkeypatch, (1, b""), (125, b"openssl stand-in: the Unix side wrote status ''"), (0, b""))
    assert wine_quirks.run(["openssl", "pkeyutl", "-decrypt"], capture_output=True).returncode == 0
    assert len(calls) == 3 and len(wine_quirks.reruns) == 2


def test_a_failure_that_openssl_explains_stands(monkeypatch):
    calls = outcomes(monkeypatch, (1, b"Public Key operation error\n"), (0, b""))
    assert wine_quirks.run(["openssl", "pkeyutl", "-decrypt"], capture_output=True).returncode == 1
    assert len(calls) == 1 and wine_quirks.reruns == []


def test_a_failure_that_openssl_explains_on_stdout_stands(monkeypatch):
    calls = outcomes(monkeypatch, (1, b"", b"Verification failure\n"), (0, b""))
    assert wine_quirks.run(["openssl", "dgst", "-verify"], capture_output=True).returncode == 1
    assert len(calls) == 1 and wine_quirks.reruns == []


def test_a_silent_failure_of_another_program_stands(monkeypatch):
    calls = outcomes(monkeypatch, (1, b""), (0, b""))
    assert wine_quirks.run(["cssadmin.exe", "--version"], capture_output=True).returncode == 1
    assert len(calls) == 1


def test_reruns_end_and_check_still_raises(monkeypatch):
    calls = outcomes(monkeypatch, (1, b""), (1, b""), (1, b""), (0, b""))
    with pytest.raises(subprocess.CalledProcessError):
        wine_quirks.run(["openssl", "dgst"], capture_output=True, check=True)
    assert len(calls) == wine_quirks.ATTEMPTS


def test_create_process_internal_error_is_started_again_other_errors_stand(monkeypatch):
    internal = OSError("internal")
    internal.winerror = wine_quirks.WINE_INTERNAL_ERROR
    calls = outcomes(monkeypatch, internal, (0, b""))
    assert wine_quirks.run(["cssadmin.exe"], capture_output=True).returncode == 0
    assert len(calls) == 2
    denied = OSError("denied")
    denied.winerror = 5
    outcomes(monkeypatch, denied, (0, b""))
    with pytest.raises(OSError):
        wine_quirks.run(["cssadmin.exe"], capture_output=True)
