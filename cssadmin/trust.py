"""The one trust decision: may this wrapping key receive the key, and who vouched for it?

For every provider: a structurally unsafe key is refused (kek_safety), and the key is pinned by
--expect-fingerprint or a pins file, or reported unpinned (`trust_unpinned`, a warning), or refused
under --require-pinned. For a provider whose wrapping key is a certificate (Provider.needs_certificate)
the certificate must also pass certificates.check_chain, and an unpinned one is refused unless
--trust-unpinned is given (and recorded). What a provider needs lives on Provider only.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from .errors import WrappingKeyError
from .kek_safety import check_structure
from .wrapping_key import WrappingKey, actual_fingerprints, check_expected_fingerprints

if TYPE_CHECKING:
    from cryptography import x509

    from .pins import Pins
    from .providers.base import Provider

PINNED_BY_EXPECT_FINGERPRINT = "expect-fingerprint"
PINNED_BY_PINS_FILE = "pins-file"

CERTIFICATE_REQUIRED = "CERTIFICATE_REQUIRED"
CERTIFICATE_UNPINNED = "CERTIFICATE_UNPINNED"
WRAPPING_KEY_UNPINNED = "WRAPPING_KEY_UNPINNED"


@dataclass(frozen=True)
class TrustRequest:
    """What the operator asked for, as given: fingerprints, and the files that hold anchors and pins."""

    expected_fingerprints: tuple[str, ...] = ()
    ca_bundle: str | None = None
    pins: str | None = None
    trust_unpinned: bool = False
    require_pinned: bool = False     # --require-pinned, or CSSADMIN_REQUIRE_PINNED=1 on the host


@dataclass(frozen=True)
class TrustOptions:
    """The same, with its files read: what a decision is made from."""

    expected_fingerprints: tuple[str, ...] = ()
    ca_bundle: tuple[x509.Certificate, ...] = ()
    pins: Pins | None = None
    trust_unpinned: bool = False
    require_pinned: bool = False


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
    return TrustOptions(request.expected_fingerprints, ca_bundle, pins, request.trust_unpinned,
                        request.require_pinned)


def decide(kek: WrappingKey, provider: Provider, options: TrustOptions, now: datetime) -> TrustVerdict:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    numbers = kek.public_key.public_numbers()
    check_structure(numbers.n, numbers.e, kek.algorithm_oid, "the wrapping key")
    if not provider.needs_certificate:
        pinned_by = _pinned_by(kek, provider.name, options)
        if pinned_by is None:
            _refuse_if_pins_required(kek, provider.name, options)
            return TrustVerdict(pinned_by=None, trust_unpinned=True, warnings=(_unpinned_warning(kek),))
        return TrustVerdict(pinned_by=pinned_by, trust_unpinned=False)
    if not kek.certificates:
        raise WrappingKeyError(
            f"this provider's wrapping key is an X.509 certificate, but a bare public key ({kek.source_form}) "
            "was given", code=CERTIFICATE_REQUIRED, remedy=provider.kek_source)
    from .certificates import check_chain
    chain = check_chain(kek.certificates, options.ca_bundle, now)
    pinned_by, pin_warnings = _pin_certificate(kek, provider.name, options)
    return TrustVerdict(pinned_by=pinned_by, trust_unpinned=pinned_by is None, chain=chain.chain,
                        not_after=chain.not_after, warnings=tuple(pin_warnings) + chain.warnings)


def openssl_style(hexstr: str) -> str:
    digits = hexstr.replace(":", "").upper()
    return ":".join(digits[i : i + 2] for i in range(0, len(digits), 2))


def _pinned_by(key: WrappingKey, provider: str, options: TrustOptions) -> str | None:
    """Who pinned this key, or None; a given --expect-fingerprint that does not match is refused."""
    if options.expected_fingerprints:
        check_expected_fingerprints(key, list(options.expected_fingerprints))
        return PINNED_BY_EXPECT_FINGERPRINT
    if _provider_pins(options, provider) & actual_fingerprints(key):
        return PINNED_BY_PINS_FILE
    return None


def _provider_pins(options: TrustOptions, provider: str) -> frozenset[str]:
    return options.pins.by_provider.get(provider, frozenset()) if options.pins else frozenset()


def _refuse_if_pins_required(key: WrappingKey, provider: str, options: TrustOptions) -> None:
    if options.require_pinned:
        raise WrappingKeyError(
            f"the wrapping key is not pinned{_pins_note(options.pins, _provider_pins(options, provider), provider)} "
            f"and pins are required (--require-pinned or CSSADMIN_REQUIRE_PINNED=1): {_fingerprints_for_humans(key)}",
            code=WRAPPING_KEY_UNPINNED,
            remedy="confirm the fingerprint on the online machine (" + _how_to_confirm(key) + "), then pass "
            "--expect-fingerprint or --pins")


def _unpinned_warning(key: WrappingKey) -> str:
    return (f"the wrapping key is not pinned: confirm its SubjectPublicKeyInfo SHA-256 {key.sha256_spki} on the "
            f"online side with `{_spki_command(key)}`, and pass --expect-fingerprint or --pins next time "
            "(--require-pinned refuses an unpinned key)")


def _how_to_confirm(key: WrappingKey) -> str:
    if key.certificates:
        return "openssl x509 -noout -fingerprint -sha256 -in FILE"
    return _spki_command(key)


def _spki_command(key: WrappingKey) -> str:
    """The OpenSSL line that prints the SubjectPublicKeyInfo SHA-256 of the file as given."""
    inform = "DER" if key.source_form.endswith("-der") else "PEM"
    if key.certificates:
        return (f"openssl x509 -inform {inform} -in FILE -noout -pubkey | openssl pkey -pubin -outform DER "
                "| openssl dgst -sha256")
    if key.source_form.startswith("pkcs1"):
        return f"openssl rsa -RSAPublicKey_in -inform {inform} -in FILE -pubout -outform DER | openssl dgst -sha256"
    return f"openssl pkey -pubin -inform {inform} -in FILE -outform DER | openssl dgst -sha256"


def _pin_certificate(key: WrappingKey, provider: str, options: TrustOptions) -> tuple[str | None, list[str]]:
    pinned_by = _pinned_by(key, provider, options)
    if pinned_by is not None:
        return pinned_by, []
    _refuse_if_pins_required(key, provider, options)
    fingerprints = _fingerprints_for_humans(key)
    if options.trust_unpinned:
        return None, [f"certificate is not pinned; accepted because of --trust-unpinned ({fingerprints})"]
    from .certificates import subject_of
    raise WrappingKeyError(
        f"certificate {subject_of(key.certificates[0])} is not pinned"
        f"{_pins_note(options.pins, _provider_pins(options, provider), provider)}: {fingerprints}",
        code=CERTIFICATE_UNPINNED,
        remedy="confirm it on the online machine with `openssl x509 -noout -fingerprint -sha256 -in FILE`, "
        "then pass --expect-fingerprint or --pins",
    )


def _fingerprints_for_humans(key: WrappingKey) -> str:
    # The certificate's in openssl's form, the SPKI's in sha256sum's form: how each is checked online.
    spki = f"SubjectPublicKeyInfo SHA-256 {key.sha256_spki}"
    return f"certificate SHA-256 {openssl_style(key.sha256_cert)}, {spki}" if key.sha256_cert else spki


def _pins_note(pins: Pins | None, provider_pins: frozenset[str], provider: str) -> str:
    if pins is None:
        return ""
    if provider_pins:
        return f" (the pins file lists {len(provider_pins)} other fingerprint(s) for {provider})"
    return f" (the pins file has no entry for {provider})"
