"""The two primitives every durable write here needs: a complete write and a directory fsync."""
from __future__ import annotations

import os

ON_WINDOWS = os.name == "nt"   # a module constant, so tests can take the Windows branches on Linux


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
