"""The wrap schemes in software, with `cryptography`.

The software keystore wraps with these; the token self-test unwraps with them to check what the
token produced. They never touch a token key.
"""
from __future__ import annotations

import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding, aes_key_wrap_with_padding

from .schemes import WrapScheme

_HASHES = {"sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha512": hashes.SHA512}


def rsa_padding(scheme: WrapScheme) -> padding.AsymmetricPadding:
    if scheme.kind == "pkcs1v15":
        return padding.PKCS1v15()
    digest = _HASHES[scheme.hash]
    return padding.OAEP(mgf=padding.MGF1(digest()), algorithm=digest(), label=None)


def wrap(public_key: rsa.RSAPublicKey, scheme: WrapScheme, target: bytes) -> bytes:
    if scheme.kind != "rsa_aes":
        return public_key.encrypt(target, rsa_padding(scheme))
    ephemeral = os.urandom(32)
    return public_key.encrypt(ephemeral, rsa_padding(_oaep_part(scheme))) + \
        aes_key_wrap_with_padding(ephemeral, target)


def unwrap(private_key: rsa.RSAPrivateKey, scheme: WrapScheme, blob: bytes) -> bytes:
    if scheme.kind != "rsa_aes":
        return private_key.decrypt(blob, rsa_padding(scheme))
    split = private_key.key_size // 8
    ephemeral = private_key.decrypt(blob[:split], rsa_padding(_oaep_part(scheme)))
    if len(ephemeral) != 32:
        raise ValueError(f"the one-time key is {len(ephemeral) * 8} bits, not AES-256")
    return aes_key_unwrap_with_padding(ephemeral, blob[split:])


def _oaep_part(scheme: WrapScheme) -> WrapScheme:
    return WrapScheme("oaep", scheme.hash)
