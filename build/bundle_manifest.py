"""List what a PyInstaller one-file binary holds, as JSON on stdout (read by packaging/sbom.py).

    build/work/venv/bin/python build/bundle_manifest.py dist/cssadmin > build/work/bundle-contents.json

Runs in the build venv (it uses PyInstaller's own archive readers). For every member of the
CArchive: name, typecode, size and sha256 of its (uncompressed) bytes; for the PYZ, the module names.
"""
from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

from PyInstaller.archive.readers import CArchiveReader, ZlibArchiveReader


def main(binary: str) -> None:
    archive = CArchiveReader(binary)
    members, modules = [], []
    for name in sorted(archive.toc):
        typecode = archive.toc[name][-1]
        data = archive.extract(name)
        members.append({"name": name, "typecode": typecode, "size": len(data),
                        "sha256": hashlib.sha256(data).hexdigest()})
        if typecode in ("z", "Z"):
            with tempfile.TemporaryDirectory() as scratch:
                pyz = Path(scratch) / "PYZ.pyz"
                pyz.write_bytes(data)
                modules += sorted(ZlibArchiveReader(str(pyz)).toc)
    print(json.dumps({
        "binary": Path(binary).name,
        "sha256": hashlib.sha256(Path(binary).read_bytes()).hexdigest(),
        "members": members,
        "pyz_modules": modules,
    }, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
