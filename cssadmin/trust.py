"""Decide whether a certificate wrapping key may be used (google-compute-engine and salesforce).

Checks, in order: there is a certificate; it is within validity; its keyUsage (when present) allows
keyEncipherment; its key is RSA; it is self-signed with a good signature, or it chains through the
intermediates in its own file to an anchor in --ca-bundle; and it is pinned.

Pins file (--pins FILE): a UTF-8 JSON object whose keys are providers that take a certificate, each with a
list of pins. A pin's "sha256" is the SHA-256 of the certificate DER (as printed by
`openssl x509 -noout -fingerprint -sha256 -in FILE`) or of the SubjectPublicKeyInfo DER; colons, spaces
and case are ignored. "comment" is optional free text (where and when the fingerprint was confirmed).

    {
      "google-compute-engine": [
        {"sha256": "AB:CD:...:EF", "comment": "google-cloud-csek-ingress.pem, confirmed 2025-01-02"}
      ],
      "salesforce": [
        {"sha256": "abcd...ef"}
      ]
    }

Anything else - another provider name, another key in an entry, a repeated key, a malformed
fingerprint - is a usage error (exit 2), so that a typo cannot silently drop a pin.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from os import PathLike

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import rsa

from cssadmin.errors import UsageError, WrappingKeyError
from cssadmin.wrapping_key import (
    WrappingKey,
    actual_fingerprints,
    check_expected_fingerprints,
    decode_pem_body,
    key_type_name,
    normalise_fingerprint,
    parse_certificate,
    pem_blocks,
    read_at_most,
    refuse_private_key_blocks,
    short_reason,
)

CERTIFICATE_PROVIDERS = ("google-compute-engine", "salesforce")
PINS_MAX_BYTES = 1 << 20
CA_BUNDLE_MAX_BYTES = 16 << 20  # the system bundle is about 200 KB; leave room for large private ones
MAX_CHAIN_LENGTH = 8
EXPIRY_WARNING_WINDOW = timedelta(days=30)

PINNED_BY_EXPECT_FINGERPRINT = "expect-fingerprint"
PINNED_BY_PINS_FILE = "pins-file"

CERTIFICATE_REQUIRED = "CERTIFICATE_REQUIRED"
CERTIFICATE_MALFORMED = "CERTIFICATE_MALFORMED"
CERTIFICATE_EXPIRED = "CERTIFICATE_EXPIRED"
CERTIFICATE_NOT_YET_VALID = "CERTIFICATE_NOT_YET_VALID"
CERTIFICATE_KEY_USAGE = "CERTIFICATE_KEY_USAGE"
CERTIFICATE_NOT_RSA = "WRAPPING_KEY_NOT_RSA"
CERTIFICATE_BAD_SIGNATURE = "CERTIFICATE_BAD_SIGNATURE"
CERTIFICATE_CHAIN_BROKEN = "CERTIFICATE_CHAIN_BROKEN"
CERTIFICATE_ISSUER_NOT_CA = "CERTIFICATE_ISSUER_NOT_CA"
CERTIFICATE_UNPINNED = "CERTIFICATE_UNPINNED"
CA_BUNDLE_UNREADABLE = "CA_BUNDLE_UNREADABLE"

_PUBLISHED_CERTIFICATE = {
    "google-compute-engine": "google-cloud-csek-ingress.pem, published by Google",
    "salesforce": "the .crt downloaded from Salesforce Setup > Platform Encryption",
}


@dataclass(frozen=True)
class Pins:
    by_provider: dict[str, frozenset[str]]


@dataclass(frozen=True)
class TrustVerdict:
    pinned_by: str | None
    chain: tuple[str, ...]  # subjects, the wrapping key's certificate first, the anchor last
    not_after: datetime  # the earliest expiry in the chain: when this verdict stops holding
    warnings: tuple[str, ...]


def openssl_style(hexstr: str) -> str:
    digits = hexstr.replace(":", "").upper()
    return ":".join(digits[i : i + 2] for i in range(0, len(digits), 2))


def verify_certificate(
    key: WrappingKey,
    *,
    provider: str,
    now: datetime,
    ca_bundle: list[x509.Certificate] | None,
    expected_fingerprints: list[str],
    pins: Pins | None,
    trust_unpinned: bool,
) -> TrustVerdict:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    leaf = _require_certificate(key, provider)
    _check_validity(leaf, now, role="certificate")
    _check_leaf_key_usage(leaf)
    _check_leaf_is_rsa(leaf)
    chain = _verified_chain(leaf, key.certificates[1:], ca_bundle or [], now)
    pinned_by, pin_warnings = _pinning(key, provider, expected_fingerprints, pins, trust_unpinned)
    not_after = min(certificate.not_valid_after_utc for certificate in chain)
    warnings = pin_warnings + _leaf_is_ca_warnings(leaf) + _expiry_warnings(not_after, now)
    return TrustVerdict(
        pinned_by=pinned_by,
        chain=tuple(subject_of(certificate) for certificate in chain),
        not_after=not_after,
        warnings=tuple(warnings),
    )


def load_pins(path: str | PathLike) -> Pins:
    source = str(path)
    document = _parse_json_object(_read_pins_file(path), source)
    by_provider = {}
    for provider, entries in document.items():
        if provider not in CERTIFICATE_PROVIDERS:
            raise UsageError(
                f"pins file {source}: unknown provider {provider!r}; pins apply to {', '.join(CERTIFICATE_PROVIDERS)}"
            )
        if not isinstance(entries, list):
            raise UsageError(f"pins file {source}: {provider} must be a list of {{\"sha256\": ...}} objects")
        by_provider[provider] = frozenset(
            _pin_fingerprint(entry, f"pins file {source}: {provider} entry {number}")
            for number, entry in enumerate(entries, start=1)
        )
    return Pins(by_provider=by_provider)


def load_ca_bundle(path: str | PathLike) -> list[x509.Certificate]:
    source = f"--ca-bundle {path}"
    try:
        data = read_at_most(path, CA_BUNDLE_MAX_BYTES)
    except (OSError, ValueError) as exc:
        raise WrappingKeyError(f"cannot read {source}: {short_reason(exc)}", code=CA_BUNDLE_UNREADABLE) from None
    if not data:
        raise WrappingKeyError(f"{source} is empty", code=CA_BUNDLE_UNREADABLE)
    if len(data) > CA_BUNDLE_MAX_BYTES:
        raise WrappingKeyError(f"{source} is larger than {CA_BUNDLE_MAX_BYTES} bytes", code=CA_BUNDLE_UNREADABLE)
    try:
        return _parse_ca_bundle(data, source)
    except WrappingKeyError as exc:
        raise WrappingKeyError(exc.message, code=CA_BUNDLE_UNREADABLE) from None


def subject_of(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string() or "(empty subject)"


def _parse_ca_bundle(data: bytes, source: str) -> list[x509.Certificate]:
    if b"-----BEGIN " not in data:
        return [parse_certificate(data, source)]
    blocks = pem_blocks(data, source)
    refuse_private_key_blocks(blocks, source)
    other_labels = sorted({block.label for block in blocks} - {"CERTIFICATE"})
    if other_labels:
        raise WrappingKeyError(f"{source} holds PEM {', '.join(other_labels)}; it may hold only CERTIFICATE blocks")
    return [parse_certificate(decode_pem_body(block, source), source) for block in blocks]


def _require_certificate(key: WrappingKey, provider: str) -> x509.Certificate:
    if key.certificates:
        return key.certificates[0]
    published = _PUBLISHED_CERTIFICATE.get(provider, "the certificate the provider published")
    raise WrappingKeyError(
        f"this provider's wrapping key is an X.509 certificate, but a bare public key ({key.source_form}) was given",
        code=CERTIFICATE_REQUIRED,
        remedy=f"give {published}",
    )


def _check_validity(certificate: x509.Certificate, now: datetime, *, role: str) -> None:
    if now > certificate.not_valid_after_utc:
        raise WrappingKeyError(
            f"{role} expired on {_iso(certificate.not_valid_after_utc)} ({subject_of(certificate)})",
            code=CERTIFICATE_EXPIRED,
            remedy=f"get the provider's current certificate; this host's clock says {_iso(now)}",
        )
    if now < certificate.not_valid_before_utc:
        raise WrappingKeyError(
            f"{role} not yet valid until {_iso(certificate.not_valid_before_utc)} ({subject_of(certificate)})",
            code=CERTIFICATE_NOT_YET_VALID,
            remedy=f"check this host's clock, which says {_iso(now)}",
        )


def _check_leaf_key_usage(leaf: x509.Certificate) -> None:
    key_usage = _extension_value(leaf, x509.KeyUsage)
    if key_usage is not None and not key_usage.key_encipherment:
        raise WrappingKeyError(
            f"certificate keyUsage does not allow keyEncipherment ({subject_of(leaf)}); it cannot be a wrapping key",
            code=CERTIFICATE_KEY_USAGE,
        )


def _check_leaf_is_rsa(leaf: x509.Certificate) -> None:
    try:
        public_key = leaf.public_key()
    except (ValueError, UnsupportedAlgorithm):
        public_key = None
    if not isinstance(public_key, rsa.RSAPublicKey):
        found = key_type_name(public_key) if public_key is not None else "an unsupported key"
        raise WrappingKeyError(
            f"certificate's key is {found}, not RSA; cloud wrapping keys are RSA", code=CERTIFICATE_NOT_RSA
        )


def _verified_chain(
    leaf: x509.Certificate,
    intermediates: tuple[x509.Certificate, ...],
    anchors: list[x509.Certificate],
    now: datetime,
) -> list[x509.Certificate]:
    if leaf.issuer == leaf.subject:
        if not _signed_by(leaf, leaf):
            raise WrappingKeyError(
                f"self-signed certificate's signature does not verify ({subject_of(leaf)}): corrupted or tampered",
                code=CERTIFICATE_BAD_SIGNATURE,
            )
        return [leaf]
    chain = [leaf]
    while len(chain) < MAX_CHAIN_LENGTH:
        current = chain[-1]
        anchor = _find_issuer(current, anchors)
        if anchor is not None:
            _check_issuer(anchor, chain, now)
            return chain + [anchor]
        unused_intermediates = [c for c in intermediates if c not in chain]
        issuer = _find_issuer(current, unused_intermediates)
        if issuer is None:
            raise _chain_break(current, unused_intermediates + anchors, anchors)
        _check_issuer(issuer, chain, now)
        chain.append(issuer)
    raise WrappingKeyError(
        f"chain is longer than {MAX_CHAIN_LENGTH} certificates without reaching --ca-bundle",
        code=CERTIFICATE_CHAIN_BROKEN,
    )


def _find_issuer(certificate: x509.Certificate, candidates: list[x509.Certificate]) -> x509.Certificate | None:
    for candidate in candidates:
        if candidate.subject == certificate.issuer and _signed_by(certificate, candidate):
            return candidate
    return None


def _signed_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _chain_break(
    current: x509.Certificate, remaining_candidates: list[x509.Certificate], anchors: list[x509.Certificate]
) -> WrappingKeyError:
    issuer_name = current.issuer.rfc4514_string()
    if current.issuer == current.subject:
        detail = "it is a self-signed root that is not in --ca-bundle"
    elif any(candidate.subject == current.issuer for candidate in remaining_candidates):
        return WrappingKeyError(
            f"signature of {subject_of(current)} does not verify with the key of its issuer {issuer_name}",
            code=CERTIFICATE_BAD_SIGNATURE,
        )
    elif anchors:
        detail = f"no issuer in --ca-bundle (looked for {issuer_name})"
    else:
        detail = f"no issuer in --ca-bundle (none was given; issued by {issuer_name})"
    return WrappingKeyError(
        f"chain breaks at {subject_of(current)}: {detail}",
        code=CERTIFICATE_CHAIN_BROKEN,
        remedy="pass --ca-bundle with the CA that issued it, after checking that CA on the online machine",
    )


def _check_issuer(issuer: x509.Certificate, chain_below: list[x509.Certificate], now: datetime) -> None:
    name = subject_of(issuer)
    constraints = _extension_value(issuer, x509.BasicConstraints)
    if constraints is None or not constraints.ca:
        raise WrappingKeyError(
            f"issuer {name} is not a CA (no basicConstraints CA=true)", code=CERTIFICATE_ISSUER_NOT_CA
        )
    cas_below = len(chain_below) - 1
    if constraints.path_length is not None and cas_below > constraints.path_length:
        raise WrappingKeyError(
            f"issuer {name} allows {constraints.path_length} intermediate CA(s) below it, the chain has {cas_below}",
            code=CERTIFICATE_ISSUER_NOT_CA,
        )
    key_usage = _extension_value(issuer, x509.KeyUsage)
    if key_usage is not None and not key_usage.key_cert_sign:
        raise WrappingKeyError(
            f"issuer {name} is not a CA (its keyUsage does not allow keyCertSign)", code=CERTIFICATE_ISSUER_NOT_CA
        )
    _check_validity(issuer, now, role=f"issuer {name}")


def _extension_value(certificate: x509.Certificate, extension_class: type) -> object | None:
    try:
        return certificate.extensions.get_extension_for_class(extension_class).value
    except x509.ExtensionNotFound:
        return None
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        raise WrappingKeyError(
            f"malformed certificate extensions in {subject_of(certificate)}: {short_reason(exc)}",
            code=CERTIFICATE_MALFORMED,
        ) from None


def _pinning(
    key: WrappingKey,
    provider: str,
    expected_fingerprints: list[str],
    pins: Pins | None,
    trust_unpinned: bool,
) -> tuple[str | None, list[str]]:
    if expected_fingerprints:
        check_expected_fingerprints(key, expected_fingerprints)
        return PINNED_BY_EXPECT_FINGERPRINT, []
    provider_pins = pins.by_provider.get(provider, frozenset()) if pins else frozenset()
    if provider_pins & actual_fingerprints(key):
        return PINNED_BY_PINS_FILE, []
    fingerprints = _fingerprints_for_humans(key)
    if trust_unpinned:
        return None, [f"certificate is not pinned; accepted because of --trust-unpinned ({fingerprints})"]
    raise WrappingKeyError(
        f"certificate {subject_of(key.certificates[0])} is not pinned{_pins_note(pins, provider_pins, provider)}: "
        f"{fingerprints}",
        code=CERTIFICATE_UNPINNED,
        remedy="confirm it on the online machine with `openssl x509 -noout -fingerprint -sha256 -in FILE`, "
        "then pass --expect-fingerprint or --pins",
    )


def _fingerprints_for_humans(key: WrappingKey) -> str:
    # The certificate's in openssl's form, the SPKI's in sha256sum's form: how each is checked online.
    return (
        f"certificate SHA-256 {openssl_style(key.sha256_cert or '')}, "
        f"SubjectPublicKeyInfo SHA-256 {key.sha256_spki}"
    )


def _pins_note(pins: Pins | None, provider_pins: frozenset[str], provider: str) -> str:
    if pins is None:
        return ""
    if provider_pins:
        return f" (the pins file lists {len(provider_pins)} other fingerprint(s) for {provider})"
    return f" (the pins file has no entry for {provider})"


def _leaf_is_ca_warnings(leaf: x509.Certificate) -> list[str]:
    constraints = _extension_value(leaf, x509.BasicConstraints)
    if leaf.issuer != leaf.subject and constraints is not None and constraints.ca:
        return [f"the wrapping key's certificate {subject_of(leaf)} is a CA certificate; is it first in its file?"]
    return []


def _expiry_warnings(not_after: datetime, now: datetime) -> list[str]:
    remaining = not_after - now
    if remaining < EXPIRY_WARNING_WINDOW:
        return [f"the certificate chain expires on {_iso(not_after)}, in {remaining.days} day(s)"]
    return []


def _read_pins_file(path: str | PathLike) -> bytes:
    try:
        data = read_at_most(path, PINS_MAX_BYTES)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read pins file {path}: {short_reason(exc)}") from None
    if len(data) > PINS_MAX_BYTES:
        raise UsageError(f"pins file {path} is larger than {PINS_MAX_BYTES} bytes")
    return data


class _DuplicateKey(ValueError):
    pass


def _reject_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    document: dict[str, object] = {}
    for name, value in pairs:
        if name in document:
            raise _DuplicateKey(f"key {name!r} appears twice")
        document[name] = value
    return document


def _parse_json_object(data: bytes, source: str) -> dict[str, object]:
    try:
        document = json.loads(data, object_pairs_hook=_reject_duplicate_keys)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise UsageError(f"pins file {source} is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise UsageError(f"pins file {source} must hold a JSON object keyed by provider")
    return document


def _pin_fingerprint(entry: object, where: str) -> str:
    if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
        raise UsageError(f"{where} must be an object with a \"sha256\" string")
    unknown = sorted(set(entry) - {"sha256", "comment"})
    if unknown:
        raise UsageError(f"{where} has unknown key(s) {', '.join(unknown)}; allowed: sha256, comment")
    if not isinstance(entry.get("comment", ""), str):
        raise UsageError(f"{where}: comment must be a string")
    try:
        return normalise_fingerprint(entry["sha256"])
    except UsageError as exc:
        raise UsageError(f"{where}: {exc.message}") from None


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
