"""The manifest that travels with an export: what was made, by what, and each file's size and SHA-256.

The exporting side writes `<key name>-manifest.json` beside the outputs (through the same atomic
protocol as the outputs); the receiving side runs `cssadmin verify-manifest FILE` to check that the
copy that crossed the air gap is complete and unchanged. Names in a manifest are bare file names in
the manifest's own directory: a name that could reach anywhere else is refused, never followed.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path

from . import inputs
from .errors import OutputError

FORMAT = "cssadmin-manifest-v1"
MAX_MANIFEST_BYTES = 1 << 20          # a real one is under 2 KB; refuse to parse a hostile giant
_READ_CHUNK = 1 << 16
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_FORBIDDEN_IN_NAME = ("/", "\\", ":", "\0")   # ':' is a drive ("C:x") or an NTFS stream on Windows


def manifest_name(key_name: str) -> str:
    return f"{key_name}-manifest.json"


# ------------------------------------------------------------------------------------- build

def build_manifest(*, tool_version: str, provider: str, key_name: str, key_type: str, algorithm: str,
                   wrapping_key_sha256_spki: str, wrapping_key_sha256_cert: str | None,
                   created_utc: datetime, files: list[tuple[str, bytes]]) -> bytes:
    """The manifest's bytes: UTF-8 JSON, sorted keys, indent 2, trailing newline."""
    names = [name for name, _ in files]
    for name in names:
        if not is_bare_name(name):
            raise ValueError(f"manifest entry {name!r} is not a bare file name")
    if len(set(names)) != len(names):
        raise ValueError(f"manifest entries repeat a name: {names}")
    document = {
        "format": FORMAT,
        "tool_version": tool_version,
        "provider": provider,
        "key_name": key_name,
        "key_type": key_type,
        "algorithm": algorithm,
        "wrapping_key_sha256_spki": wrapping_key_sha256_spki,
        "wrapping_key_sha256_cert": wrapping_key_sha256_cert,
        "created_utc": utc_timestamp(created_utc),
        "files": [{"name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                  for name, data in files],
    }
    return (json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def utc_timestamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("created_utc must be timezone-aware")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_bare_name(name: object) -> bool:
    """True for a plain file name that can only mean a file in the manifest's own directory."""
    return (isinstance(name, str)
            and name.rstrip(". ") != ""     # "", ".", "..", and what Windows trims to them (".. ")
            and not any(forbidden in name for forbidden in _FORBIDDEN_IN_NAME))


# ------------------------------------------------------------------------------------ verify

def verify_manifest(path: str | os.PathLike) -> list[dict]:
    """Check every listed file beside the manifest; return the entries, or raise naming the first problem."""
    manifest_path = Path(path)
    entries = _load_entries(manifest_path)
    directory = manifest_path.parent
    for entry in entries:
        _check_entry(directory, entry)
    return entries


def _load_entries(manifest_path: Path) -> list[dict]:
    document = _parse(manifest_path, _read_manifest_bytes(manifest_path))
    if document.get("format") != FORMAT:
        raise _malformed(manifest_path, f"format is {document.get('format')!r}, expected {FORMAT!r}")
    files = document.get("files")
    if not isinstance(files, list) or not files:
        raise _malformed(manifest_path, "\"files\" must be a non-empty list")
    entries = [_checked_entry(manifest_path, position, entry) for position, entry in enumerate(files, 1)]
    names = [entry["name"] for entry in entries]
    if len(set(names)) != len(names):
        raise _malformed(manifest_path, "a file is listed twice")
    return entries


def _read_manifest_bytes(manifest_path: Path) -> bytes:
    try:
        return inputs.read_bounded(manifest_path, MAX_MANIFEST_BYTES)   # O_NONBLOCK: a FIFO is refused, not waited on
    except FileNotFoundError:
        raise OutputError(f"manifest {manifest_path} does not exist", code="MANIFEST_MISSING") from None
    except inputs.NotRegularFile as refusal:
        raise _malformed(manifest_path, f"it is {refusal}, not a regular file") from None
    except inputs.TooLarge:
        raise _malformed(manifest_path, f"larger than {MAX_MANIFEST_BYTES} bytes") from None
    except OSError as failure:
        raise OutputError(f"reading manifest {manifest_path} failed: {failure.strerror or failure}",
                          code="MANIFEST_READ_FAILED") from None


def _parse(manifest_path: Path, data: bytes) -> dict:
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _malformed(manifest_path, "not valid UTF-8 JSON") from None
    if not isinstance(document, dict):
        raise _malformed(manifest_path, "not a JSON object")
    return document


def _checked_entry(manifest_path: Path, position: int, entry: object) -> dict:
    if not isinstance(entry, dict):
        raise _malformed(manifest_path, f"files[{position}] is not an object")
    name, size, digest = entry.get("name"), entry.get("bytes"), entry.get("sha256")
    if not is_bare_name(name):
        raise _malformed(manifest_path, f"files[{position}] name {name!r} is not a bare file name "
                                        "(no path separators, drive letters or '..'); it was not followed")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _malformed(manifest_path, f"{name}: \"bytes\" must be a non-negative integer")
    if not isinstance(digest, str) or not _SHA256_HEX.fullmatch(digest):
        raise _malformed(manifest_path, f"{name}: \"sha256\" must be 64 lowercase hex digits")
    return {"name": name, "bytes": size, "sha256": digest}


def _check_entry(directory: Path, entry: dict) -> None:
    name, file_path = entry["name"], directory / entry["name"]
    try:
        # O_NOFOLLOW | O_NONBLOCK, then fstat of the descriptor: a link, or a file swapped for a FIFO
        # after any earlier look at it, is refused rather than followed or waited on.
        descriptor = inputs.open_regular(file_path, follow_links=False)
    except FileNotFoundError:
        raise OutputError(f"{name}: listed in the manifest but missing from {directory}",
                          code="MANIFEST_FILE_MISSING") from None
    except inputs.NotRegularFile as refusal:
        raise OutputError(f"{name}: {refusal}, not a regular file (a link or directory is not followed)",
                          code="MANIFEST_NOT_A_FILE") from None
    except OSError as failure:
        raise _unreadable(name, failure) from None
    with os.fdopen(descriptor, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size != entry["bytes"]:
            raise OutputError(f"{name}: size is {size} bytes, the manifest says {entry['bytes']}",
                              code="MANIFEST_SIZE_MISMATCH")
        try:
            actual = _sha256_of(handle, entry["bytes"])
        except OSError as failure:
            raise _unreadable(name, failure) from None
    if actual != entry["sha256"]:
        raise OutputError(f"{name}: SHA-256 is {actual}, the manifest says {entry['sha256']}",
                          code="MANIFEST_SHA256_MISMATCH")


def _sha256_of(handle, size: int) -> str:
    """SHA-256 of the file, reading at most one byte more than the manifest's size (a file still growing
    is then a mismatch, not an endless read)."""
    digest, remaining = hashlib.sha256(), size + 1
    while remaining > 0:
        chunk = handle.read(min(_READ_CHUNK, remaining))
        if not chunk:
            break
        digest.update(chunk)
        remaining -= len(chunk)
    return digest.hexdigest()


def _malformed(manifest_path: Path, why: str) -> OutputError:
    return OutputError(f"manifest {manifest_path} is malformed: {why}", code="MANIFEST_MALFORMED")


def _unreadable(name: str, failure: OSError) -> OutputError:
    return OutputError(f"{name}: cannot be read: {failure.strerror or failure}", code="MANIFEST_READ_FAILED")
