"""The one trust decision: may this wrapping key receive the key, and who vouched for it?

For every provider: an --expect-fingerprint that does not match is refused. For a provider whose
wrapping key is a certificate (Provider.needs_certificate), the certificate must also pass
certificates.check_chain and be pinned, by --expect-fingerprint or a pins file, unless
--trust-unpinned is given (and recorded). What a provider needs lives on Provider only.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from .errors import WrappingKeyError
from .wrapping_key import WrappingKey, actual_fingerprints, check_expected_fingerprints

if TYPE_CHECKING:
    from cryptography import x509

    from .pins import Pins
    from .providers.base import Provider

PINNED_BY_EXPECT_FINGERPRINT = "expect-fingerprint"
PINNED_BY_PINS_FILE = "pins-file"

CERTIFICATE_REQUIRED = "CERTIFICATE_REQUIRED"
CERTIFICATE_UNPINNED = "CERTIFICATE_UNPINNED"


@dataclass(frozen=True)
class TrustRequest:
    """What the operator asked for, as given: fingerprints, and the files that hold anchors and pins."""

    expected_fingerprints: tuple[str, ...] = ()
    ca_bundle: str | None = None
    pins: str | None = None
    trust_unpinned: bool = False


@dataclass(frozen=True)
class TrustOptions:
    """The same, with its files read: what a decision is made from."""

    expected_fingerprints: tuple[str, ...] = ()
    ca_bundle: tuple[x509.Certificate, ...] = ()
    pins: Pins | None = None
    trust_unpinned: bool = False


@dataclass(frozen=True)
class TrustVerdict:
    pinned_by: str | None            # PINNED_BY_EXPECT_FINGERPRINT, PINNED_BY_PINS_FILE, or None
    trust_unpinned: bool             # accepted without a pin only because --trust-unpinned said so
    chain: tuple[str, ...] = ()      # certificate subjects, the wrapping key's first, the anchor last
    not_after: datetime | None = None   # when the certificate verdict stops holding
    warnings: tuple[str, ...] = ()

    @property
    def certificate(self) -> dict | None:
        if not self.chain:
            return None
        return {"chain": list(self.chain), "not_after": self.not_after.strftime("%Y-%m-%dT%H:%M:%SZ")}


def load_options(request: TrustRequest) -> TrustOptions:
    """Read the CA bundle and pins file the request names (only the ones it names)."""
    ca_bundle: tuple = ()
    pins = None
    if request.ca_bundle:
        from .certificates import load_ca_bundle
        ca_bundle = tuple(load_ca_bundle(request.ca_bundle))
    if request.pins:
        from .pins import load_pins
        pins = load_pins(request.pins)
    return TrustOptions(request.expected_fingerprints, ca_bundle, pins, request.trust_unpinned)


def decide(kek: WrappingKey, provider: Provider, options: TrustOptions, now: datetime) -> TrustVerdict:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not provider.needs_certificate:
        if options.expected_fingerprints:
            check_expected_fingerprints(kek, list(options.expected_fingerprints))
            return TrustVerdict(pinned_by=PINNED_BY_EXPECT_FINGERPRINT, trust_unpinned=False)
        return TrustVerdict(pinned_by=None, trust_unpinned=False)
    if not kek.certificates:
        raise WrappingKeyError(
            f"this provider's wrapping key is an X.509 certificate, but a bare public key ({kek.source_form}) "
            "was given", code=CERTIFICATE_REQUIRED, remedy=provider.kek_source)
    from .certificates import check_chain
    chain = check_chain(kek.certificates, options.ca_bundle, now)
    pinned_by, pin_warnings = _pinning(kek, provider.name, options)
    return TrustVerdict(pinned_by=pinned_by, trust_unpinned=pinned_by is None, chain=chain.chain,
                        not_after=chain.not_after, warnings=tuple(pin_warnings) + chain.warnings)


def openssl_style(hexstr: str) -> str:
    digits = hexstr.replace(":", "").upper()
    return ":".join(digits[i : i + 2] for i in range(0, len(digits), 2))


def _pinning(key: WrappingKey, provider: str, options: TrustOptions) -> tuple[str | None, list[str]]:
    if options.expected_fingerprints:
        check_expected_fingerprints(key, list(options.expected_fingerprints))
        return PINNED_BY_EXPECT_FINGERPRINT, []
    pins = options.pins
    provider_pins = pins.by_provider.get(provider, frozenset()) if pins else frozenset()
    if provider_pins & actual_fingerprints(key):
        return PINNED_BY_PINS_FILE, []
    fingerprints = _fingerprints_for_humans(key)
    if options.trust_unpinned:
        return None, [f"certificate is not pinned; accepted because of --trust-unpinned ({fingerprints})"]
    from .certificates import subject_of
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
