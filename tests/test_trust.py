from __future__ import annotations

import json
import os
import shlex
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from cssadmin.errors import UsageError, WrappingKeyError
from cssadmin.certificates import load_ca_bundle
from cssadmin.pins import Pins, load_pins
from cssadmin.providers import get_provider
from cssadmin.trust import TrustOptions, TrustVerdict, decide, openssl_style
from cssadmin.wrapping_key import WrappingKey, load_wrapping_key, load_wrapping_key_file
import certs

OTHER_FINGERPRINT = "00" * 32


def key_from(*chain) -> WrappingKey:
    return load_wrapping_key(certs.pem(*chain), source="kek.pem")


def verify(key: WrappingKey, *, provider: str = "salesforce", now=certs.NOW, ca_bundle=None,
           expected_fingerprints=(), pins=None, trust_unpinned: bool = True) -> TrustVerdict:
    """Trust checks with pinning waived unless a test sets it: most tests are about one other rule."""
    options = TrustOptions(tuple(expected_fingerprints), tuple(ca_bundle or ()), pins, trust_unpinned)
    return decide(key, get_provider(provider), options, now)


def refused(key: WrappingKey, code: str, fragment: str, **overrides) -> WrappingKeyError:
    with pytest.raises(WrappingKeyError) as caught:
        verify(key, **overrides)
    assert caught.value.exit_code == 3
    assert caught.value.code == code
    assert fragment in str(caught.value)
    return caught.value


@pytest.fixture(scope="module")
def chain() -> certs.Chain:
    return certs.ca_chain()


# --- the certificate itself -----------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["google-compute-engine", "salesforce"])
def test_bare_public_key_is_refused_for_certificate_providers(provider):
    bare = load_wrapping_key(certs.spki_pem(certs.rsa_key(2048)), source="kek.pem")
    error = refused(
        bare, "CERTIFICATE_REQUIRED", "this provider's wrapping key is an X.509 certificate", provider=provider
    )
    assert "spki-pem" in error.message


def test_bare_key_remedy_names_the_file_google_publishes():
    bare = load_wrapping_key(certs.spki_der(certs.rsa_key(2048)), source="kek.der")
    refused(bare, "CERTIFICATE_REQUIRED", "google-cloud-csek-ingress.pem", provider="google-compute-engine")


def test_valid_self_signed_certificate_is_accepted():
    cert, _ = certs.self_signed()
    key = key_from(cert)
    verdict = verify(key, expected_fingerprints=[key.sha256_cert], trust_unpinned=False)
    assert verdict == TrustVerdict(
        pinned_by="expect-fingerprint",
        trust_unpinned=False,
        chain=("CN=wrapping key",),
        not_after=cert.not_valid_after_utc,
        warnings=(),
    )


def test_salesforce_rsa_4096_certificate_read_from_a_file_is_accepted(tmp_path):
    cert, _ = certs.self_signed(4096)
    key = load_wrapping_key_file(certs.write_pem(tmp_path / "salesforce.crt", cert))
    assert verify(key).chain == ("CN=wrapping key",)


def test_expired_certificate_is_refused():
    refused(key_from(certs.expired_cert()[0]), "CERTIFICATE_EXPIRED", "certificate expired on 2025-01-02T00:00:00Z")


def test_not_yet_valid_certificate_is_refused_pointing_at_the_clock():
    error = refused(
        key_from(certs.not_yet_valid_cert()[0]),
        "CERTIFICATE_NOT_YET_VALID",
        "certificate not yet valid until 2027-03-04T00:00:00Z",
    )
    assert "clock" in error.remedy


def test_validity_bounds_are_inclusive():
    cert, _ = certs.self_signed()
    key = key_from(cert)
    verify(key, now=cert.not_valid_before_utc)
    verify(key, now=cert.not_valid_after_utc)
    refused(key, "CERTIFICATE_EXPIRED", "expired", now=cert.not_valid_after_utc + timedelta(seconds=1))
    refused(key, "CERTIFICATE_NOT_YET_VALID", "not yet valid", now=cert.not_valid_before_utc - timedelta(seconds=1))


def test_now_in_another_time_zone_is_compared_as_the_same_instant():
    cert, _ = certs.self_signed()
    after_expiry_in_tokyo = (cert.not_valid_after_utc + timedelta(hours=1)).astimezone(timezone(timedelta(hours=9)))
    refused(key_from(cert), "CERTIFICATE_EXPIRED", "expired", now=after_expiry_in_tokyo)


def test_naive_now_is_a_programming_error():
    with pytest.raises(ValueError, match="timezone-aware"):
        verify(key_from(certs.self_signed()[0]), now=datetime(2026, 6, 1))


def test_key_usage_without_key_encipherment_is_refused():
    refused(key_from(certs.signing_only_cert()[0]), "CERTIFICATE_KEY_USAGE", "does not allow keyEncipherment")


def test_certificate_without_key_usage_is_accepted():
    assert verify(key_from(certs.self_signed(usage=None)[0])).pinned_by is None


def test_self_signed_certificate_with_a_corrupted_signature_is_refused():
    corrupted = certs.corrupted_signature(certs.self_signed()[0])
    refused(key_from(corrupted), "CERTIFICATE_BAD_SIGNATURE", "self-signed certificate's signature does not verify")


# --- chains ---------------------------------------------------------------------------------------------


def test_chain_through_the_files_intermediate_to_a_bundle_root_is_accepted(chain):
    verdict = verify(key_from(chain.leaf, chain.intermediate), ca_bundle=[chain.root])
    assert verdict.chain == ("CN=wrapping key leaf", "CN=Test Intermediate CA", "CN=Test Root CA")


def test_intermediate_in_the_bundle_is_an_anchor(chain):
    verdict = verify(key_from(chain.leaf), ca_bundle=[chain.root, chain.intermediate])
    assert verdict.chain == ("CN=wrapping key leaf", "CN=Test Intermediate CA")


def test_root_in_the_file_is_not_trusted_unless_in_the_bundle(chain):
    other_root = certs.make_cert("Other Root CA", certs.rsa_key(2048, index=4), usage=certs.CA_USAGE, ca=True)
    key = key_from(chain.leaf, chain.intermediate, chain.root)
    refused(key, "CERTIFICATE_CHAIN_BROKEN", "chain breaks at CN=Test Root CA: it is a self-signed root that is not in",
            ca_bundle=[other_root])
    assert verify(key, ca_bundle=[chain.root]).chain[-1] == "CN=Test Root CA"


@pytest.mark.parametrize(
    "signers",
    [
        {"rsa_pss": True},
        {"root_key": certs.ec_key(index=1), "intermediate_key": certs.ec_key(index=2)},
        {"root_key": certs.ed25519_key()},
    ],
    ids=["rsa-pss", "ec-issuers", "ed25519-root"],
)
def test_chains_signed_with_pss_ec_or_ed25519_are_accepted(signers):
    other = certs.ca_chain(**signers)
    verdict = verify(key_from(other.leaf, other.intermediate), ca_bundle=[other.root])
    assert len(verdict.chain) == 3


def test_missing_intermediate_breaks_the_chain(chain):
    refused(key_from(chain.leaf), "CERTIFICATE_CHAIN_BROKEN",
            "chain breaks at CN=wrapping key leaf: no issuer in --ca-bundle (looked for CN=Test Intermediate CA)",
            ca_bundle=[chain.root])


def test_ca_signed_certificate_without_a_bundle_is_refused(chain):
    error = refused(key_from(chain.leaf, chain.intermediate), "CERTIFICATE_CHAIN_BROKEN",
                    "chain breaks at CN=Test Intermediate CA: no issuer in --ca-bundle (none was given")
    assert "--ca-bundle" in error.remedy


@pytest.mark.parametrize("intermediate_ca", [False, None], ids=["ca-false", "no-basic-constraints"])
def test_issuer_that_is_not_a_ca_is_refused(intermediate_ca):
    spoiled = certs.ca_chain(intermediate_ca=intermediate_ca)
    refused(key_from(spoiled.leaf, spoiled.intermediate), "CERTIFICATE_ISSUER_NOT_CA",
            "issuer CN=Test Intermediate CA is not a CA (no basicConstraints CA=true)", ca_bundle=[spoiled.root])


def test_issuer_without_key_cert_sign_is_refused():
    spoiled = certs.ca_chain(intermediate_usage=frozenset({"digital_signature"}))
    refused(key_from(spoiled.leaf, spoiled.intermediate), "CERTIFICATE_ISSUER_NOT_CA",
            "its keyUsage does not allow keyCertSign", ca_bundle=[spoiled.root])


def test_path_length_constraint_is_enforced():
    spoiled = certs.ca_chain(root_path_length=0)
    refused(key_from(spoiled.leaf, spoiled.intermediate), "CERTIFICATE_ISSUER_NOT_CA",
            "issuer CN=Test Root CA allows 0 intermediate CA(s) below it, the chain has 1", ca_bundle=[spoiled.root])
    assert len(verify(key_from(spoiled.leaf), ca_bundle=[spoiled.intermediate]).chain) == 2


def test_expired_issuer_is_refused():
    spoiled = certs.ca_chain(intermediate_not_after=certs.NOW - timedelta(days=1))
    refused(key_from(spoiled.leaf, spoiled.intermediate), "CERTIFICATE_EXPIRED",
            "issuer CN=Test Intermediate CA expired on", ca_bundle=[spoiled.root])


def test_leaf_with_a_corrupted_signature_is_refused(chain):
    corrupted_leaf = certs.corrupted_signature(chain.leaf)
    refused(key_from(corrupted_leaf, chain.intermediate), "CERTIFICATE_BAD_SIGNATURE",
            "signature of CN=wrapping key leaf does not verify with the key of its issuer CN=Test Intermediate CA",
            ca_bundle=[chain.root])


def test_anchor_with_the_right_name_but_another_key_is_refused(chain):
    impostor_root = certs.make_cert("Test Root CA", certs.rsa_key(2048, index=4), usage=certs.CA_USAGE, ca=True)
    refused(key_from(chain.leaf, chain.intermediate), "CERTIFICATE_BAD_SIGNATURE",
            "signature of CN=Test Intermediate CA does not verify", ca_bundle=[impostor_root])


def test_verdict_expiry_is_the_earliest_in_the_chain_and_near_expiry_warns():
    soon = certs.NOW + timedelta(days=10)
    short_lived = certs.ca_chain(intermediate_not_after=soon)
    verdict = verify(key_from(short_lived.leaf, short_lived.intermediate), ca_bundle=[short_lived.root])
    assert verdict.not_after == soon.replace(microsecond=0)
    assert any("expires on" in warning and "in 10 day(s)" in warning for warning in verdict.warnings)


def test_ca_signed_leaf_that_is_a_ca_warns(chain):
    issuer = (chain.intermediate, chain.intermediate_key)
    ca_leaf = certs.make_cert("odd leaf", certs.rsa_key(2048, index=3), issuer=issuer, ca=True, usage=None)
    verdict = verify(key_from(ca_leaf, chain.intermediate), ca_bundle=[chain.root])
    assert any("is a CA certificate" in warning for warning in verdict.warnings)


def test_self_signed_ca_certificate_does_not_warn():
    # `openssl req -x509` marks self-signed certificates CA:TRUE by default; that is no sign of a mix-up.
    key = certs.rsa_key(2048)
    verdict = verify(key_from(certs.make_cert("self-signed CA", key, ca=True)))
    assert not any("is a CA certificate" in warning for warning in verdict.warnings)


def test_chain_longer_than_the_limit_is_refused(chain):
    issuer, issuer_key = chain.root, chain.root_key
    intermediates = []
    for depth in range(8):
        intermediate = certs.make_cert(f"CA {depth}", chain.intermediate_key, issuer=(issuer, issuer_key),
                                       usage=certs.CA_USAGE, ca=True)
        intermediates.insert(0, intermediate)
        issuer, issuer_key = intermediate, chain.intermediate_key
    leaf = certs.make_cert("deep leaf", chain.leaf_key, issuer=(issuer, issuer_key))
    refused(key_from(leaf, *intermediates), "CERTIFICATE_CHAIN_BROKEN", "chain is longer than 8 certificates",
            ca_bundle=[chain.root])
    assert len(verify(key_from(leaf, *intermediates[:6]), ca_bundle=[intermediates[6]]).chain) == 8


# --- pinning --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def self_signed_key() -> WrappingKey:
    return key_from(certs.self_signed()[0])


def test_expected_certificate_fingerprint_in_openssl_form_pins(self_signed_key):
    verdict = verify(self_signed_key, expected_fingerprints=[openssl_style(self_signed_key.sha256_cert)],
                     trust_unpinned=False)
    assert verdict.pinned_by == "expect-fingerprint"
    assert verdict.warnings == ()


def test_expected_spki_fingerprint_pins(self_signed_key):
    verdict = verify(self_signed_key, expected_fingerprints=[self_signed_key.sha256_spki.upper()], trust_unpinned=False)
    assert verdict.pinned_by == "expect-fingerprint"


def test_expected_fingerprint_mismatch_is_refused_even_when_the_pins_file_matches(self_signed_key):
    pins = Pins(by_provider={"salesforce": frozenset({self_signed_key.sha256_cert})})
    error = refused(self_signed_key, "FINGERPRINT_MISMATCH", OTHER_FINGERPRINT,
                    expected_fingerprints=[OTHER_FINGERPRINT], pins=pins)
    assert self_signed_key.sha256_cert in error.message


@pytest.mark.parametrize("which", ["sha256_cert", "sha256_spki"])
def test_pins_file_entry_for_the_provider_pins(self_signed_key, which):
    pins = Pins(by_provider={"salesforce": frozenset({getattr(self_signed_key, which)})})
    assert verify(self_signed_key, pins=pins, trust_unpinned=False).pinned_by == "pins-file"


@pytest.mark.parametrize(
    ("provider", "other_provider"),
    [("salesforce", "google-compute-engine"), ("google-compute-engine", "salesforce")],
)
def test_pins_for_another_provider_do_not_pin(self_signed_key, provider, other_provider):
    pins = Pins(by_provider={other_provider: frozenset({self_signed_key.sha256_cert})})
    refused(self_signed_key, "CERTIFICATE_UNPINNED", f"the pins file has no entry for {provider}",
            provider=provider, pins=pins, trust_unpinned=False)


def test_pins_that_do_not_match_say_so(self_signed_key):
    pins = Pins(by_provider={"salesforce": frozenset({OTHER_FINGERPRINT})})
    refused(self_signed_key, "CERTIFICATE_UNPINNED", "lists 1 other fingerprint(s) for salesforce",
            pins=pins, trust_unpinned=False)


def test_unpinned_certificate_is_refused_with_both_fingerprints_and_how_to_confirm(self_signed_key):
    error = refused(self_signed_key, "CERTIFICATE_UNPINNED", "certificate CN=wrapping key is not pinned",
                    trust_unpinned=False)
    assert openssl_style(self_signed_key.sha256_cert) in error.message
    assert self_signed_key.sha256_spki in error.message
    assert "openssl x509 -noout -fingerprint -sha256 -in FILE" in error.remedy
    assert "--expect-fingerprint or --pins" in error.remedy


def test_trust_unpinned_accepts_with_a_warning(self_signed_key):
    verdict = verify(self_signed_key, trust_unpinned=True)
    assert verdict.pinned_by is None
    assert len(verdict.warnings) == 1
    assert "--trust-unpinned" in verdict.warnings[0]
    assert openssl_style(self_signed_key.sha256_cert) in verdict.warnings[0]


def test_a_pin_does_not_excuse_an_expired_certificate():
    key = key_from(certs.expired_cert()[0])
    refused(key, "CERTIFICATE_EXPIRED", "expired", expected_fingerprints=[key.sha256_cert], trust_unpinned=False)


def test_openssl_style_is_colon_separated_uppercase():
    assert openssl_style("ab01ff") == "AB:01:FF"
    assert openssl_style("AB:01:ff") == "AB:01:FF"


# --- pins file ------------------------------------------------------------------------------------------


def write_pins(tmp_path, document) -> str:
    path = tmp_path / "pins.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


def test_pins_file_is_loaded_and_fingerprints_normalised(tmp_path):
    cert_fingerprint = "ab" * 32
    pins = load_pins(write_pins(tmp_path, {
        "google-compute-engine": [{"sha256": openssl_style(cert_fingerprint), "comment": "checked 2026-05-01"}],
        "salesforce": [{"sha256": "CD" * 32}, {"sha256": "ef" * 32}],
    }))
    assert pins.by_provider == {
        "google-compute-engine": frozenset({cert_fingerprint}),
        "salesforce": frozenset({"cd" * 32, "ef" * 32}),
    }


def test_empty_pins_file_object_pins_nothing(tmp_path):
    assert load_pins(write_pins(tmp_path, {})).by_provider == {}


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ("{not json", "is not valid JSON"),
        ('{"salesforce": [], "salesforce": []}', "key 'salesforce' appears twice"),
        ([], "must hold a JSON object keyed by provider"),
        ({"salesfroce": []}, "unknown provider 'salesfroce'"),
        ({"amazon-kms": []}, "unknown provider 'amazon-kms'"),
        ({"salesforce": {"sha256": "ab" * 32}}, "salesforce must be a list"),
        ({"salesforce": ["ab" * 32]}, "salesforce entry 1 must be an object with a \"sha256\" string"),
        ({"salesforce": [{"comment": "x"}]}, "must be an object with a \"sha256\" string"),
        ({"salesforce": [{"sha256": 5}]}, "must be an object with a \"sha256\" string"),
        ({"salesforce": [{"sha256": "ab" * 32}, {"sha256": "ab" * 31}]}, "salesforce entry 2: a fingerprint given (62 characters"),
        ({"salesforce": [{"sha256": "ab" * 32, "sha1": "x"}]}, "unknown key(s) sha1"),
        ({"salesforce": [{"sha256": "ab" * 32, "comment": 1}]}, "comment must be a string"),
        ("[" * 100000, "is not valid JSON"),
    ],
    ids=["syntax", "duplicate", "array", "typo", "unknown-provider", "not-list", "string-entry", "no-sha256", "int-sha256",
         "short-sha256", "unknown-key", "comment-type", "deep-nesting"],
)
def test_malformed_pins_file_is_a_usage_error(tmp_path, document, fragment):
    with pytest.raises(UsageError) as caught:
        load_pins(write_pins(tmp_path, document))
    assert caught.value.exit_code == 2
    assert fragment in str(caught.value)


def test_pins_file_that_is_not_utf8_is_a_usage_error(tmp_path):
    path = tmp_path / "pins.json"
    path.write_bytes(b'{"salesforce": "\xff"}')
    with pytest.raises(UsageError, match="is not valid JSON"):
        load_pins(path)


def test_missing_pins_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="cannot read pins file .*no-pins.json: (No such file or directory|The system cannot find the file specified|File not found)"):
        load_pins(tmp_path / "no-pins.json")


# --- CA bundle ------------------------------------------------------------------------------------------


def test_pem_ca_bundle_with_comments_between_certificates_loads(tmp_path, chain):
    path = tmp_path / "bundle.pem"
    path.write_bytes(b"# Test Root\n" + certs.pem(chain.root) + b"\n# Intermediate\n" + certs.pem(chain.intermediate))
    assert load_ca_bundle(path) == [chain.root, chain.intermediate]


def test_der_ca_bundle_loads_one_certificate(tmp_path, chain):
    assert load_ca_bundle(certs.write(tmp_path / "root.der", certs.der(chain.root))) == [chain.root]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "is empty"),
        (b"garbage", "malformed X.509 certificate"),
        (certs.pem(certs.ca_chain().root)[:200], "no END line"),
        (certs.private_pem(certs.rsa_key(2048)), "holds a private key"),
        (certs.spki_pem(certs.rsa_key(2048)), "holds PEM PUBLIC KEY; it may hold only CERTIFICATE blocks"),
    ],
    ids=["empty", "garbage", "truncated", "private-key", "public-key"],
)
def test_unusable_ca_bundle_is_refused(tmp_path, content, fragment):
    with pytest.raises(WrappingKeyError) as caught:
        load_ca_bundle(certs.write(tmp_path / "bundle.pem", content))
    assert caught.value.exit_code == 3
    assert caught.value.code == "CA_BUNDLE_UNREADABLE"
    assert fragment in str(caught.value)
    assert "--ca-bundle" in str(caught.value)


def test_missing_ca_bundle_is_refused_naming_it(tmp_path):
    with pytest.raises(WrappingKeyError, match="cannot read --ca-bundle .*missing.pem: (No such file or directory|The system cannot find the file specified|File not found)") as caught:
        load_ca_bundle(tmp_path / "missing.pem")
    assert caught.value.code == "CA_BUNDLE_UNREADABLE"


@pytest.mark.skipif(os.name == "nt", reason="Windows: the OpenSSL pipeline is written for a POSIX shell")
@pytest.mark.parametrize("form", ["pem", "der"])
def test_a_certificate_for_a_bare_key_provider_is_confirmed_by_a_command_printing_its_spki_hash(tmp_path, form):
    """The unpinned warning shows the SPKI SHA-256: its command must print that value, not the certificate's."""
    cert = certs.self_signed()[0]
    path = tmp_path / f"kek.{form}"
    path.write_bytes(certs.pem(cert) if form == "pem" else certs.der(cert))
    key = load_wrapping_key_file(path)
    [warning] = decide(key, get_provider("aws"), TrustOptions(), certs.NOW).warnings
    command = warning.split("`")[1].replace("FILE", shlex.quote(str(path)))
    printed = subprocess.run(command, shell=True, capture_output=True, text=True, check=True).stdout
    assert key.sha256_spki in warning and key.sha256_spki in printed, (command, printed)
