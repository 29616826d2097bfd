"""Where a PIN or passphrase comes from: a private file, an environment variable, or the terminal.

Never the command line, and never a silent fallback to echoed or piped input.
"""
from __future__ import annotations

import getpass
import os
import stat
import sys
import warnings

from . import durable
from .errors import CustodyError

MAX_SECRET_BYTES = 4096


def from_file(path: str, what: str = "PIN") -> str:
    try:
        with open(path, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            if not durable.ON_WINDOWS and mode & 0o077:
                raise CustodyError(
                    f"{what} file {path} is readable or writable by group or others "
                    f"(mode {stat.S_IMODE(mode):04o})", code="SECRET_FILE_TOO_OPEN",
                    remedy=f"chmod 600 {path}")
            data = handle.read(MAX_SECRET_BYTES + 1)
    except OSError as failure:
        raise CustodyError(f"cannot read {what} file {path}: {failure.strerror}",
                           code="SECRET_SOURCE_UNUSABLE") from None
    if len(data) > MAX_SECRET_BYTES:
        raise CustodyError(f"{what} file {path} is too large to hold a {what}", code="SECRET_SOURCE_UNUSABLE")
    return _non_empty(_decode(data, f"{what} file {path}").rstrip("\r\n"), f"{what} file {path}")


def from_env(variable: str, what: str = "PIN") -> str:
    value = os.environ.get(variable)
    if value is None:
        raise CustodyError(f"environment variable {variable} (for the {what}) is not set",
                           code="SECRET_SOURCE_UNUSABLE")
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
        except (EOFError, KeyboardInterrupt):
            raise CustodyError(f"no {what} entered", code="SECRET_SOURCE_UNUSABLE") from None
    return _non_empty(value, "the prompt")


def _decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise CustodyError(f"{where} is not UTF-8 text", code="SECRET_SOURCE_UNUSABLE") from None


def _non_empty(value: str, where: str) -> str:
    if not value:
        raise CustodyError(f"{where} is empty", code="SECRET_SOURCE_UNUSABLE")
    return value
