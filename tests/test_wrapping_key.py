from __future__ import annotations

import base64
import functools
import hashlib
import re
import time

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cssadmin.errors import UsageError, WrappingKeyError
from cssadmin.wrapping_key import (
    MAX_INPUT_BYTES,
    WrappingKey,
    check_expected_fingerprints,
    load_wrapping_key,
    load_wrapping_key_file,
    normalise_fingerprint,
)
import certs


def refused(data: bytes, code: str, fragment: str) -> WrappingKeyError:
    with pytest.raises(WrappingKeyError) as caught:
        load_wrapping_key(data, source="kek.pem")
    assert caught.value.exit_code == 3
    assert caught.value.code == code
    assert fragment in str(caught.value)
    assert str(caught.value).startswith("kek.pem"), "every refusal names the input"
    return caught.value


def pem_block(label: str, body: bytes = b"\x30\x03\x02\x01\x00") -> bytes:
    encoded = base64.encodebytes(body)
    return b"-----BEGIN " + label.encode() + b"-----\n" + encoded + b"-----END " + label.encode() + b"-----\n"


def openssl_fingerprint(hexstr: str) -> str:
    return ":".join(hexstr[i : i + 2] for i in range(0, 64, 2)).upper()


# --- accepted forms -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encode", "form"),
    [
        (certs.spki_der, "spki-der"),
        (certs.spki_pem, "spki-pem"),
        (certs.pkcs1_pem, "pkcs1-pem"),
        (certs.pkcs1_der, "pkcs1-der"),
    ],
)
def test_bare_public_key_forms_load_with_spki_fingerprint(encode, form):
    private_key = certs.rsa_key(2048)
    key = load_wrapping_key(encode(private_key), source="kek")
    assert isinstance(key, WrappingKey)
    assert key.source_form == form
    assert key.bits == 2048
    assert key.spki_der == certs.spki_der(private_key)
    assert key.sha256_spki == hashlib.sha256(certs.spki_der(private_key)).hexdigest()
    assert key.public_key.public_numbers() == private_key.public_key().public_numbers()
    assert key.certificates == ()
    assert key.sha256_cert is None


@pytest.mark.parametrize(("encode", "form"), [(certs.der, "cert-der"), (certs.pem, "cert-pem")])
def test_certificate_forms_load_with_both_fingerprints(encode, form):
    cert, private_key = certs.self_signed(4096)
    key = load_wrapping_key(encode(cert), source="kek")
    assert key.source_form == form
    assert key.bits == 4096
    assert key.certificates == (cert,)
    assert key.sha256_cert == hashlib.sha256(certs.der(cert)).hexdigest()
    assert key.sha256_spki == hashlib.sha256(certs.spki_der(private_key)).hexdigest()


def test_pem_with_several_certificates_keeps_leaf_first_and_the_leafs_key():
    chain = certs.ca_chain()
    key = load_wrapping_key(certs.pem(chain.leaf, chain.intermediate, chain.root), source="kek")
    assert key.certificates == (chain.leaf, chain.intermediate, chain.root)
    assert key.sha256_cert == hashlib.sha256(certs.der(chain.leaf)).hexdigest()
    assert key.spki_der == certs.spki_der(chain.leaf_key)


def test_pem_with_explanatory_text_and_crlf_line_ends_is_accepted():
    cert, _ = certs.self_signed()
    text = b"Certificate:\n    Subject: CN=wrapping key\n" + certs.pem(cert).replace(b"\n", b"\r\n") + b"trailer\n"
    assert load_wrapping_key(text, source="kek").certificates == (cert,)


def test_rsa_2048_is_the_smallest_accepted_size():
    assert load_wrapping_key(certs.spki_der(certs.rsa_key(2048)), source="kek").bits == 2048
    refused(certs.spki_der(certs.rsa_key(2047)), "WRAPPING_KEY_TOO_SMALL", "RSA-2047 is too small")


def test_file_loader_reads_the_file(tmp_path):
    cert, _ = certs.self_signed()
    key = load_wrapping_key_file(certs.write_pem(tmp_path / "google-cloud-csek-ingress.pem", cert))
    assert key.certificates == (cert,)


# --- refused inputs -------------------------------------------------------------------------------------


def test_empty_input_is_refused():
    refused(b"", "WRAPPING_KEY_UNREADABLE", "is empty")


def test_oversized_input_is_refused_before_parsing():
    cert_pem = certs.pem(certs.self_signed()[0])
    padded = cert_pem + b"\n" * (MAX_INPUT_BYTES + 1 - len(cert_pem))
    refused(padded, "WRAPPING_KEY_UNREADABLE", f"larger than {MAX_INPUT_BYTES} bytes")
    assert load_wrapping_key(padded[:MAX_INPUT_BYTES], source="kek").source_form == "cert-pem"


def test_oversized_file_is_refused(tmp_path):
    path = tmp_path / "huge.pem"
    path.write_bytes(b"A" * (MAX_INPUT_BYTES + 4096))
    with pytest.raises(WrappingKeyError, match="larger than") as caught:
        load_wrapping_key_file(path)
    assert caught.value.exit_code == 3


@pytest.mark.parametrize("garbage", [b"hello world\n", b"\x00" * 64, b"\x30\x82\xff\xff", bytes(range(256))])
def test_garbage_is_refused(garbage):
    refused(garbage, "WRAPPING_KEY_UNREADABLE", "neither PEM nor a DER public key or certificate")


@pytest.mark.parametrize("encode", [certs.der, lambda cert: certs.spki_der(certs.rsa_key(2048))])
def test_truncated_der_is_refused(encode):
    data = encode(certs.self_signed()[0])
    refused(data[: len(data) // 2], "WRAPPING_KEY_UNREADABLE", "garbage or truncated")


def test_der_with_trailing_bytes_is_refused():
    refused(certs.der(certs.self_signed()[0]) + b"\x00", "WRAPPING_KEY_UNREADABLE", "neither PEM nor")


def test_pem_without_end_line_is_refused():
    data = certs.pem(certs.self_signed()[0])
    refused(data[: len(data) // 2], "WRAPPING_KEY_UNREADABLE", "no END line (truncated file?)")


def test_pem_block_opened_inside_another_is_refused():
    cert_pem = certs.pem(certs.self_signed()[0])
    refused(b"-----BEGIN CERTIFICATE-----\n" + cert_pem, "WRAPPING_KEY_UNREADABLE", "no END line")


def test_a_megabyte_of_begin_lines_is_refused_in_linear_time():
    # A regex spanning BEGIN..END over the whole input took minutes on this; a linear scan takes milliseconds.
    data = (b"-----BEGIN A-----" * (MAX_INPUT_BYTES // 17))[:MAX_INPUT_BYTES]
    started = time.monotonic()
    refused(data, "WRAPPING_KEY_UNREADABLE", "no END line")
    assert time.monotonic() - started < 5


def test_pem_with_mismatched_end_label_is_refused():
    data = certs.pem(certs.self_signed()[0]).replace(b"END CERTIFICATE", b"END PUBLIC KEY")
    refused(data, "WRAPPING_KEY_UNREADABLE", "BEGIN CERTIFICATE ends with END PUBLIC KEY")


def test_pem_with_bad_base64_is_refused():
    data = certs.pem(certs.self_signed()[0]).replace(b"\n", b"\n*", 3)
    refused(data, "WRAPPING_KEY_UNREADABLE", "not valid base64")


def test_pem_certificate_block_with_truncated_content_is_refused():
    refused(pem_block("CERTIFICATE", certs.der(certs.self_signed()[0])[:300]), "WRAPPING_KEY_UNREADABLE",
            "malformed X.509 certificate")


def test_pem_public_key_block_with_garbage_content_is_refused():
    refused(pem_block("PUBLIC KEY"), "WRAPPING_KEY_UNREADABLE", "malformed public key")


def test_empty_pem_block_is_refused():
    refused(b"-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n", "WRAPPING_KEY_UNREADABLE", "block is empty")


@pytest.mark.parametrize(
    "private_key_pem",
    [
        certs.private_pem(certs.rsa_key(2048)),
        certs.private_pem(certs.rsa_key(2048), serialization.PrivateFormat.TraditionalOpenSSL),
        certs.private_pem(certs.ec_key(), serialization.PrivateFormat.TraditionalOpenSSL),
        certs.private_pem(certs.ed25519_key(), serialization.PrivateFormat.OpenSSH),
        certs.rsa_key(2048).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        ),
    ],
    ids=["pkcs8", "rsa-traditional", "ec-traditional", "openssh", "encrypted-pkcs8"],
)
def test_pem_private_key_is_refused_as_private(private_key_pem):
    label = private_key_pem.split(b"-----")[1].decode().removeprefix("BEGIN ")
    refused(private_key_pem, "WRAPPING_KEY_IS_PRIVATE", f"holds a private key (PEM {label}); a private key must never")


def test_private_key_next_to_a_certificate_is_refused_as_private():
    cert, private_key = certs.self_signed()
    refused(certs.pem(cert) + certs.private_pem(private_key), "WRAPPING_KEY_IS_PRIVATE", "must never be given")


@pytest.mark.parametrize(
    "private_key_der",
    [
        certs.private_der(certs.rsa_key(2048)),
        certs.rsa_key(2048).private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        ),
    ],
    ids=["pkcs8", "encrypted-pkcs8"],
)
def test_der_private_key_is_refused_as_private(private_key_der):
    refused(private_key_der, "WRAPPING_KEY_IS_PRIVATE", "holds a DER private key")


@pytest.mark.parametrize("label", ["CERTIFICATE REQUEST", "X509 CRL", "PKCS7"])
def test_pem_with_another_label_is_refused_naming_it(label):
    refused(pem_block(label), "WRAPPING_KEY_UNREADABLE", f"holds PEM blocks {label};")


def test_public_key_mixed_with_certificate_is_refused():
    cert, private_key = certs.self_signed()
    refused(certs.pem(cert) + certs.spki_pem(private_key), "WRAPPING_KEY_UNREADABLE",
            "holds PEM blocks CERTIFICATE, PUBLIC KEY")


def test_two_public_keys_are_refused():
    data = certs.spki_pem(certs.rsa_key(2048)) * 2
    refused(data, "WRAPPING_KEY_UNREADABLE", "holds PEM blocks PUBLIC KEY, PUBLIC KEY")


@pytest.mark.parametrize(
    ("private_key", "found"),
    [
        (certs.ec_key(), "is an EC key (secp256r1), not RSA"),
        (certs.dsa_key(), "is a DSA key, not RSA"),
        (certs.ed25519_key(), "is an Ed25519 key, not RSA"),
    ],
    ids=["ec", "dsa", "ed25519"],
)
@pytest.mark.parametrize("encode", [certs.spki_der, certs.spki_pem], ids=["der", "pem"])
def test_non_rsa_public_keys_are_refused_naming_the_type(private_key, found, encode):
    refused(encode(private_key), "WRAPPING_KEY_NOT_RSA", f"the wrapping key {found}")


@pytest.mark.parametrize("encode", [certs.der, certs.pem], ids=["der", "pem"])
def test_ec_certificate_is_refused_naming_the_type(encode):
    refused(encode(certs.ec_cert()[0]), "WRAPPING_KEY_NOT_RSA", "the certificate's key is an EC key (secp256r1)")


@pytest.mark.parametrize(
    "data",
    [
        certs.spki_der(certs.rsa_key(1024)),
        certs.pkcs1_pem(certs.rsa_key(1024)),
        certs.der(certs.make_cert("small", certs.rsa_key(1024))),
    ],
    ids=["spki-der", "pkcs1-pem", "cert-der"],
)
def test_rsa_1024_is_refused_as_too_small(data):
    refused(data, "WRAPPING_KEY_TOO_SMALL", "RSA-1024 is too small; cloud wrapping keys are at least 2048 bits")


def test_missing_file_is_refused_naming_the_path(tmp_path):
    path = tmp_path / "no-such-kek.pem"
    with pytest.raises(WrappingKeyError) as caught:
        load_wrapping_key_file(path)
    assert caught.value.exit_code == 3
    assert caught.value.code == "WRAPPING_KEY_UNREADABLE"
    assert re.fullmatch(re.escape(f"cannot read wrapping key file {path}: ")
                        + "(No such file or directory|The system cannot find the file specified|File not found)",
                        str(caught.value)), str(caught.value)


def test_directory_is_refused_naming_the_path(tmp_path):
    with pytest.raises(WrappingKeyError, match=re.escape(f"cannot read wrapping key file {tmp_path}")):
        load_wrapping_key_file(tmp_path)


# --- fingerprints ---------------------------------------------------------------------------------------


def test_normalise_fingerprint_ignores_colons_whitespace_and_case():
    digest = hashlib.sha256(b"x").hexdigest()
    assert normalise_fingerprint(openssl_fingerprint(digest)) == digest
    assert normalise_fingerprint(f"  {digest[:32].upper()}\n{digest[32:]}\t") == digest


@pytest.mark.parametrize("text", ["", "abc", "g" * 64, "a" * 63, "a" * 65, "sha256:" + "a" * 64, "ａ" * 64])
def test_normalise_fingerprint_refuses_anything_but_64_hex_digits(text):
    with pytest.raises(UsageError, match="is not a SHA-256 fingerprint") as caught:
        normalise_fingerprint(text)
    assert caught.value.exit_code == 2


@pytest.fixture(scope="module")
def cert_key() -> WrappingKey:
    return load_wrapping_key(certs.pem(certs.self_signed()[0]), source="kek")


def test_no_expected_fingerprint_checks_nothing(cert_key):
    check_expected_fingerprints(cert_key, [])


def test_expected_fingerprint_matches_spki_or_certificate_in_any_spelling(cert_key):
    check_expected_fingerprints(cert_key, [cert_key.sha256_spki])
    check_expected_fingerprints(cert_key, [cert_key.sha256_spki.upper()])
    check_expected_fingerprints(cert_key, [openssl_fingerprint(cert_key.sha256_cert)])
    check_expected_fingerprints(cert_key, ["00" * 32, cert_key.sha256_cert])


def test_bare_key_matches_its_spki_fingerprint():
    key = load_wrapping_key(certs.spki_pem(certs.rsa_key(2048)), source="kek")
    check_expected_fingerprints(key, [openssl_fingerprint(key.sha256_spki)])


def test_fingerprint_mismatch_names_the_actual_fingerprints(cert_key):
    with pytest.raises(WrappingKeyError) as caught:
        check_expected_fingerprints(cert_key, ["00" * 32])
    assert caught.value.exit_code == 3
    assert caught.value.code == "FINGERPRINT_MISMATCH"
    assert "00" * 32 in str(caught.value)
    assert cert_key.sha256_spki in str(caught.value)
    assert cert_key.sha256_cert in str(caught.value)


def test_fingerprint_of_another_key_does_not_match():
    key = load_wrapping_key(certs.spki_der(certs.rsa_key(2048)), source="kek")
    other = hashlib.sha256(certs.spki_der(certs.rsa_key(2048, index=1))).hexdigest()
    with pytest.raises(WrappingKeyError, match="does not match --expect-fingerprint"):
        check_expected_fingerprints(key, [other])


def test_malformed_expected_fingerprint_is_a_usage_error(cert_key):
    with pytest.raises(UsageError):
        check_expected_fingerprints(cert_key, [cert_key.sha256_spki[:-1]])


# --- no input makes anything but WrappingKeyError escape -------------------------------------------------


@functools.cache
def _seed_inputs() -> tuple[bytes, ...]:
    """Valid DER of each form to mutate; cached, as hypothesis needs the same seeds on every draw."""
    chain = certs.ca_chain()
    return (
        certs.der(chain.leaf),
        certs.der(chain.intermediate),
        certs.spki_der(chain.leaf_key),
        certs.pkcs1_der(chain.leaf_key),
        certs.spki_der(certs.ec_key()),
        certs.private_der(certs.ec_key()),
    )


@st.composite
def mutated_inputs(draw) -> bytes:
    """A valid DER input with a few bytes flipped, inserted or cut, sometimes wrapped in PEM."""
    data = bytearray(draw(st.sampled_from(_seed_inputs())))
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        position = draw(st.integers(0, len(data) - 1))
        operation = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        if operation == "flip":
            data[position] ^= draw(st.integers(1, 255))
        elif operation == "truncate":
            del data[position + 1 :]
        elif operation == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[position : position + draw(st.integers(1, 16))]
    label = draw(st.sampled_from([None, "CERTIFICATE", "PUBLIC KEY", "RSA PUBLIC KEY"]))
    return bytes(data) if label is None else pem_block(label, bytes(data))


@settings(max_examples=300, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=512), mutated_inputs()))
def test_any_input_bytes_raise_only_wrapping_key_error(data):
    try:
        key = load_wrapping_key(data, source="fuzz")
    except WrappingKeyError as exc:
        assert exc.exit_code == 3
        assert str(exc).startswith("fuzz")
        assert "\n" not in exc.message
    else:
        assert key.bits >= 2048
