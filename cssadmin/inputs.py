"""Opening a file the operator named, safely: never a FIFO, device or socket, never unbounded.

A FIFO named as a PIN file or a verify input would block `open()` forever, and a file swapped
for a FIFO between a `stat` and the `open` would too. So every input is opened with O_NONBLOCK
(a FIFO then opens at once instead of waiting for a writer), optionally with O_NOFOLLOW, and the
*descriptor* is checked with fstat: only a regular file is read. Reads are bounded by the caller's
limit. Failures are OSError (the system's reason) or NotRegularFile / TooLarge, both ValueError,
so each caller turns them into its own typed error and exit code. Nothing here prints.
"""
from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO

_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"))


class NotRegularFile(ValueError):
    """The path names something other than a regular file (or a link where links are refused)."""


class TooLarge(ValueError):
    """The file, or one of its lines, is larger than the caller's bound."""


def kind_of(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path: str | os.PathLike, *, follow_links: bool = True) -> int:
    """A read-only descriptor of the regular file at `path`, in blocking mode, or an exception."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOCTTY", 0)
    if not follow_links:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        descriptor = os.open(path, flags)
    except OSError as failure:
        if not follow_links and failure.errno in (errno.ELOOP, errno.EMLINK):
            raise NotRegularFile("a symbolic link (not followed)") from None
        if failure.errno == errno.ENXIO:   # a socket, or a FIFO opened for writing
            raise NotRegularFile("not a regular file") from None
        raise
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(kind_of(mode))
        if hasattr(os, "set_blocking"):
            os.set_blocking(descriptor, True)
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def open_stream(path: str | os.PathLike, *, follow_links: bool = True) -> BinaryIO:
    """open_regular as a buffered binary file object (closes the descriptor when closed)."""
    return os.fdopen(open_regular(path, follow_links=follow_links), "rb")


def read_at_most(path: str | os.PathLike, limit: int, *, follow_links: bool = True) -> bytes:
    """Up to limit + 1 bytes, so that the caller can tell an oversized file from one of exactly limit."""
    with open_stream(path, follow_links=follow_links) as stream:
        return stream.read(limit + 1)


def read_bounded(path: str | os.PathLike, limit: int, *, follow_links: bool = True) -> bytes:
    """The whole file, or TooLarge when it is larger than `limit` bytes."""
    data = read_at_most(path, limit, follow_links=follow_links)
    if len(data) > limit:
        raise TooLarge(f"larger than {limit} bytes")
    return data


def bounded_lines(stream: BinaryIO, line_limit: int, total_limit: int):
    """Yield the lines of `stream` (with their newlines); TooLarge for a line or a total over its bound."""
    total = 0
    while True:
        line = stream.readline(line_limit + 1)
        if not line:
            return
        total += len(line)
        if len(line) > line_limit and not line.endswith(b"\n"):
            raise TooLarge(f"a line is longer than {line_limit} bytes")
        if total > total_limit:
            raise TooLarge(f"larger than {total_limit} bytes")
        yield line
