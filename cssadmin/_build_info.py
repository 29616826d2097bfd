"""Version and build facts for --version. The frozen build fills BUILD with its own values.

Installed versions are read from the distributions' folder names rather than by importing
importlib.metadata or the packages themselves, which would cost --version tens of milliseconds.
"""
from __future__ import annotations

import os
import sys

BUILD: dict[str, str] = {}


def installed_version(distribution: str) -> str:
    wanted = distribution.replace("-", "_").lower() + "-"
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.endswith(".dist-info") and name.lower().startswith(wanted):
                return name[len(wanted):-len(".dist-info")]
    return "not installed"


def facts(version: str) -> dict[str, str]:
    found = {"version": version}
    for key in ("commit", "build_date"):
        if key in BUILD:
            found[key] = BUILD[key]
    found["python"] = BUILD.get("python", ".".join(map(str, sys.version_info[:3])))
    for package in ("cryptography", "python-pkcs11"):
        found[package] = BUILD.get(package) or installed_version(package)
    found["openssl"] = BUILD.get("openssl") or openssl_version()
    return found


def openssl_version() -> str:
    """The OpenSSL that cryptography links, as it reports itself ("OpenSSL 3.3.2 3 Sep 2024").

    Only cryptography's compiled binding is loaded (a few milliseconds), not its Python layers."""
    try:
        from cryptography.hazmat.bindings._rust import openssl
        return openssl.openssl_version_text()
    except Exception as failure:   # not installed, or an older or broken build: say so, do not fail
        return f"unknown ({type(failure).__name__})"


def describe(version: str) -> str:
    lines = [f"cssadmin {version}"]
    lines += [f"{key.replace('_', ' ')}: {value}" for key, value in facts(version).items() if key != "version"]
    return "\n".join(lines)
