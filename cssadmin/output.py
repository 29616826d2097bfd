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
import shutil
import stat
from contextlib import contextmanager
from pathlib import Path

from . import durable, removable
from .checkpoints import checkpoint
from .durable import BINARY, fsync_directory, remove_quietly
from .errors import OutputError
from .facts import FileFacts

_READ_CHUNK = 1 << 16


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
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | BINARY, 0o600))
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


def write_all(out_dir: str | os.PathLike, files: list[tuple[str, bytes]], force: bool, *,
              vouchers: int = 1, require_removable: bool = False) -> list[FileFacts]:
    """Place `files` as one unit. The last `vouchers` files vouch for the others (the manifest's
    signature, then the manifest): old copies of them go before anything is replaced and the new ones
    come last, so a crash in between never leaves a manifest beside files it does not describe."""
    directory = Path(out_dir)
    meant = [(directory / name, data, hashlib.sha256(data).hexdigest()) for name, data in files]
    staged: list[Path] = []
    placed: list[Path] = []
    try:
        for final, data, digest in meant:
            _check_final(final, force)
            staged.append(durable.stage(final, data, halfway=lambda: checkpoint("writing")))
            _verify(staged[-1], digest)
        checkpoint("staged")
        if require_removable:
            _recheck_removable(directory)
        old_vouchers = [final for final, _, _ in meant[-vouchers:] if force and final.exists()]
        for voucher in old_vouchers:
            os.unlink(voucher)
        if old_vouchers:
            fsync_directory(directory)
        for (final, _, _), temp in zip(meant, staged):
            _check_final(final, force)
            durable.place(temp, final, replace=force)
            placed.append(final)
            checkpoint("renamed-one")
        fsync_directory(directory)
        checkpoint("renamed")
    except BaseException as failure:   # Ctrl-C included: what this run created goes
        remove_quietly(staged + placed)
        raise _placement_error(failure, directory) from None
    return [FileFacts(str(final.resolve()), digest, len(data)) for final, data, digest in meant]


def place_all(out_dir: str | os.PathLike, files: list[tuple[str, bytes]], force: bool, *,
              vouchers: int = 1, require_removable: bool = False) -> list[FileFacts]:
    """write_all, then verify_all; an interrupt between the two removes the files as well."""
    written = write_all(out_dir, files, force, vouchers=vouchers, require_removable=require_removable)
    try:
        verify_all(written)
    except BaseException:
        remove_quietly([Path(item.path) for item in written])
        raise
    return written


def _recheck_removable(directory: Path) -> None:
    """--require-removable again, on the directory's own descriptor, just before the first file is placed:
    a mount swapped in after the pre-flight cannot receive the key."""
    if durable.ON_WINDOWS:   # a directory cannot be opened there; its drive is asked again by path
        detection = removable.detect(directory)
    else:
        descriptor = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            detection = removable.detect_fd(descriptor, str(directory))
        finally:
            os.close(descriptor)
    if not detection.removable:
        raise OutputError(f"--require-removable: {detection.detail} (checked again before writing)",
                          code="NOT_REMOVABLE", remedy="write to removable media, or leave out --require-removable")


def verify_all(written: list[FileFacts]) -> None:
    """Read every placed file back; on a mismatch remove them all, since one export is one unit."""
    try:
        for item in written:
            _verify(Path(item.path), item.sha256)
    except BaseException as failure:   # Ctrl-C included: files not verified are not left behind
        remove_quietly([Path(item.path) for item in written])
        if isinstance(failure, OSError):
            raise OutputError(f"reading back {failure.filename} failed: {failure.strerror}",
                              code="READ_BACK_FAILED") from None
        raise
    checkpoint("verified")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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


def _placement_error(failure: BaseException, directory: Path) -> BaseException:
    """What a failed placement reports: the error it was (Ctrl-C included), or its output error."""
    if isinstance(failure, durable.AlreadyExists):
        return OutputError(f"{failure.filename} appeared while this run was writing; it was left as it is "
                           "and nothing was written", code="OUTPUT_EXISTS",
                           remedy="find out what wrote it, then move it away or pass --force")
    if isinstance(failure, OSError):
        return _as_output_error(failure, directory)
    return failure


def _as_output_error(failure: OSError, directory: Path) -> OutputError:
    if failure.errno in (errno.ENOSPC, errno.EDQUOT):
        return OutputError(f"destination {directory} is full; nothing was written", code="DISK_FULL")
    return OutputError(f"writing to {directory} failed: {failure.strerror or failure}; nothing was written",
                       code="WRITE_FAILED")


# --- several directories as one unit: a ceremony plan's destinations ---------------------------
def preflight_tree(out_dir: str | os.PathLike, groups: list[tuple[str, list[str]]], top_names: list[str],
                   force: bool, *, require_removable: bool = False) -> None:
    """`preflight` for files in subdirectories of out_dir (created when missing) and files in out_dir."""
    preflight(out_dir, top_names, force, require_removable=require_removable)
    for subdirectory, names in groups:
        target = Path(out_dir) / subdirectory
        if target.is_symlink() or (target.exists() and not target.is_dir()):
            raise OutputError(f"{target} exists and is not a directory", code="OUTPUT_EXISTS",
                              remedy="move it away or choose another --out-dir")
        if target.is_dir():
            preflight(target, names, force)


def write_tree(out_dir: str | os.PathLike, groups: list[tuple[str, list[tuple[str, bytes]]]],
               voucher: tuple[str, bytes], force: bool) -> list[list[FileFacts]]:
    """Place every group's files in <out_dir>/<group> and then `voucher` in out_dir, all or nothing.

    A group whose directory does not exist is built complete in a hidden staging directory and renamed
    into place; a group whose directory exists is staged file by file beside the final names, as
    write_all does. The voucher (the plan manifest) is placed last, so a crash never leaves it beside
    files it does not describe; any failure before it removes everything this run created."""
    top = Path(out_dir)
    staged: list[Path] = []            # temp files, and files inside staging directories
    built: list[tuple[Path, Path]] = []    # (staging directory, final directory)
    moves: list[tuple[Path, Path]] = []    # (temp, final) in existing directories
    placed: list[Path] = []            # final files placed in existing directories, and the voucher
    renamed: list[Path] = []           # final directories this run created
    results = []
    try:
        for subdirectory, files in groups:
            final_dir = top / subdirectory
            new = not final_dir.exists()
            where = top / f".{subdirectory}.cssadmin-{secrets.token_hex(6)}.tmp" if new else final_dir
            if new:
                os.mkdir(where, 0o700)
                built.append((where, final_dir))
            for name, data in files:
                _check_final(final_dir / name, force)
                temp = durable.stage(where / name, data, halfway=lambda: checkpoint("writing"))
                staged.append(temp)
                _verify(temp, hashlib.sha256(data).hexdigest())
                if new:
                    durable.place(temp, where / name, replace=False)
                    staged.append(where / name)
                else:
                    moves.append((temp, final_dir / name))
            results.append([FileFacts(str((final_dir / name).resolve()), hashlib.sha256(data).hexdigest(), len(data))
                            for name, data in files])
            checkpoint("staged-destination")
        voucher_final = top / voucher[0]
        _check_final(voucher_final, force)
        staged.append(durable.stage(voucher_final, voucher[1]))
        _verify(staged[-1], hashlib.sha256(voucher[1]).hexdigest())
        checkpoint("staged")
        # Old vouchers go first (the plan manifest, then each existing directory's own manifest, the
        # last file of its group), so no crash leaves an old manifest beside new files.
        old_vouchers = [voucher_final] + [top / subdirectory / files[-1][0] for subdirectory, files in groups
                                          if files and (top / subdirectory) not in {final for _, final in built}]
        for old in old_vouchers if force else []:
            if old.exists():
                os.unlink(old)
                fsync_directory(old.parent)
        for where, final_dir in built:
            if os.path.lexists(final_dir):
                raise durable.AlreadyExists(errno.EEXIST, "already exists", str(final_dir))
            os.rename(where, final_dir)
            renamed.append(final_dir)
            checkpoint("renamed-one")
        for temp, final in moves:
            _check_final(final, force)
            durable.place(temp, final, replace=force)
            placed.append(final)
        fsync_directory(top)
        durable.place(staged[-1], voucher_final, replace=force)
        placed.append(voucher_final)
        fsync_directory(top)
        checkpoint("renamed")
    except BaseException as failure:   # Ctrl-C included: what this run created goes
        remove_quietly(staged + placed)
        for directory in [where for where, _ in built] + renamed:
            shutil.rmtree(directory, ignore_errors=True)
        raise _placement_error(failure, top) from None
    digest = hashlib.sha256(voucher[1]).hexdigest()
    return results + [[FileFacts(str(voucher_final.resolve()), digest, len(voucher[1]))]]


@contextmanager
def withdrawn_on_failure(files: list[FileFacts], directories: tuple[Path, ...] = ()):
    """Placed and verified files taken back, with `directories` if that leaves them empty, when what
    follows fails (the audit record, Ctrl-C included): an export stands only once it is on the record."""
    try:
        yield
    except BaseException:
        remove_quietly(item.path for item in files)
        for directory in directories:
            try:
                os.rmdir(directory)
            except OSError:
                pass
        for parent in dict.fromkeys(Path(item.path).parent for item in files):
            try:
                fsync_directory(parent)
            except OSError:
                pass
        raise
