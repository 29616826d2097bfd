"""The plan manifest: every destination's files and one identifier of the key, equal across destinations.

`<out-dir>/<key name>-plan-manifest.json` is placed last, after every destination directory (each
with its own export manifest, which `cssadmin verify-manifest` checks on the receiving side). The key
identifier reveals nothing usable about the key:
- secret keys (AES, HMAC): SHA-256 over the domain-separation prefix `cssadmin key identifier v1\\0`
  and the 32-byte SHA-256 of the key computed inside the token (C_DigestKey), so it is neither the
  key nor its plain hash (which Salesforce's format, for one, publishes);
- key pairs (RSA, EC): the SHA-256 of the public key's SubjectPublicKeyInfo DER.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime

from cryptography.hazmat.primitives import serialization

from . import __version__
from .facts import ExportFacts
from .manifest import PLAN_FORMAT, is_bare_name, utc_timestamp
from .providers.base import Wrapped

FORMAT = PLAN_FORMAT
SECRET_PREFIX = b"cssadmin key identifier v1\0"


def plan_manifest_name(key_name: str) -> str:
    return f"{key_name}-plan-manifest.json"


def key_identifier(wrapped: Wrapped) -> dict:
    if wrapped.key_type.is_private_key:
        public = serialization.load_pem_public_key(wrapped.public_key_pem)
        der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return {"kind": "sha256-spki", "value": hashlib.sha256(der).hexdigest()}
    if wrapped.secret_sha256 is None or len(wrapped.secret_sha256) != 32:
        raise ValueError("a secret key's identifier needs its 32-byte C_DigestKey SHA-256")
    return {"kind": "sha256-prefixed-digestkey", "value": hashlib.sha256(SECRET_PREFIX + wrapped.secret_sha256).hexdigest()}


def build_plan_manifest(key_name: str, key_type: str, identifier: dict, created_utc: datetime,
                        destinations: list[tuple[str, ExportFacts, dict, list[tuple[str, bytes]]]]) -> bytes:
    """`identifier` is the plan's; each destination carries the one computed from what it received."""
    entries = []
    for name, facts, destination_identifier, files in destinations:
        if not is_bare_name(name) or not all(is_bare_name(file_name) for file_name, _ in files):
            raise ValueError(f"plan manifest entry {name!r} or its files are not bare names")
        entries.append({
            "name": name, "provider": facts.provider, "key_identifier": destination_identifier, "algorithm": facts.algorithm,
            "wrapping_key_sha256_spki": facts.wrapping_key.sha256_spki,
            "wrapping_key_sha256_cert": facts.wrapping_key.sha256_cert,
            "next_step": facts.next_step,
            "files": [{"name": file_name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                      for file_name, data in files]})
    document = {"format": FORMAT, "tool_version": __version__, "key_name": key_name, "key_type": key_type,
                "key_identifier": identifier, "created_utc": utc_timestamp(created_utc), "destinations": entries}
    return (json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
