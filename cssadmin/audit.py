"""The audit trail: one sealed, hash-chained JSON line per export. The check is in audit_verify.py.

Each line is a JSON object (sorted keys, no spaces) carrying `seq` (1, 2, 3, ...), `prev_sha256`,
the SHA-256 of the previous line's exact bytes without its newline (64 zeros on the first line), and
its own `sha256` over its canonical form without `sha256` and `signature`, so an edit to any line,
the last one included, is found. With a signing key a line also carries `signature` (base64 DER
ECDSA-SHA256 over those same bytes) and the signer's fingerprint and public key. The head (the last
line's seq and sha256) travels in the manifest, so a log cut back no longer matches it. Records say
who, when and what - never a secret. Nothing here prints.
"""
from __future__ import annotations

import base64
import errno
import getpass
import hashlib
import json
import os
import re
import socket
import stat
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PureWindowsPath
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from . import inputs
from .durable import ON_WINDOWS, fsync_directory, lock, open_private, unlock, write_fully
from .errors import OutputError, UsageError
from .facts import ExportFacts, FileFacts

if TYPE_CHECKING:
    from .signatures import Signer

GENESIS_SHA256 = "0" * 64
CHAIN_FIELDS = frozenset({"seq", "prev_sha256", "time", "user", "host"})
SEAL_FIELDS = frozenset({"sha256", "signature"})     # not covered by the record's own hash
SIGNER_FIELDS = frozenset({"signer_sha256_spki", "signer_public_key_pem"})
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
EXPORT_RECORD_FIELDS = frozenset({"event", "tool_version", "provider", "key", "algorithm", "wrapping_key",
                                  "outputs", "warnings"})
WRAPPING_KEY_FIELDS = ("sha256_spki", "sha256_cert", "bits", "pinned_by", "trust_unpinned")
OUTPUT_FIELDS = ("path", "sha256", "bytes")
_TAIL_CHUNK = 4096
MAX_AUDIT_LINE_BYTES = 1 << 20      # a record is about 1 KB; a longer line is not one cssadmin wrote
MAX_AUDIT_LOG_BYTES = 1 << 30       # a million exports; verify reads line by line, so this bounds time


# ------------------------------------------------------------------------------ where it lives

def default_audit_path(env: Mapping[str, str] = os.environ, windows: bool = ON_WINDOWS,
                       home: str | os.PathLike | None = None) -> Path:
    """%LOCALAPPDATA%\\cssadmin\\audit.jsonl on Windows, else $XDG_STATE_HOME or ~/.local/state."""
    if windows:
        base = env.get("LOCALAPPDATA") or PureWindowsPath(_home(env, "USERPROFILE", home), "AppData", "Local")
        return Path(str(PureWindowsPath(base, "cssadmin", "audit.jsonl")))
    state_home = env.get("XDG_STATE_HOME", "")
    if not os.path.isabs(state_home):   # the XDG spec: a relative value is invalid and ignored
        state_home = os.path.join(_home(env, "HOME", home), ".local", "state")
    return Path(state_home, "cssadmin", "audit.jsonl")


def _home(env: Mapping[str, str], variable: str, home: str | os.PathLike | None) -> str:
    if home is not None:
        return os.fspath(home)
    if env.get(variable):
        return env[variable]
    try:
        return str(Path.home())
    except RuntimeError:
        raise OutputError("cannot find the home directory for the audit log",
                          code="AUDIT_WRITE_FAILED", remedy="pass --audit-log FILE or --no-audit") from None


# ------------------------------------------------------------------------------ what goes in

def build_export_record(facts: ExportFacts, files: Iterable[FileFacts]) -> dict:
    """The fields of one export's record: only the named ones are copied, so no secret can ride along."""
    return {
        "event": "export",
        "tool_version": facts.tool_version,
        "provider": facts.provider,
        "key": {"name": facts.key.name, "type": facts.key.type, "created": bool(facts.key.created),
                "protection": facts.key.protection},
        "algorithm": facts.algorithm,
        "wrapping_key": _pick(facts.wrapping_key, WRAPPING_KEY_FIELDS, "wrapping_key"),
        "outputs": [_pick(item, OUTPUT_FIELDS, "outputs[]") for item in files],
        "warnings": [str(warning) for warning in facts.warnings],
    }


def _pick(source: object, fields: tuple[str, ...], what: str) -> dict:
    missing = [name for name in fields if not hasattr(source, name)]
    if missing:
        raise ValueError(f"{what} lacks {', '.join(missing)}")
    return {name: getattr(source, name) for name in fields}


# ------------------------------------------------------------------------------------ append

@dataclass(frozen=True)
class Head:
    """The anchor of a log: the last record's seq and its own sha256. It travels in the manifest."""
    seq: int
    sha256: str

    def as_dict(self) -> dict:
        return {"seq": self.seq, "sha256": self.sha256}


@dataclass(frozen=True)
class PendingRecord:
    """A record ready to append: its line and the head it makes, computed under the log's lock."""
    record: dict
    line: bytes
    size_before: int
    head: Head


def covered_bytes(record: Mapping) -> bytes:
    """What a record's own `sha256` and its `signature` cover: its canonical form without those two."""
    return serialize({key: value for key, value in record.items() if key not in SEAL_FIELDS})


class AuditLog:
    """The log opened for one export and locked until it closes, so that the head computed before
    the files are written (and put in the manifest) is the head that is appended.

    An existing log is opened and locked at once, at the pre-flight, and its last line checked. A log
    that does not exist yet is only checked to be creatable then (a refused run leaves no file
    behind); it is created and locked when the head is first computed, and held to the append."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._descriptor: int | None = None
        self._closed = False
        self.ends_signed = False   # its last record is signed: verify-audit wants every later one signed
        if os.path.lexists(self.path):
            self._open_and_lock(os.O_RDWR | os.O_APPEND)
            try:
                self._tail()   # a torn or foreign last line refuses the run now, before any key is made
            except BaseException:
                self.close()
                raise
        else:
            _check_creatable(self.path)

    def _open_and_lock(self, flags: int) -> None:
        try:
            if flags & os.O_CREAT:
                _make_private_dirs(self.path.parent)
            created = not os.path.lexists(self.path)
            # O_NOFOLLOW: a symlink planted at the log's name must not redirect the appends.
            descriptor = open_private(self.path, flags | getattr(os, "O_NONBLOCK", 0))
        except OSError as failure:
            raise _write_failed(self.path, failure) from None
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):   # /dev/null, a FIFO: appends would vanish
            os.close(descriptor)
            raise OutputError(f"audit log {self.path} is not a regular file", code="AUDIT_NOT_A_FILE",
                              remedy="pass --audit-log with a regular file, or --no-audit to go without")
        try:
            lock(descriptor)
        except BaseException as failure:
            os.close(descriptor)
            if isinstance(failure, OSError):
                raise _write_failed(self.path, failure) from None
            raise
        self._descriptor = descriptor
        if created:
            try:
                fsync_directory(self.path.parent)
            except OSError as failure:
                self.close()
                raise _write_failed(self.path, failure) from None

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True
        if self._descriptor is None:
            return
        try:
            unlock(self._descriptor)
        finally:
            os.close(self._descriptor)
            self._descriptor = None

    def _open_descriptor(self) -> int:
        if self._descriptor is None:
            if self._closed:
                raise ValueError("the audit log is closed")
            self._open_and_lock(os.O_RDWR | os.O_APPEND | os.O_CREAT)
        return self._descriptor

    def _tail(self) -> tuple[int, int, str]:
        descriptor = self._open_descriptor()
        size = os.fstat(descriptor).st_size
        last_line = _last_line(descriptor, size)
        seq, prev_sha256 = _next_link(self.path, last_line)
        self.ends_signed = last_line is not None and "signature" in parse_line(last_line)
        return size, seq, prev_sha256

    def next_head(self, record: Mapping, signer: Signer | None = None,
                  after: PendingRecord | None = None) -> PendingRecord:
        """The record as it will be appended, sealed by its own sha256 (and signed, with a signer);
        chained onto `after`, a record not appended yet, when one is given (a plan's records)."""
        clashing = (CHAIN_FIELDS | SEAL_FIELDS | SIGNER_FIELDS) & set(record)
        if clashing:
            raise ValueError(f"record fields {sorted(clashing)} are set by the audit log itself")
        if after is not None:
            size, seq, prev_sha256 = after.size_before, after.head.seq + 1, sha256_hex(after.line)
        else:
            try:
                size, seq, prev_sha256 = self._tail()
            except OSError as failure:
                raise _write_failed(self.path, failure) from None
        full = {**record, "seq": seq, "prev_sha256": prev_sha256, "time": _utc_now(),
                "user": _os_user(), "host": _host_name()}
        if signer is not None:
            full["signer_sha256_spki"] = signer.facts.sha256_spki
            full["signer_public_key_pem"] = signer.facts.public_key_pem
        covered = covered_bytes(full)
        full["sha256"] = sha256_hex(covered)
        if signer is not None:
            full["signature"] = base64.b64encode(signer.sign(covered)).decode("ascii")
        return PendingRecord(full, serialize(full), size, Head(seq, full["sha256"]))

    def append(self, pending: PendingRecord) -> dict:
        """Write the pending record, fsync it; refused if the log is not as it was when it was computed."""
        self.append_all([pending])
        return pending.record

    def append_all(self, pendings: Sequence[PendingRecord]) -> None:
        """Write records chained by next_head(after=...) in one write and one fsync: all or none."""
        descriptor = self._open_descriptor()
        size_before = pendings[0].size_before
        try:
            if os.fstat(descriptor).st_size != size_before:
                raise OutputError(f"audit log {self.path} changed while it was locked; not appending",
                                  code="AUDIT_WRITE_FAILED", remedy=f"run cssadmin verify-audit {self.path}")
            try:
                write_fully(descriptor, b"".join(pending.line + b"\n" for pending in pendings))
                os.fsync(descriptor)
            except OSError:
                _truncate_quietly(descriptor, size_before)   # no torn line (disk full, I/O error)
                raise
        except OSError as failure:
            raise _write_failed(self.path, failure) from None


def append_record(path: str | os.PathLike, record: Mapping, signer: Signer | None = None) -> dict:
    """Append one sealed, chained line under an exclusive lock, fsync it, and return the record written."""
    clashing = (CHAIN_FIELDS | SEAL_FIELDS | SIGNER_FIELDS) & set(record)
    if clashing:   # before the log is created
        raise ValueError(f"record fields {sorted(clashing)} are set by the audit log itself")
    with AuditLog(path) as log:
        return log.append(log.next_head(record, signer))


def parse_head(text: str) -> Head:
    """`SEQ:SHA256`, as --expect-head takes it (a manifest's audit_head, or a report's audit)."""
    seq_text, _, digest = text.strip().partition(":")
    digest = digest.strip().lower()
    if not seq_text.isdigit() or int(seq_text) < 1 or not _SHA256_HEX.fullmatch(digest):
        raise UsageError(f"--expect-head {text[:100]!r}: expected SEQ:SHA256 (a record number, a colon, "
                         "64 hex digits), as in the manifest's audit_head")
    return Head(int(seq_text), digest)


def _check_creatable(log_path: Path) -> None:
    """Before an export starts, for a log that does not exist yet: its nearest existing ancestor is a
    directory this user can create the rest in."""
    try:
        ancestor = next(parent for parent in log_path.parents if os.path.lexists(parent))
        if not ancestor.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(ancestor))
        if not os.access(ancestor, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "cannot create the log there", str(ancestor))
    except OSError as failure:
        raise _write_failed(log_path, failure) from None


def serialize(record: Mapping) -> bytes:
    """The one canonical form of a line: sorted keys, no spaces, ASCII."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def _next_link(log_path: Path, last_line: bytes | None) -> tuple[int, str]:
    if last_line is None:
        return 1, GENESIS_SHA256
    previous = parse_line(last_line)
    seq = previous.get("seq") if previous is not None else None
    if not is_seq(seq):
        raise OutputError(f"audit log {log_path}: the last line is not a valid record; not appending to it",
                          code="AUDIT_CHAIN_BROKEN", remedy=f"run cssadmin verify-audit {log_path}")
    own = previous.get("sha256")
    if own is not None and own != sha256_hex(covered_bytes(previous)):   # 0.1.0 records carry none
        raise OutputError(f"audit log {log_path}: the last record was changed after it was written; not "
                          "appending to it", code="AUDIT_CHAIN_BROKEN",
                          remedy=f"run cssadmin verify-audit {log_path}, keep it as evidence, and start a new log")
    return seq + 1, sha256_hex(last_line)


def _last_line(descriptor: int, size: int) -> bytes | None:
    """The last line without its newline; None for an empty log. A torn last line is refused."""
    if size == 0:
        return None
    tail = b""
    position = size
    while position > 0 and b"\n" not in tail[:-1]:
        if len(tail) > MAX_AUDIT_LINE_BYTES + 1:   # no record cssadmin writes is that long: do not read on
            raise OutputError(f"the audit log's last line is longer than {MAX_AUDIT_LINE_BYTES} bytes: not a record "
                              "cssadmin wrote; not appending to it", code="AUDIT_CHAIN_BROKEN",
                              remedy="run cssadmin verify-audit on it, keep it as evidence, and start a new log")
        step = min(_TAIL_CHUNK, position)
        position -= step
        tail = _read_at(descriptor, position, step) + tail
    if not tail.endswith(b"\n"):
        raise OutputError("the audit log ends in an incomplete line (an earlier write was interrupted); "
                          "not appending to it", code="AUDIT_CHAIN_BROKEN",
                          remedy="run cssadmin verify-audit on it, keep it as evidence, and start a new log")
    return tail[:-1].rsplit(b"\n", 1)[-1]


def _read_at(descriptor: int, offset: int, count: int) -> bytes:
    os.lseek(descriptor, offset, os.SEEK_SET)
    chunks = []
    while count > 0:
        chunk = os.read(descriptor, count)
        if not chunk:
            break
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)



def _truncate_quietly(descriptor: int, size: int) -> None:
    try:
        os.ftruncate(descriptor, size)
    except OSError:
        pass   # the write error is the one to report


# --- who, when, where --------------------------------------------------------------------

def _utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:   # no login name and no passwd entry (containers): KeyError, OSError
        uid = getattr(os, "getuid", None)
        return f"uid:{uid()}" if uid else "unknown"


def _host_name() -> str:
    try:
        return socket.gethostname()
    except OSError:
        return "unknown"


def _make_private_dirs(directory: Path) -> None:
    missing = []
    while not directory.exists():
        missing.append(directory)
        if directory.parent == directory:
            break
        directory = directory.parent
    for each in reversed(missing):
        try:
            os.mkdir(each, 0o700)
        except FileExistsError:   # another cssadmin made it a moment ago
            pass



def _write_failed(log_path: Path, failure: OSError) -> OutputError:
    return OutputError(f"writing the audit log {log_path} failed: {failure.strerror or failure}",
                       code="AUDIT_WRITE_FAILED", remedy="pass --audit-log FILE, or --no-audit to go without")


def parse_line(line: bytes) -> dict | None:
    try:
        record = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def is_seq(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
