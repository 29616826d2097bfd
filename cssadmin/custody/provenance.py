"""Whether a key found under a name is one cssadmin made, for this provider, and has never been exposed.

The token custodian reads each object's attributes into a TokenObject; the decision is made here,
without the token, so that it is one rule for every token. A key cssadmin creates carries the
marker `cssadmin:<key type>:<provider>:<random id>` as its CKA_ID (0.1.0 wrote `cssadmin:<key type>`;
such keys are still re-exported, to any provider, if their attributes pass).
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from ..errors import KeyConflictError
from ..keytypes import KeyType

MARKER = b"cssadmin:"

# What a re-exported key must show: generated in the token, sensitive all its life, and still
# exportable only by wrapping. A planted object (C_CreateObject) is not CKA_LOCAL.
REQUIRED_ATTRIBUTES = (("CKA_LOCAL", True), ("CKA_ALWAYS_SENSITIVE", True), ("CKA_SENSITIVE", True),
                       ("CKA_EXTRACTABLE", True), ("CKA_NEVER_EXTRACTABLE", False))

KEY_CLASSES = ("secret key", "private key")


@dataclass(frozen=True)
class Marker:
    key_type: str
    provider: str | None      # None for a 0.1.0 key
    key_id: str | None


@dataclass(frozen=True)
class TokenObject:
    handle: Any
    object_class: str                       # "secret key", "private key", "public key", or another class
    cka_id: bytes
    attributes: dict[str, bool | None]      # REQUIRED_ATTRIBUTES' names; None where the token has none

    @property
    def marker(self) -> Marker | None:
        return parse_marker(self.cka_id)


def new_marker(key_type: KeyType, provider: str) -> bytes:
    return MARKER + f"{key_type.name}:{provider}:{secrets.token_hex(8)}".encode("ascii")


def parse_marker(cka_id: bytes) -> Marker | None:
    if not cka_id.startswith(MARKER):
        return None
    parts = cka_id[len(MARKER):].decode("ascii", errors="replace").split(":")
    if len(parts) == 1 and parts[0]:
        return Marker(parts[0], None, None)
    if len(parts) == 3 and all(parts):
        return Marker(*parts)
    return None


def choose_existing(token_label: str, name: str, key_type: KeyType, provider: str, reuse_key: bool,
                    objects: list[TokenObject]) -> TokenObject:
    """The one key object under `name` that may be re-exported, or KeyConflictError (exit 6)."""
    if any(obj.marker is None for obj in objects):
        raise KeyConflictError(f"token '{token_label}' holds an object labelled '{name}' that cssadmin did not "
                               "create", code="KEY_NOT_OURS",
                               remedy="choose another key name; cssadmin never exports a key it did not make")
    keys = [obj for obj in objects if obj.object_class in KEY_CLASSES]
    if len(keys) > 1:
        raise ambiguous(token_label, name, keys)
    found_types = {obj.marker.key_type for obj in objects}
    if found_types != {key_type.name}:
        raise KeyConflictError(f"key '{name}' exists as {', '.join(sorted(found_types))}, not {key_type.name}",
                               code="KEY_TYPE_CONFLICT",
                               remedy="choose another key name or the key type it was created with")
    wanted = "private key" if key_type.is_private_key else "secret key"
    if not keys or keys[0].object_class != wanted:
        raise KeyConflictError(f"key '{name}' is incomplete on the token (no {wanted} object)",
                               code="KEY_TYPE_CONFLICT")
    key = keys[0]
    for attribute, required in REQUIRED_ATTRIBUTES:
        if key.attributes.get(attribute) is not required:
            raise KeyConflictError(
                f"key '{name}' on token '{token_label}' has {attribute} {_shown(key.attributes.get(attribute))}, "
                f"not {str(required).lower()}: it was not generated and kept by cssadmin as it generates keys, "
                "so its value may be known outside the token", code="KEY_PROVENANCE",
                remedy="do not export it; choose another key name, and find out who made this object")
    check_provider(name, key.marker.provider, provider, reuse_key)
    return key


def check_provider(name: str, created_for: str | None, provider: str, reuse_key: bool) -> None:
    if created_for is None or created_for == provider or reuse_key:
        return
    raise KeyConflictError(f"key '{name}' was created for {created_for}, not {provider}", code="KEY_OTHER_PROVIDER",
                           remedy=f"pass --reuse-key to give the same key material to {provider} as well")


def ambiguous(token_label: str, name: str, keys: list[TokenObject]) -> KeyConflictError:
    listed = "; ".join(f"{obj.object_class} CKA_ID {obj.cka_id.decode('ascii', errors='replace')!r}" for obj in keys)
    return KeyConflictError(f"token '{token_label}' holds {len(keys)} keys labelled '{name}' ({listed}); cssadmin "
                            "never exports one of several at random", code="KEY_AMBIGUOUS",
                            remedy="find out which one is the real key (the audit log records what was exported), "
                            "remove the others with the HSM's own tools, and run again")


def _shown(value: bool | None) -> str:
    return "unset" if value is None else str(value).lower()
