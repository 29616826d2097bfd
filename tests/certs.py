"""Build keys, CAs and certificates for the wrapping-key and trust tests.

Keys are cached for the whole session (RSA-4096 takes about a second to generate); `index` gives
distinct keys of the same kind when a test needs several (root, intermediate, leaf).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=timezone.utc)
YEAR = timedelta(days=365)

WRAPPING_USAGE = frozenset({"key_encipherment"})
SIGNING_USAGE = frozenset({"digital_signature"})
CA_USAGE = frozenset({"key_cert_sign", "crl_sign"})
_KEY_USAGE_FLAGS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)


@functools.lru_cache(maxsize=None)
def rsa_key(bits: int = 2048, index: int = 0) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@functools.lru_cache(maxsize=None)
def ec_key(index: int = 0) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@functools.lru_cache(maxsize=None)
def dsa_key() -> dsa.DSAPrivateKey:
    return dsa.generate_private_key(key_size=2048)


@functools.lru_cache(maxsize=None)
def ed25519_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def key_usage(flags: frozenset[str]) -> x509.KeyUsage:
    chosen = {flag: flag in flags for flag in _KEY_USAGE_FLAGS}
    return x509.KeyUsage(**chosen, encipher_only=False, decipher_only=False)


def make_cert(
    common_name: str,
    subject_key,
    *,
    issuer: tuple[x509.Certificate, object] | None = None,
    not_before: datetime = NOW - YEAR,
    not_after: datetime = NOW + YEAR,
    usage: frozenset[str] | None = WRAPPING_USAGE,
    ca: bool | None = None,
    path_length: int | None = None,
    rsa_pss: bool = False,
) -> x509.Certificate:
    """A certificate for subject_key; self-signed unless issuer=(issuer_cert, issuer_private_key)."""
    issuer_name, signing_key = (issuer[0].subject, issuer[1]) if issuer else (name(common_name), subject_key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(common_name))
        .issuer_name(issuer_name)
        .public_key(subject_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if usage is not None:
        builder = builder.add_extension(key_usage(usage), critical=True)
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
    return _sign(builder, signing_key, rsa_pss)


def _sign(builder: x509.CertificateBuilder, signing_key, rsa_pss: bool) -> x509.Certificate:
    if isinstance(signing_key, ed25519.Ed25519PrivateKey):
        return builder.sign(signing_key, None)
    if rsa_pss:
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        return builder.sign(signing_key, hashes.SHA256(), rsa_padding=pss)
    return builder.sign(signing_key, hashes.SHA256())


def self_signed(
    bits: int = 2048,
    *,
    common_name: str = "wrapping key",
    not_before: datetime = NOW - YEAR,
    not_after: datetime = NOW + YEAR,
    usage: frozenset[str] | None = WRAPPING_USAGE,
    index: int = 0,
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = rsa_key(bits, index)
    cert = make_cert(common_name, key, not_before=not_before, not_after=not_after, usage=usage)
    return cert, key


def utc(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=timezone.utc)


def expired_cert() -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """Expired on 2025-01-02T00:00:00Z, long before NOW."""
    return self_signed(not_before=utc(2024, 1, 2), not_after=utc(2025, 1, 2))


def not_yet_valid_cert() -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """Valid from 2027-03-04T00:00:00Z, after NOW."""
    return self_signed(not_before=utc(2027, 3, 4), not_after=utc(2028, 3, 4))


def signing_only_cert() -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    return self_signed(usage=SIGNING_USAGE)


def ec_cert() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec_key()
    return make_cert("ec wrapping key", key), key


def corrupted_signature(cert: x509.Certificate) -> x509.Certificate:
    """The same certificate with one bit of its signature flipped: it parses, but no longer verifies."""
    der = bytearray(cert.public_bytes(serialization.Encoding.DER))
    signature_offset = bytes(der).rindex(cert.signature)
    der[signature_offset + len(cert.signature) // 2] ^= 0x01
    return x509.load_der_x509_certificate(bytes(der))


@dataclass(frozen=True)
class Chain:
    root: x509.Certificate
    root_key: object
    intermediate: x509.Certificate
    intermediate_key: object
    leaf: x509.Certificate
    leaf_key: rsa.RSAPrivateKey


def ca_chain(
    *,
    root_key=None,
    intermediate_key=None,
    leaf_bits: int = 2048,
    intermediate_ca: bool | None = True,
    intermediate_usage: frozenset[str] | None = CA_USAGE,
    intermediate_not_after: datetime | None = None,
    root_path_length: int | None = None,
    rsa_pss: bool = False,
    now: datetime = NOW,
) -> Chain:
    """root CA -> intermediate -> leaf; the intermediate's properties can be spoiled one at a time."""
    root_key = root_key or rsa_key(2048, index=1)
    intermediate_key = intermediate_key or rsa_key(2048, index=2)
    leaf_key = rsa_key(leaf_bits, index=3)
    root = make_cert(
        "Test Root CA", root_key, usage=CA_USAGE, ca=True, path_length=root_path_length,
        not_before=now - YEAR, not_after=now + 5 * YEAR
    )
    intermediate = make_cert(
        "Test Intermediate CA",
        intermediate_key,
        issuer=(root, root_key),
        usage=intermediate_usage,
        ca=intermediate_ca,
        not_before=now - YEAR,
        not_after=intermediate_not_after or now + 2 * YEAR,
        rsa_pss=rsa_pss,
    )
    leaf = make_cert("wrapping key leaf", leaf_key, issuer=(intermediate, intermediate_key), ca=False, rsa_pss=rsa_pss,
                     not_before=now - YEAR, not_after=now + YEAR)
    return Chain(root, root_key, intermediate, intermediate_key, leaf, leaf_key)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certs)


def spki_der(private_key) -> bytes:
    return private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def spki_pem(private_key) -> bytes:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def pkcs1_pem(private_key: rsa.RSAPrivateKey) -> bytes:
    return private_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)


def pkcs1_der(private_key: rsa.RSAPrivateKey) -> bytes:
    return private_key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)


def private_pem(private_key, private_format=serialization.PrivateFormat.PKCS8) -> bytes:
    return private_key.private_bytes(serialization.Encoding.PEM, private_format, serialization.NoEncryption())


def private_der(private_key) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def write_pem(path: Path, *certs: x509.Certificate) -> Path:
    return write(path, pem(*certs))
