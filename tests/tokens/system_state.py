"""What the machine's own openCryptoki looks like, to prove that a test run leaves it alone.

    python tests/tokens/system_state.py snapshot FILE     record it (tests/run.sh, before provisioning)
    python tests/tokens/system_state.py compare FILE      exit 1, listing the differences, if it changed

Recorded: every file and directory under the system openCryptoki's configuration and token
directories (SHA-256, size, mode, mtime), which of its shared-memory segments and run files exist,
and every running pkcsslotd that is not one of the test prefixes' (pid and executable). The test
prefix under /var/cache/cssadmin-tests is not part of it.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

TREES = ("/etc/opencryptoki", "/var/lib/opencryptoki")
RUN_FILES = ("/run/pkcsslotd.pid", "/run/pkcsslotd.socket", "/run/opencryptoki")
SHM = "/dev/shm"
TEST_PREFIX = "/var/cache/cssadmin-tests/"


def _tree(root: Path) -> dict:
    found = {}
    if not root.exists():
        return found
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        for name in [""] + sorted(files):
            path = Path(directory, name)
            info = path.lstat()
            entry = {"mode": info.st_mode, "size": info.st_size, "mtime_ns": info.st_mtime_ns}
            if name and path.is_file() and not path.is_symlink():
                entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
            found[str(path)] = entry
    return found


def _daemons() -> list:
    daemons = []
    for pid in sorted(os.listdir("/proc"), key=lambda p: int(p) if p.isdigit() else -1):
        if not pid.isdigit():
            continue
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            continue
        if os.path.basename(exe) == "pkcsslotd" and not exe.startswith(TEST_PREFIX):
            daemons.append([int(pid), exe])
    return daemons


def snapshot(trees=TREES, shm=SHM) -> dict:
    state = {"files": {}, "daemons": _daemons(), "run": [p for p in RUN_FILES if os.path.lexists(p)]}
    for tree in trees:
        state["files"].update(_tree(Path(tree)))
    state["shm"] = sorted(name for name in (os.listdir(shm) if os.path.isdir(shm) else [])
                          if "opencryptoki" in name and not name.startswith(TEST_PREFIX.strip("/").replace("/", ".")))
    return state


def differences(before: dict, after: dict) -> list[str]:
    changes = []
    for path in sorted(set(before["files"]) | set(after["files"])):
        if before["files"].get(path) != after["files"].get(path):
            changes.append(f"{path}: {before['files'].get(path)} -> {after['files'].get(path)}")
    for key in ("daemons", "run", "shm"):
        if before[key] != after[key]:
            changes.append(f"{key}: {before[key]} -> {after[key]}")
    return changes


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("snapshot", "compare"):
        print(__doc__, file=sys.stderr)
        return 2
    if argv[0] == "snapshot":
        Path(argv[1]).write_text(json.dumps(snapshot()))
        return 0
    changes = differences(json.loads(Path(argv[1]).read_text()), snapshot())
    for change in changes:
        print(f"system openCryptoki changed: {change}", file=sys.stderr)
    return 1 if changes else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
