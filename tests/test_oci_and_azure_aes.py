"""oci (OCI Vault WrappedImportKey) and Azure Managed HSM oct-HSM keys, every output unwrapped by OpenSSL's CLI.

Secret keys are compared with the custody's own hash: C_DigestKey on a token, the keystore's
SHA-256 otherwise (shown by a second export to a wrapping key of the test's); RSA targets as exact
PKCS#8 whose public key is the `<key>-public.pem` written beside them.
"""
from __future__ import annotations

import base64
import hashlib
import json

import pytest

import unwrap

MANAGED_HSM_KID = "https://contoso-hsm.managedhsm.azure.net/keys/KEK-1/0123456789abcdef0123456789abcdef"
VAULT_KID = "https://contoso-vault.vault.azure.net/keys/KEK-1/0123456789abcdef0123456789abcdef"


def oci_blob(path) -> tuple[bytes, str]:
    document = json.loads(path.read_bytes())
    assert set(document) == {"keyMaterial", "wrappingAlgorithm"}
    material = document["keyMaterial"]
    assert base64.b64encode(base64.b64decode(material, validate=True)).decode() == material   # standard base64
    return base64.b64decode(material), document["wrappingAlgorithm"]


@pytest.mark.parametrize("key_type, algorithm", [
    ("AES-128", None), ("AES-192", None), ("AES-256", None), ("AES-128", "RSA_OAEP_SHA256"),
    ("AES-256", "RSA_OAEP_SHA256"), ("RSA-2048", None), ("RSA-2048", "RSA_OAEP_AES_SHA256")])
def test_oci_unwraps_to_the_key(cli, kek_files, keystore, out, key_name, key_type, algorithm):
    kek, private = kek_files(4096)
    args = ["oci", key_name, str(kek), *([algorithm] if algorithm else []), "-k", key_type, "--out-dir", str(out),
            "--no-audit", *keystore]
    code, report = cli.json(args)
    assert code == 0, report
    blob, named = oci_blob(out / f"{key_name}-wrapped-import-key.json")
    assert named == report["algorithm"] == (algorithm or "RSA_OAEP_AES_SHA256")
    plaintext = (unwrap.oaep_decrypt(private, blob, "sha256") if named == "RSA_OAEP_SHA256"
                 else unwrap.rsa_aes_unwrap(private, blob, 512, "sha256"))
    family, size = key_type.split("-")
    if family == "AES":
        assert len(plaintext) == int(size) // 8
        assert not (out / f"{key_name}-public.pem").exists()
        # the same key again to another wrapping key gives the same bytes: the custody's key, not noise
        again_kek, again_private = kek_files(4096)
        second = out / "again"
        second.mkdir()
        code, _ = cli.json(["oci", key_name, str(again_kek), "-k", key_type, "--out-dir", str(second), "--no-audit",
                            *keystore])
        assert code == 0
        again = unwrap.rsa_aes_unwrap(again_private, oci_blob(second / f"{key_name}-wrapped-import-key.json")[0],
                                      512, "sha256")
        assert again == plaintext
    else:
        assert unwrap.der_covers_whole_buffer(plaintext)
        assert unwrap.pkcs8_public_pem(plaintext) == (out / f"{key_name}-public.pem").read_bytes()
    length = int(size) // 8
    assert (f"--key-shape '{{\"algorithm\": \"{family}\", \"length\": {length}}}'") in report["next_step"]
    assert report["next_step"].startswith(f"oci kms management key import --wrapped-import-key "
                                          f"file://{key_name}-wrapped-import-key.json ")


@pytest.mark.parametrize("args, code, error", [
    (["-k", "EC-NISTP256"], 4, "KEY_TYPE_NOT_ALLOWED"),
    (["-k", "RSA-2048", "RSA_OAEP_SHA256"], 4, "ALGORITHM_NOT_ALLOWED"),
    (["RSA_AES_KEY_WRAP_SHA_256"], 4, "ALGORITHM_NOT_ALLOWED"),
    (["NO_SUCH_ALG"], 2, "WRAP_ALG_UNKNOWN"),
])
def test_oci_refusals(cli, kek_files, keystore, out, key_name, args, code, error):
    kek, _ = kek_files(4096)
    status, report = cli.json(["oci", key_name, str(kek), *args, "--out-dir", str(out), "--no-audit", *keystore])
    assert (status, report["error"]["code"]) == (code, error), report
    assert list(out.iterdir()) == []


def test_oci_wrapping_key_must_be_rsa_4096(cli, kek_files, keystore, out, key_name):
    kek, _ = kek_files(3072)
    code, report = cli.json(["oci", key_name, str(kek), "--out-dir", str(out), "--no-audit", *keystore])
    assert code == 3 and report["error"]["code"] == "WRAPPING_KEY_WRONG_SIZE"


@pytest.mark.parametrize("key_type, bits", [("AES-128", 3072), ("AES-192", 4096), ("AES-256", 4096)])
def test_azure_managed_hsm_aes_unwraps(cli, kek_files, keystore, out, key_name, key_type, bits):
    kek, private = kek_files(bits)
    code, report = cli.json(["microsoft-azure", key_name, str(kek), "-k", key_type, "-a", MANAGED_HSM_KID,
                             "--out-dir", str(out), "--no-audit", *keystore])
    assert code == 0, report
    package = json.loads((out / f"KeyTransferPackage-{key_name}.byok").read_bytes())
    assert package["header"] == {"kid": MANAGED_HSM_KID, "alg": "dir", "enc": "CKM_RSA_AES_KEY_WRAP"}
    blob = base64.urlsafe_b64decode(package["ciphertext"] + "=" * (-len(package["ciphertext"]) % 4))
    assert len(unwrap.rsa_aes_unwrap(private, blob, bits // 8, "sha1")) == int(key_type[4:]) // 8
    assert not (out / f"{key_name}-public.pem").exists()
    assert report["next_step"] == (f"az keyvault key import --hsm-name contoso-hsm --name <KEY_NAME> "
                                   f"--byok-file KeyTransferPackage-{key_name}.byok --kty oct-HSM")


@pytest.mark.parametrize("key_type, needed", [("AES-192", 152), ("AES-256", 152)])
def test_azure_aes_strength_rule(cli, kek_files, keystore, out, key_name, key_type, needed):
    kek, _ = kek_files(3072)
    code, report = cli.json(["microsoft-azure", key_name, str(kek), "-k", key_type, "-a", MANAGED_HSM_KID,
                             "--out-dir", str(out), "--no-audit", *keystore])
    assert code == 4 and report["error"]["code"] == "KEK_TOO_WEAK"
    assert f"{key_type} needs {needed}" in report["error"]["message"]


def test_azure_vault_kid_refuses_aes_before_loading(cli, keystore, out, key_name, tmp_path):
    code, report = cli.json(["microsoft-azure", key_name, str(tmp_path / "never-read.pem"), "-k", "AES-256",
                             "-a", VAULT_KID, "--out-dir", str(out), "--no-audit", *keystore])
    assert code == 4 and report["error"]["code"] == "KEY_TYPE_NOT_ALLOWED", report
    assert "Managed HSM" in report["error"]["message"]
    assert not (tmp_path / "keystore").exists()


@pytest.mark.token
@pytest.mark.parametrize("key_type", ["AES-128", "AES-192", "AES-256"])
def test_azure_managed_hsm_aes_from_softhsm_equals_c_digestkey(cli, softhsm, pin_file, kek_files, out, key_name,
                                                               key_type):
    """SoftHSM2 generates AES-128/192/256 and does RSA-AES with OAEP SHA-1 and KWP of aligned keys."""
    kek, private = kek_files(4096)
    code, report = cli.json(["microsoft-azure", key_name, str(kek), "-k", key_type, "-a", MANAGED_HSM_KID,
                             "--out-dir", str(out), "--no-audit", *softhsm.cli_args(pin_file)], token=softhsm)
    assert code == 0, report
    assert report["key"] == {"name": key_name, "type": key_type, "created": True, "protection": "hsm"}
    package = json.loads((out / f"KeyTransferPackage-{key_name}.byok").read_bytes())
    blob = base64.urlsafe_b64decode(package["ciphertext"] + "=" * (-len(package["ciphertext"]) % 4))
    plaintext = unwrap.rsa_aes_unwrap(private, blob, 512, "sha1")
    assert len(plaintext) == int(key_type[4:]) // 8
    assert hashlib.sha256(plaintext).digest() == softhsm.digest(key_name)
