"""Whether a wrapping key's certificate may be used: validity, keyUsage, and the chain to an anchor.

Checks, in order: it is within validity; its keyUsage (when present) allows keyEncipherment; it is
self-signed with a good signature, or it chains through the intermediates in its own file to an
anchor in --ca-bundle, each issuer a CA within validity. Pinning is decided in trust.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from os import PathLike

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from .errors import WrappingKeyError
from .wrapping_key import (decode_pem_body, parse_certificate, pem_blocks, read_at_most, refuse_private_key_blocks,
                           short_reason)

CA_BUNDLE_MAX_BYTES = 16 << 20  # the system bundle is about 200 KB; leave room for large private ones
MAX_CHAIN_LENGTH = 8
EXPIRY_WARNING_WINDOW = timedelta(days=30)

CERTIFICATE_MALFORMED = "CERTIFICATE_MALFORMED"
CERTIFICATE_EXPIRED = "CERTIFICATE_EXPIRED"
CERTIFICATE_NOT_YET_VALID = "CERTIFICATE_NOT_YET_VALID"
CERTIFICATE_KEY_USAGE = "CERTIFICATE_KEY_USAGE"
CERTIFICATE_BAD_SIGNATURE = "CERTIFICATE_BAD_SIGNATURE"
CERTIFICATE_CHAIN_BROKEN = "CERTIFICATE_CHAIN_BROKEN"
CERTIFICATE_ISSUER_NOT_CA = "CERTIFICATE_ISSUER_NOT_CA"
CA_BUNDLE_UNREADABLE = "CA_BUNDLE_UNREADABLE"


@dataclass(frozen=True)
class ChainVerdict:
    chain: tuple[str, ...]  # subjects, the wrapping key's certificate first, the anchor last
    not_after: datetime     # the earliest expiry in the chain: when this verdict stops holding
    warnings: tuple[str, ...]


def check_chain(certificates: tuple[x509.Certificate, ...], anchors: tuple[x509.Certificate, ...],
                now: datetime) -> ChainVerdict:
    """The wrapping key's certificate (first) and the intermediates after it, judged at `now`."""
    leaf = certificates[0]
    _check_validity(leaf, now, role="certificate")
    _check_leaf_key_usage(leaf)
    chain = _verified_chain(leaf, certificates[1:], list(anchors), now)
    not_after = min(certificate.not_valid_after_utc for certificate in chain)
    return ChainVerdict(chain=tuple(subject_of(certificate) for certificate in chain), not_after=not_after,
                        warnings=tuple(_leaf_is_ca_warnings(leaf) + _expiry_warnings(not_after, now)))


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


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
