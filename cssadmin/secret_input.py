"""Where a PIN or passphrase comes from: a private file, an environment variable, or the terminal.

Never the command line, and never a silent fallback to echoed or piped input. No message shows a
secret or any byte of one. A variable named by --pin-env/--passphrase-env is read into memory and
removed from the environment as soon as the command line is parsed (`take_from_env`), so the vendor's
PKCS#11 module, and any process it starts, never sees it.
"""
from __future__ import annotations

import getpass
import os
import re
import stat
import sys
import warnings

from . import durable, inputs
from .errors import CustodyError, Interrupted

MAX_SECRET_BYTES = 4096
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_taken: dict[str, str | bytes | None] = {}


def from_file(path: str, what: str = "PIN") -> str:
    try:
        descriptor = inputs.open_regular(path)   # O_NONBLOCK + fstat: a FIFO cannot make this hang
    except inputs.NotRegularFile as refusal:
        raise CustodyError(f"{what} file {path} is {refusal}, not a regular file",
                           code="SECRET_SOURCE_UNUSABLE") from None
    except OSError as failure:
        raise CustodyError(f"cannot read {what} file {path}: {failure.strerror}",
                           code="SECRET_SOURCE_UNUSABLE") from None
    with os.fdopen(descriptor, "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if not durable.ON_WINDOWS and mode & 0o077:
            raise CustodyError(
                f"{what} file {path} is readable or writable by group or others "
                f"(mode {stat.S_IMODE(mode):04o})", code="SECRET_FILE_TOO_OPEN",
                remedy=f"chmod 600 {path}")
        try:
            data = handle.read(MAX_SECRET_BYTES + 1)
        except OSError as failure:
            raise CustodyError(f"cannot read {what} file {path}: {failure.strerror}",
                               code="SECRET_SOURCE_UNUSABLE") from None
    if len(data) > MAX_SECRET_BYTES:
        raise CustodyError(f"{what} file {path} is too large to hold a {what}", code="SECRET_SOURCE_UNUSABLE")
    return _non_empty(_decode(data, f"{what} file {path}").rstrip("\r\n"), f"{what} file {path}")


def take_from_env(variable: str) -> None:
    """Read `variable` into memory now and remove it from the environment (idempotent)."""
    if variable in _taken or not _VARIABLE_NAME.fullmatch(variable):
        return
    if hasattr(os, "environb"):
        _taken[variable] = os.environb.get(os.fsencode(variable))   # bytes: decoded strictly later
    else:   # Windows: the environment is text already
        _taken[variable] = os.environ.get(variable)
    os.environ.pop(variable, None)   # os.environ.pop also calls unsetenv: C getenv() no longer sees it


def from_env(variable: str, what: str = "PIN") -> str:
    if not _VARIABLE_NAME.fullmatch(variable):
        # Not a variable name: perhaps the secret itself, typed in the wrong place. Do not repeat it.
        raise CustodyError(f"the value given to --{what.lower()}-env is not an environment variable name "
                           "(value not shown)", code="SECRET_SOURCE_UNUSABLE",
                           remedy=f"pass the variable's name, e.g. --{what.lower()}-env CSSADMIN_{what.upper()}")
    take_from_env(variable)
    value = _taken[variable]
    if value is None:
        raise CustodyError(f"environment variable {variable} (for the {what}) is not set",
                           code="SECRET_SOURCE_UNUSABLE")
    if isinstance(value, bytes):
        value = _decode(value, f"environment variable {variable}")
    return _non_empty(value, f"environment variable {variable}")


def from_terminal(prompt: str, what: str = "PIN", *, confirm: bool = False) -> str:
    """Prompt on the controlling terminal; refuse rather than read a secret that would echo."""
    value = _prompt(prompt, what)
    if confirm and _prompt(f"Repeat {what.lower()}: ", what) != value:
        raise CustodyError(f"the two {what}s typed differ; nothing was created", code="SECRET_SOURCE_UNUSABLE")
    return value


def _prompt(prompt: str, what: str) -> str:
    if not sys.stdin or not sys.stdin.isatty():
        raise CustodyError(f"no {what} source: standard input is not a terminal",
                           code="SECRET_SOURCE_UNUSABLE",
                           remedy=f"give the {what} with --{what.lower()}-file or --{what.lower()}-env")
    with warnings.catch_warnings():
        warnings.simplefilter("error", getpass.GetPassWarning)
        try:
            value = getpass.getpass(prompt)
        except getpass.GetPassWarning:
            raise CustodyError(f"cannot turn off echo to read the {what}", code="SECRET_SOURCE_UNUSABLE",
                               remedy=f"give the {what} with --{what.lower()}-file or --{what.lower()}-env") from None
        except EOFError:
            raise CustodyError(f"no {what} entered", code="SECRET_SOURCE_UNUSABLE") from None
        except KeyboardInterrupt:   # Ctrl-C at the prompt is an interrupt like any other (exit 130)
            raise Interrupted(f"interrupted at the {what} prompt") from None
    return _non_empty(value, "the prompt")


def _decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:   # its message would quote a byte of the secret and its position
        raise CustodyError(f"{where} is not UTF-8 text (its bytes are not shown)",
                           code="SECRET_SOURCE_UNUSABLE") from None


def _non_empty(value: str, where: str) -> str:
    if not value:
        raise CustodyError(f"{where} is empty", code="SECRET_SOURCE_UNUSABLE")
    return value
