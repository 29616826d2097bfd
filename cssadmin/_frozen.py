"""Undo, for the vendor's PKCS#11 module, what the PyInstaller bootloader did to the environment.

The onefile bootloader unpacks the bundle into a temporary _MEIxxxxxx directory and starts Python
in a child process with that directory prepended to LD_LIBRARY_PATH (AIX: LIBPATH), keeping the
caller's value in LD_LIBRARY_PATH_ORIG. restore_library_path() puts the caller's value back (or
removes the variable when the caller had none), so that:

* anything the PKCS#11 module or cssadmin starts later (a vendor helper, lsblk, ...) runs with the
  operator's environment, not with the bundle's copies of libz, libffi, ... ahead of its own; and
* a module that reads LD_LIBRARY_PATH itself (to find its plug-ins or engines) sees the real value.

What it cannot do: glibc reads LD_LIBRARY_PATH once, when the process starts, so dlopen() of the
module in *this* process still searches _MEIxxxxxx first for the module's dependencies. That is
why build/cssadmin.spec does not bundle libcrypto/libssl (the libraries an HSM module shares with
Python): the module and Python's hashlib then both get the host's OpenSSL, as in a source install.
cryptography's own OpenSSL is linked statically into its extension and is not visible to others.

Call it right before pkcs11.lib(); it is a no-op outside a frozen binary and on Windows (there the
bootloader uses SetDllDirectory, which only adds _MEIxxxxxx to the DLL search).
"""
from __future__ import annotations

import os
import sys

_VARIABLES = ("LD_LIBRARY_PATH", "LIBPATH")


def restore_library_path() -> None:
    if not getattr(sys, "frozen", False):
        return
    for name in _VARIABLES:
        original = os.environ.get(name + "_ORIG")
        if original is not None:
            os.environ[name] = original
        elif name in os.environ and _points_into_bundle(os.environ[name]):
            del os.environ[name]


def _points_into_bundle(value: str) -> bool:
    bundle = getattr(sys, "_MEIPASS", None)
    return bool(bundle) and any(os.path.normpath(part) == os.path.normpath(bundle)
                                for part in value.split(os.pathsep) if part)
