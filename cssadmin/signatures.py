"""Signatures over the evidence: ECDSA P-256 with SHA-256, DER-encoded, as `openssl dgst -sha256 -verify` reads.

What signs lives in the custody (the token or the keystore); this module only describes a signer,
turns a token's raw r||s into DER, and verifies - for the export (a signature is checked before it
is written) and for the verify actions. Nothing here prints or touches a token.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from .errors import CustodyError, VerificationError

CURVE = ec.SECP256R1
SIGNATURE_SUFFIX = ".sig"
MAX_SIGNATURE_BYTES = 256          # a DER ECDSA P-256 signature is at most 72 bytes


@dataclass(frozen=True)
class SignerFacts:
    """Who signed: named in the manifest (`signer`) and, by fingerprint and key, in each audit record."""
    label: str
    sha256_spki: str
    public_key_pem: str
    protection: str         # "hsm" | "software"

    def as_dict(self) -> dict:
        return {"label": self.label, "sha256_spki": self.sha256_spki, "public_key_pem": self.public_key_pem,
                "protection": self.protection}


@dataclass(frozen=True)
class Signer:
    """A signing key as the export uses it: who it is, and the custody's signing operation (DER out)."""
    facts: SignerFacts
    sign_with_custody: Callable[[bytes], bytes]
    created: bool = False

    def sign(self, data: bytes) -> bytes:
        """Sign, and check the signature against the public key before anything relies on it."""
        signature = self.sign_with_custody(data)
        if not is_valid(load_public_pem(self.facts.public_key_pem), signature, data):
            raise CustodyError(f"the signature made by signing key '{self.facts.label}' does not verify "
                               "with its public key", code="SIGNATURE_SELF_CHECK_FAILED",
                               remedy="the token's ECDSA is faulty or the key pair does not match; do not use it")
        return signature


@dataclass(frozen=True)
class SignerPin:
    """What the verifying side was told to expect: a fingerprint, or the public key itself."""
    sha256_spki: str
    public_key: ec.EllipticCurvePublicKey | None = None


def spki_der(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def spki_sha256(public_key) -> str:
    return hashlib.sha256(spki_der(public_key)).hexdigest()


def public_pem(public_key) -> str:
    return public_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def signer_facts(label: str, public_key, protection: str) -> SignerFacts:
    return SignerFacts(label, spki_sha256(public_key), public_pem(public_key), protection)


def load_public_pem(data: bytes | str) -> ec.EllipticCurvePublicKey:
    """A P-256 public key from PEM SubjectPublicKeyInfo; ValueError for anything else."""
    if isinstance(data, str):
        data = data.encode("ascii", errors="replace")
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, CURVE):
        raise ValueError("not an EC P-256 public key")
    return key


def der_from_raw(raw: bytes) -> bytes:
    """PKCS#11 CKM_ECDSA gives r||s, each as long as the order; X.509 and OpenSSL want DER."""
    if len(raw) != 64:
        raise ValueError(f"an ECDSA P-256 signature from the token is {len(raw)} bytes, not 64")
    return encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))


def is_valid(public_key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> bool:
    try:
        public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


def embedded_signer(pem: object, claimed_sha256: object, what: str, code: str) -> ec.EllipticCurvePublicKey:
    """The public key a document carries, checked against the fingerprint it claims."""
    try:
        key = load_public_pem(pem) if isinstance(pem, str) else None
    except ValueError:
        key = None
    if key is None:
        raise VerificationError(f"{what}: the signer's public key is missing or not an EC P-256 PEM key",
                                code=code)
    if spki_sha256(key) != claimed_sha256:
        raise VerificationError(f"{what}: the signer's public key does not have the fingerprint it claims",
                                code=code)
    return key


def check_pinned(pin: SignerPin | None, signer_sha256: str, what: str, code: str) -> None:
    """With a pin, the signer must be the pinned one."""
    if pin is not None and signer_sha256 != pin.sha256_spki:
        raise VerificationError(f"{what} is signed by {signer_sha256}, not by the expected signer "
                                f"{pin.sha256_spki}", code=code,
                                remedy="the evidence came from another signing key; do not import it")


MAX_PUBLIC_KEY_BYTES = 1 << 16


def load_pin(fingerprint: str | None, key_path: str | None) -> SignerPin | None:
    """--signer-fingerprint or --signer-key, as the verify actions take them; None for neither."""
    from .errors import OutputError
    from .wrapping_key import normalise_fingerprint
    if fingerprint is not None:
        return SignerPin(normalise_fingerprint(fingerprint))
    if key_path is None:
        return None
    try:
        data = _read_small_file(key_path, MAX_PUBLIC_KEY_BYTES)
        key = load_public_pem(data)
    except OSError as failure:
        raise OutputError(f"--signer-key {key_path} cannot be read: {failure.strerror or failure}",
                          code="SIGNER_KEY_UNREADABLE") from None
    except ValueError as failure:
        raise OutputError(f"--signer-key {key_path} is not an EC P-256 public key in PEM: {failure}",
                          code="SIGNER_KEY_UNREADABLE",
                          remedy="pass the file `cssadmin signing-key LABEL --out FILE` wrote") from None
    return SignerPin(spki_sha256(key), key)


def _read_small_file(path: str, limit: int) -> bytes:
    """A regular file's first `limit` bytes; a FIFO or device is refused without blocking on it."""
    import errno
    import os
    import stat
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        with os.fdopen(descriptor, "rb", closefd=False) as handle:
            data = handle.read(limit + 1)
    finally:
        os.close(descriptor)
    if len(data) > limit:
        raise ValueError(f"larger than {limit} bytes")
    return data
