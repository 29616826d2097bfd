"""Google Compute Engine and Salesforce: certificate trust through the CLI, and exports on real tokens."""
from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

import certs

NOW = datetime.now(timezone.utc)
CURRENT = {"not_before": NOW - timedelta(days=1), "not_after": NOW + timedelta(days=90)}


def oaep(digest):
    return padding.OAEP(mgf=padding.MGF1(digest()), algorithm=digest(), label=None)


def cert_file(tmp_path, bits, *, name="cert.pem", index=0, **overrides):
    key = certs.rsa_key(bits, index)
    cert = certs.make_cert("cloud wrapping key", key, **{**CURRENT, **overrides})
    return certs.write_pem(tmp_path / name, cert), cert, key


def cert_sha256(cert) -> str:
    return hashlib.sha256(certs.der(cert)).hexdigest()


def out_dir(tmp_path):
    directory = tmp_path / "out"
    directory.mkdir(exist_ok=True)
    return directory


# --- trust decisions, reached before any token is needed ---------------------------------------

@pytest.mark.parametrize("spoil, fragment", [
    ({"not_before": datetime(2024, 1, 2, tzinfo=timezone.utc), "not_after": datetime(2025, 1, 2, tzinfo=timezone.utc)},
     "expired on 2025-01-02"),
    ({"not_before": NOW + timedelta(days=30), "not_after": NOW + timedelta(days=400)}, "not yet valid"),
    ({"usage": frozenset({"digital_signature"})}, "keyEncipherment"),
])
def test_invalid_certificates_are_refused(cli, tmp_path, spoil, fragment):
    path, cert, _ = cert_file(tmp_path, 2048, **spoil)
    code, report = cli.json(["google-compute-engine", "k", str(path), "RSAES_OAEP_SHA_1", "--trust-unpinned",
                             "--out-dir", str(out_dir(tmp_path))])
    assert code == 3, report
    assert fragment in report["error"]["message"]
    assert list(out_dir(tmp_path).iterdir()) == []


def test_ec_certificate_is_refused(cli, tmp_path):
    key = certs.ec_key()
    path = certs.write_pem(tmp_path / "ec.pem", certs.make_cert("ec", key, **CURRENT))
    code, report = cli.json(["google-compute-engine", "k", str(path), "RSAES_OAEP_SHA_1", "--trust-unpinned"])
    assert code == 3 and "RSA" in report["error"]["message"]


def test_bad_self_signature_is_refused(cli, tmp_path):
    _, cert, _ = cert_file(tmp_path, 2048)
    path = certs.write_pem(tmp_path / "bad.pem", certs.corrupted_signature(cert))
    code, report = cli.json(["google-compute-engine", "k", str(path), "RSAES_OAEP_SHA_1",
                             "--expect-fingerprint", cert_sha256(cert)])
    assert code == 3 and "signature" in report["error"]["message"]


def test_unpinned_certificate_shows_its_fingerprints_and_how_to_confirm(cli, tmp_path):
    path, cert, _ = cert_file(tmp_path, 2048)
    code, report = cli.json(["google-compute-engine", "k", str(path), "RSAES_OAEP_SHA_1",
                             "--out-dir", str(out_dir(tmp_path))])
    assert code == 3 and report["error"]["code"] == "CERTIFICATE_UNPINNED"
    message = f"{report['error']['message']} ({report['error']['remedy']})"
    assert certs_openssl_style(cert_sha256(cert)) in message
    assert "openssl x509 -noout -fingerprint -sha256 -in" in message


def certs_openssl_style(hexstr):
    return ":".join(hexstr.upper()[i:i + 2] for i in range(0, 64, 2))


def test_wrong_pin_is_refused(cli, tmp_path):
    path, _, _ = cert_file(tmp_path, 2048)
    code, report = cli.json(["google-compute-engine", "k", str(path), "RSAES_OAEP_SHA_1",
                             "--expect-fingerprint", "ab" * 32])
    assert code == 3 and report["error"]["code"] == "FINGERPRINT_MISMATCH"


def ca_signed(tmp_path):
    chain = certs.ca_chain(leaf_bits=2048, now=NOW)
    return (chain, certs.write_pem(tmp_path / "leaf.pem", chain.leaf, chain.intermediate),
            certs.write_pem(tmp_path / "ca.pem", chain.root))


def test_ca_signed_chain_without_its_anchor_is_refused(cli, tmp_path):
    chain, leaf_file, _ = ca_signed(tmp_path)
    code, report = cli.json(["google-compute-engine", "k", str(leaf_file), "RSAES_OAEP_SHA_1",
                             "--expect-fingerprint", cert_sha256(chain.leaf), "--out-dir", str(out_dir(tmp_path))])
    assert code == 3 and "chain breaks" in report["error"]["message"]


@pytest.mark.token
def test_ca_signed_chain_with_its_anchor_exports(cli, softhsm, pin_file, tmp_path, key_name):
    chain, leaf_file, bundle = ca_signed(tmp_path)
    code, report = cli.json(["google-compute-engine", key_name, str(leaf_file), "RSAES_OAEP_SHA_1",
                             "--expect-fingerprint", cert_sha256(chain.leaf), "--ca-bundle", str(bundle),
                             "--out-dir", str(out_dir(tmp_path)), *softhsm.cli_args(pin_file)], token=softhsm)
    assert code == 0, report
    assert report["wrapping_key"]["certificate"]["chain"][-1] == "CN=Test Root CA"
    secret = chain.leaf_key.decrypt(base64.b64decode((out_dir(tmp_path) / f"{key_name}-wrapped").read_bytes()),
                                    oaep(hashes.SHA1))
    assert hashlib.sha256(secret).digest() == softhsm.digest(key_name)


def test_salesforce_needs_rsa_4096(cli, tmp_path):
    path, cert, _ = cert_file(tmp_path, 2048)
    code, report = cli.json(["salesforce", "k", str(path), "RSAES_OAEP_SHA_1", "--expect-fingerprint",
                             cert_sha256(cert)])
    assert code == 3 and "RSA-4096" in report["error"]["message"]


def test_gce_allows_only_oaep_sha1(cli, tmp_path):
    path, _, _ = cert_file(tmp_path, 2048)
    code, report = cli.json(["google-compute-engine", "k", str(path), "RSAES_OAEP_SHA_256"])
    assert code == 4 and "RSAES_OAEP_SHA_1" in report["error"]["message"]
    code, report = cli.json(["google-compute-engine", "k", str(path), "OAEP_PLEASE"])
    assert code == 2


def test_csek_uri_must_be_https(cli, tmp_path):
    path, _, _ = cert_file(tmp_path, 2048)
    code, report = cli.json(["google-compute-engine", "k", str(path), "RSAES_OAEP_SHA_1",
                             "--csek-uri", "http://www.googleapis.com/compute/v1/projects/p/zones/z/disks/d"])
    assert code == 2 and "https://" in report["error"]["message"]


# --- exports on tokens ------------------------------------------------------------------------

@pytest.mark.token
@pytest.mark.parametrize("pin_form", ["certificate", "spki"])
def test_gce_export_unwraps_to_the_token_key(cli, softhsm, pin_file, tmp_path, key_name, pin_form):
    path, cert, key = cert_file(tmp_path, 2048)
    fingerprint = cert_sha256(cert) if pin_form == "certificate" else hashlib.sha256(certs.spki_der(key)).hexdigest()
    uri = "https://www.googleapis.com/compute/v1/projects/p/zones/europe-west1-b/disks/d1"
    code, report = cli.json(["google-compute-engine", key_name, str(path), "RSAES_OAEP_SHA_1",
                             "--expect-fingerprint", certs_openssl_style(fingerprint).lower(),
                             "--csek-uri", uri, "--out-dir", str(out_dir(tmp_path)),
                             *softhsm.cli_args(pin_file)], token=softhsm)
    assert code == 0, report
    wrapped_text = (out_dir(tmp_path) / f"{key_name}-wrapped").read_bytes()
    assert len(wrapped_text) == 344 and b"\n" not in wrapped_text
    ciphertext = base64.b64decode(wrapped_text, validate=True)
    assert len(ciphertext) == 256
    secret = key.decrypt(ciphertext, oaep(hashes.SHA1))
    assert hashlib.sha256(secret).digest() == softhsm.digest(key_name)
    csek = json.loads((out_dir(tmp_path) / f"{key_name}-csek.json").read_text())
    assert csek == [{"uri": uri, "key": wrapped_text.decode(), "key-type": "rsa-encrypted"}]
    assert report["wrapping_key"]["pinned_by"] == "expect-fingerprint"
    assert any("deprecated" in warning for warning in report["warnings"])
    assert "Customer-supplied" in report["next_step"]


@pytest.mark.token
def test_gce_trust_unpinned_is_recorded(cli, softhsm, pin_file, tmp_path, key_name):
    path, _, _ = cert_file(tmp_path, 2048)
    code, report = cli.json(["google-compute-engine", key_name, str(path), "RSAES_OAEP_SHA_1", "--trust-unpinned",
                             "--out-dir", str(out_dir(tmp_path)), *softhsm.cli_args(pin_file)], token=softhsm)
    assert code == 0, report
    assert report["wrapping_key"]["trust_unpinned"] is True and report["wrapping_key"]["pinned_by"] is None
    assert any("unpinned" in warning or "not pinned" in warning for warning in report["warnings"])


@pytest.mark.token
def test_salesforce_secret_and_hash_and_reexport(cli, softhsm, pin_file, tmp_path, key_name):
    path, cert, key = cert_file(tmp_path, 4096)
    pins = tmp_path / "pins.json"
    pins.write_text(json.dumps({"salesforce": [{"sha256": certs_openssl_style(cert_sha256(cert)),
                                                "comment": "test org BYOK certificate"}]}))
    recovered = []
    for run in ("first", "second"):
        directory = tmp_path / run
        directory.mkdir()
        code, report = cli.json(["salesforce", key_name, str(path), "RSAES_OAEP_SHA_1", "--pins", str(pins),
                                 "--out-dir", str(directory), *softhsm.cli_args(pin_file)], token=softhsm)
        assert code == 0, report
        assert report["wrapping_key"]["pinned_by"] == "pins-file"
        secret = key.decrypt(base64.b64decode((directory / f"{key_name}-wrapped").read_bytes(), validate=True),
                             oaep(hashes.SHA1))
        assert len(secret) == 32
        hash_file = (directory / f"{key_name}-hash").read_bytes()
        assert hash_file == base64.b64encode(hashlib.sha256(secret).digest())
        assert base64.b64decode(hash_file) == softhsm.digest(key_name)
        recovered.append((secret, hash_file))
    assert recovered[0] == recovered[1]


@pytest.mark.token
def test_salesforce_oaep_sha512(cli, oaep_sha256_token, pin_file, tmp_path, key_name):
    path, cert, key = cert_file(tmp_path, 4096)
    code, report = cli.json(["salesforce", key_name, str(path), "RSAES_OAEP_SHA_512", "--expect-fingerprint",
                             cert_sha256(cert), "--out-dir", str(out_dir(tmp_path)),
                             *oaep_sha256_token.cli_args(pin_file)], token=oaep_sha256_token)
    assert code == 0, report
    secret = key.decrypt(base64.b64decode((out_dir(tmp_path) / f"{key_name}-wrapped").read_bytes()),
                         oaep(hashes.SHA512))
    assert hashlib.sha256(secret).digest() == oaep_sha256_token.digest(key_name)


@pytest.mark.parametrize("provider, bits, algorithm", [("google-compute-engine", 2048, "RSAES_OAEP_SHA_1"),
                                                       ("salesforce", 4096, "RSAES_OAEP_SHA_512")])
def test_certificate_providers_from_the_software_keystore(cli, pin_file, tmp_path, key_name, provider, bits, algorithm):
    path, cert, key = cert_file(tmp_path, bits)
    digest = hashes.SHA1 if algorithm.endswith("SHA_1") else hashes.SHA512
    keystore = ["--keystore", str(tmp_path / "ks"), "--passphrase-file", pin_file("keystore passphrase")]
    secrets = []
    for run in ("first", "second"):
        directory = tmp_path / run
        directory.mkdir()
        code, report = cli.json([provider, key_name, str(path), algorithm, "--expect-fingerprint", cert_sha256(cert),
                                 "--out-dir", str(directory), *keystore])
        assert code == 0, report
        assert report["key"]["protection"] == "software"
        secret = key.decrypt(base64.b64decode((directory / f"{key_name}-wrapped").read_bytes(), validate=True),
                             oaep(digest))
        assert len(secret) == 32
        if provider == "salesforce":
            assert (directory / f"{key_name}-hash").read_bytes() == base64.b64encode(hashlib.sha256(secret).digest())
        secrets.append(secret)
    assert secrets[0] == secrets[1]
