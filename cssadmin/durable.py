"""The one durable writer: exclusive create, write, fsync, place; used by outputs, keystore and audit log.

A file is staged as a private temp file beside its final name (exclusive create, 0600, never
through a link), written in full and fsynced; `place` then puts it at the final name, either
replacing (only when the caller was told to) or never replacing, and the directory is fsynced.
"""
from __future__ import annotations

import errno
import hashlib
import os
import secrets
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

try:
    import fcntl as _fcntl
except ImportError:          # Windows
    _fcntl = None
try:
    import msvcrt as _msvcrt
except ImportError:          # POSIX
    _msvcrt = None

ON_WINDOWS = os.name == "nt"   # the one platform flag; a module constant, so tests can take the Windows branches

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)   # Windows has none: a reparse point is checked for instead
BINARY = getattr(os, "O_BINARY", 0)       # Windows: no newline translation
_REPLACE_RETRIES = 10          # Windows: antivirus or indexers briefly hold new files open
_REPLACE_RETRY_SECONDS = 0.05
_WINDOWS_LOCK_OFFSET = 0x7FFFFFF0   # lock one byte far past the data, so readers are never blocked


class AlreadyExists(FileExistsError):
    """The final name was taken between the check and the placement; nothing was replaced."""


def open_private(path: str | os.PathLike, flags: int, mode: int = 0o600) -> int:
    """os.open that never follows a link at `path`; a file it creates exclusively is exactly `mode`."""
    descriptor = os.open(path, flags | NOFOLLOW | BINARY, mode)
    if flags & os.O_EXCL and not ON_WINDOWS:
        try:
            os.fchmod(descriptor, mode)   # whatever the umask
        except OSError:
            os.close(descriptor)
            raise
    return descriptor


def write_fully(descriptor: int, data: bytes) -> None:
    """os.write may write less than asked (signals, pipes, some filesystems); loop until done."""
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view):]


def fsync_directory(directory: str | os.PathLike) -> None:
    """Make a rename or a new file's name durable. Windows cannot open a directory for fsync; NTFS
    journals the rename itself."""
    if ON_WINDOWS:
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def temp_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.cssadmin-{secrets.token_hex(6)}.tmp")


def stage(final: Path, data: bytes, *, halfway: Callable[[], None] | None = None) -> Path:
    """Write `data` to a new private temp file beside `final` and fsync it; return the temp's path.
    `halfway` runs with half of the data written (a test hook for crashes mid-write)."""
    temp = temp_name(final)
    descriptor = open_private(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        try:
            half = len(data) // 2
            write_fully(descriptor, data[:half])
            if halfway is not None:
                halfway()
            write_fully(descriptor, data[half:])
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except BaseException:
        remove_quietly([temp])
        raise
    return temp


def place(temp: Path, final: Path, *, replace: bool) -> None:
    """Put `temp` at `final`. Without `replace` an existing final name is never overwritten, even one
    that appeared a moment ago: a hard link fails on an existing name. Only where the file system has
    no hard links does an exclusive check before the rename stand in (SECURITY.md)."""
    if replace:
        _replace(temp, final)
        return
    try:
        os.link(temp, final, follow_symlinks=False)
    except FileExistsError:
        raise AlreadyExists(errno.EEXIST, "already exists", str(final)) from None
    except (OSError, NotImplementedError) as failure:
        if isinstance(failure, OSError) and failure.errno not in _NO_HARD_LINKS:
            raise
        if os.path.lexists(final):
            raise AlreadyExists(errno.EEXIST, "already exists", str(final)) from None
        _replace(temp, final)
        return
    remove_quietly([temp])


# What link() says where the file system (FAT/exFAT on a USB stick, some network shares) has no hard links.
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK, errno.ENOSYS}


def _replace(temp: Path, final: Path) -> None:
    for attempt in range(_REPLACE_RETRIES):
        try:
            os.replace(temp, final)
            return
        except PermissionError:
            if not ON_WINDOWS or attempt == _REPLACE_RETRIES - 1:
                raise
            time.sleep(_REPLACE_RETRY_SECONDS)


def remove_quietly(paths) -> None:
    """Best effort: the error that made us clean up is the one to report."""
    for path in paths:
        try:
            os.unlink(path)
        except OSError:
            pass


# --- locks: flock on POSIX, one byte of msvcrt.locking on Windows -------------------------
def lock(descriptor: int) -> None:
    """An exclusive lock on an open file, waiting for it."""
    if _fcntl is not None:
        _fcntl.flock(descriptor, _fcntl.LOCK_EX)
    elif _msvcrt is not None:
        os.lseek(descriptor, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        _msvcrt.locking(descriptor, _msvcrt.LK_LOCK, 1)   # retries for ~10 s, then OSError
    else:
        raise OSError(errno.ENOLCK, "this platform offers no file locking")


def unlock(descriptor: int) -> None:
    if _fcntl is not None:
        _fcntl.flock(descriptor, _fcntl.LOCK_UN)
    elif _msvcrt is not None:
        os.lseek(descriptor, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        _msvcrt.locking(descriptor, _msvcrt.LK_UNLCK, 1)


@contextmanager
def holding(lock_path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on `lock_path` (created 0600 if missing, never through a link)."""
    descriptor = open_private(lock_path, os.O_RDWR | os.O_CREAT)
    try:
        lock(descriptor)
        try:
            yield
        finally:
            unlock(descriptor)
    finally:
        os.close(descriptor)


def host_lock_path(what: str) -> str:
    """A lock file for `what` (a key on a token, say) shared by this user's runs on this host."""
    owner = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    digest = hashlib.sha256(what.encode("utf-8", errors="replace")).hexdigest()[:32]
    return os.path.join(tempfile.gettempdir(), f"cssadmin-{owner}-{digest}.lock")
