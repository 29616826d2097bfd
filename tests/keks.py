"""Stand-in cloud wrapping keys whose private half the tests hold, written in the clouds' forms."""
from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization

from certs import ec_key, rsa_key  # noqa: F401  (one cache of generated keys for the whole session)


def write_private_pem(key, path: Path) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


def write_spki(key, path: Path, *, pem: bool = False) -> Path:
    encoding = serialization.Encoding.PEM if pem else serialization.Encoding.DER
    path.write_bytes(key.public_key().public_bytes(encoding, serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


def spki_der(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


