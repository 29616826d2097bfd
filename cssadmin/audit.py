"""The audit trail: one hash-chained JSON line per export, and the check of that chain.

Each line is a JSON object (sorted keys, no spaces) carrying `seq` (1, 2, 3, ...) and `prev_sha256`,
the SHA-256 of the previous line's exact bytes without its newline (64 zeros on the first line), so
a changed, removed, inserted or reordered line breaks the chain at the line after it. What the chain
cannot show: the last line altered or the tail of the log cut off at a line boundary. Records say
who, when and what - never a secret. Nothing here prints.
"""
from __future__ import annotations

import errno
import getpass
import hashlib
import json
import os
import socket
import sys
from datetime import datetime, timezone
from pathlib import Path, PureWindowsPath
from typing import Mapping

from . import inputs
from .durable import fsync_directory, write_fully
from .errors import OutputError

try:
    import fcntl as _fcntl
except ImportError:          # Windows
    _fcntl = None
try:
    import msvcrt as _msvcrt
except ImportError:          # POSIX
    _msvcrt = None

GENESIS_SHA256 = "0" * 64
CHAIN_FIELDS = frozenset({"seq", "prev_sha256", "time", "user", "host"})
EXPORT_RECORD_FIELDS = frozenset({"event", "tool_version", "provider", "key", "algorithm", "wrapping_key",
                                  "outputs", "warnings"})
WRAPPING_KEY_FIELDS = ("sha256_spki", "sha256_cert", "bits")
OUTPUT_FIELDS = ("path", "sha256", "bytes")
_WINDOWS_LOCK_OFFSET = 0x7FFFFFF0   # lock one byte far past the data, so readers are never blocked
_TAIL_CHUNK = 4096
MAX_AUDIT_LINE_BYTES = 1 << 20      # a record is about 1 KB; a longer line is not one cssadmin wrote
MAX_AUDIT_LOG_BYTES = 1 << 30       # a million exports; verify reads line by line, so this bounds time


# ------------------------------------------------------------------------------ where it lives

def default_audit_path(env: Mapping[str, str] = os.environ, platform: str = sys.platform,
                       home: str | os.PathLike | None = None) -> Path:
    """%LOCALAPPDATA%\\cssadmin\\audit.jsonl on Windows, else $XDG_STATE_HOME or ~/.local/state."""
    if platform.startswith("win"):
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

def build_export_record(*, tool_version: str, provider: str, key_name: str, key_type: str, key_created: bool,
                        protection: str, algorithm: str, wrapping_key: Mapping, outputs: list[Mapping],
                        warnings: list[str]) -> dict:
    """The fields of one export's record: only the named ones are copied, so no secret can ride along."""
    return {
        "event": "export",
        "tool_version": tool_version,
        "provider": provider,
        "key": {"name": key_name, "type": key_type, "created": bool(key_created), "protection": protection},
        "algorithm": algorithm,
        "wrapping_key": _pick(wrapping_key, WRAPPING_KEY_FIELDS, "wrapping_key"),
        "outputs": [_pick(item, OUTPUT_FIELDS, "outputs[]") for item in outputs],
        "warnings": [str(warning) for warning in warnings],
    }


def _pick(source: Mapping, fields: tuple[str, ...], what: str) -> dict:
    missing = [name for name in fields if name not in source]
    if missing:
        raise ValueError(f"{what} lacks {', '.join(missing)}")
    return {name: source[name] for name in fields}


# ------------------------------------------------------------------------------------ append

def append_record(path: str | os.PathLike, record: Mapping) -> dict:
    """Append one chained line under an exclusive lock, fsync it, and return the record written."""
    log_path = Path(path)
    clashing = CHAIN_FIELDS & set(record)
    if clashing:
        raise ValueError(f"record fields {sorted(clashing)} are set by the audit log itself")
    try:
        created = not log_path.exists()
        descriptor = _open_log(log_path)
    except OSError as failure:
        raise _write_failed(log_path, failure) from None
    try:
        written = _append_locked(descriptor, log_path, record)
        if created:
            fsync_directory(log_path.parent)
        return written
    except OSError as failure:
        raise _write_failed(log_path, failure) from None
    finally:
        os.close(descriptor)


def check_appendable(path: str | os.PathLike) -> None:
    """Before an export starts: the log can be opened for appending and its last line is whole, so a
    run is not refused for its audit record only after the key has been made and exported."""
    log_path = Path(path)
    try:
        if os.path.lexists(log_path):
            descriptor = os.open(log_path, os.O_RDWR | os.O_APPEND | getattr(os, "O_BINARY", 0)
                                 | getattr(os, "O_NOFOLLOW", 0))
            try:
                _last_line(descriptor, os.fstat(descriptor).st_size)
            finally:
                os.close(descriptor)
            return
        ancestor = next(parent for parent in log_path.parents if os.path.lexists(parent))
        if not ancestor.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(ancestor))
        if not os.access(ancestor, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "cannot create the log there", str(ancestor))
    except OSError as failure:
        raise _write_failed(log_path, failure) from None


def _open_log(log_path: Path) -> int:
    # O_NOFOLLOW: a symlink planted at the log's name must not redirect the appends.
    _make_private_dirs(log_path.parent)
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
    return os.open(log_path, flags, 0o600)


def _append_locked(descriptor: int, log_path: Path, record: Mapping) -> dict:
    _lock(descriptor)
    try:
        size = os.fstat(descriptor).st_size
        seq, prev_sha256 = _next_link(log_path, _last_line(descriptor, size))
        full = {**record, "seq": seq, "prev_sha256": prev_sha256, "time": _utc_now(),
                "user": _os_user(), "host": _host_name()}
        line = serialize(full) + b"\n"
        try:
            write_fully(descriptor, line)
            os.fsync(descriptor)
        except OSError:
            _truncate_quietly(descriptor, size)   # leave no torn line behind (disk full, I/O error)
            raise
        return full
    finally:
        _unlock(descriptor)


def serialize(record: Mapping) -> bytes:
    """The one canonical form of a line: sorted keys, no spaces, ASCII."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def _next_link(log_path: Path, last_line: bytes | None) -> tuple[int, str]:
    if last_line is None:
        return 1, GENESIS_SHA256
    previous = _parse_line(last_line)
    seq = previous.get("seq") if previous is not None else None
    if not _is_seq(seq):
        raise OutputError(f"audit log {log_path}: the last line is not a valid record; not appending to it",
                          code="AUDIT_CHAIN_BROKEN", remedy=f"run cssadmin verify-audit {log_path}")
    return seq + 1, sha256_hex(last_line)


def _last_line(descriptor: int, size: int) -> bytes | None:
    """The last line without its newline; None for an empty log. A torn last line is refused."""
    if size == 0:
        return None
    tail = b""
    position = size
    while position > 0 and b"\n" not in tail[:-1]:
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


# --- locking: flock on POSIX, one byte of msvcrt.locking on Windows ------------------------

def _lock(descriptor: int) -> None:
    if _fcntl is not None:
        _fcntl.flock(descriptor, _fcntl.LOCK_EX)
    elif _msvcrt is not None:
        os.lseek(descriptor, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        _msvcrt.locking(descriptor, _msvcrt.LK_LOCK, 1)   # retries for ~10 s, then OSError
    else:
        raise OutputError("this platform offers no file locking for the audit log", code="AUDIT_WRITE_FAILED")


def _unlock(descriptor: int) -> None:
    if _fcntl is not None:
        _fcntl.flock(descriptor, _fcntl.LOCK_UN)
    elif _msvcrt is not None:
        os.lseek(descriptor, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        _msvcrt.locking(descriptor, _msvcrt.LK_UNLCK, 1)


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


# ------------------------------------------------------------------------------------ verify

def verify_audit(path: str | os.PathLike) -> int:
    """The number of records when the chain is intact; otherwise OutputError naming the first broken line.

    The log is opened without blocking (a FIFO is refused at once, not waited on), must be a regular
    file, and is read line by line within MAX_AUDIT_LINE_BYTES per line and MAX_AUDIT_LOG_BYTES in all."""
    log_path = Path(path)
    try:
        with inputs.open_stream(log_path) as handle:
            return _verify_lines(log_path, inputs.bounded_lines(handle, MAX_AUDIT_LINE_BYTES, MAX_AUDIT_LOG_BYTES))
    except FileNotFoundError:
        raise OutputError(f"audit log {log_path} does not exist", code="AUDIT_MISSING") from None
    except inputs.NotRegularFile as refusal:
        raise OutputError(f"audit log {log_path} is {refusal}, not a regular file; not read",
                          code="AUDIT_READ_FAILED") from None
    except inputs.TooLarge as refusal:
        raise OutputError(f"audit log {log_path}: {refusal} (no record cssadmin writes is); not read further",
                          code="AUDIT_TOO_LARGE") from None
    except OSError as failure:
        raise OutputError(f"reading the audit log {log_path} failed: {failure.strerror or failure}",
                          code="AUDIT_READ_FAILED") from None


def _verify_lines(log_path: Path, lines) -> int:
    count, previous_line = 0, None
    for number, raw in enumerate(lines, 1):
        problem = _line_problem(number, raw, previous_line)
        if problem:
            raise OutputError(f"audit log {log_path}: line {number}: {problem}", code="AUDIT_CHAIN_BROKEN")
        count, previous_line = number, raw[:-1]
    return count


def _line_problem(number: int, raw: bytes, previous_line: bytes | None) -> str | None:
    """Why this line breaks the chain, or None."""
    if not raw.endswith(b"\n"):
        return "incomplete: no newline at the end (an interrupted write, or the file was cut)"
    line = raw[:-1]
    record = _parse_line(line)
    if record is None:
        return "not a JSON object"
    if not _is_canonical(record, line):
        return "not in the canonical form cssadmin writes (the line was edited)"
    if record.get("seq") != number or not _is_seq(record.get("seq")):
        return (f"seq is {record.get('seq')!r}, expected {number} "
                "(a record was removed, inserted or reordered)")
    expected = GENESIS_SHA256 if previous_line is None else sha256_hex(previous_line)
    if record.get("prev_sha256") != expected:
        if previous_line is None:
            return "prev_sha256 is not 64 zeros: this is not the first record of a log"
        return f"prev_sha256 does not match line {number - 1} (one of the two was changed)"
    return None


def _parse_line(line: bytes) -> dict | None:
    try:
        record = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _is_canonical(record: dict, line: bytes) -> bool:
    try:
        return serialize(record) == line
    except ValueError:   # NaN or Infinity: JSON that cssadmin never writes
        return False


def _is_seq(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
