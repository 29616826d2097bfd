"""Read the cloud's public wrapping key, in whatever form the cloud published it.

Accepted: DER or PEM SubjectPublicKeyInfo ("PUBLIC KEY"), PEM PKCS#1 ("RSA PUBLIC KEY"; DER PKCS#1 is
accepted too), DER or PEM X.509 certificate (a PEM file may hold several CERTIFICATE blocks, the wrapping
key's certificate first, then intermediates). Only RSA keys of at least 2048 bits are accepted.

Every refusal is a WrappingKeyError (exit 3) with one line saying what was found; no other exception
escapes for any input bytes.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING
from os import PathLike

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dh, dsa, ec, ed448, ed25519, rsa, x448, x25519

from cssadmin.errors import UsageError, WrappingKeyError
from cssadmin.kek_safety import RESTRICTED_RSA_OIDS, refuse_other_purpose, spki_algorithm_oid

if TYPE_CHECKING:
    from cryptography import x509

MAX_INPUT_BYTES = 1 << 20
MIN_RSA_BITS = 2048

UNREADABLE = "WRAPPING_KEY_UNREADABLE"
IS_PRIVATE = "WRAPPING_KEY_IS_PRIVATE"
NOT_RSA = "WRAPPING_KEY_NOT_RSA"
TOO_SMALL = "WRAPPING_KEY_TOO_SMALL"
FINGERPRINT_MISMATCH = "FINGERPRINT_MISMATCH"

ACCEPTED_FORMS_HINT = "expected a PEM or DER RSA public key (SubjectPublicKeyInfo or PKCS#1) or X.509 certificate"

_PEM_BEGIN = re.compile(rb"-----BEGIN ([^-\r\n]{0,64})-----")
_PEM_END = re.compile(rb"-----END ([^-\r\n]{0,64})-----")
_PEM_HEADER_LINE = re.compile(rb"^[A-Za-z-]+:.*$", re.MULTILINE)
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class WrappingKey:
    public_key: rsa.RSAPublicKey
    spki_der: bytes
    sha256_spki: str
    bits: int
    certificates: tuple[x509.Certificate, ...]
    sha256_cert: str | None
    source_form: str
    algorithm_oid: str | None = None     # the SPKI's AlgorithmIdentifier as given; None for PKCS#1 (implied)


@dataclass(frozen=True)
class PemBlock:
    label: str
    body: bytes


def load_wrapping_key_file(path: str | PathLike) -> WrappingKey:
    source = str(path)
    try:
        data = read_at_most(path, MAX_INPUT_BYTES)
    except (OSError, ValueError) as exc:
        reason = short_reason(exc)
        raise WrappingKeyError(f"cannot read wrapping key file {source}: {reason}", code=UNREADABLE) from None
    return load_wrapping_key(data, source=source)


def read_at_most(path: str | PathLike, limit: int) -> bytes:
    """Return up to limit + 1 bytes, so that the caller can tell an oversized file from one of exactly limit.

    A FIFO or device is refused (ValueError) on the opened descriptor, never waited on."""
    from cssadmin import inputs
    return inputs.read_at_most(path, limit)


def load_wrapping_key(data: bytes, *, source: str) -> WrappingKey:
    _check_size(data, source)
    if _PEM_BEGIN.search(data):
        public_key, certificates, form = _load_pem(data, source)
    else:
        public_key, certificates, form = _load_der(data, source)
    rsa_key = _require_rsa(public_key, source, in_certificate=bool(certificates))
    spki_der = rsa_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    leaf_der = certificates[0].public_bytes(serialization.Encoding.DER) if certificates else None
    if certificates:
        algorithm_oid = certificates[0].public_key_algorithm_oid.dotted_string
    elif form == "spki-der":
        algorithm_oid = spki_algorithm_oid(data)
    elif form == "spki-pem":
        algorithm_oid = spki_algorithm_oid(decode_pem_body(pem_blocks(data, source)[0], source))
    else:
        algorithm_oid = None
    return WrappingKey(
        public_key=rsa_key,
        spki_der=spki_der,
        sha256_spki=hashlib.sha256(spki_der).hexdigest(),
        bits=rsa_key.key_size,
        certificates=certificates,
        sha256_cert=hashlib.sha256(leaf_der).hexdigest() if leaf_der else None,
        source_form=form,
        algorithm_oid=algorithm_oid,
    )


def normalise_fingerprint(text: str) -> str:
    compact = re.sub(r"[\s:]", "", text).lower()
    if not _FINGERPRINT.fullmatch(compact):
        raise UsageError(   # not shown: what is not a fingerprint may be a secret typed in the wrong place
            f"a fingerprint given ({len(text)} characters, not shown) is not a SHA-256 fingerprint: expected 64 "
            "hex digits (colons and spaces are ignored)"
        )
    return compact


def check_expected_fingerprints(key: WrappingKey, expected: list[str]) -> None:
    if not expected:
        return
    wanted = {normalise_fingerprint(text) for text in expected}
    if wanted & actual_fingerprints(key):
        return
    raise WrappingKeyError(
        f"wrapping key does not match --expect-fingerprint {', '.join(sorted(wanted))}: "
        f"it has {describe_fingerprints(key)}",
        code=FINGERPRINT_MISMATCH,
        remedy="check that you copied the right wrapping key file, and compare the fingerprint over a second channel",
    )


def actual_fingerprints(key: WrappingKey) -> set[str]:
    return {key.sha256_spki} | ({key.sha256_cert} if key.sha256_cert else set())


def describe_fingerprints(key: WrappingKey) -> str:
    text = f"SubjectPublicKeyInfo SHA-256 {key.sha256_spki}"
    if key.sha256_cert:
        text += f" and certificate SHA-256 {key.sha256_cert}"
    return text


def pem_blocks(data: bytes, source: str) -> list[PemBlock]:
    """Split PEM text into blocks; text between blocks is ignored, as openssl does."""
    # One forward pass, each search bounded, so that a megabyte of BEGIN lines costs linear time
    # (a single DOTALL regex over the whole input takes quadratic time on that).
    blocks = []
    position = 0
    while begin := _PEM_BEGIN.search(data, position):
        end = _PEM_END.search(data, begin.end())
        if end is None or _PEM_BEGIN.search(data, begin.end(), end.start()):
            raise WrappingKeyError(f"{source}: a PEM block has no END line (truncated file?)", code=UNREADABLE)
        begin_label, end_label = _label(begin.group(1)), _label(end.group(1))
        if begin_label != end_label:
            raise WrappingKeyError(
                f"{source}: PEM block BEGIN {begin_label} ends with END {end_label}", code=UNREADABLE
            )
        blocks.append(PemBlock(label=begin_label, body=data[begin.end() : end.start()]))
        position = end.end()
    return blocks


def decode_pem_body(block: PemBlock, source: str) -> bytes:
    # Encrypted legacy PEM (Proc-Type/DEK-Info headers) only occurs for private keys, refused before this.
    base64_text = _PEM_HEADER_LINE.sub(b"", block.body)
    try:
        der = base64.b64decode(b"".join(base64_text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise WrappingKeyError(f"{source}: the PEM {block.label} block is not valid base64", code=UNREADABLE) from None
    if not der:
        raise WrappingKeyError(f"{source}: the PEM {block.label} block is empty", code=UNREADABLE)
    return der


def refuse_private_key_blocks(blocks: list[PemBlock], source: str) -> None:
    for block in blocks:
        if block.label.endswith("PRIVATE KEY"):
            raise WrappingKeyError(
                f"{source} holds a private key (PEM {block.label}); a private key must never be given to cssadmin, "
                "only the cloud's public wrapping key",
                code=IS_PRIVATE,
            )


def _check_size(data: bytes, source: str) -> None:
    if not data:
        raise WrappingKeyError(f"{source} is empty; {ACCEPTED_FORMS_HINT}", code=UNREADABLE)
    if len(data) > MAX_INPUT_BYTES:
        raise WrappingKeyError(
            f"{source} is larger than {MAX_INPUT_BYTES} bytes; no wrapping key or certificate is that large",
            code=UNREADABLE,
        )


def _load_pem(data: bytes, source: str) -> tuple[object, tuple[x509.Certificate, ...], str]:
    blocks = pem_blocks(data, source)
    refuse_private_key_blocks(blocks, source)
    labels = [block.label for block in blocks]
    if all(label == "CERTIFICATE" for label in labels):
        certificates = tuple(parse_certificate(decode_pem_body(block, source), source) for block in blocks)
        return _certificate_key(certificates[0], source), certificates, "cert-pem"
    if labels == ["PUBLIC KEY"]:
        return _parse_public_key(decode_pem_body(blocks[0], source), source), (), "spki-pem"
    if labels == ["RSA PUBLIC KEY"]:
        return _parse_public_key(decode_pem_body(blocks[0], source), source), (), "pkcs1-pem"
    raise WrappingKeyError(
        f"{source} holds PEM blocks {', '.join(labels)}; {ACCEPTED_FORMS_HINT} "
        "(one PUBLIC KEY or RSA PUBLIC KEY block, or CERTIFICATE blocks only)",
        code=UNREADABLE,
    )


def _load_der(data: bytes, source: str) -> tuple[object, tuple[x509.Certificate, ...], str]:
    # A bare public key first: it is the common case (AWS), and it spares loading the X.509 stack.
    try:
        public_key = serialization.load_der_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        _refuse_restricted_rsa(data, source)
    else:
        pkcs1_der = _pkcs1_der_or_none(public_key)
        return public_key, (), "pkcs1-der" if data == pkcs1_der else "spki-der"
    try:
        certificate = _decode_certificate(data)
    except _certificate_decoding_errors():
        _refuse_der_private_key(data, source)
        raise WrappingKeyError(
            f"{source} is neither PEM nor a DER public key or certificate (garbage or truncated?); "
            f"{ACCEPTED_FORMS_HINT}",
            code=UNREADABLE,
        ) from None
    _require_parsable_fields(certificate, source)
    return _certificate_key(certificate, source), (certificate,), "cert-der"


def _certificate_decoding_errors() -> tuple[type[BaseException], ...]:
    from cryptography import x509
    return (ValueError, x509.InvalidVersion)


def _refuse_der_private_key(data: bytes, source: str) -> None:
    try:
        serialization.load_der_private_key(data, password=None, unsafe_skip_rsa_key_validation=True)
    except TypeError:  # an encrypted PKCS#8: still a private key
        pass
    except (ValueError, UnsupportedAlgorithm):
        return
    raise WrappingKeyError(
        f"{source} holds a DER private key; a private key must never be given to cssadmin, "
        "only the cloud's public wrapping key",
        code=IS_PRIVATE,
    )


def _pkcs1_der_or_none(public_key: object) -> bytes | None:
    if isinstance(public_key, rsa.RSAPublicKey):
        return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    return None


def parse_certificate(der: bytes, source: str) -> x509.Certificate:
    try:
        certificate = _decode_certificate(der)
    except _certificate_decoding_errors() as exc:
        raise _malformed_certificate(source, exc) from None
    _require_parsable_fields(certificate, source)
    return certificate


def _decode_certificate(der: bytes) -> x509.Certificate:
    # cryptography warns (on stderr) about RFC 5280 violations it still tolerates, such as a serial number
    # that is not positive; they do not matter for a wrapping key, and only the command line may print.
    from cryptography import x509   # only when a certificate is really given: the X.509 stack is slow to load
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return x509.load_der_x509_certificate(der)


def _require_parsable_fields(certificate: x509.Certificate, source: str) -> None:
    # cryptography decodes names and extensions lazily; touch them now so a malformed certificate is refused
    # here, with a clear message, rather than deep inside the trust checks. A name attribute with an unknown
    # string tag makes cryptography 48 raise KeyError.
    from cryptography import x509
    try:
        certificate.subject.rfc4514_string()
        certificate.issuer.rfc4514_string()
        certificate.extensions
    except (ValueError, KeyError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        raise _malformed_certificate(source, exc) from None


def _malformed_certificate(source: str, exc: BaseException) -> WrappingKeyError:
    return WrappingKeyError(f"{source}: malformed X.509 certificate ({short_reason(exc)})", code=UNREADABLE)


def _parse_public_key(der: bytes, source: str) -> object:
    try:
        return serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm) as exc:
        _refuse_restricted_rsa(der, source)
        raise WrappingKeyError(f"{source}: malformed public key ({short_reason(exc)})", code=UNREADABLE) from None


def _refuse_restricted_rsa(der: bytes, source: str) -> None:
    """An RSAES-OAEP key (which cryptography cannot load) is refused for what it is, not as unreadable."""
    algorithm_oid = spki_algorithm_oid(der)
    if algorithm_oid in RESTRICTED_RSA_OIDS:
        refuse_other_purpose(algorithm_oid, source)


def _certificate_key(certificate: x509.Certificate, source: str) -> object:
    try:
        return certificate.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise WrappingKeyError(
            f"{source}: the certificate's public key is unsupported or malformed ({short_reason(exc)}); "
            "cloud wrapping keys are RSA",
            code=NOT_RSA,
        ) from None


def _require_rsa(public_key: object, source: str, *, in_certificate: bool) -> rsa.RSAPublicKey:
    holder = "the certificate's key" if in_certificate else "the wrapping key"
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise WrappingKeyError(
            f"{source}: {holder} is {key_type_name(public_key)}, not RSA; cloud wrapping keys are RSA",
            code=NOT_RSA,
        )
    if public_key.key_size < MIN_RSA_BITS:
        raise WrappingKeyError(
            f"{source}: RSA-{public_key.key_size} is too small; cloud wrapping keys are at least {MIN_RSA_BITS} bits",
            code=TOO_SMALL,
        )
    return public_key


def key_type_name(public_key: object) -> str:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return f"an EC key ({public_key.curve.name})"
    with warnings.catch_warnings():   # newer cryptography warns when DH is merely named
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        named_types = {
            dsa.DSAPublicKey: "a DSA key",
            ed25519.Ed25519PublicKey: "an Ed25519 key",
            ed448.Ed448PublicKey: "an Ed448 key",
            x25519.X25519PublicKey: "an X25519 key",
            x448.X448PublicKey: "an X448 key",
            dh.DHPublicKey: "a DH key",
            rsa.RSAPublicKey: "an RSA key",
        }
    for key_class, name in named_types.items():
        if isinstance(public_key, key_class):
            return name
    return f"an unsupported key ({type(public_key).__name__})"


def _label(raw: bytes) -> str:
    return raw.decode("ascii", errors="replace").strip()


def short_reason(exc: BaseException) -> str:
    """The first line of an exception's text, short: the whole of it can be a multi-line parser dump."""
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    first_line = text.splitlines()[0]
    return first_line if len(first_line) <= 200 else first_line[:200] + "..."
