"""The software keystore's file format: one JSON document per key, its secret sealed by a passphrase.

`<name>.cssadmin-key` holds the raw AES/HMAC key or the DER PKCS#8 of an RSA/EC key, sealed with
AES-256-GCM under a key derived from the passphrase with scrypt. The associated data binds the header
(format, name, key type, KDF parameters and salt), so a field moved or changed is refused. Files
record their own KDF parameters, so older files still open when the defaults rise.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
import unicodedata
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ..errors import CustodyError, KeyConflictError
from ..keytypes import KeyType

FORMAT = "cssadmin-keystore-v1"
SUFFIX = ".cssadmin-key"
# The key type recorded (and bound into the associated data) for the evidence-signing key: an EC
# P-256 key that signs and is never a target key. GCM refuses a file whose type was changed.
SIGNING_KEY_TYPE = "SIGNING-EC-NISTP256"

# scrypt cost for new files: 128 * r * n bytes = 128 MiB; one derivation measured 0.62-0.94 s on the
# 2-core build host (n = 2**16 took 0.30-0.53 s). Files record their own parameters, so files made
# with 2**16 by 0.1.0 still open.
SCRYPT_N = 2**17
SCRYPT_R = 8
SCRYPT_P = 1
# What a file may ask of us when opened: a tampered header must not make us allocate gigabytes.
MAX_SCRYPT_MEMORY = 1 << 30
SALT_BYTES = 16
NONCE_BYTES = 12
MAX_FILE_BYTES = 1 << 16


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


@dataclass(frozen=True)
class KdfParameters:
    n: int
    r: int
    p: int
    salt: bytes

    def as_json(self) -> dict:
        return {"name": "scrypt", "n": self.n, "r": self.r, "p": self.p, "salt": _b64(self.salt)}

    def derive(self, passphrase: str) -> bytes:
        secret = unicodedata.normalize("NFC", passphrase).encode("utf-8")
        return Scrypt(salt=self.salt, length=32, n=self.n, r=self.r, p=self.p).derive(secret)


@dataclass(frozen=True)
class SealedKey:
    """A keystore file as read, before the passphrase opens it."""
    name: str
    key_type: str
    created: str
    kdf: KdfParameters
    nonce: bytes
    ciphertext: bytes
    public_key_pem: str | None
    provider: str | None = None    # the provider the key was created for; None in 0.1.0 files


def associated_data(name: str, key_type: str, kdf: KdfParameters, provider: str | None) -> bytes:
    header = {"format": FORMAT, "name": name, "key_type": key_type, "kdf": kdf.as_json()}
    if provider is not None:   # files of 0.1.0 record none, and their header is bound without it
        header["provider"] = provider
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")


def seal(name: str, key_type: KeyType | str, plaintext: bytes, passphrase: str, scrypt_n: int,
         public_key_pem: bytes | None, created: str, provider: str | None = None) -> bytes:
    """`key_type` is a target key's type, or SIGNING_KEY_TYPE for the evidence-signing key."""
    type_name = key_type if isinstance(key_type, str) else key_type.name
    kdf = KdfParameters(scrypt_n, SCRYPT_R, SCRYPT_P, os.urandom(SALT_BYTES))
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = AESGCM(kdf.derive(passphrase)).encrypt(
        nonce, plaintext, associated_data(name, type_name, kdf, provider))
    document = {
        "format": FORMAT,
        "name": name,
        "key_type": type_name,
        **({"provider": provider} if provider is not None else {}),
        "created": created,
        "kdf": kdf.as_json(),
        "aead": {"name": "AES-256-GCM", "nonce": _b64(nonce)},
        "public_key_pem": public_key_pem.decode("ascii") if public_key_pem else None,
        "ciphertext": _b64(ciphertext),
    }
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")


def unseal(sealed: SealedKey, passphrase: str, path: str) -> bytes:
    key = sealed.kdf.derive(passphrase)
    try:
        return AESGCM(key).decrypt(sealed.nonce, sealed.ciphertext,
                                   associated_data(sealed.name, sealed.key_type, sealed.kdf, sealed.provider))
    except InvalidTag:
        # GCM cannot tell a wrong passphrase from an altered header; both leave the file as it is.
        raise CustodyError(f"the passphrase does not open keystore file {path} (wrong passphrase, "
                           "or the file's header was altered)", code="WRONG_PASSPHRASE",
                           remedy="check the passphrase; the file was not changed") from None


def corrupt(path: str, detail: str) -> KeyConflictError:
    return KeyConflictError(f"keystore file {path} is damaged: {detail}", code="KEY_FILE_CORRUPT",
                            remedy="restore it from a backup, or choose another key name")


def parse_sealed(raw: bytes, path: str) -> SealedKey:
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        document = None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise KeyConflictError(f"{path} is not a cssadmin keystore file ({FORMAT})", code="KEY_NOT_OURS",
                               remedy="choose another key name; cssadmin never exports a key it did not make")
    try:
        return SealedKey(
            name=_field(document, "name", str),
            key_type=_field(document, "key_type", str),
            created=_field(document, "created", str),
            kdf=_parse_kdf(_field(document, "kdf", dict)),
            nonce=_parse_nonce(_field(document, "aead", dict)),
            ciphertext=_unb64(_field(document, "ciphertext", str)),
            public_key_pem=_optional_text(document, "public_key_pem"),
            provider=_optional_text(document, "provider"),
        )
    except (KeyError, TypeError, ValueError, binascii.Error) as failure:
        raise corrupt(path, str(failure) or type(failure).__name__) from None


def _field(document: dict, key: str, kind: type):
    value = document[key]
    # bool is an int in Python; a header of true/false is not a number we wrote.
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(f"field {key!r} is not a {kind.__name__}")
    return value


def _optional_text(document: dict, key: str) -> str | None:
    return None if document.get(key) is None else _field(document, key, str)


def _parse_kdf(kdf: dict) -> KdfParameters:
    if kdf.get("name") != "scrypt":
        raise ValueError(f"unknown KDF {kdf.get('name')!r}")
    n, r, p = (_field(kdf, key, int) for key in ("n", "r", "p"))
    if n < 2 or n & (n - 1) or not 1 <= r <= 32 or not 1 <= p <= 16 or 128 * r * n > MAX_SCRYPT_MEMORY:
        raise ValueError(f"scrypt parameters n={n} r={r} p={p} are out of range")
    salt = _unb64(_field(kdf, "salt", str))
    if len(salt) < SALT_BYTES:
        raise ValueError("the scrypt salt is too short")
    return KdfParameters(n, r, p, salt)


def _parse_nonce(aead: dict) -> bytes:
    if aead.get("name") != "AES-256-GCM":
        raise ValueError(f"unknown AEAD {aead.get('name')!r}")
    nonce = _unb64(_field(aead, "nonce", str))
    if len(nonce) != NONCE_BYTES:
        raise ValueError("the AES-GCM nonce is not 12 bytes")
    return nonce
