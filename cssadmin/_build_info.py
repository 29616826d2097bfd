"""Version and build facts for --version. The frozen build replaces BUILD with its own values."""
from __future__ import annotations

import platform

BUILD: dict[str, str] = {}


def describe(version: str) -> str:
    from importlib.metadata import PackageNotFoundError, version as installed
    lines = [f"cssadmin {version}"]
    for key in ("commit", "build_date"):
        if key in BUILD:
            lines.append(f"{key.replace('_', ' ')}: {BUILD[key]}")
    lines.append(f"python: {BUILD.get('python', platform.python_version())}")
    for package in ("cryptography", "python-pkcs11"):
        try:
            lines.append(f"{package}: {BUILD.get(package) or installed(package)}")
        except PackageNotFoundError:
            lines.append(f"{package}: not installed")
    if "openssl" in BUILD:
        lines.append(f"openssl: {BUILD['openssl']}")
    return "\n".join(lines)
