"""Property-based fuzzing of the parsers that read what a user or a hostile file supplies.

- `parse_kid` (Azure KEK key IDs): arbitrary text and mutated valid kids raise only UsageError; an
  accepted kid is exactly the text given, on one of the allowed hosts, in the one allowed shape.
- `load_wrapping_key`: test_wrapping_key.py already fuzzes arbitrary bytes and DER-level mutations
  (optionally wrapped in one PEM block). What it lacks is mutation of the PEM *text* itself - armour
  lines, labels, headers, line ends, several blocks spliced together - which is what this file adds.
- `load_pins`: arbitrary JSON-ish text in a pins file raises only UsageError; what it accepts is
  well-formed.

Bounded for CI: 200 examples each, derandomized (the same examples on every run), no deadline.
"""
from __future__ import annotations

import functools
import hashlib
import json
import re
import string
import uuid

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import certs
from cssadmin.errors import CssadminError, UsageError, WrappingKeyError
from cssadmin.providers.azure_kid import AzureKid, parse_kid
from cssadmin.pins import Pins, load_pins
from cssadmin.providers import PROVIDER_NAMES
from cssadmin.wrapping_key import load_wrapping_key

BOUNDED = settings(max_examples=200, derandomize=True, deadline=None, database=None,
                   suppress_health_check=[HealthCheck.too_slow])

# The hosts Azure Key Vault and Managed HSM use, written out here independently of azure_kid.py.
ALLOWED_SUFFIXES = {
    "vault.azure.net": "vault", "vault.azure.cn": "vault", "vault.usgovcloudapi.net": "vault",
    "vault.microsoftazure.de": "vault",
    "managedhsm.azure.net": "managedhsm", "managedhsm.azure.cn": "managedhsm",
    "managedhsm.usgovcloudapi.net": "managedhsm",
}
_ACCEPTED_PATH = re.compile(r"/keys/([0-9A-Za-z-]{1,127})/[0-9a-f]{32}")


# --- Azure kids ---------------------------------------------------------------------------------------------

_NAME_CHARS = string.ascii_lowercase + string.digits


@st.composite
def valid_kids(draw) -> str:
    first = draw(st.sampled_from(_NAME_CHARS))
    middle = draw(st.text(alphabet=_NAME_CHARS + "-", min_size=1, max_size=22))
    last = draw(st.sampled_from(_NAME_CHARS))
    suffix = draw(st.sampled_from(sorted(ALLOWED_SUFFIXES)))
    key = draw(st.text(alphabet=string.ascii_letters + string.digits + "-", min_size=1, max_size=127))
    version = draw(st.text(alphabet="0123456789abcdef", min_size=32, max_size=32))
    return f"https://{first}{middle}{last}.{suffix}/keys/{key}/{version}"


# Pieces that change a URL's meaning, or that a lax parser might let through.
_URL_PIECES = ["/", ".", "..", "../", "%2e%2e", "%2f", ":", ":443", "?", "?api-version=7.4", "#", "@", "\\",
               "http://", "https://", "evil.example", ".evil.example", "vault.azure.net", "A", "F", "G", "é",
               " ", "\t", "\n", "\r\n", "\x00", "\u2028", "keys", "secrets", "-", "_", "~"]


@st.composite
def mutated_kids(draw) -> str:
    text = draw(valid_kids())
    for _ in range(draw(st.integers(1, 3))):
        position = draw(st.integers(0, len(text)))
        operation = draw(st.sampled_from(["insert", "delete", "replace", "upper", "truncate"]))
        piece = draw(st.one_of(st.sampled_from(_URL_PIECES), st.text(max_size=3)))
        if operation == "insert":
            text = text[:position] + piece + text[position:]
        elif operation == "delete":
            text = text[:position] + text[position + draw(st.integers(1, 8)):]
        elif operation == "replace":
            text = text[:position] + piece + text[position + len(piece):]
        elif operation == "upper":
            text = text[:position] + text[position:position + 8].upper() + text[position + 8:]
        else:
            text = text[:position]
    return text


def check_kid_verdict(text: str) -> AzureKid | None:
    try:
        parsed = parse_kid(text)
    except UsageError as exc:
        assert exc.exit_code == 2 and exc.code == "BAD_AZURE_KID"
        return None
    except CssadminError as exc:  # pragma: no cover - reported with its type by the assertion
        raise AssertionError(f"parse_kid raised {type(exc).__name__}, not UsageError: {exc}") from exc
    # Accepted: the kid is the input itself, and it is exactly https://<name>.<allowed suffix>/keys/<key>/<ver>.
    assert isinstance(parsed, AzureKid)
    assert parsed.kid == text
    assert text.startswith(f"https://{parsed.name}.")
    host, _, path = text[len("https://"):].partition("/")
    path = "/" + path
    suffix = host[len(parsed.name) + 1:]
    assert suffix in ALLOWED_SUFFIXES, f"accepted a kid on host {host!r}"
    assert parsed.service == ALLOWED_SUFFIXES[suffix]
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]{1,22}[a-z0-9]", parsed.name)
    match = _ACCEPTED_PATH.fullmatch(path)
    assert match and match[1] == parsed.key, f"accepted a kid with path {path!r}"
    assert f"https://{parsed.name}.{suffix}/keys/{parsed.key}/{path[-32:]}" == text
    return parsed


@BOUNDED
@given(valid_kids())
def test_every_well_formed_kid_is_accepted(text):
    assert check_kid_verdict(text) is not None


@BOUNDED
@given(st.one_of(st.text(max_size=200), mutated_kids()))
@example("https://myvault.vault.azure.net.evil.example/keys/k/0123456789abcdef0123456789abcdef")
@example("https://myvault.vault.azure.net@evil.example/keys/k/0123456789abcdef0123456789abcdef")
@example("https://myvault.vault.azure.net/keys/k/0123456789abcdef0123456789abcdef\n")
def test_any_text_is_a_valid_kid_or_a_usage_error(text):
    check_kid_verdict(text)


# --- wrapping keys: mutations of the PEM text ----------------------------------------------------------------


@functools.cache
def _pem_seeds() -> tuple[bytes, ...]:
    """Valid PEM of each form (and some refused ones), to mutate as text. Cached: the same seeds every draw."""
    chain = certs.ca_chain()
    explained = (b"Subject: wrapping key leaf\r\nIssuer: Test Intermediate CA\r\n"
                 + certs.pem(chain.leaf).replace(b"\n", b"\r\n"))
    return (
        certs.pem(chain.leaf, chain.intermediate),
        certs.spki_pem(chain.leaf_key),
        certs.pkcs1_pem(chain.leaf_key),
        explained,
        certs.pem(certs.ec_cert()[0]),
        certs.spki_pem(certs.ec_key()),
        certs.private_pem(certs.ec_key(), serialization.PrivateFormat.TraditionalOpenSSL),
    )


_PEM_PIECES = [
    b"-----BEGIN CERTIFICATE-----\n", b"-----END CERTIFICATE-----\n", b"-----BEGIN PUBLIC KEY-----\n",
    b"-----END PUBLIC KEY-----\n", b"-----BEGIN RSA PUBLIC KEY-----\n", b"-----END RSA PUBLIC KEY-----",
    b"-----BEGIN PRIVATE KEY-----\n", b"-----BEGIN ", b"-----END ", b"-----", b"---", b"\n", b"\r\n", b"\r",
    b"=", b"==", b"Proc-Type: 4,ENCRYPTED\n", b"DEK-Info: AES-128-CBC,00\n", b"Comment: x\n", b"\x00", b"\xff",
    b" ", b"\t", b"MII", b"MIIBIjANBgkqhkiG9w0BAQEFAAOC", b"A" * 64 + b"\n", b"\xc3\xa9", b"CERTIFICATE",
    b"PUBLIC KEY", b"RSA PUBLIC KEY", b"PRIVATE KEY",
]


@st.composite
def mutated_pem_text(draw) -> bytes:
    """A valid PEM file with its text mutated: armour, labels, headers, line ends, base64, splices."""
    seeds = _pem_seeds()
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(data)))
        operation = draw(st.sampled_from(["flip", "insert", "delete", "duplicate", "splice", "relabel", "rewrap"]))
        if operation == "flip" and position < len(data):
            data[position] ^= draw(st.integers(1, 255))
        elif operation == "insert":
            data[position:position] = draw(st.one_of(st.sampled_from(_PEM_PIECES), st.binary(min_size=1, max_size=8)))
        elif operation == "delete":
            del data[position:position + draw(st.integers(1, 80))]
        elif operation == "duplicate":
            start = draw(st.integers(0, len(data)))
            piece = data[start:start + draw(st.integers(1, 200))]
            data[position:position] = piece
        elif operation == "splice":
            other = draw(st.sampled_from(seeds))
            cut = draw(st.integers(0, len(other)))
            data = data[:position] + bytearray(other[cut:] if draw(st.booleans()) else other[:cut])
        elif operation == "relabel":
            old = draw(st.sampled_from([b"CERTIFICATE", b"PUBLIC KEY", b"RSA PUBLIC KEY", b"EC PRIVATE KEY"]))
            new = draw(st.sampled_from([b"CERTIFICATE", b"PUBLIC KEY", b"RSA PUBLIC KEY", b"PRIVATE KEY", b"",
                                        b"X509 CRL", b"CERTIFICATE REQUEST", b"TRUSTED CERTIFICATE"]))
            data = bytearray(bytes(data).replace(old, new, draw(st.integers(1, 2))))
        elif operation == "rewrap":  # the same base64 with other line lengths and line ends
            width = draw(st.sampled_from([1, 4, 63, 76, 1000]))
            ending = draw(st.sampled_from([b"\n", b"\r\n", b"\r", b" "]))
            data = bytearray(re.sub(rb"(?<=\n)([A-Za-z0-9+/=\r\n]+)(?=-----END)",
                                    lambda m: ending.join(_chunks(b"".join(m[1].split()), width)) + ending,
                                    bytes(data)))
    return bytes(data)


def _chunks(data: bytes, width: int) -> list[bytes]:
    return [data[i:i + width] for i in range(0, len(data), width)] or [b""]


def check_wrapping_key_verdict(data: bytes) -> None:
    try:
        key = load_wrapping_key(data, source="fuzz.pem")
    except CssadminError as exc:
        assert isinstance(exc, WrappingKeyError), f"{type(exc).__name__}: {exc}"
        assert exc.exit_code == 3
        assert str(exc).startswith("fuzz.pem")
        assert "\n" not in exc.message and "\r" not in exc.message
        return
    assert isinstance(key.public_key, rsa.RSAPublicKey) and key.bits >= 2048
    assert key.sha256_spki == hashlib.sha256(key.spki_der).hexdigest()
    assert key.spki_der == key.public_key.public_bytes(serialization.Encoding.DER,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo)
    assert bool(key.certificates) == key.source_form.startswith("cert")
    if key.certificates:
        assert key.sha256_cert == hashlib.sha256(
            key.certificates[0].public_bytes(serialization.Encoding.DER)).hexdigest()
        assert key.certificates[0].public_key() == key.public_key


def test_the_unmutated_rsa_seeds_load():
    """The seeds the mutations start from are accepted, so the fuzzing starts from valid input."""
    for seed in _pem_seeds()[:4]:
        assert load_wrapping_key(seed, source="seed").bits == 2048


@BOUNDED
@given(mutated_pem_text())
def test_mutated_pem_text_raises_only_wrapping_key_error(data):
    check_wrapping_key_verdict(data)


@BOUNDED
@given(st.lists(st.sampled_from(_PEM_PIECES + [b"QUJD\n", b"MAA=\n"]), max_size=30).map(b"".join))
def test_pem_armour_soup_raises_only_wrapping_key_error(data):
    check_wrapping_key_verdict(data)


# --- pins files ---------------------------------------------------------------------------------------------

_FINGERPRINT = hashlib.sha256(b"pin").hexdigest()

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20),
                         st.sampled_from([_FINGERPRINT, _FINGERPRINT.upper(), ":".join(_FINGERPRINT[i:i + 2]
                                          for i in range(0, 64, 2)), _FINGERPRINT[:-1]]))
json_keys = st.one_of(st.sampled_from(["sha256", "comment", *PROVIDER_NAMES, "amazon", ""]), st.text(max_size=10))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(json_keys, inner, max_size=4)), max_leaves=20)


@st.composite
def pins_documents(draw) -> bytes:
    """Pins files: plausible ones with wrong pieces, arbitrary JSON, broken JSON, odd encodings."""
    entry = st.one_of(
        st.fixed_dictionaries({"sha256": json_scalars}, optional={"comment": json_scalars, "other": json_scalars}),
        json_values)
    plausible = st.dictionaries(json_keys, st.one_of(st.lists(entry, max_size=3), json_values), max_size=3)
    text = json.dumps(draw(st.one_of(plausible, json_values)))
    kind = draw(st.sampled_from(["as-is", "mutated", "duplicate-key", "deep", "huge-int", "utf16", "bytes"]))
    if kind == "mutated" and text:
        position = draw(st.integers(0, len(text)))
        text = text[:position] + draw(st.sampled_from(['"', "{", "}", "[", "]", ",", ":", "\\", "\\u", "NaN",
                                                       "\x00", "é", ""])) + text[position + draw(st.integers(0, 3)):]
    elif kind == "duplicate-key":
        text = '{"salesforce": [], "salesforce": [{"sha256": "%s"}]}' % _FINGERPRINT
    elif kind == "deep":
        depth = draw(st.integers(900, 100_000))
        return (b"[" * depth + b"]" * depth) if draw(st.booleans()) else b'{"salesforce": ' + b"[" * depth
    elif kind == "huge-int":
        return b'{"salesforce": [{"sha256": ' + b"9" * draw(st.integers(4000, 20000)) + b"}]}"
    elif kind == "utf16":
        return text.encode("utf-16")
    elif kind == "bytes":
        return draw(st.binary(max_size=200))
    return text.encode("utf-8")


@pytest.fixture(scope="module")
def pins_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("pins")


@BOUNDED
@given(document=pins_documents())
@example(document=b'{"salesforce": [{"sha256": "%s", "comment": "ok"}]}' % _FINGERPRINT.encode())
def test_any_pins_file_loads_cleanly_or_is_a_usage_error(pins_dir, document):
    path = pins_dir / f"pins-{uuid.uuid4().hex}.json"
    path.write_bytes(document)
    try:
        pins = load_pins(path)
    except CssadminError as exc:
        assert isinstance(exc, UsageError), f"{type(exc).__name__}: {exc}"
        assert exc.exit_code == 2
        assert str(path) in exc.message
        return
    finally:
        path.unlink()
    assert isinstance(pins, Pins)
    assert set(pins.by_provider) <= set(PROVIDER_NAMES)
    for fingerprints in pins.by_provider.values():
        assert all(re.fullmatch(r"[0-9a-f]{64}", fingerprint) for fingerprint in fingerprints)


def test_a_good_pins_file_loads(tmp_path):
    """The positive control for the property above: a well-formed file gives its pins."""
    path = tmp_path / "pins.json"
    path.write_text(json.dumps({"salesforce": [{"sha256": _FINGERPRINT.upper(), "comment": "confirmed"}]}))
    assert load_pins(path).by_provider == {"salesforce": frozenset({_FINGERPRINT})}
