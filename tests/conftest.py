"""Shared fixtures: real PKCS#11 test tokens, the CLI as a subprocess, throwaway wrapping keys.

Tokens come from tests/tokens/provision.sh (CI runs it once and passes CSSADMIN_TEST_TOKENS).
A token test skips with the reason when the token it needs is absent - unless
CSSADMIN_REQUIRE_TOKENS=1 (set by .ci/run), which turns every such skip into a failure.
"""
from __future__ import annotations

import json
import os
import re
import selectors
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tokens import system_state  # noqa: E402
from tokens.access import Token  # noqa: E402


def _under_wine() -> bool:
    if os.name != "nt":
        return False
    import ctypes
    return hasattr(ctypes.WinDLL("ntdll"), "wine_get_version")


UNDER_WINE = _under_wine()
if UNDER_WINE:
    import wine_quirks
    wine_quirks.install()
# Wine 8 cannot make Windows symbolic links and shows a Unix symlink as the file it points to, so a
# test that puts a symlink in the way cannot judge the Windows code there; the reparse-point check
# is unit-tested with faked Windows APIs (tests/test_windows_paths.py).
skip_symlinks_under_wine = pytest.mark.skipif(
    UNDER_WINE, reason="Windows under Wine: Wine cannot make or show symbolic links (reparse points)")


def state_home_env(home: Path) -> dict:
    """Where a test's CLI keeps its state: XDG_STATE_HOME on POSIX, %LOCALAPPDATA% on Windows."""
    return {"HOME": str(home), "XDG_STATE_HOME": str(home / "state"),
            "LOCALAPPDATA": str(home / "AppData" / "Local")}


def default_audit_log(home: Path) -> Path:
    """The audit log a CLI run with state_home_env(home) writes by default."""
    if os.name == "nt":
        return home / "AppData" / "Local" / "cssadmin" / "audit.jsonl"
    return home / "state" / "cssadmin" / "audit.jsonl"


def pytest_addoption(parser):
    parser.addoption("--binary", default=os.environ.get("CSSADMIN_BINARY"),
                     help="run the CLI tests against this frozen cssadmin binary instead of the source")


def pytest_collection_modifyitems(config, items):
    # Every test that drives the command line can run against the frozen binary: `-m binary --binary PATH`.
    # A test marked source_only (it spies on the interpreter) stays out of that run.
    for item in items:
        if "cli" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("source_only"):
            item.add_marker(pytest.mark.binary)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if (report.skipped and not hasattr(report, "wasxfail") and os.environ.get("CSSADMIN_REQUIRE_TOKENS") == "1"
            and item.get_closest_marker("token")):
        report.outcome = "failed"
        report.longrepr = f"token test skipped but CSSADMIN_REQUIRE_TOKENS=1: {report.longrepr}"
    # tests/run-windows.sh: a test skips on Windows only for a reason that names Windows (or Wine), or
    # the frozen binary (skips that the Linux binary leg makes too); any other skip there is a test
    # that could run and did not.
    if (report.skipped and not hasattr(report, "wasxfail") and os.environ.get("CSSADMIN_WINDOWS_SKIPS_NAMED") == "1"
            and not any(word in str(report.longrepr) for word in ("Windows", "Wine", "frozen"))):
        report.outcome = "failed"
        report.longrepr = f"skipped on Windows for a reason that does not name Windows: {report.longrepr}"


def _build_line(listed: str) -> str:
    specs = json.loads(Path(listed).read_text())
    return next((spec["build"] for spec in specs if spec.get("build")), "opencryptoki 3.27.0: not provisioned")


def pytest_report_header(config):
    listed = os.environ.get("CSSADMIN_TEST_TOKENS")
    return _build_line(listed) if listed and Path(listed).exists() else None


def pytest_terminal_summary(terminalreporter):
    # Also under -q, which hides the report header: say which openCryptoki build the run used.
    listed = os.environ.get("CSSADMIN_TEST_TOKENS") or getattr(terminalreporter.config, "_cssadmin_tokens", None)
    if listed and Path(listed).exists():
        terminalreporter.write_line(_build_line(listed))
    if UNDER_WINE:
        for rerun in wine_quirks.reruns:
            terminalreporter.write_line(f"Wine: {rerun}")


@pytest.fixture(scope="session")
def token_specs(request, tmp_path_factory) -> dict:
    """{"tokens": [...], "why": reason when none, "system_before": ...}. Without CSSADMIN_TEST_TOKENS this
    provisions fresh tokens (tests/tokens/provision.sh), records the system openCryptoki first, and stops
    the openCryptoki 3.27 daemon at the end of the session. Hold /tmp/cssadmin-suite.lock around it."""
    if os.name == "nt":
        return {"tokens": [], "why": "Windows: no PKCS#11 test token here (the keystore covers these paths)",
                "system_before": None}
    listed = os.environ.get("CSSADMIN_TEST_TOKENS")
    recorded = os.environ.get("CSSADMIN_SYSTEM_STATE")      # written by tests/run.sh before it provisioned
    before = json.loads(Path(recorded).read_text()) if recorded else None
    if not listed:
        directory = tmp_path_factory.mktemp("tokens")
        before = system_state.snapshot()
        request.addfinalizer(lambda: subprocess.run(["bash", str(ROOT / "tests/tokens/stop.sh"), str(directory)]))
        result = subprocess.run(["bash", str(ROOT / "tests/tokens/provision.sh"), str(directory)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            return {"tokens": [], "why": f"provision.sh failed: {result.stderr.strip()[-300:]}", "system_before": before}
        listed = str(directory / "tokens.json")
        request.config._cssadmin_tokens = listed
    return {"tokens": json.loads(Path(listed).read_text()), "why": f"not in {listed}", "system_before": before}


def _token(token_specs, name: str) -> Token:
    for spec in token_specs["tokens"]:
        if spec["name"] == name:
            return Token(spec)
    pytest.skip(f"no {name} token ({token_specs['why']}; run tests/tokens/provision.sh DIR and set "
                "CSSADMIN_TEST_TOKENS=DIR/tokens.json)")


@pytest.fixture(scope="session")
def softhsm(token_specs) -> Token:
    return _token(token_specs, "softhsm2")


@pytest.fixture(scope="session")
def opencryptoki327(token_specs) -> Token:
    """openCryptoki 3.27's soft token, built from tests/tokens/ (KWP, OAEP SHA-1/256/512, C_DigestKey)."""
    return _token(token_specs, "opencryptoki327")


@pytest.fixture(scope="session")
def nss(token_specs) -> Token:
    return _token(token_specs, "nss")


@pytest.fixture(scope="session")
def oaep_sha256_token(opencryptoki327) -> Token:
    """A token that wraps with OAEP SHA-256 and SHA-512 (SoftHSM2 2.6.1 cannot)."""
    return opencryptoki327


@pytest.fixture
def key_name() -> str:
    return "k-" + uuid.uuid4().hex[:12]


PAUSE_TIMEOUT = 60.0


def wait_for_pause(process: subprocess.Popen, step: str, timeout: float = PAUSE_TIMEOUT) -> int:
    """Read stderr until the pause line and return the paused process's pid (in a frozen binary, the
    bootloader's child); fail (after killing the process) on exit or timeout."""
    wanted = re.compile(rf"cssadmin: paused at {re.escape(step)} \(pid (\d+)\)\n".encode())
    seen = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stderr, selectors.EVENT_READ)
        while not wanted.search(seen):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                process.kill()
                process.wait()
                pytest.fail(f"no pause at {step} within {timeout} s; stderr so far: {seen!r}")
            chunk = os.read(process.stderr.fileno(), 4096)
            if not chunk:
                process.wait()
                pytest.fail(f"exited with {process.returncode} before pausing at {step}; stderr: {seen!r}")
            seen += chunk
    return int(wanted.search(seen).group(1))


def stopped_at(cli: "Cli", args: list[str], step: str, signum: int, *, token: Token | None = None,
               signal_launcher: bool = False) -> tuple[int, bytes]:
    """Run `cssadmin --json ARGS` paused at `step`, send it `signum` there, and return its status and
    stdout. The signal goes to the paused process (in a one-file frozen binary, the bootloader's child)
    or, with signal_launcher, to the process started, which in a frozen binary forwards it."""
    process = subprocess.Popen(cli.command + ["--json"] + args,
                               env=cli.environment(token=token, env={"CSSADMIN_TEST_PAUSE_AT": step}),
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        paused = wait_for_pause(process, step)
        os.kill(process.pid if signal_launcher else paused, signum)
        stdout, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    return process.returncode, stdout


class Cli:
    def __init__(self, binary: str | None, home: Path):
        self.frozen = bool(binary)
        self.command = [binary] if binary else [sys.executable, "-m", "cssadmin"]
        self.home = home

    def environment(self, *, token: Token | None = None, env: dict | None = None) -> dict:
        """The CLI's environment: this test's state home, none of the caller's CSSADMIN_ settings,
        the token's module and configuration when one is given, then `env`."""
        environment = {k: v for k, v in os.environ.items() if not k.startswith("CSSADMIN_")}
        environment.update(state_home_env(self.home))
        environment["PYTHONPATH"] = str(ROOT)
        if token is not None:
            environment.update(token.env)
            environment["CSSADMIN_PKCS11_MODULE"] = token.module
        environment.update(env or {})
        return environment

    def run(self, args: list[str], *, token: Token | None = None, cwd: Path | None = None,
            env: dict | None = None, stdin=subprocess.DEVNULL) -> subprocess.CompletedProcess:
        return subprocess.run(self.command + args, cwd=cwd, env=self.environment(token=token, env=env),
                              stdin=stdin, capture_output=True, text=True, timeout=300)

    def json(self, args: list[str], **kwargs) -> tuple[int, dict]:
        result = self.run(["--json"] + args, **kwargs)
        assert result.stdout.strip().startswith("{"), (result.stdout, result.stderr)
        return result.returncode, json.loads(result.stdout)


@pytest.fixture
def cli(request, tmp_path) -> Cli:
    home = tmp_path / "home"
    home.mkdir()
    return Cli(request.config.getoption("--binary"), home)


@pytest.fixture
def pin_file(tmp_path):
    def make(pin: str) -> str:
        path = tmp_path / f"pin-{uuid.uuid4().hex[:6]}"
        path.write_text(pin)
        path.chmod(0o600)
        return str(path)
    return make


# --- shared by the export tests: stand-in wrapping keys, a keystore, an output directory -----------
@pytest.fixture
def kek_files(tmp_path):
    """make(bits) -> (the wrapping key's SPKI PEM, the PEM of its private half, for the cloud's side)."""
    from keks import rsa_key, write_private_pem, write_spki

    def make(bits: int):
        key = rsa_key(bits)
        return (write_spki(key, tmp_path / f"kek{bits}.pem", pem=True),
                write_private_pem(key, tmp_path / f"kek{bits}-private.pem"))
    return make


@pytest.fixture
def keystore(tmp_path, pin_file) -> list[str]:
    """The command-line options of a fresh software keystore."""
    return ["--keystore", str(tmp_path / "keystore"), "--passphrase-file", pin_file("a long keystore passphrase")]


@pytest.fixture
def out(tmp_path):
    directory = tmp_path / "out"
    directory.mkdir()
    return directory
