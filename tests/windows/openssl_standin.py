"""`openssl` on the Windows PATH of the Windows test run (tests/run-windows.sh), under Wine only.

Wine has no Windows OpenSSL command; this forwards to the host's /usr/bin/openssl, so the tests
that check exports with OpenSSL run unchanged. Arguments that are absolute Windows paths
(C:\\..., Z:\\...) are mapped to Unix paths by Wine's own kernel32.wine_get_unix_file_name; the
current directory is mapped by Wine. Wine starts a Unix program from CreateProcess, but gives no
process handle for it and does not hand it Windows pipes as its standard handles. So stdin is
read here into a file, and the Unix side (unix-openssl.sh, installed as unix-openssl.exe beside
this launcher) writes stdout, stderr, its shell's own errors and the exit status to files that this
waits for and copies. A failure of this forwarding, not of OpenSSL, says "openssl stand-in:".
"""
import ctypes
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import _winapi

kernel32 = ctypes.WinDLL("kernel32")
kernel32.wine_get_unix_file_name.restype = ctypes.c_void_p
kernel32.wine_get_unix_file_name.argtypes = [ctypes.c_wchar_p]
kernel32.GetProcessHeap.restype = ctypes.c_void_p
kernel32.HeapFree.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p]
kernel32.GetFileType.argtypes = [ctypes.c_void_p]
FILE_TYPE_CHAR = 2


def unix_path(path: str) -> str:
    pointer = kernel32.wine_get_unix_file_name(path)
    if not pointer:
        raise SystemExit(f"openssl stand-in: no Unix path for {path}")
    try:
        return ctypes.string_at(pointer).decode()
    finally:
        kernel32.HeapFree(kernel32.GetProcessHeap(), 0, pointer)


def main() -> int:
    here = os.path.dirname(os.path.abspath(sys.argv[0]))
    runner = os.path.join(here, "unix-openssl.exe")  # a shell script: Wine runs it as a Unix program
    arguments = [unix_path(a) if re.match(r"^[A-Za-z]:\\", a) else a for a in sys.argv[1:]]
    with tempfile.TemporaryDirectory(prefix="openssl-") as scratch:
        files = {name: os.path.join(scratch, name) for name in ("in", "out", "err", "shell", "status")}
        console = kernel32.GetFileType(_winapi.GetStdHandle(_winapi.STD_INPUT_HANDLE)) == FILE_TYPE_CHAR
        with open(files["in"], "wb") as stream:
            if not console and sys.stdin is not None:
                shutil.copyfileobj(sys.stdin.buffer, stream)
        command = subprocess.list2cmdline([runner, unix_path(scratch)] + arguments)
        try:
            _winapi.CreateProcess(None, command, None, None, False, 0, None, None, subprocess.STARTUPINFO())
        except OSError as error:
            if getattr(error, "winerror", None) != 6:  # Wine: started, but no handle to give
                raise
        deadline = time.monotonic() + 300
        while not os.path.exists(files["status"]):
            if time.monotonic() > deadline:
                raise SystemExit("openssl stand-in: /usr/bin/openssl did not finish in 300 s")
            time.sleep(0.005)
        for name, stream in (("out", sys.stdout), ("err", sys.stderr)):
            with open(files[name], "rb") as source:
                stream.flush()
                shutil.copyfileobj(source, stream.buffer)
                stream.flush()
        with open(files["status"]) as stream:
            status = stream.read().strip()
        shell = "(no record of it)"
        if os.path.exists(files["shell"]):
            with open(files["shell"], "rb") as stream:
                shell = stream.read().decode(errors="replace").strip()
        # Each failure of the forwarding itself starts with "openssl stand-in:" (tests/wine_quirks.py).
        if not status.isdigit() or shell:
            sys.stderr.write(f"openssl stand-in: the Unix side wrote status {status!r}; its shell said {shell!r}\n")
            return 125
        if status != "0" and not os.path.getsize(files["err"]) and not os.path.getsize(files["out"]):
            sys.stderr.write(f"openssl stand-in: /usr/bin/openssl exited {status} and said nothing\n")
        return int(status)


if __name__ == "__main__":
    sys.exit(main())
