"""Tests for cssadmin.audit: the default path, appending under a lock, the chain check, and no secrets."""
from __future__ import annotations

import errno
import hashlib
import json
import multiprocessing
import os
import re
import socket
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from cssadmin import audit, durable
from cssadmin.audit import (EXPORT_RECORD_FIELDS, GENESIS_SHA256, append_record, build_export_record,
                            default_audit_path)
from cssadmin.audit_verify import verify_audit
from cssadmin.errors import OutputError, VerificationError
from cssadmin.facts import ExportFacts, FileFacts, KeyFacts, WrappingKeyFacts

# ------------------------------------------------------------------------------ helpers

def log_with(tmp_path: Path, count: int) -> Path:
    path = tmp_path / "audit.jsonl"
    for number in range(1, count + 1):
        append_record(path, {"event": "test", "note": f"record {number}"})
    return path


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def chain_break(path: Path) -> str:
    with pytest.raises(VerificationError) as caught:
        verify_audit(path)
    assert caught.value.code == "AUDIT_CHAIN_BROKEN"
    assert caught.value.exit_code == 8
    return caught.value.message


# ------------------------------------------------------------------------------ default path

def test_linux_default_is_under_xdg_state_home():
    path = default_audit_path(env={"XDG_STATE_HOME": "/srv/state", "HOME": "/home/op"}, windows=False)
    assert path == Path("/srv/state/cssadmin/audit.jsonl")


def test_linux_default_without_xdg_state_home_is_under_home():
    path = default_audit_path(env={"HOME": "/home/op"}, windows=False)
    assert path == Path("/home/op/.local/state/cssadmin/audit.jsonl")


def test_linux_ignores_an_empty_or_relative_xdg_state_home():
    for value in ("", "relative/state"):
        path = default_audit_path(env={"XDG_STATE_HOME": value}, windows=False, home="/home/op")
        assert path == Path("/home/op/.local/state/cssadmin/audit.jsonl")


def test_the_home_argument_wins_over_the_environment():
    path = default_audit_path(env={"HOME": "/home/someone-else"}, windows=False, home="/home/op")
    assert path == Path("/home/op/.local/state/cssadmin/audit.jsonl")


def test_windows_default_is_under_localappdata():
    env = {"LOCALAPPDATA": r"C:\Users\op\AppData\Local", "XDG_STATE_HOME": "/ignored"}
    path = default_audit_path(env=env, windows=True)
    assert str(path) == r"C:\Users\op\AppData\Local\cssadmin\audit.jsonl"


def test_windows_without_localappdata_uses_the_profile():
    path = default_audit_path(env={"USERPROFILE": r"D:\Profiles\op"}, windows=True)
    assert str(path) == r"D:\Profiles\op\AppData\Local\cssadmin\audit.jsonl"


def test_the_real_default_for_this_machine_ends_in_the_documented_name():
    assert default_audit_path().parts[-2:] == ("cssadmin", "audit.jsonl")


# ------------------------------------------------------------------------------ appending

def test_two_appends_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    first = append_record(path, {"event": "test", "note": "one"})
    second = append_record(path, {"event": "test", "note": "two"})
    line1, line2 = lines_of(path)
    assert json.loads(line1) == first and json.loads(line2) == second
    assert (first["seq"], second["seq"]) == (1, 2)
    assert first["prev_sha256"] == GENESIS_SHA256
    assert second["prev_sha256"] == hashlib.sha256(line1).hexdigest()
    assert verify_audit(path).records == 2


def test_a_record_carries_who_when_and_the_callers_fields(tmp_path):
    written = append_record(tmp_path / "audit.jsonl", {"event": "test", "note": "x"})
    assert set(written) == {"seq", "prev_sha256", "time", "user", "host", "event", "note", "sha256"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", written["time"])
    assert written["host"] == socket.gethostname()
    assert written["user"] and isinstance(written["user"], str)


def test_lines_are_canonical_json(tmp_path):
    path = log_with(tmp_path, 1)
    (line,) = lines_of(path)
    assert line == json.dumps(json.loads(line), sort_keys=True, separators=(",", ":")).encode()


def test_a_user_without_a_login_name_falls_back(tmp_path, monkeypatch):
    def no_user():
        raise KeyError("getpwuid(): uid not found")
    monkeypatch.setattr(audit.getpass, "getuser", no_user)
    written = append_record(tmp_path / "audit.jsonl", {"event": "test"})
    assert written["user"] in (f"uid:{os.getuid()}" if hasattr(os, "getuid") else "", "unknown")


def test_the_chain_fields_cannot_be_supplied_by_the_caller(tmp_path):
    for field in ("seq", "prev_sha256", "time", "user", "host"):
        with pytest.raises(ValueError):
            append_record(tmp_path / "audit.jsonl", {field: "forged"})
    assert not (tmp_path / "audit.jsonl").exists()


@pytest.mark.skipif(os.name == "nt", reason="POSIX modes: Windows has ACLs, not mode bits")
def test_missing_directories_are_0700_and_the_log_0600(tmp_path):
    previous_umask = os.umask(0o022)
    try:
        path = tmp_path / "state" / "cssadmin" / "audit.jsonl"
        append_record(path, {"event": "test"})
    finally:
        os.umask(previous_umask)
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert path.stat().st_mode & 0o777 == 0o600


def test_an_unusable_location_is_an_output_error(tmp_path):
    (tmp_path / "a-file").write_text("not a directory")
    with pytest.raises(OutputError) as caught:
        append_record(tmp_path / "a-file" / "audit.jsonl", {"event": "test"})
    assert caught.value.code == "AUDIT_WRITE_FAILED" and caught.value.exit_code == 7
    assert "a-file" in caught.value.message


def test_a_failed_write_leaves_no_torn_line(tmp_path, monkeypatch):
    path = log_with(tmp_path, 2)
    before = path.read_bytes()

    def half_then_disk_full(descriptor, data):
        os.write(descriptor, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(audit, "write_fully", half_then_disk_full)
    with pytest.raises(OutputError) as caught:
        append_record(path, {"event": "test"})
    assert caught.value.code == "AUDIT_WRITE_FAILED" and "No space left" in caught.value.message
    assert path.read_bytes() == before
    assert verify_audit(path).records == 2


def test_appending_to_a_torn_log_is_refused_and_changes_nothing(tmp_path):
    path = log_with(tmp_path, 2)
    torn = path.read_bytes()[:-10]
    path.write_bytes(torn)
    with pytest.raises(OutputError) as caught:
        append_record(path, {"event": "test"})
    assert caught.value.code == "AUDIT_CHAIN_BROKEN" and "incomplete line" in caught.value.message
    assert path.read_bytes() == torn


def test_appending_after_a_garbage_last_line_is_refused(tmp_path):
    path = log_with(tmp_path, 1)
    with open(path, "ab") as handle:
        handle.write(b"garbage\n")
    with pytest.raises(OutputError) as caught:
        append_record(path, {"event": "test"})
    assert caught.value.code == "AUDIT_CHAIN_BROKEN"


def test_a_long_last_line_is_found_across_read_chunks(tmp_path):
    path = tmp_path / "audit.jsonl"
    append_record(path, {"event": "test", "padding": "x" * 3 * audit._TAIL_CHUNK})
    append_record(path, {"event": "test", "padding": "y" * 3 * audit._TAIL_CHUNK})
    third = append_record(path, {"event": "test"})
    assert third["prev_sha256"] == hashlib.sha256(lines_of(path)[1]).hexdigest()
    assert verify_audit(path).records == 3


# --- Windows locking, with a fake msvcrt -------------------------------------------------

class FakeMsvcrt:
    LK_LOCK, LK_UNLCK = 1, 0

    def __init__(self, fail: bool = False):
        self.calls: list[tuple[str, int, int, int]] = []
        self.fail = fail

    def locking(self, descriptor, mode, nbytes):
        position = os.lseek(descriptor, 0, os.SEEK_CUR)
        self.calls.append(("lock" if mode == self.LK_LOCK else "unlock", position, nbytes,
                           os.fstat(descriptor).st_size))
        if self.fail:
            raise OSError(errno.EDEADLK, "Resource deadlock avoided")


def test_windows_branch_locks_one_byte_around_the_read_and_append(tmp_path, monkeypatch):
    fake = FakeMsvcrt()
    monkeypatch.setattr(durable, "_fcntl", None)
    monkeypatch.setattr(durable, "_msvcrt", fake)
    path = log_with(tmp_path, 2)
    one_line = len(lines_of(path)[0]) + 1
    offset = durable._WINDOWS_LOCK_OFFSET
    assert [(kind, position, nbytes) for kind, position, nbytes, _ in fake.calls] == [
        ("lock", offset, 1), ("unlock", offset, 1)] * 2
    sizes = [size for *_, size in fake.calls]
    assert sizes[0] == 0 and sizes[1] == one_line      # first append happened inside the lock
    assert sizes[2] == one_line and sizes[3] > one_line  # second append read and wrote inside it
    assert verify_audit(path).records == 2


def test_windows_lock_timeout_is_an_output_error_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(durable, "_fcntl", None)
    monkeypatch.setattr(durable, "_msvcrt", FakeMsvcrt(fail=True))
    path = tmp_path / "audit.jsonl"
    with pytest.raises(OutputError) as caught:
        append_record(path, {"event": "test"})
    assert caught.value.code == "AUDIT_WRITE_FAILED"
    assert path.read_bytes() == b""


def test_no_locking_at_all_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(durable, "_fcntl", None)
    monkeypatch.setattr(durable, "_msvcrt", None)
    with pytest.raises(OutputError):
        append_record(tmp_path / "audit.jsonl", {"event": "test"})


# --- two processes at once ----------------------------------------------------------------

def append_many(path: str, worker: str, count: int, start) -> None:
    """Child process: append `count` records, slowed down inside the lock to widen any race."""
    import time

    from cssadmin import audit as child_audit
    real_now = child_audit._utc_now

    def slow_now():
        time.sleep(0.002)
        return real_now()
    child_audit._utc_now = slow_now
    start.wait(60)
    for number in range(count):
        child_audit.append_record(path, {"event": "test", "worker": worker, "n": number})
        time.sleep(0.001)   # outside the lock: give the other process its turn


def test_concurrent_appends_from_two_processes_keep_the_chain(tmp_path):
    context = multiprocessing.get_context("spawn")   # as on Windows; also safe under pytest's threads
    path = str(tmp_path / "audit.jsonl")
    start = context.Barrier(2)   # both children imported and ready before either appends
    workers = [context.Process(target=append_many, args=(path, name, 20, start)) for name in ("a", "b")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [worker.exitcode for worker in workers] == [0, 0]
    assert verify_audit(path).records == 40
    records = [json.loads(line) for line in lines_of(Path(path))]
    assert sorted((r["worker"], r["n"]) for r in records) == [(w, n) for w in "ab" for n in range(20)]
    turns = sum(1 for before, after in zip(records, records[1:]) if before["worker"] != after["worker"])
    assert turns >= 2, "the two processes did not overlap, so this run proved nothing about the lock"


# ------------------------------------------------------------------------------ verifying

def test_an_intact_log_verifies(tmp_path):
    assert verify_audit(log_with(tmp_path, 5)).records == 5


def test_an_empty_log_has_no_records(tmp_path):
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b"")
    assert verify_audit(path).records == 0


def test_a_missing_log(tmp_path):
    with pytest.raises(OutputError) as caught:
        verify_audit(tmp_path / "absent.jsonl")
    assert caught.value.code == "AUDIT_MISSING" and "absent.jsonl" in caught.value.message


def test_a_one_byte_change_in_line_1_is_found_at_line_1_by_its_own_hash(tmp_path):
    path = log_with(tmp_path, 3)
    lines = lines_of(path)
    assert b"record 1" in lines[0]
    lines[0] = lines[0].replace(b"record 1", b"record 7")
    write_lines(path, lines)
    with pytest.raises(VerificationError) as caught:
        verify_audit(path)
    assert caught.value.code == "AUDIT_RECORD_CHANGED" and caught.value.exit_code == 8
    assert "line 1:" in caught.value.message


def test_a_change_to_line_1_with_its_own_hash_redone_is_found_at_line_2(tmp_path):
    path = log_with(tmp_path, 3)
    lines = lines_of(path)
    record = json.loads(lines[0])
    record["note"] = "record 7"
    record["sha256"] = hashlib.sha256(audit.covered_bytes(record)).hexdigest()
    lines[0] = audit.serialize(record)
    write_lines(path, lines)
    assert "line 2: prev_sha256 does not match line 1" in chain_break(path)


def test_a_changed_prev_sha256_is_found_on_its_own_line(tmp_path):
    path = log_with(tmp_path, 3)
    lines = lines_of(path)
    record = json.loads(lines[2])
    record["prev_sha256"] = "f" * 64
    lines[2] = audit.serialize(record)
    write_lines(path, lines)
    assert "line 3: prev_sha256 does not match line 2" in chain_break(path)


def test_deleting_a_middle_line_is_found(tmp_path):
    path = log_with(tmp_path, 4)
    lines = lines_of(path)
    write_lines(path, lines[:1] + lines[2:])
    assert "line 2: seq is 3, expected 2" in chain_break(path)


def test_deleting_a_line_and_renumbering_is_still_found(tmp_path):
    path = log_with(tmp_path, 4)
    lines = lines_of(path)
    renumbered = []
    for seq, line in enumerate(lines[:1] + lines[2:], 1):
        record = json.loads(line)
        record["seq"] = seq
        renumbered.append(audit.serialize(record))
    write_lines(path, renumbered)
    assert "line 2: prev_sha256 does not match line 1" in chain_break(path)


def test_deleting_the_first_line_is_found(tmp_path):
    path = log_with(tmp_path, 3)
    write_lines(path, lines_of(path)[1:])
    assert "line 1: seq is 2, expected 1" in chain_break(path)


def test_a_first_line_that_does_not_start_a_chain_is_found(tmp_path):
    path = log_with(tmp_path, 2)
    lines = lines_of(path)
    record = json.loads(lines[1])
    record["seq"] = 1
    write_lines(path, [audit.serialize(record)])
    assert "line 1: prev_sha256 is not 64 zeros" in chain_break(path)


def test_reordering_is_found(tmp_path):
    path = log_with(tmp_path, 4)
    lines = lines_of(path)
    lines[1], lines[2] = lines[2], lines[1]
    write_lines(path, lines)
    assert "line 2: seq is 3, expected 2" in chain_break(path)


def test_an_inserted_line_is_found(tmp_path):
    path = log_with(tmp_path, 3)
    lines = lines_of(path)
    write_lines(path, lines[:2] + [lines[1]] + lines[2:])
    assert "line 3: seq is 2, expected 3" in chain_break(path)


def test_a_torn_last_line_is_reported_as_broken(tmp_path):
    path = log_with(tmp_path, 3)
    path.write_bytes(path.read_bytes()[:-1])   # only the final newline lost
    assert "line 3: incomplete" in chain_break(path)


def test_a_last_line_cut_in_the_middle_is_reported_as_broken(tmp_path):
    path = log_with(tmp_path, 3)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 20])
    assert "line 3: incomplete" in chain_break(path)


def test_whitespace_edits_are_found(tmp_path):
    path = log_with(tmp_path, 2)
    lines = lines_of(path)
    lines[1] = lines[1].replace(b'","', b'", "', 1)
    write_lines(path, lines)
    assert "line 2: not in the canonical form" in chain_break(path)


def test_windows_line_endings_are_found(tmp_path):
    path = log_with(tmp_path, 2)
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert "line 1: not in the canonical form" in chain_break(path)


@pytest.mark.parametrize("garbage", [b"not json", b"[1,2]", b"", b"\xff\xfe", b'{"seq":NaN}'])
def test_a_line_that_is_not_a_record_is_found(tmp_path, garbage):
    path = log_with(tmp_path, 3)
    lines = lines_of(path)
    lines[1] = garbage
    write_lines(path, lines)
    assert "line 2: " in chain_break(path)


def test_a_boolean_seq_is_not_a_number(tmp_path):
    path = tmp_path / "audit.jsonl"
    write_lines(path, [audit.serialize({"seq": True, "prev_sha256": GENESIS_SHA256})])
    assert "line 1: seq is True, expected 1" in chain_break(path)


# ------------------------------------------------------------------------------ export records

WRAPPING_KEY_FROM_REPORT = {"sha256_spki": "ab" * 32, "bits": 4096, "strength": 152, "required_strength": 128,
                            "sha256_cert": None, "pinned_by": "expect-fingerprint", "trust_unpinned": False,
                            "certificate": None, "allow_weaker_kek": False}


def export_record(*, wrapping_key=None, outputs=None) -> dict:
    """The record of an export's facts. `wrapping_key` and `outputs` may carry more attributes than the
    facts have (a secret, say): the record must copy only the documented ones."""
    wrapping_key = WrappingKeyFacts(**WRAPPING_KEY_FROM_REPORT) if wrapping_key is None else wrapping_key
    if outputs is None:
        outputs = [FileFacts(path="/media/usb/payments-wrapped.bin", sha256="cd" * 32, bytes=552)]
    facts = ExportFacts(tool_version="0.1.0", provider="aws",
                        key=KeyFacts("payments", "AES_256", created=True, protection="hsm"),
                        wrapping_key=wrapping_key, algorithm="RSA_AES_KEY_WRAP_SHA_256",
                        created_utc=datetime(2026, 1, 2, tzinfo=timezone.utc), next_step="aws kms ...",
                        warnings=("--allow-weaker-kek: 2048-bit wrapping key",))
    return build_export_record(facts, outputs)


def all_keys(value) -> list[str]:
    if isinstance(value, dict):
        return [key for key, inner in value.items() for key in [key, *all_keys(inner)]]
    if isinstance(value, list):
        return [key for inner in value for key in all_keys(inner)]
    return []


def test_an_export_record_has_exactly_the_documented_fields():
    record = export_record()
    assert set(record) == EXPORT_RECORD_FIELDS == {
        "event", "tool_version", "provider", "key", "algorithm", "wrapping_key", "outputs", "warnings"}
    assert record["key"] == {"name": "payments", "type": "AES_256", "created": True, "protection": "hsm"}
    assert record["wrapping_key"] == {"sha256_spki": "ab" * 32, "sha256_cert": None, "bits": 4096,
                                      "pinned_by": "expect-fingerprint", "trust_unpinned": False}
    assert record["outputs"] == [{"path": "/media/usb/payments-wrapped.bin", "sha256": "cd" * 32, "bytes": 552}]


def test_an_export_record_holds_no_secret_even_when_handed_one():
    leaky_key = SimpleNamespace(**WRAPPING_KEY_FROM_REPORT, pin="123456", private_key="-----BEGIN PRIVATE KEY-----")
    leaky_output = SimpleNamespace(path="/m/k.bin", sha256="cd" * 32, bytes=1, key_material="00112233",
                                   passphrase="hunter2")
    record = export_record(wrapping_key=leaky_key, outputs=[leaky_output])
    forbidden = {"pin", "passphrase", "password", "secret", "private", "material", "blob", "plaintext"}
    assert [key for key in all_keys(record) if forbidden & set(key.lower().split("_"))] == []
    text = json.dumps(record)
    for secret in ("123456", "PRIVATE KEY", "00112233", "hunter2"):
        assert secret not in text


def test_an_export_record_missing_a_fingerprint_is_a_programming_error():
    with pytest.raises(ValueError):
        export_record(wrapping_key=SimpleNamespace(bits=4096, sha256_cert=None))


def test_an_export_record_appends_and_verifies(tmp_path):
    path = tmp_path / "audit.jsonl"
    written = append_record(path, export_record())
    assert {key: written[key] for key in EXPORT_RECORD_FIELDS} == export_record()
    assert verify_audit(path).records == 1
