"""The signing key end to end through the CLI (issue 11): in a SoftHSM2 token and in the software
keystore, its manifests checked by `cssadmin verify-manifest` and by OpenSSL's own command line."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11e

from keks import rsa_key, write_spki

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
SIGNER = "evidence-signer"


@pytest.fixture(scope="module")
def kek_file(tmp_path_factory) -> Path:
    return write_spki(rsa_key(4096), tmp_path_factory.mktemp("kek") / "WrappingKey.bin")


class Place:
    """Where one test's exports go, and how to run them in token or keystore mode."""

    def __init__(self, cli, tmp_path, custody_args, token=None):
        self.cli, self.tmp, self.custody_args, self.token = cli, tmp_path, custody_args, token
        self.audit_log = tmp_path / "audit.jsonl"

    def run(self, args, **kwargs):
        return self.cli.json(args + self.custody_args, token=self.token, **kwargs)

    def export(self, name, kek, *extra, out=None):
        out = out or self.tmp / f"out-{name}"
        out.mkdir(exist_ok=True)
        code, report = self.run(["aws", name, str(kek), "RSAES_OAEP_SHA_1", "--out-dir", str(out),
                                 "--audit-log", str(self.audit_log), *extra])
        return code, report, out


@pytest.fixture
def token_place(cli, tmp_path, softhsm, pin_file):
    return Place(cli, tmp_path, softhsm.cli_args(pin_file), softhsm)


@pytest.fixture
def keystore_place(cli, tmp_path, pin_file):
    return Place(cli, tmp_path, ["--keystore", str(tmp_path / "ks"), "--passphrase-file", pin_file("keystore passphrase")])


@pytest.fixture(params=[pytest.param("token", marks=pytest.mark.token), "keystore"])
def place(request):
    if request.param == "token":
        return request.getfixturevalue("token_place")
    return request.getfixturevalue("keystore_place")


def signer_label(key_name: str) -> str:
    return "sig-" + key_name   # one signing key per test: tokens outlive a test


def fingerprint_of_pem(pem: bytes) -> str:
    key = serialization.load_pem_public_key(pem)
    return hashlib.sha256(key.public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)).hexdigest()


def signing_key_pem(place: Place, label: str) -> tuple[Path, dict]:
    pem = place.tmp / f"{label}.pem"
    code, result = place.run(["signing-key", label, "--out", str(pem)])
    assert code == 0, result
    return pem, result


# ------------------------------------------------------------------------------ the flow

@needs_openssl
def test_a_signed_export_verifies_with_cssadmin_and_openssl(place, kek_file, key_name):
    label = signer_label(key_name)
    code, report, out = place.export(key_name, kek_file, "--signing-key", label)
    assert code == 0, report
    manifest = out / f"{key_name}-manifest.json"
    signature = out / f"{key_name}-manifest.json.sig"
    protection = "hsm" if place.token else "software"
    assert report["signature"]["path"] == str(signature)
    assert report["signature"]["sha256"] == hashlib.sha256(signature.read_bytes()).hexdigest()
    assert report["signer"]["label"] == label and report["signer"]["protection"] == protection
    document = json.loads(manifest.read_text())
    assert document["signer"]["label"] == label and document["signer"]["protection"] == protection
    assert document["signer"]["sha256_spki"] == report["signer"]["sha256_spki"]

    pem, described = signing_key_pem(place, label)
    fingerprint = fingerprint_of_pem(pem.read_bytes())
    assert described["signer"]["created"] is False, "the export created the key; this reuses it"
    assert fingerprint == report["signer"]["sha256_spki"] == described["signer"]["sha256_spki"]

    code, result = place.cli.json(["verify-manifest", str(manifest), "--signer-fingerprint", fingerprint])
    assert code == 0, result
    assert result["verified"]["signature"] is True and result["verified"]["signer_pinned"] is True
    assert result["verified"]["signer_sha256_spki"] == fingerprint and result["warnings"] == []

    shutil.copy(pem, out / "signer.pem")   # the README's line, exactly, in the directory that travelled
    readme_line = ["openssl", "dgst", "-sha256", "-verify", "signer.pem", "-signature",
                   f"{key_name}-manifest.json.sig", f"{key_name}-manifest.json"]
    verified = subprocess.run(readme_line, cwd=out, capture_output=True, text=True)
    assert verified.returncode == 0 and "Verified OK" in verified.stdout, verified

    manifest.write_bytes(manifest.read_bytes().replace(b'"provider": "aws"', b'"provider": "awz"'))
    refused = subprocess.run(readme_line, cwd=out, capture_output=True, text=True)
    assert refused.returncode != 0
    code, result = place.cli.json(["verify-manifest", str(manifest), "--signer-fingerprint", fingerprint])
    assert code == 8 and result["error"]["code"] == "MANIFEST_SIGNATURE_BAD"


def test_the_report_manifest_and_log_carry_one_head_and_the_record_is_signed(place, kek_file, key_name):
    label = signer_label(key_name)
    code, report, out = place.export(key_name, kek_file, "--signing-key", label)
    assert code == 0, report
    manifest = json.loads((out / f"{key_name}-manifest.json").read_text())
    [line] = place.audit_log.read_bytes().splitlines()
    record = json.loads(line)
    assert report["audit"] == {"path": str(place.audit_log), "seq": 1, "sha256": record["sha256"]}
    assert manifest["audit_head"] == {"seq": 1, "sha256": record["sha256"]}
    assert record["signer_sha256_spki"] == report["signer"]["sha256_spki"]
    assert [Path(item["path"]).name for item in record["outputs"]] == [f"{key_name}-wrapped"], \
        "the record lists the cloud's files, not the manifest or its signature"
    pem, _ = signing_key_pem(place, label)
    code, result = place.cli.json(["verify-audit", str(place.audit_log), "--signer-key", str(pem),
                                   "--expect-head", f"1:{record['sha256']}"])
    assert code == 0, result
    assert result["verified"] == {"records": 1, "chain": True, "anchored": 1, "unanchored": 0, "signed": 1,
                                  "signer_sha256_spki": [report["signer"]["sha256_spki"]], "signer_pinned": True,
                                  "head": {"seq": 1, "sha256": record["sha256"]},
                                  "expected_head": {"seq": 1, "sha256": record["sha256"]}}


def test_deleting_the_last_record_fails_against_the_head_from_the_manifest(place, kek_file, key_name):
    label = signer_label(key_name)
    assert place.export(key_name, kek_file, "--signing-key", label)[0] == 0
    code, report, out = place.export(key_name + "b", kek_file, "--signing-key", label)
    assert code == 0, report
    head = json.loads((out / f"{key_name}b-manifest.json").read_text())["audit_head"]
    assert head["seq"] == 2
    lines = place.audit_log.read_bytes().splitlines(keepends=True)
    place.audit_log.write_bytes(lines[0])
    code, result = place.cli.json(["verify-audit", str(place.audit_log), "--expect-head",
                                   f"{head['seq']}:{head['sha256']}"])
    assert code == 8 and result["error"]["code"] == "AUDIT_HEAD_MISMATCH"


def test_editing_the_last_record_is_exit_8(place, kek_file, key_name):
    assert place.export(key_name, kek_file)[0] == 0
    assert place.export(key_name + "b", kek_file)[0] == 0
    lines = place.audit_log.read_bytes().splitlines(keepends=True)
    lines[-1] = lines[-1].replace(key_name.encode() + b"b", key_name.encode() + b"c")
    place.audit_log.write_bytes(b"".join(lines))
    code, result = place.cli.json(["verify-audit", str(place.audit_log)])
    assert code == 8 and result["error"]["code"] == "AUDIT_RECORD_CHANGED" and "line 2" in result["error"]["message"]
    # and no export chains onto the changed record: the pre-flight checks it, before a key is made
    code, report, out = place.export(key_name + "d", kek_file)
    assert (code, report["error"]["code"]) == (7, "AUDIT_CHAIN_BROKEN"), report
    assert "changed" in report["error"]["message"] and list(out.iterdir()) == []


def test_an_unsigned_export_onto_a_signed_log_is_refused_before_a_key_is_made(place, kek_file, key_name):
    """Mixing them would leave a log that verify-audit rejects as appended to without the key."""
    label = signer_label(key_name)
    assert place.export(key_name, kek_file, "--signing-key", label)[0] == 0
    before = place.audit_log.read_bytes()
    code, report, out = place.export(key_name + "b", kek_file)
    assert (code, report["error"]["code"]) == (7, "AUDIT_LOG_SIGNED"), report
    assert "--signing-key" in report["error"]["remedy"]
    assert list(out.iterdir()) == [] and place.audit_log.read_bytes() == before
    code, report, _ = place.export(key_name + "b", kek_file, "--signing-key", label)
    assert code == 0 and report["key"]["created"] is True, report   # the refused run made no key
    assert place.cli.json(["verify-audit", str(place.audit_log)])[0] == 0


def test_a_signature_from_another_key_and_a_missing_signature_are_exit_8(place, kek_file, key_name, tmp_path):
    label = signer_label(key_name)
    code, report, out = place.export(key_name, kek_file, "--signing-key", label)
    assert code == 0, report
    manifest = out / f"{key_name}-manifest.json"
    signature = out / f"{key_name}-manifest.json.sig"
    fingerprint = report["signer"]["sha256_spki"]
    other = ec.generate_private_key(ec.SECP256R1())
    signature.write_bytes(other.sign(manifest.read_bytes(), ec.ECDSA(hashes.SHA256())))
    code, result = place.cli.json(["verify-manifest", str(manifest), "--signer-fingerprint", fingerprint])
    assert code == 8 and result["error"]["code"] == "MANIFEST_SIGNATURE_BAD"
    signature.unlink()
    code, result = place.cli.json(["verify-manifest", str(manifest), "--signer-fingerprint", fingerprint])
    assert code == 8 and result["error"]["code"] == "MANIFEST_SIGNATURE_MISSING"


def test_the_signing_key_is_never_a_target_key(place, kek_file, key_name):
    label = signer_label(key_name)
    signing_key_pem(place, label)
    code, report, out = place.export(label, kek_file)
    assert code == 6 and report["error"]["code"] == "KEY_IS_SIGNING_KEY", report
    assert list(out.iterdir()) == []


def test_a_target_key_is_never_a_signing_key(place, kek_file, key_name):
    assert place.export(key_name, kek_file)[0] == 0
    code, result = place.run(["signing-key", key_name])
    assert code == 6 and result["error"]["code"] == "SIGNING_KEY_CONFLICT"
    code, report, _ = place.export(key_name + "b", kek_file, "--signing-key", key_name)
    assert code == 6 and report["error"]["code"] == "SIGNING_KEY_CONFLICT"


def test_signing_key_prints_its_public_key_and_is_stable(place, key_name):
    label = signer_label(key_name)
    code, first = place.run(["signing-key", label])
    assert code == 0 and first["signer"]["created"] is True, first
    code, second = place.run(["signing-key", label])
    assert code == 0 and second["signer"]["created"] is False
    assert first["public_key_pem"] == second["public_key_pem"]
    assert fingerprint_of_pem(first["public_key_pem"].encode()) == first["signer"]["sha256_spki"]


def test_verify_options_are_refused_on_an_export(keystore_place, kek_file, key_name):
    code, report, _ = keystore_place.export(key_name, kek_file, "--signer-fingerprint", "ab" * 32)
    assert code == 2 and "--signer-fingerprint" in report["error"]["message"]


def test_an_unreadable_signer_key_is_exit_7(cli, tmp_path):
    manifest = tmp_path / "k-manifest.json"
    manifest.write_text("{}")
    code, result = cli.json(["verify-manifest", str(manifest), "--signer-key", str(tmp_path / "absent.pem")])
    assert code == 7 and result["error"]["code"] == "SIGNER_KEY_UNREADABLE"


# ------------------------------------------------------------------------------ in the token

@pytest.mark.token
def test_the_token_signing_key_cannot_be_read_or_wrapped(token_place, softhsm, key_name):
    label = signer_label(key_name)
    signing_key_pem(token_place, label)
    with softhsm.session() as session:
        [private] = session.get_objects({Attribute.LABEL: label, Attribute.CLASS: ObjectClass.PRIVATE_KEY})
        for attribute in (Attribute.VALUE,):
            with pytest.raises(p11e.AttributeSensitive):
                private[attribute]
        assert private[Attribute.SENSITIVE] is True and private[Attribute.EXTRACTABLE] is False
        assert private[Attribute.ALWAYS_SENSITIVE] is True and private[Attribute.NEVER_EXTRACTABLE] is True
        assert private[Attribute.SIGN] is True
        for capability in (Attribute.DECRYPT, Attribute.UNWRAP, Attribute.DERIVE):
            assert private[capability] is False
        assert private[Attribute.MODIFIABLE] is False
        assert bytes(private[Attribute.ID]) == b"cssadmin-signing:" + label.encode()
        wrapper = session.generate_key(KeyType.AES, 256, store=False,
                                       template={Attribute.WRAP: True, Attribute.EXTRACTABLE: False})
        with pytest.raises(p11e.PKCS11Error):
            wrapper.wrap_key(private, mechanism=Mechanism.AES_KEY_WRAP_PAD)
        with pytest.raises(p11e.PKCS11Error):   # not extractable, so not relabelled or copied either
            private[Attribute.LABEL] = "another-label"


@pytest.mark.token
def test_a_look_alike_signing_key_without_the_provenance_is_refused(token_place, softhsm, key_name):
    """Same label and marker, but made extractable by another tool: the reuse checks refuse it."""
    label = signer_label(key_name)
    with softhsm.session() as session:
        session.generate_keypair(
            KeyType.EC, label=label, id=b"cssadmin-signing:" + label.encode(), store=True,
            public_template={Attribute.EC_PARAMS: bytes.fromhex("06082a8648ce3d030107"), Attribute.TOKEN: True},
            private_template={Attribute.TOKEN: True, Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: True,
                              Attribute.SIGN: True})
    code, result = token_place.run(["signing-key", label])
    assert code == 6 and result["error"]["code"] == "SIGNING_KEY_PROVENANCE", result
    assert "EXTRACTABLE" in result["error"]["message"]


@pytest.mark.token
def test_a_failed_export_discards_the_signing_key_it_created(token_place, softhsm, kek_file, key_name):
    """SoftHSM 2.6.1's KWP is refused for private keys by the self-test: after the signing key was made."""
    label = signer_label(key_name)
    out = token_place.tmp / "out"
    out.mkdir()
    code, report = token_place.run(["aws", key_name, str(kek_file), "RSA_AES_KEY_WRAP_SHA_1", "-k", "RSA-2048",
                                    "--out-dir", str(out), "--signing-key", label, "--no-audit"])
    assert code == 5 and report["error"]["code"] == "SELF_TEST_FAILED", report
    assert softhsm.objects(label) == [] and softhsm.objects(key_name) == []
    assert list(out.iterdir()) == []
