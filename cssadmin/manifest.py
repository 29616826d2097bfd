"""The manifest that travels with an export: what was made, by what, and each file's size and SHA-256.

The exporting side writes `<key name>-manifest.json` beside the outputs (through the same atomic
protocol as the outputs); the receiving side runs `cssadmin verify-manifest FILE` to check that the
copy that crossed the air gap is complete and unchanged. With a signing key the export also writes
`<key name>-manifest.json.sig`, a DER ECDSA-SHA256 signature over the manifest's exact bytes, and the
manifest names its signer; it also carries the audit log's head after this export (`audit_head`).
Neither lists the signature file, so there is no circle. Names in a manifest are bare file names in
the manifest's own directory: a name that could reach anywhere else is refused, never followed.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from . import inputs
from .errors import OutputError, VerificationError
from .facts import ExportFacts
from .signatures import (MAX_SIGNATURE_BYTES, SIGNATURE_SUFFIX, SignerFacts, SignerPin, check_pinned,
                         embedded_signer, is_valid)

if TYPE_CHECKING:
    from .audit import Head

FORMAT = "cssadmin-manifest-v1"
PLAN_FORMAT = "cssadmin-plan-manifest-v1"   # plan_manifest.py's; named here so a plan manifest is told apart
MAX_MANIFEST_BYTES = 1 << 20          # a real one is under 2 KB; refuse to parse a hostile giant
_READ_CHUNK = 1 << 16
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_FORBIDDEN_IN_NAME = ("/", "\\", ":", "\0")   # ':' is a drive ("C:x") or an NTFS stream on Windows


def manifest_name(key_name: str) -> str:
    return f"{key_name}-manifest.json"


def signature_name(key_name: str) -> str:
    return manifest_name(key_name) + SIGNATURE_SUFFIX


# ------------------------------------------------------------------------------------- build

def build_manifest(facts: ExportFacts, files: list[tuple[str, bytes]], *, audit_head: Head | None = None,
                   signer: SignerFacts | None = None) -> bytes:
    """The manifest's bytes: UTF-8 JSON, sorted keys, indent 2, trailing newline."""
    names = [name for name, _ in files]
    for name in names:
        if not is_bare_name(name):
            raise ValueError(f"manifest entry {name!r} is not a bare file name")
    if len(set(names)) != len(names):
        raise ValueError(f"manifest entries repeat a name: {names}")
    document = {
        "format": FORMAT,
        "tool_version": facts.tool_version,
        "provider": facts.provider,
        "key_name": facts.key.name,
        "key_type": facts.key.type,
        "algorithm": facts.algorithm,
        "wrapping_key_sha256_spki": facts.wrapping_key.sha256_spki,
        "wrapping_key_sha256_cert": facts.wrapping_key.sha256_cert,
        "trust_unpinned": facts.wrapping_key.trust_unpinned,
        "created_utc": utc_timestamp(facts.created_utc),
        "files": [{"name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                  for name, data in files],
        "audit_head": audit_head.as_dict() if audit_head is not None else None,
        "signer": signer.as_dict() if signer is not None else None,
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

@dataclass
class ManifestVerdict:
    """What was verified, for the report of `verify-manifest`."""
    files: list[dict]
    signature: bool = False                 # a signature was present and verified
    signer_sha256_spki: str | None = None
    signer_pinned: bool = False
    audit_head: dict | None = None          # as the manifest carries it
    head_expected: bool = False             # --expect-head matched it
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"files": len(self.files), "signature": self.signature, "signer_sha256_spki": self.signer_sha256_spki,
                "signer_pinned": self.signer_pinned, "head": self.audit_head, "head_expected": self.head_expected}


def verify_manifest(path: str | os.PathLike, pin: SignerPin | None = None,
                    expect_head: Head | None = None) -> ManifestVerdict:
    """Check every listed file beside the manifest, then its signature, then the head it carries;
    return what was verified, or raise naming the first problem."""
    manifest_path = Path(path)
    data = _read_manifest_bytes(manifest_path)
    document = _parse(manifest_path, data)
    entries = _load_entries(manifest_path, document)
    directory = manifest_path.parent
    for entry in entries:
        _check_entry(directory, entry)
    verdict = ManifestVerdict(entries, signer_pinned=pin is not None, audit_head=_audit_head(manifest_path, document))
    _check_signature(manifest_path, data, document, pin, verdict)
    if expect_head is not None:
        if verdict.audit_head != expect_head.as_dict():
            raise VerificationError(f"manifest {manifest_path}: its audit_head is {verdict.audit_head}, not the "
                                    f"expected {expect_head.seq}:{expect_head.sha256}", code="MANIFEST_HEAD_MISMATCH")
        verdict.head_expected = True
    return verdict


def _audit_head(manifest_path: Path, document: dict) -> dict | None:
    head = document.get("audit_head")
    if head is None:
        return None
    if (not isinstance(head, dict) or set(head) != {"seq", "sha256"} or not isinstance(head["seq"], int)
            or isinstance(head["seq"], bool) or not isinstance(head["sha256"], str)
            or not _SHA256_HEX.fullmatch(head["sha256"])):
        raise _malformed(manifest_path, "\"audit_head\" must be {\"seq\": N, \"sha256\": 64 hex digits}")
    return {"seq": head["seq"], "sha256": head["sha256"]}


def _check_signature(manifest_path: Path, data: bytes, document: dict, pin: SignerPin | None,
                     verdict: ManifestVerdict) -> None:
    signature_path = manifest_path.with_name(manifest_path.name + SIGNATURE_SUFFIX)
    signature = _read_signature(signature_path)
    named = document.get("signer")
    if signature is None:
        if pin is None and named is None:
            verdict.warnings.append(f"the manifest is not signed (no {signature_path.name}): it shows the files "
                                    "arrived as listed, not who listed them")
            return
        raise VerificationError(f"{signature_path.name} is missing, but "
                                + ("a signer was given" if pin is not None else "the manifest names a signer"),
                                code="MANIFEST_SIGNATURE_MISSING",
                                remedy="copy the .sig file that was written beside the manifest")
    where = f"manifest {manifest_path}"
    if not isinstance(named, dict):
        raise VerificationError(f"{where} names no signer, so {signature_path.name} cannot be checked",
                                code="MANIFEST_SIGNER_INVALID")
    key = embedded_signer(named.get("public_key_pem"), named.get("sha256_spki"), where, "MANIFEST_SIGNER_INVALID")
    check_pinned(pin, named["sha256_spki"], where, "MANIFEST_SIGNER_MISMATCH")
    if not is_valid(key, signature, data):
        raise VerificationError(f"{signature_path.name} is not a valid signature of {manifest_path.name} by "
                                f"{named['sha256_spki']} (the manifest was changed, or signed by another key)",
                                code="MANIFEST_SIGNATURE_BAD")
    verdict.signature, verdict.signer_sha256_spki = True, named["sha256_spki"]
    if pin is None:
        verdict.warnings.append(f"the signature verifies with the key the manifest carries ({named['sha256_spki']}), "
                                "but the signer was not pinned: compare that fingerprint with the signing key's, "
                                "or pass --signer-fingerprint")


def _read_signature(signature_path: Path) -> bytes | None:
    try:
        status = os.lstat(signature_path)
    except FileNotFoundError:
        return None
    except OSError as failure:
        raise _unreadable(signature_path.name, failure) from None
    if not stat.S_ISREG(status.st_mode):
        raise VerificationError(f"{signature_path.name}: not a regular file (a link or directory is not followed)",
                                code="MANIFEST_NOT_A_FILE")
    try:
        with open(signature_path, "rb") as handle:
            return handle.read(MAX_SIGNATURE_BYTES + 1)
    except OSError as failure:
        raise _unreadable(signature_path.name, failure) from None


def _load_entries(manifest_path: Path, document: dict) -> list[dict]:
    if document.get("format") == PLAN_FORMAT:
        raise OutputError(f"manifest {manifest_path} is a plan manifest: it lists the destinations, each of which "
                          "has its own manifest and signature", code="MANIFEST_IS_A_PLAN",
                          remedy="verify each destination's manifest: cssadmin verify-manifest "
                                 "<destination>/<key name>-manifest.json")
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
        raise VerificationError(f"{name}: listed in the manifest but missing from {directory}",
                          code="MANIFEST_FILE_MISSING") from None
    except inputs.NotRegularFile as refusal:
        raise VerificationError(f"{name}: {refusal}, not a regular file (a link or directory is not followed)",
                                code="MANIFEST_NOT_A_FILE") from None
    except OSError as failure:
        raise _unreadable(name, failure) from None
    with os.fdopen(descriptor, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size != entry["bytes"]:
            raise VerificationError(f"{name}: size is {size} bytes, the manifest says {entry['bytes']}",
                              code="MANIFEST_SIZE_MISMATCH")
        try:
            actual = _sha256_of(handle, entry["bytes"])
        except OSError as failure:
            raise _unreadable(name, failure) from None
    if actual != entry["sha256"]:
        raise VerificationError(f"{name}: SHA-256 is {actual}, the manifest says {entry['sha256']}",
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
