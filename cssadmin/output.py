"""Durable, all-or-nothing writes of one export's files into the destination directory.

Protocol: stage every file as a temp file beside its final name (exclusive create, 0600), write,
fsync, read back; only then rename each over its final name (never through a symlink), fsync the
directory, and read every final file back against the SHA-256 that was meant. Any failure removes
what this run created, and with --force a pre-existing file is replaced only after every new file
is staged and verified.
"""
from __future__ import annotations

import errno
import hashlib
import os
import secrets
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import removable
from . import durable
from .durable import fsync_directory, write_fully
from .errors import OutputError

_READ_CHUNK = 1 << 16
_REPLACE_RETRIES = 10          # Windows: antivirus or indexers briefly hold new files open
_REPLACE_RETRY_SECONDS = 0.05
PAUSE_VARIABLE = "CSSADMIN_TEST_PAUSE_AT"


@dataclass(frozen=True)
class Written:
    path: str
    sha256: str
    bytes: int


def checkpoint(step: str) -> None:
    """Test hook: stop here, for a test to kill the process, when CSSADMIN_TEST_PAUSE_AT names this step.

    The one write to stderr outside the CLI, and only under the test variable: it names the process
    to kill, which in a frozen binary is not the one the test started (the bootloader's child)."""
    if os.environ.get(PAUSE_VARIABLE) == step:
        sys.stderr.write(f"cssadmin: paused at {step} (pid {os.getpid()})\n")
        sys.stderr.flush()
        while True:
            time.sleep(60)


def preflight(out_dir: str | os.PathLike, names: list[str], force: bool, *, require_removable: bool = False) -> None:
    """Fail now, before any key is generated, if these files cannot be written."""
    directory = Path(out_dir)
    if not directory.is_dir():
        raise OutputError(f"destination {directory} does not exist or is not a directory",
                          code="DESTINATION_MISSING")
    if require_removable:
        detection = removable.detect(directory)
        if not detection.removable:
            raise OutputError(f"--require-removable: {detection.detail}", code="NOT_REMOVABLE",
                              remedy="write to removable media, or leave out --require-removable")
    for name in names:
        _check_final(directory / name, force)
    probe = directory / f".cssadmin-probe-{secrets.token_hex(6)}"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600))
        os.unlink(probe)
    except OSError as failure:
        raise OutputError(f"destination {directory} is not writable: {failure.strerror}",
                          code="DESTINATION_NOT_WRITABLE") from None


def _is_link(final: Path) -> bool:
    """A symbolic link, or on Windows any reparse point (a junction, say, which is_symlink() misses)."""
    try:
        status = os.lstat(final)
    except OSError:
        return False
    return stat.S_ISLNK(status.st_mode) or bool(
        getattr(status, "st_file_attributes", 0) & stat.FILE_ATTRIBUTE_REPARSE_POINT)


def _check_final(final: Path, force: bool) -> None:
    if _is_link(final):
        raise OutputError(f"{final} is a symbolic link; cssadmin does not write through links",
                          code="OUTPUT_IS_SYMLINK", remedy="remove the link or choose another --out-dir")
    if final.exists():
        if final.is_dir():
            raise OutputError(f"{final} is a directory", code="OUTPUT_EXISTS")
        if not force:
            raise OutputError(f"{final} already exists", code="OUTPUT_EXISTS",
                              remedy="move it away, or pass --force to replace it")


def write_all(out_dir: str | os.PathLike, files: list[tuple[str, bytes]], force: bool) -> list[Written]:
    """Place `files` as one unit. The last file vouches for the others (the manifest): an old copy of
    it goes before anything is replaced and the new one comes last, so a crash in between never
    leaves a manifest beside files it does not describe."""
    directory = Path(out_dir)
    meant = [(directory / name, data, hashlib.sha256(data).hexdigest()) for name, data in files]
    staged: list[Path] = []
    placed: list[Path] = []
    try:
        for final, data, digest in meant:
            _check_final(final, force)
            staged.append(_stage(final, data, digest))
        checkpoint("staged")
        voucher = meant[-1][0]
        if force and voucher.exists():
            os.unlink(voucher)
            fsync_directory(directory)
        for (final, _, _), temp in zip(meant, staged):
            _check_final(final, force)
            _replace(temp, final)
            placed.append(final)
            checkpoint("renamed-one")
        fsync_directory(directory)
        checkpoint("renamed")
    except BaseException as failure:   # Ctrl-C included: what this run created goes
        _remove_quietly(staged + placed)
        if isinstance(failure, OSError):
            raise _as_output_error(failure, directory) from None
        raise
    return [Written(str(final.resolve()), digest, len(data)) for final, data, digest in meant]


def verify_all(written: list[Written]) -> None:
    """Read every placed file back; on a mismatch remove them all, since one export is one unit."""
    try:
        for item in written:
            _verify(Path(item.path), item.sha256)
    except BaseException as failure:   # Ctrl-C included: files not verified are not left behind
        _remove_quietly([Path(item.path) for item in written])
        if isinstance(failure, OSError):
            raise OutputError(f"reading back {failure.filename} failed: {failure.strerror}",
                              code="READ_BACK_FAILED") from None
        raise
    checkpoint("verified")


def _stage(final: Path, data: bytes, digest: str) -> Path:
    temp = final.with_name(f".{final.name}.cssadmin-{secrets.token_hex(6)}.tmp")
    descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
    try:
        half = len(data) // 2
        write_fully(descriptor, data[:half])
        checkpoint("writing")
        write_fully(descriptor, data[half:])
        os.fsync(descriptor)
    except BaseException:
        os.close(descriptor)
        _remove_quietly([temp])
        raise
    os.close(descriptor)
    _verify(temp, digest)
    return temp



def _replace(temp: Path, final: Path) -> None:
    for attempt in range(_REPLACE_RETRIES):
        try:
            os.replace(temp, final)
            return
        except PermissionError:
            if not durable.ON_WINDOWS or attempt == _REPLACE_RETRIES - 1:
                raise
            time.sleep(_REPLACE_RETRY_SECONDS)



def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_READ_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(path: Path, digest: str) -> None:
    if sha256_of_file(path) != digest:
        raise OutputError(f"{path} did not read back as written", code="READ_BACK_MISMATCH",
                          remedy="the medium may be failing; use another one")


def _remove_quietly(paths: list[Path]) -> None:
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError:
            pass  # best effort: the original error is the one to report


def _as_output_error(failure: OSError, directory: Path) -> OutputError:
    if failure.errno in (errno.ENOSPC, errno.EDQUOT):
        return OutputError(f"destination {directory} is full; nothing was written", code="DISK_FULL")
    return OutputError(f"writing to {directory} failed: {failure.strerror or failure}; nothing was written",
                       code="WRITE_FAILED")
