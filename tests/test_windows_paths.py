"""The Windows branches of the code that touches files and terminals, run on Linux with os.name faked.

Removable-media detection and the audit log's lock have their own Windows tests (test_removable.py,
test_audit.py); these cover the output protocol, durable writes and secret files.
"""
from __future__ import annotations

import os
import stat

import pytest

from cssadmin import durable, output, secret_input
from cssadmin.errors import CustodyError, OutputError


@pytest.fixture
def windows(monkeypatch):
    monkeypatch.setattr(durable, "ON_WINDOWS", True)
    monkeypatch.setattr(durable.time, "sleep", lambda seconds: None)


def test_replace_retries_a_transient_sharing_violation(windows, monkeypatch, tmp_path):
    real_replace = os.replace
    attempts = []

    def busy_twice(source, target):
        attempts.append(target)
        if len(attempts) <= 2:
            raise PermissionError(32, "The process cannot access the file because it is being used")
        real_replace(source, target)
    monkeypatch.setattr(output.os, "replace", busy_twice)
    written = output.write_all(tmp_path, [("k-wrapped", b"blob")], force=True)
    assert len(attempts) == 3 and (tmp_path / "k-wrapped").read_bytes() == b"blob"
    assert written[0].bytes == 4


def test_replace_gives_up_after_a_bounded_number_of_tries(windows, monkeypatch, tmp_path):
    attempts = []

    def always_busy(source, target):
        attempts.append(target)
        raise PermissionError(32, "in use")
    monkeypatch.setattr(output.os, "replace", always_busy)
    with pytest.raises(OutputError) as caught:
        output.write_all(tmp_path, [("k-wrapped", b"blob")], force=True)
    assert caught.value.exit_code == 7
    assert len(attempts) == durable._REPLACE_RETRIES
    assert list(tmp_path.iterdir()) == [], "the staged file is removed"


@pytest.mark.skipif(os.name == "nt", reason="the POSIX branch; on Windows the Windows branch runs")
def test_on_posix_a_permission_error_is_not_retried(monkeypatch, tmp_path):
    attempts = []

    def refused(source, target):
        attempts.append(target)
        raise PermissionError(13, "denied")
    monkeypatch.setattr(output.os, "replace", refused)
    with pytest.raises(OutputError):
        output.write_all(tmp_path, [("k-wrapped", b"blob")], force=True)
    assert len(attempts) == 1


def test_directories_are_not_opened_for_fsync_on_windows(windows, monkeypatch, tmp_path):
    monkeypatch.setattr(durable.os, "open", lambda *args: pytest.fail("a directory was opened"))
    durable.fsync_directory(tmp_path)


def test_pin_file_modes_are_not_judged_on_windows(windows, tmp_path):
    pin = tmp_path / "pin"
    pin.write_text("1234\n")
    pin.chmod(0o644)
    assert secret_input.from_file(str(pin)) == "1234"


@pytest.mark.skipif(os.name == "nt", reason="the POSIX branch; on Windows the Windows branch runs")
def test_pin_file_modes_are_judged_on_posix(tmp_path):
    pin = tmp_path / "pin"
    pin.write_text("1234\n")
    pin.chmod(0o644)
    with pytest.raises(CustodyError) as caught:
        secret_input.from_file(str(pin))
    assert caught.value.code == "SECRET_FILE_TOO_OPEN" and "chmod 600" in str(caught.value)


class Stdin:
    def __init__(self, is_terminal: bool):
        self.is_terminal = is_terminal

    def isatty(self) -> bool:
        return self.is_terminal


def test_no_terminal_means_no_prompt(monkeypatch):
    monkeypatch.setattr(secret_input.sys, "stdin", Stdin(False))
    with pytest.raises(CustodyError) as caught:
        secret_input.from_terminal("PIN: ")
    assert "not a terminal" in caught.value.message


def test_a_prompt_that_would_echo_is_refused(monkeypatch):
    import getpass
    import warnings

    def echoing_getpass(prompt):
        warnings.warn("Can not control echo on the terminal.", getpass.GetPassWarning)
        return "1234"
    monkeypatch.setattr(secret_input.sys, "stdin", Stdin(True))
    monkeypatch.setattr(secret_input.getpass, "getpass", echoing_getpass)
    with pytest.raises(CustodyError) as caught:
        secret_input.from_terminal("PIN: ")
    assert "echo" in caught.value.message


def test_a_new_passphrase_is_typed_twice(monkeypatch):
    answers = iter(["first", "second"])
    monkeypatch.setattr(secret_input.sys, "stdin", Stdin(True))
    monkeypatch.setattr(secret_input.getpass, "getpass", lambda prompt: next(answers))
    with pytest.raises(CustodyError) as caught:
        secret_input.from_terminal("Passphrase: ", "passphrase", confirm=True)
    assert "differ" in caught.value.message



class FakeStat:
    """What os.lstat gives on Windows for a reparse point that is not a symlink (a junction, say)."""
    def __init__(self, real):
        self.st_mode = real.st_mode  # a plain file or directory to S_ISLNK
        self.st_file_attributes = stat.FILE_ATTRIBUTE_REPARSE_POINT | stat.FILE_ATTRIBUTE_ARCHIVE


@pytest.fixture
def reparse_point_at(monkeypatch):
    """Make os.lstat report `path` as a Windows reparse point, as Wine cannot (it shows no reparse points)."""
    def install(path):
        real_lstat = os.lstat

        def lstat(target, *args, **kwargs):
            status = real_lstat(target, *args, **kwargs)
            return FakeStat(status) if os.fspath(target) == os.fspath(path) else status
        monkeypatch.setattr(output.os, "lstat", lstat)
    return install


@pytest.mark.parametrize("force", [False, True])
def test_a_reparse_point_at_an_output_name_is_refused_in_preflight(windows, reparse_point_at, tmp_path, force):
    final = tmp_path / "k-wrapped"
    final.write_bytes(b"elsewhere")
    reparse_point_at(final)
    with pytest.raises(OutputError) as caught:
        output.preflight(tmp_path, ["k-wrapped"], force=force)
    assert caught.value.code == "OUTPUT_IS_SYMLINK" and caught.value.exit_code == 7
    assert final.read_bytes() == b"elsewhere"


def test_a_reparse_point_at_an_output_name_is_refused_when_writing(windows, reparse_point_at, tmp_path):
    final = tmp_path / "k-wrapped"
    final.write_bytes(b"elsewhere")
    reparse_point_at(final)
    with pytest.raises(OutputError) as caught:
        output.write_all(tmp_path, [("k-wrapped", b"blob")], force=True)
    assert caught.value.code == "OUTPUT_IS_SYMLINK"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k-wrapped"] and final.read_bytes() == b"elsewhere"


def test_a_plain_file_with_other_attributes_is_not_a_reparse_point(windows, monkeypatch, tmp_path):
    final = tmp_path / "k-wrapped"
    final.write_bytes(b"old")
    real_lstat = os.lstat

    class Archived:
        def __init__(self, real):
            self.st_mode = real.st_mode
            self.st_file_attributes = stat.FILE_ATTRIBUTE_ARCHIVE
    monkeypatch.setattr(output.os, "lstat", lambda target, *a, **k: Archived(real_lstat(target, *a, **k))
                        if os.fspath(target) == os.fspath(final) else real_lstat(target, *a, **k))
    with pytest.raises(OutputError) as caught:
        output.preflight(tmp_path, ["k-wrapped"], force=False)
    assert caught.value.code == "OUTPUT_EXISTS"
