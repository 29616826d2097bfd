"""Test hook: named points of a run where a test can stop the process, to kill or interrupt it there.

The one write to stderr outside the CLI, and only when CSSADMIN_TEST_PAUSE_AT names the step (a
comma-separated list names several). It names the process, which in a one-file frozen binary is
not the one the test started (the bootloader's child).
"""
from __future__ import annotations

import os
import sys
import time

PAUSE_VARIABLE = "CSSADMIN_TEST_PAUSE_AT"


def checkpoint(step: str) -> None:
    """Pause here if the test variable names this step: until a line arrives on stdin, or, when stdin
    has no writer (closed, /dev/null), until the process is killed."""
    if step not in os.environ.get(PAUSE_VARIABLE, "").split(","):
        return
    sys.stderr.write(f"cssadmin: paused at {step} (pid {os.getpid()})\n")
    sys.stderr.flush()
    if sys.stdin and sys.stdin.readline():
        return
    while True:
        time.sleep(60)
