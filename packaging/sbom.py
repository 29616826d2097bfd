"""Write a CycloneDX 1.5 SBOM of the frozen cssadmin binary (stdlib only).

    python packaging/sbom.py --binary dist/cssadmin --work build/work --lock requirements/build.lock \
        --out dist/release/.../sbom.cdx.json

Inputs, all made by build/freeze.sh (or build/freeze-windows.sh) for the binary given:
  WORK/bundle-contents.json  every member of the PyInstaller archive with its sha256, and the PYZ's modules
  WORK/build-facts.json      commit, build date, versions
  WORK/venv                  the build venv: which distribution each bundled file came from (RECORD)
  WORK/wheels                the wheels installed into it: their sha256 is each distribution's hash,
                             and must be one the lock file pins
Components:
  * the binary itself (metadata.component), with its sha256;
  * every Python distribution of which a module, extension or metadata file is in the binary, with
    the sha256 of its wheel; cryptography's own SBOMs (dist-info/sboms) add the OpenSSL linked
    statically into its Rust extension and the Rust crates, nested under it;
  * the CPython runtime (libpython, the standard library in the PYZ and base_library.zip, and each
    lib-dynload extension with its sha256);
  * every other shared library PyInstaller bundled, with its sha256 and, where dpkg knows the file,
    its Debian package and version;
  * PyInstaller's bootloader, which is the start of the binary.
Fails if the binary is not the one bundle-contents.json describes, if a bundled member cannot be
attributed, or if a wheel's hash is not in the lock.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
import zipfile
from email.parser import Parser
from pathlib import Path, PurePosixPath

NAMESPACE = uuid.UUID("5d1f3f4e-1e44-4f4c-9a39-6a2f0c2b1d10")  # serial numbers derive from the binary


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_hashes(lock: Path) -> dict[str, tuple[str, set[str]]]:
    pins: dict[str, tuple[str, set[str]]] = {}
    current = None
    for line in lock.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if not line[0].isspace():
            name, version = line.split(";")[0].split("\\")[0].strip().split("==")
            current = canonical(name)
            pins[current] = (version.strip(), set())
        for digest in re.findall(r"--hash=sha256:([0-9a-f]{64})", line):
            pins[current][1].add(digest)
    return pins


def site_packages(venv: Path) -> Path:
    for candidate in [venv / "Lib" / "site-packages", *sorted((venv / "lib").glob("python3*/site-packages"))]:
        if candidate.is_dir():
            return candidate
    raise SystemExit(f"sbom.py: no site-packages in {venv}")


def module_name(path: str) -> str | None:
    parts = PurePosixPath(path)
    if parts.suffix not in (".py", ".pyc") or "__pycache__" in parts.parts:
        return None
    names = list(parts.with_suffix("").parts)
    if names[-1] == "__init__":
        names.pop()
    return ".".join(names) if names else None


class Distribution:
    def __init__(self, dist_info: Path):
        self.dist_info = dist_info
        self.metadata = Parser().parsestr(
            (dist_info / "METADATA").read_text(encoding="utf-8", errors="replace"), headersonly=True)
        self.name = self.metadata["Name"]
        self.version = self.metadata["Version"]
        with open(dist_info / "RECORD", newline="", encoding="utf-8") as stream:
            self.files = [row[0].replace("\\", "/") for row in csv.reader(stream) if row]
        self.modules = {name for name in map(module_name, self.files) if name}
        self.paths = set(self.files)
        self.basenames = {PurePosixPath(path).name for path in self.files}

    def licenses(self) -> list[dict]:
        expression = self.metadata.get("License-Expression")
        if expression:
            return [{"expression": expression.strip()}]
        text = (self.metadata.get("License") or "").strip()
        if text and "\n" not in text and len(text) < 80 and text.upper() != "UNKNOWN":
            return [{"license": {"name": text}}]
        return []


def component_hash(digest: str) -> list[dict]:
    return [{"alg": "SHA-256", "content": digest}]


def prop(name: str, value) -> dict:
    return {"name": f"cssadmin:{name}", "value": str(value)}


def debian_package(path: Path) -> tuple[str, str] | None:
    """(package, version) of the Debian package that installed `path`, if dpkg knows it."""
    if not shutil.which("dpkg-query"):
        return None
    resolved = path.resolve()
    for candidate in dict.fromkeys([str(path), str(path.parent / resolved.name), str(resolved)]):
        found = subprocess.run(["dpkg-query", "-S", candidate], capture_output=True, text=True)
        if found.returncode == 0:
            package = found.stdout.split(": ", 1)[0].split(",")[0].strip()
            version = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package],
                                     capture_output=True, text=True).stdout.strip()
            return package, version
    return None


def os_release() -> dict[str, str]:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return {}
    return {key: value.strip('"') for key, _, value in (line.partition("=") for line in text.splitlines()) if key}


def find_source(name: str, digest: str, directories: list[Path]) -> Path | None:
    for directory in directories:
        candidate = directory / name
        if candidate.is_file() and sha256_file(candidate) == digest:
            return candidate
    return None


def nested_from_sbom(path: Path, prefix: str) -> list[dict]:
    """Components of a dependency's own CycloneDX SBOM, with bom-refs made unique."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    out = []
    for item in document.get("components", []):
        keep = {key: item[key] for key in ("type", "name", "version", "description", "hashes", "licenses",
                                           "purl", "externalReferences", "properties") if key in item}
        keep["bom-ref"] = f"{prefix}:{item.get('bom-ref') or item.get('purl') or item['name']}"
        keep.setdefault("properties", []).append(prop("from-sbom", f"{path.parent.parent.name}/sboms/{path.name}"))
        out.append(keep)
    return out


def build(args) -> dict:
    work = Path(args.work)
    binary = Path(args.binary)
    contents = json.loads((work / "bundle-contents.json").read_text())
    facts = json.loads((work / "build-facts.json").read_text())
    binary_sha256 = sha256_file(binary)
    if contents["sha256"] != binary_sha256:
        raise SystemExit(f"sbom.py: {binary} (sha256 {binary_sha256}) is not the binary that "
                         f"{work / 'bundle-contents.json'} describes ({contents['sha256']}); rebuild")
    pins = lock_hashes(Path(args.lock))
    sp = site_packages(work / "venv")
    distributions = [Distribution(path) for path in sorted(sp.glob("*.dist-info"))]
    wheels = {}
    for wheel in sorted((work / "wheels").glob("*.whl")):
        name, version = wheel.name.split("-")[:2]
        wheels[canonical(name)] = (version, wheel)

    members = {member["name"].replace("\\", "/"): member for member in contents["members"]}
    modules = set(contents["pyz_modules"])
    base_library = [name for name in members if name.endswith("base_library.zip")]
    claimed: set[str] = set()
    claimed_modules: set[str] = set()

    components = []
    application = None
    for dist in distributions:
        found_modules = sorted(modules & dist.modules)
        found_members = sorted(name for name in members
                               if name in dist.paths
                               or (members[name]["typecode"] in "smo"
                                   and (name + ".py") in dist.basenames))
        if not found_modules and not found_members:
            continue
        claimed.update(found_members)
        claimed_modules.update(found_modules)
        key = canonical(dist.name)
        if key == "cssadmin":
            application = (dist, found_modules, found_members)
            continue
        if key not in wheels:
            raise SystemExit(f"sbom.py: {dist.name} is in the binary but no wheel of it is in {work / 'wheels'}")
        wheel_version, wheel = wheels[key]
        digest = sha256_file(wheel)
        if key not in pins or digest not in pins[key][1] or not pins[key][0] == dist.version == wheel_version:
            raise SystemExit(f"sbom.py: the wheel {wheel.name} (sha256 {digest}) is not pinned in {args.lock}")
        component = {
            "type": "library",
            "bom-ref": f"pkg:pypi/{key}@{dist.version}",
            "name": dist.name,
            "version": dist.version,
            "purl": f"pkg:pypi/{key}@{dist.version}",
            "hashes": component_hash(digest),
            "properties": [
                prop("hash-of", f"wheel {wheel.name} (pinned in {Path(args.lock).as_posix()})"),
                prop("bundled-modules", len(found_modules)),
            ] + [prop("bundled-file", f"{name} sha256:{members[name]['sha256']}") for name in found_members
                 if members[name]["typecode"] in "bexn"],
        }
        if dist.licenses():
            component["licenses"] = dist.licenses()
        if key == "cryptography":
            nested = []
            for sbom in sorted((dist.dist_info / "sboms").glob("*.json")):
                nested += nested_from_sbom(sbom, f"{component['bom-ref']}/{sbom.stem}")
            for item in nested:
                if item["name"] == "openssl":
                    item["properties"].append(prop(
                        "linkage", "statically linked into cryptography/hazmat/bindings/_rust.abi3.so; "
                        "no separate OpenSSL library is bundled. Hash: of the upstream source tarball "
                        "(from cryptography's SBOM); the file that contains it is listed in bundled-file"))
            if nested:
                component["components"] = nested
        if key == "pyinstaller":
            component["properties"].append(prop(
                "bundled-as", "the bootloader (the start of the executable) and its loader modules"))
            folder = "Windows-64bit-intel" if args.platform.startswith("windows") else "Linux-64bit-intel"
            loader = sp / "PyInstaller" / "bootloader" / folder / ("run.exe" if "windows" in args.platform else "run")
            if loader.is_file():
                component["components"] = [{"type": "file", "bom-ref": f"{component['bom-ref']}/bootloader",
                                            "name": f"PyInstaller/bootloader/{folder}/{loader.name}",
                                            "hashes": component_hash(sha256_file(loader))}]
        components.append(component)

    # PyInstaller's bootloader is always there, even if no module of it matched above.
    if not any(c["name"].lower() == "pyinstaller" for c in components):
        raise SystemExit("sbom.py: no PyInstaller distribution found in the build venv")

    # The CPython runtime: libpython, the standard library, its extension modules.
    libdir_candidates = [Path(p) for p in args.python_libdir] if args.python_libdir else []
    python_files = []
    libpython = None
    for name, member in sorted(members.items()):
        if name in claimed:
            continue
        if re.match(r"^(lib)?python3\d*(\.\d+)?(\.so[.\d]*|\.dll)$", PurePosixPath(name).name):
            libpython = member
            claimed.add(name)
        elif name.startswith("python3") and "/lib-dynload/" in name or re.match(r"^[^/]+\.pyd$", name) \
                or name in base_library:
            python_files.append({"type": "file", "bom-ref": f"cpython-file:{name}", "name": name,
                                 "hashes": component_hash(member["sha256"])})
            claimed.add(name)
    stdlib_modules = sorted(modules - claimed_modules)
    base_modules = []
    if base_library:
        # base_library.zip is written next to the binary's members only in the build work tree;
        # its module names come from the zip that PyInstaller made.
        zips = sorted((work / "pyinstaller").rglob("base_library.zip"))
        if zips:
            with zipfile.ZipFile(zips[0]) as archive:
                base_modules = sorted({module_name(n) for n in archive.namelist() if module_name(n)})
    cpython = {
        "type": "framework",
        "bom-ref": f"pkg:generic/cpython@{facts['python']}",
        "name": "cpython",
        "version": facts["python"],
        "purl": f"pkg:generic/cpython@{facts['python']}",
        "description": "the Python runtime: libpython, the standard library (in the PYZ and base_library.zip) "
                       "and its extension modules",
        "hashes": component_hash(libpython["sha256"]) if libpython else [],
        "licenses": [{"license": {"id": "PSF-2.0"}}],
        "properties": [
            prop("hash-of", libpython["name"] if libpython else "none"),
            prop("stdlib-modules-in-pyz", len(stdlib_modules)),
            prop("stdlib-modules-in-base-library", len(base_modules)),
        ],
        "components": python_files,
    }
    if not libpython:
        raise SystemExit("sbom.py: no libpython in the binary")
    components.append(cpython)

    # Everything else that is a shared library: the system libraries PyInstaller picked up.
    release = os_release()
    lib_directories = [Path(p) for p in args.lib_dir] + libdir_candidates
    for name, member in sorted(members.items()):
        if name in claimed or member["typecode"] not in "bn":
            continue
        source = find_source(PurePosixPath(name).name, member["sha256"], lib_directories)
        package = debian_package(source) if source else None
        package_name = package[0].split(":")[0] if package else PurePosixPath(name).name
        component = {
            "type": "library",
            "bom-ref": f"file:{name}",
            "name": package_name,
            "version": package[1] if package else "unknown",
            "hashes": component_hash(member["sha256"]),
            "properties": [prop("bundled-file", name),
                           prop("source", str(source) if source else "not found on the build machine")],
        }
        if package and release.get("ID"):
            epoch, _, upstream = package[1].rpartition(":")
            component["purl"] = (f"pkg:deb/{release['ID']}/{package_name}@{upstream.replace('+', '%2B')}"
                                 f"?arch=amd64&distro={release['ID']}-{release.get('VERSION_ID', '')}"
                                 + (f"&epoch={epoch}" if epoch else ""))
        components.append(component)
        claimed.add(name)

    # Anything left: PyInstaller's own members (bootstrap, loader modules, runtime hooks, the PYZ).
    leftovers = sorted(set(members) - claimed)
    unexplained = [name for name in leftovers
                   if not (name in ("PYZ.pyz", "struct", "entry", "rthook_build_info")
                           or name.startswith(("pyimod", "pyiboot", "pyi_rth_", "pyi-")))]
    if unexplained:
        raise SystemExit(f"sbom.py: cannot attribute bundled members: {', '.join(unexplained)}")

    dist, app_modules, _ = application if application else (None, [], [])
    version = args.version or (dist.version if dist else "unknown")
    metadata_component = {
        "type": "application",
        "bom-ref": f"pkg:generic/cssadmin@{version}",
        "name": "cssadmin",
        "version": version,
        "purl": f"pkg:generic/cssadmin@{version}",
        "description": f"one-file executable ({args.platform}) frozen with PyInstaller {facts.get('pyinstaller', '')}",
        "hashes": component_hash(binary_sha256),
        "licenses": [{"license": {"id": "Apache-2.0"}}],
        "properties": [
            prop("file", binary.name),
            prop("commit", facts["commit"]),
            prop("build-date", facts["build_date"]),
            prop("cssadmin-modules", len(app_modules)),
            prop("pyinstaller-members", ", ".join(leftovers)),
            prop("not-bundled-uses-host", "libc/libm/libdl/libpthread (glibc), libgcc_s.so.1; libcrypto.so.3 "
                 "(optional, for hashlib; cryptography carries its own OpenSSL); the PKCS#11 module"),
        ],
    }
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid5(NAMESPACE, binary_sha256)}",
        "version": 1,
        "metadata": {
            "timestamp": facts["build_date"],
            "tools": {"components": [{"type": "application", "name": "cssadmin packaging/sbom.py"}]},
            "component": metadata_component,
        },
        "components": components,
        "dependencies": [{"ref": metadata_component["bom-ref"],
                          "dependsOn": [component["bom-ref"] for component in components]}],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", required=True)
    parser.add_argument("--work", default="build/work")
    parser.add_argument("--lock", default="requirements/build.lock")
    parser.add_argument("--out", required=True)
    parser.add_argument("--version")
    parser.add_argument("--platform", default="linux-x86_64")
    parser.add_argument("--lib-dir", action="append",
                        default=["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64"],
                        help="where to look for the source of a bundled shared library")
    parser.add_argument("--python-libdir", action="append", default=[],
                        help="the build Python's LIBDIR (libpython and what it links)")
    args = parser.parse_args()
    document = build(args)
    Path(args.out).write_text(json.dumps(document, indent=2) + "\n")
    count = sum(1 for _ in document["components"])
    print(f"sbom.py: wrote {args.out}: {count} top-level components", file=sys.stderr)


if __name__ == "__main__":
    main()
