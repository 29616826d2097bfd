"""What the Windows test run (tests/run-windows.sh) does about Wine 8's flakes, and nothing else.

Under Wine only, `subprocess.run` runs a program again, at most twice more, when:
- CreateProcess failed with ERROR_INTERNAL_ERROR (1359), which Wine 8 returns now and then;
- an `openssl` call (tests/windows/openssl_standin.py, which forwards to the host's openssl) failed
  without a word from OpenSSL: status not 0, nothing on stdout, and stderr empty or only the stand-in's
  own complaint. CI saw this once (status 1, nothing on stdout or stderr) from a `pkeyutl -decrypt`
  that then passed 1,200 times out of 1,200 in a loop. OpenSSL explains its failures, on stderr or
  (`dgst -verify`: "Verification failure") on stdout, so a failure it explains is never run again: a
  blob or signature that OpenSSL refuses still fails its test.
Every rerun is listed in the run's summary (`reruns`), so a flake that grows is seen.
"""
from __future__ import annotations

import os
import subprocess
import time

WINE_INTERNAL_ERROR = 1359
ATTEMPTS = 3
STANDIN_COMPLAINT = b"openssl stand-in:"

reruns: list[str] = []
_run_once = subprocess.run


def _program(command) -> str:
    first = command[0] if isinstance(command, (list, tuple)) else str(command).split()[0]
    return os.path.basename(str(first)).lower()


def _openssl_said_nothing(command, result: subprocess.CompletedProcess) -> bool:
    if (_program(command) not in ("openssl", "openssl.exe") or result.returncode == 0
            or result.stdout is None or result.stderr is None or result.stdout.strip()):
        return False
    stderr = result.stderr.encode() if isinstance(result.stderr, str) else result.stderr
    return not stderr.strip() or stderr.startswith(STANDIN_COMPLAINT)


def run(*args, **kwargs) -> subprocess.CompletedProcess:
    check = kwargs.pop("check", False)
    command = args[0] if args else kwargs.get("args")
    for attempt in range(1, ATTEMPTS + 1):
        try:
            result = _run_once(*args, **kwargs)
        except OSError as failure:
            if getattr(failure, "winerror", None) != WINE_INTERNAL_ERROR or attempt == ATTEMPTS:
                raise
            reruns.append(f"CreateProcess failed with error 1359, started again: {command!r}")
            time.sleep(0.5)
            continue
        if attempt < ATTEMPTS and _openssl_said_nothing(command, result):
            said = result.stderr.strip()[:200] if result.stderr else ""
            reruns.append(f"openssl exited {result.returncode} without OpenSSL's word ({said!r}), run again: {command!r}")
            continue
        break
    if check:
        result.check_returncode()
    return result


def install() -> None:
    subprocess.run = run
