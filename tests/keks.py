"""Stand-in cloud wrapping keys whose private half the tests hold, written in the clouds' forms."""
from __future__ import annotations

import functools
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa


@functools.lru_cache(maxsize=None)
def rsa_key(bits: int, index: int = 0) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


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


def ec_key():
    return ec.generate_private_key(ec.SECP256R1())
