"""AWS export end to end against real tokens, every output unwrapped independently."""
from __future__ import annotations

import hashlib
import subprocess

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from pkcs11 import Attribute
from pkcs11.exceptions import AttributeSensitive

import unwrap
from keks import rsa_key, spki_der, write_private_pem, write_spki

pytestmark = pytest.mark.token


@pytest.fixture
def aws_kek(tmp_path):
    key = rsa_key(4096)
    return key, write_spki(key, tmp_path / "WrappingKey.bin"), write_private_pem(key, tmp_path / "kek.pem")


def export(cli, token, pin_file, out_dir, name, kek_path, algorithm, *extra):
    return cli.json(["aws", name, str(kek_path), algorithm, "--out-dir", str(out_dir),
                     *token.cli_args(pin_file), *extra], token=token)


def test_oaep_sha1_on_softhsm_unwraps_to_the_token_key(cli, softhsm, pin_file, aws_kek, tmp_path, key_name):
    key, kek_path, private_pem = aws_kek
    code, report = export(cli, softhsm, pin_file, tmp_path, key_name, kek_path, "RSAES_OAEP_SHA_1")
    assert code == 0, report
    wrapped = tmp_path / f"{key_name}-wrapped"
    assert wrapped.stat().st_size == 512
    plaintext = unwrap.oaep_decrypt(private_pem, wrapped.read_bytes(), "sha1")
    assert len(plaintext) == 32
    assert hashlib.sha256(plaintext).digest() == softhsm.digest(key_name)
    assert report["ok"] is True and report["provider"] == "aws"
    # Unpinned: it still runs, says so, and shows the fingerprint and how to confirm it online.
    [warning] = report["warnings"]
    assert "not pinned" in warning and report["wrapping_key"]["sha256_spki"] in warning and "openssl" in warning
    assert report["wrapping_key"]["trust_unpinned"] is True and report["wrapping_key"]["pinned_by"] is None
    assert report["key"] == {"name": key_name, "type": "AES-256", "created": True, "protection": "hsm"}
    assert report["algorithm"] == "RSAES_OAEP_SHA_1"
    assert report["wrapping_key"]["sha256_spki"] == hashlib.sha256(spki_der(key)).hexdigest()
    assert report["wrapping_key"]["bits"] == 4096
    assert report["wrapping_key"]["strength"] == 152
    [output] = [o for o in report["outputs"] if o["path"].endswith(f"{key_name}-wrapped")]
    assert output == {"path": str(wrapped), "sha256": hashlib.sha256(wrapped.read_bytes()).hexdigest(), "bytes": 512}
    assert f"fileb://{key_name}-wrapped" in report["next_step"]
    assert report["next_step"].startswith("aws kms import-key-material")


def test_reexport_gives_the_same_material(cli, softhsm, pin_file, aws_kek, tmp_path, key_name):
    key, kek_path, _ = aws_kek
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    assert export(cli, softhsm, pin_file, first, key_name, kek_path, "RSAES_OAEP_SHA_1")[0] == 0
    code, report = export(cli, softhsm, pin_file, second, key_name, kek_path, "RSAES_OAEP_SHA_1")
    assert code == 0, report
    assert report["key"]["created"] is False
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    recovered = [key.decrypt((d / f"{key_name}-wrapped").read_bytes(), oaep) for d in (first, second)]
    assert recovered[0] == recovered[1]
    assert (first / f"{key_name}-wrapped").read_bytes() != (second / f"{key_name}-wrapped").read_bytes()


def test_pkcs1_v15_needs_allow_deprecated_and_then_unwraps(cli, softhsm, pin_file, aws_kek, tmp_path, key_name):
    key, kek_path, _ = aws_kek
    code, report = export(cli, softhsm, pin_file, tmp_path, key_name, kek_path, "RSAES_PKCS1_V1_5")
    assert code == 4 and report["error"]["code"] == "ALGORITHM_DEPRECATED"
    assert "2023-10-10" in report["error"]["message"]
    assert list(tmp_path.glob(f"{key_name}*")) == []
    code, report = export(cli, softhsm, pin_file, tmp_path, key_name, kek_path, "RSAES_PKCS1_V1_5",
                          "--allow-deprecated")
    assert code == 0, report
    assert any("--allow-deprecated" in warning for warning in report["warnings"])
    plaintext = key.decrypt((tmp_path / f"{key_name}-wrapped").read_bytes(), padding.PKCS1v15())
    assert hashlib.sha256(plaintext).digest() == softhsm.digest(key_name)


def test_oaep_sha256_on_a_token_that_has_it(cli, oaep_sha256_token, pin_file, aws_kek, tmp_path, key_name):
    _, kek_path, private_pem = aws_kek
    code, report = export(cli, oaep_sha256_token, pin_file, tmp_path, key_name, kek_path, "RSAES_OAEP_SHA_256")
    assert code == 0, report
    plaintext = unwrap.oaep_decrypt(private_pem, (tmp_path / f"{key_name}-wrapped").read_bytes(), "sha256")
    assert hashlib.sha256(plaintext).digest() == oaep_sha256_token.digest(key_name)


def test_softhsm_lacks_oaep_sha256_and_is_refused_by_the_self_test(cli, softhsm, pin_file, aws_kek, tmp_path,
                                                                   key_name):
    _, kek_path, _ = aws_kek
    code, report = export(cli, softhsm, pin_file, tmp_path, key_name, kek_path, "RSAES_OAEP_SHA_256")
    assert code == 5 and report["error"]["code"] == "MECHANISM_FAILED"
    assert "CKM_RSA_PKCS_OAEP" in report["error"]["message"] and "SHA256" in report["error"]["message"]
    # The way out that fits aws: import parameters with another algorithm, or another token.
    assert ("download the import parameters again with RSAES_OAEP_SHA_1, or use a token with OAEP-SHA-256"
            in report["error"]["remedy"])
    assert list(tmp_path.glob(f"{key_name}*")) == []
    assert softhsm.objects(key_name) == []


def test_a_self_test_refusal_of_the_default_key_type_says_it_was_the_default(cli, softhsm, pin_file, tmp_path,
                                                                             key_name):
    kek = write_spki(rsa_key(4096), tmp_path / "import-job.pem", pem=True)
    code, report = cli.json(["google-cloud-key-management", key_name, str(kek), "--out-dir", str(tmp_path),
                             *softhsm.cli_args(pin_file)], token=softhsm)
    assert (code, report["error"]["code"]) == (5, "SELF_TEST_FAILED"), report
    assert "RSA-2048, the default key type of google-cloud-key-management; pass -k" in report["error"]["remedy"]
    code, report = cli.json(["google-cloud-key-management", key_name, str(kek), "-k", "RSA-2048", "--out-dir",
                             str(tmp_path), *softhsm.cli_args(pin_file)], token=softhsm)
    assert "default key type" not in (report["error"]["remedy"] or ""), report


def test_the_token_key_is_sensitive_and_cannot_be_read(cli, softhsm, pin_file, aws_kek, tmp_path, key_name):
    _, kek_path, _ = aws_kek
    assert export(cli, softhsm, pin_file, tmp_path, key_name, kek_path, "RSAES_OAEP_SHA_1")[0] == 0
    with pytest.raises(AttributeSensitive):
        softhsm.read_value(key_name)
    attributes = softhsm.key_attributes(key_name, Attribute.SENSITIVE, Attribute.EXTRACTABLE, Attribute.TOKEN,
                                        Attribute.PRIVATE, Attribute.ID)
    assert attributes[Attribute.SENSITIVE] and attributes[Attribute.EXTRACTABLE]
    assert attributes[Attribute.TOKEN] and attributes[Attribute.PRIVATE]
    assert bytes(attributes[Attribute.ID]).startswith(b"cssadmin:AES-256:aws:")


def test_a_foreign_key_of_the_same_name_is_a_conflict(cli, softhsm, pin_file, aws_kek, tmp_path, key_name):
    _, kek_path, _ = aws_kek
    softhsm.create_foreign_key(key_name)
    code, report = export(cli, softhsm, pin_file, tmp_path, key_name, kek_path, "RSAES_OAEP_SHA_1")
    assert code == 6 and report["error"]["code"] == "KEY_NOT_OURS"
    assert list(tmp_path.glob(f"{key_name}*")) == []


def test_a_cssadmin_key_of_another_type_is_a_conflict(cli, softhsm, pin_file, aws_kek, tmp_path, key_name):
    _, kek_path, _ = aws_kek
    assert export(cli, softhsm, pin_file, tmp_path, key_name, kek_path, "RSAES_OAEP_SHA_1")[0] == 0
    code, report = export(cli, softhsm, pin_file, tmp_path, key_name, kek_path, "RSA_AES_KEY_WRAP_SHA_1",
                          "-k", "EC-NISTP256", "--force")
    assert code == 6 and report["error"]["code"] == "KEY_TYPE_CONFLICT"
    assert "AES-256" in report["error"]["message"]
    [object_id] = [object_id for _, object_id in softhsm.objects(key_name)]
    assert object_id.startswith(b"cssadmin:AES-256:aws:")


def test_wrong_pin_is_refused_once(cli, softhsm, pin_file, aws_kek, tmp_path, key_name):
    _, kek_path, _ = aws_kek
    code, report = cli.json(["aws", key_name, str(kek_path), "RSAES_OAEP_SHA_1", "--out-dir", str(tmp_path),
                             "--token", softhsm.label, "--pin-file", pin_file("0000")], token=softhsm)
    assert code == 5 and report["error"]["code"] == "LOGIN_FAILED"
    assert "not retried" in said(report)
    assert softhsm.objects(key_name) == []


def test_absent_token_is_a_custody_error(cli, softhsm, pin_file, aws_kek, tmp_path, key_name):
    _, kek_path, _ = aws_kek
    code, report = cli.json(["aws", key_name, str(kek_path), "RSAES_OAEP_SHA_1", "--out-dir", str(tmp_path),
                             "--token", "no-such-token", "--pin-file", pin_file("1234")], token=softhsm)
    assert code == 5 and report["error"]["code"] == "TOKEN_NOT_FOUND"
    assert "no-such-token" in report["error"]["message"]


def test_pin_from_environment(cli, softhsm, aws_kek, tmp_path, key_name):
    _, kek_path, _ = aws_kek
    code, report = cli.json(["aws", key_name, str(kek_path), "RSAES_OAEP_SHA_1", "--out-dir", str(tmp_path),
                             "--token", softhsm.label, "--pin-env", "TEST_PIN"], token=softhsm,
                            env={"TEST_PIN": softhsm.pin})
    assert code == 0, report


def test_no_pin_source_and_no_terminal_is_refused(cli, softhsm, aws_kek, tmp_path, key_name):
    _, kek_path, _ = aws_kek
    code, report = cli.json(["aws", key_name, str(kek_path), "RSAES_OAEP_SHA_1", "--out-dir", str(tmp_path),
                             "--token", softhsm.label], token=softhsm, stdin=subprocess.PIPE)
    assert code == 5 and report["error"]["code"] == "SECRET_SOURCE_UNUSABLE"
    assert "not a terminal" in report["error"]["message"]


def test_existing_output_needs_force(cli, softhsm, pin_file, aws_kek, tmp_path, key_name):
    _, kek_path, private_pem = aws_kek
    existing = tmp_path / f"{key_name}-wrapped"
    existing.write_bytes(b"old")
    code, report = export(cli, softhsm, pin_file, tmp_path, key_name, kek_path, "RSAES_OAEP_SHA_1")
    assert code == 7 and report["error"]["code"] == "OUTPUT_EXISTS"
    assert existing.read_bytes() == b"old"
    assert softhsm.objects(key_name) == [], "a doomed run must fail before the token makes a key"
    code, report = export(cli, softhsm, pin_file, tmp_path, key_name, kek_path, "RSAES_OAEP_SHA_1", "--force")
    assert code == 0, report
    recovered = unwrap.oaep_decrypt(private_pem, existing.read_bytes(), "sha1")
    assert hashlib.sha256(recovered).digest() == softhsm.digest(key_name)


def test_module_that_does_not_load(cli, aws_kek, tmp_path, key_name, pin_file):
    _, kek_path, _ = aws_kek
    code, report = cli.json(["aws", key_name, str(kek_path), "RSAES_OAEP_SHA_1", "--out-dir", str(tmp_path),
                             "--pkcs11-module", "/nonexistent/libpkcs11.so", "--pin-file", pin_file("1234")])
    assert code == 5 and report["error"]["code"] == "MODULE_NOT_FOUND"
    assert "libcknfast.so" in said(report) and "libsofthsm2.so" in said(report)


def test_text_mode_prints_the_file_and_next_step(cli, softhsm, pin_file, aws_kek, tmp_path, key_name):
    _, kek_path, _ = aws_kek
    result = cli.run(["aws", key_name, str(kek_path), "RSAES_OAEP_SHA_1", "--out-dir", str(tmp_path),
                      *softhsm.cli_args(pin_file)], token=softhsm)
    assert result.returncode == 0, result.stderr
    assert f"{key_name}-wrapped" in result.stdout
    assert "aws kms import-key-material" in result.stdout


def test_allow_weaker_kek_exports_with_a_warning(cli, softhsm, pin_file, tmp_path, key_name):
    key = rsa_key(2048)
    kek_path = write_spki(key, tmp_path / "WrappingKey.bin")
    out = tmp_path / "out"
    out.mkdir()
    code, report = export(cli, softhsm, pin_file, out, key_name, kek_path, "RSAES_OAEP_SHA_1", "--allow-weaker-kek")
    assert code == 0, report
    assert report["wrapping_key"]["allow_weaker_kek"] is True
    assert report["wrapping_key"]["strength"] == 112 and report["wrapping_key"]["required_strength"] == 152
    assert any("--allow-weaker-kek" in warning for warning in report["warnings"])
    blob = (out / f"{key_name}-wrapped").read_bytes()
    assert len(blob) == 256
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    assert hashlib.sha256(key.decrypt(blob, oaep)).digest() == softhsm.digest(key_name)


def test_the_only_initialised_token_is_chosen_without_a_label(cli, softhsm, pin_file, aws_kek, tmp_path, key_name):
    _, kek_path, _ = aws_kek
    code, report = cli.json(["aws", key_name, str(kek_path), "RSAES_OAEP_SHA_1", "--out-dir", str(tmp_path),
                             "--pin-file", pin_file(softhsm.pin)], token=softhsm)
    assert code == 0, report


@pytest.mark.parametrize("flag", ["-O", "-S"])
def test_card_set_and_softcard_select_the_token_by_label(cli, softhsm, pin_file, aws_kek, tmp_path, key_name, flag):
    _, kek_path, _ = aws_kek
    code, report = cli.json(["aws", key_name, str(kek_path), "RSAES_OAEP_SHA_1", flag, softhsm.label,
                             "--out-dir", str(tmp_path), "--pin-file", pin_file(softhsm.pin)], token=softhsm)
    assert code == 0, report
    code, report = cli.json(["aws", key_name + "x", str(kek_path), "RSAES_OAEP_SHA_1", flag, "no-such-cardset",
                             "--out-dir", str(tmp_path), "--pin-file", pin_file(softhsm.pin)], token=softhsm)
    assert code == 5 and "no-such-cardset" in report["error"]["message"]


def test_slot_id_selects_the_token(cli, softhsm, pin_file, aws_kek, tmp_path, key_name):
    _, kek_path, _ = aws_kek
    slot = softhsm.slot_id()
    code, report = cli.json(["aws", key_name, str(kek_path), "RSAES_OAEP_SHA_1", "-m", str(slot),
                             "--out-dir", str(tmp_path), "--pin-file", pin_file(softhsm.pin)], token=softhsm)
    assert code == 0, report
    code, report = cli.json(["aws", key_name, str(kek_path), "RSAES_OAEP_SHA_1", "-m", str(slot + 1),
                             "--out-dir", str(tmp_path), "--pin-file", pin_file(softhsm.pin), "--force"],
                            token=softhsm)
    assert code == 5 and report["error"]["code"] == "TOKEN_NOT_FOUND"


def test_several_tokens_without_a_choice_are_listed(cli, nss, aws_kek, tmp_path, key_name):
    _, kek_path, _ = aws_kek
    # The p11-kit proxy shows NSS's two tokens (and any system ones): no single token to default to.
    code, report = cli.json(["aws", key_name, str(kek_path), "RSAES_OAEP_SHA_1", "--out-dir", str(tmp_path)],
                            token=nss)
    assert code == 5 and report["error"]["code"] == "TOKEN_AMBIGUOUS"
    assert "NSS Certificate DB" in said(report) and "--token" in said(report)


def said(report: dict) -> str:
    """A JSON error's message and remedy, as the text output shows them."""
    return f"{report['error']['message']} ({report['error']['remedy']})"
