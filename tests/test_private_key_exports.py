"""Cloud KMS, Azure and AWS with private and HMAC keys: policy, the software keystore, and SoftHSM2's refusals.

Every provider x key type x algorithm is exported from a token in test_token_exports.py (openCryptoki
3.27). What stays here is about the keystore itself (protection "software", its warning, re-exports of
the same key), the refusals, SoftHSM2 2.6.1 refused by the self-test, and what only the keystore can
show: an EC key directly under RSA-OAEP, which PKCS#11 tokens refuse (RSA mechanisms wrap secret keys).
"""
from __future__ import annotations

import base64
import hashlib
import json
import re

import pytest

import unwrap

KID = "https://contoso-vault.vault.azure.net/keys/KEK-1/0123456789abcdef0123456789abcdef"


def check_private_key(plaintext: bytes, public_pem_path) -> None:
    assert unwrap.der_covers_whole_buffer(plaintext), "trailing bytes after the PKCS#8"
    assert unwrap.pkcs8_public_pem(plaintext) == public_pem_path.read_bytes()


@pytest.mark.parametrize("key_type", ["AES-256", "EC-NISTP256"])
@pytest.mark.parametrize("method, digest", [(None, "sha1")])
def test_google_kms_rsa_aes_from_the_keystore(cli, kek_files, keystore, out, key_name, key_type, method, digest):
    kek, private = kek_files(4096)
    args = ["google-cloud-key-management", key_name, str(kek), "-k", key_type, "--out-dir", str(out), *keystore]
    code, report = cli.json(args + (["--import-method", method] if method else []))
    assert code == 0, report
    assert report["algorithm"] == (method or "RSA_OAEP_4096_SHA1_AES_256")
    assert report["key"]["protection"] == "software" and report["mechanism"] == "software (cryptography)"
    assert any("software keystore" in warning for warning in report["warnings"])
    plaintext = unwrap.rsa_aes_unwrap(private, (out / f"{key_name}-wrapped.bin").read_bytes(), 512, digest)
    if key_type == "AES-256":
        assert len(plaintext) == 32
        assert not (out / f"{key_name}-public.pem").exists()
    else:
        check_private_key(plaintext, out / f"{key_name}-public.pem")
    assert "gcloud kms keys versions import" in report["next_step"]
    assert f"--wrapped-key-file {key_name}-wrapped.bin" in report["next_step"]


@pytest.mark.parametrize("key_type", ["EC-NISTP256", "EC-NISTP384", "EC-SECP256K1", "AES-256"])
def test_google_kms_plain_oaep_sha256_for_targets_that_fit(cli, kek_files, keystore, out, key_name, key_type):
    kek, private = kek_files(4096)
    code, report = cli.json(["google-cloud-key-management", key_name, str(kek), "-k", key_type,
                             "--import-method", "RSA_OAEP_4096_SHA256", "--out-dir", str(out), *keystore])
    assert code == 0, report
    plaintext = unwrap.oaep_decrypt(private, (out / f"{key_name}-wrapped.bin").read_bytes(), "sha256")
    if key_type == "AES-256":
        assert len(plaintext) == 32
    else:
        check_private_key(plaintext, out / f"{key_name}-public.pem")


def test_google_kms_refuses_rsa_targets_under_plain_oaep(cli, kek_files, keystore, out, key_name):
    kek, _ = kek_files(4096)
    code, report = cli.json(["google-cloud-key-management", key_name, str(kek), "-k", "RSA-2048",
                             "--import-method", "RSA_OAEP_4096_SHA256", "--out-dir", str(out), *keystore])
    assert code == 4 and "RSA_OAEP_4096_SHA256_AES_256" in f"{report['error']['message']} {report['error']['remedy']}"
    assert list(out.iterdir()) == []


def test_google_kms_3072_job_infers_its_method(cli, kek_files, keystore, out, key_name):
    kek, private = kek_files(3072)
    code, report = cli.json(["google-cloud-key-management", key_name, str(kek), "--out-dir", str(out), *keystore])
    assert code == 0, report
    assert report["algorithm"] == "RSA_OAEP_3072_SHA1_AES_256" and report["key"]["type"] == "RSA-2048"
    plaintext = unwrap.rsa_aes_unwrap(private, (out / f"{key_name}-wrapped.bin").read_bytes(), 384, "sha1")
    check_private_key(plaintext, out / f"{key_name}-public.pem")
    assert "--algorithm rsa-sign-pkcs1-2048-sha256" in report["next_step"]


@pytest.mark.parametrize("args, code, fragment", [
    (["-k", "AES-256"], 4, "AES-256 needs 152"),                       # needs the 4096-bit job
    (["-k", "EC-NISTP384"], 4, "needs 152"),
    (["-k", "EC-NISTP521"], 4, "allowed: AES-256"),
    (["-k", "RSA-1024"], 4, "RSA-2048"),
    (["--import-method", "RSA_OAEP_4096_SHA1_AES_256"], 3, "RSA-4096"),
    (["--import-method", "RSA_OAEP_9999"], 2, "import method"),
])
def test_google_kms_refusals_with_a_3072_job(cli, kek_files, keystore, out, key_name, args, code, fragment):
    kek, _ = kek_files(3072)
    got, report = cli.json(["google-cloud-key-management", key_name, str(kek), "--out-dir", str(out), *args, *keystore])
    assert got == code, report
    assert fragment in report["error"]["message"]
    assert list(out.iterdir()) == []


def test_google_kms_refuses_a_2048_kek(cli, kek_files, out, key_name):
    kek, _ = kek_files(2048)
    code, report = cli.json(["google-cloud-key-management", key_name, str(kek), "--out-dir", str(out)])
    assert code == 3 and "3072 or RSA-4096" in report["error"]["message"]


@pytest.mark.parametrize("key_type", ["EC-NISTP384"])
def test_azure_byok_from_the_keystore(cli, kek_files, keystore, out, key_name, key_type):
    kek, private = kek_files(4096)
    code, report = cli.json(["microsoft-azure", key_name, str(kek), "--azure-kek", KID, "-k", key_type,
                             "--out-dir", str(out), *keystore])
    assert code == 0, report
    package = json.loads((out / f"KeyTransferPackage-{key_name}.byok").read_text(encoding="utf-8"))
    assert set(package) == {"schema_version", "header", "ciphertext", "generator"}
    assert package["schema_version"] == "1.0.0"
    assert package["header"] == {"kid": KID, "alg": "dir", "enc": "CKM_RSA_AES_KEY_WRAP"}
    assert re.fullmatch(r"[A-Za-z0-9_-]+", package["ciphertext"]), "base64url without padding"
    assert package["generator"].startswith("cssadmin ") and "software keystore" in package["generator"]
    blob = base64.urlsafe_b64decode(package["ciphertext"] + "=" * (-len(package["ciphertext"]) % 4))
    check_private_key(unwrap.rsa_aes_unwrap(private, blob, 512, "sha1"), out / f"{key_name}-public.pem")
    assert f"--byok-file KeyTransferPackage-{key_name}.byok" in report["next_step"]
    if key_type.startswith("EC"):
        assert "--kty EC --curve P-" in report["next_step"]


def test_azure_ec_p256_needs_a_3072_kek(cli, kek_files, keystore, out, key_name):
    kek2048, _ = kek_files(2048)
    base = ["microsoft-azure", key_name, "--azure-kek", KID, "-k", "EC-NISTP256", "--out-dir", str(out), *keystore]
    code, report = cli.json(base[:2] + [str(kek2048)] + base[2:])
    assert code == 4 and report["error"]["code"] == "KEK_TOO_WEAK"
    assert "needs 128" in report["error"]["message"] and "3072" in f"{report['error']['message']} {report['error']['remedy']}"
    code, report = cli.json(base[:2] + [str(kek2048)] + base[2:] + ["--allow-weaker-kek"])
    assert code == 0, report
    assert report["wrapping_key"]["allow_weaker_kek"] is True
    kek3072, _ = kek_files(3072)
    code, report = cli.json(base[:2] + [str(kek3072)] + base[2:] + ["--force"])
    assert code == 0, report
    assert report["wrapping_key"]["allow_weaker_kek"] is False and report["key"]["created"] is False


@pytest.mark.parametrize("kid", [
    "http://contoso-vault.vault.azure.net/keys/KEK-1/0123456789abcdef0123456789abcdef",
    "https://contoso-vault.vault.azure.net/keys/KEK-1/0123456789abcdef",
    "https://contoso-vault.vault.azure.net/keys/../secrets/0123456789abcdef0123456789abcdef",
    "https://contoso-vault.vault.azure.net/keys/KEK-1/0123456789abcdef0123456789abcdef/../x",
    "https://contoso-vault.evil.example/keys/KEK-1/0123456789abcdef0123456789abcdef",
    "https://contoso-vault.vault.azure.net.evil.example/keys/KEK-1/0123456789abcdef0123456789abcdef",
    "https://contoso-vault.vault.azure.net:8443/keys/KEK-1/0123456789abcdef0123456789abcdef",
    "https://contoso-vault.vault.azure.net/keys/KEK-1/0123456789abcdef0123456789abcdef?api-version=7.4",
    "https://contoso-vault.vault.azure.net/keys/KEK_1/0123456789abcdef0123456789abcdef",
    "",
])
def test_azure_malformed_kids(cli, kek_files, out, key_name, kid):
    kek, _ = kek_files(4096)
    code, report = cli.json(["microsoft-azure", key_name, str(kek), "--azure-kek", kid, "--out-dir", str(out)])
    assert code == 2 and report["error"]["code"] == "BAD_AZURE_KID"
    assert "/keys/<name>/<32-hex version>" in report["error"]["message"]


@pytest.mark.parametrize("kid", [
    "https://contoso-hsm.managedhsm.azure.net/keys/KEK-1/0123456789abcdef0123456789abcdef",
    "https://contoso-vault.vault.azure.cn/keys/KEK-1/0123456789abcdef0123456789abcdef",
    "https://contoso-vault.vault.usgovcloudapi.net/keys/KEK-1/0123456789abcdef0123456789abcdef",
])
def test_azure_sovereign_and_managed_hsm_kids(cli, kek_files, keystore, out, key_name, kid):
    kek, _ = kek_files(4096)
    code, report = cli.json(["microsoft-azure", key_name, str(kek), "--azure-kek", kid, "--out-dir", str(out),
                             *keystore])
    assert code == 0, report
    if "managedhsm" in kid:
        assert "--hsm-name contoso-hsm" in report["next_step"]


def test_azure_needs_a_kid(cli, kek_files, out, key_name):
    kek, _ = kek_files(4096)
    code, report = cli.json(["microsoft-azure", key_name, str(kek), "--out-dir", str(out)])
    assert code == 2 and "--azure-kek" in report["error"]["message"]


def test_azure_refuses_aes(cli, kek_files, out, key_name):
    kek, _ = kek_files(4096)
    code, report = cli.json(["microsoft-azure", key_name, str(kek), "-a", KID, "-k", "AES-256", "--out-dir", str(out)])
    assert code == 4 and "RSA-2048" in report["error"]["message"]


@pytest.mark.parametrize("key_type", ["RSA-2048", "EC-NISTP521"])
@pytest.mark.parametrize("algorithm, digest", [("RSA_AES_KEY_WRAP_SHA_256", "sha256")])
def test_aws_asymmetric_keystore_reexport(cli, kek_files, keystore, out, key_name, key_type, algorithm, digest):
    kek, private = kek_files(4096)
    recovered = []
    for force in ([], ["--force"]):
        code, report = cli.json(["aws", key_name, str(kek), algorithm, "-k", key_type, "--out-dir", str(out),
                                 *keystore, *force])
        assert code == 0, report
        plaintext = unwrap.rsa_aes_unwrap(private, (out / f"{key_name}-wrapped").read_bytes(), 512, digest)
        assert unwrap.der_covers_whole_buffer(plaintext)
        recovered.append(unwrap.pkcs8_public_pem(plaintext))
        assert recovered[-1] == (out / f"{key_name}-public.pem").read_bytes()
    assert recovered[0] == recovered[1], "a re-export carries the same private key"
    assert "-----BEGIN PUBLIC KEY-----" in recovered[0].decode()


@pytest.mark.parametrize("args, digest, length", [
    (["aws", "RSAES_OAEP_SHA_256"], "sha256", 32),
    (["aws", "RSAES_OAEP_SHA_1"], "sha1", 32),
    (["aws", "RSAES_OAEP_SHA_256", "-k", "HMAC-512"], "sha256", 64),
])
def test_keystore_secret_keys_reexport_the_same_bytes(cli, kek_files, keystore, out, key_name, args, digest, length):
    kek, private = kek_files(4096)
    provider, algorithm, *extra = args
    recovered = []
    for force in ([], ["--force"]):
        code, report = cli.json([provider, key_name, str(kek), algorithm, *extra, "--out-dir", str(out),
                                 *keystore, *force])
        assert code == 0, report
        recovered.append(unwrap.oaep_decrypt(private, (out / f"{key_name}-wrapped").read_bytes(), digest))
    assert len(recovered[0]) == length and recovered[0] == recovered[1]


def test_aws_ec_under_plain_oaep_when_it_fits(cli, kek_files, keystore, out, key_name):
    kek, private = kek_files(4096)
    code, report = cli.json(["aws", key_name, str(kek), "RSAES_OAEP_SHA_256", "-k", "EC-NISTP256",
                             "--out-dir", str(out), *keystore])
    assert code == 0, report
    plaintext = unwrap.oaep_decrypt(private, (out / f"{key_name}-wrapped").read_bytes(), "sha256")
    assert unwrap.der_covers_whole_buffer(plaintext)


def test_aws_refuses_rsa_targets_under_plain_oaep(cli, kek_files, out, key_name):
    kek, _ = kek_files(4096)
    code, report = cli.json(["aws", key_name, str(kek), "RSAES_OAEP_SHA_256", "-k", "RSA-2048", "--out-dir", str(out)])
    assert code == 4 and "RSA_AES_KEY_WRAP_SHA_256" in report["error"]["message"]


def test_aws_p521_does_not_fit_oaep_under_rsa_2048(cli, kek_files, out, key_name):
    kek, _ = kek_files(2048)
    code, report = cli.json(["aws", key_name, str(kek), "RSAES_OAEP_SHA_256", "-k", "EC-NISTP521",
                             "--allow-weaker-kek", "--out-dir", str(out)])
    assert code == 4 and "does not fit" in report["error"]["message"]


# --- tokens -----------------------------------------------------------------------------------

@pytest.mark.token
def test_softhsm_exports_aes_256_to_google_kms(cli, softhsm, pin_file, kek_files, out, key_name):
    kek, private = kek_files(4096)
    code, report = cli.json(["google-cloud-key-management", key_name, str(kek), "-k", "AES-256",
                             "--out-dir", str(out), *softhsm.cli_args(pin_file)], token=softhsm)
    assert code == 0, report
    assert report["key"]["protection"] == "hsm"
    plaintext = unwrap.rsa_aes_unwrap(private, (out / f"{key_name}-wrapped.bin").read_bytes(), 512, "sha1")
    assert hashlib.sha256(plaintext).digest() == softhsm.digest(key_name)


@pytest.mark.token
@pytest.mark.parametrize("provider, key_type", [
    ("google-cloud-key-management", "RSA-2048"), ("google-cloud-key-management", "EC-NISTP256"),
    ("google-cloud-key-management", "EC-NISTP384"), ("microsoft-azure", "EC-SECP256K1"),
    ("microsoft-azure", "EC-NISTP521"), ("microsoft-azure", "RSA-3072"),
])
def test_softhsm_is_refused_for_private_keys_by_the_self_test(cli, softhsm, pin_file, kek_files, out, key_name,
                                                             provider, key_type):
    kek, _ = kek_files(4096)
    extra = ["--azure-kek", KID] if provider == "microsoft-azure" else []
    code, report = cli.json([provider, key_name, str(kek), "-k", key_type, "--out-dir", str(out), *extra,
                             *softhsm.cli_args(pin_file)], token=softhsm)
    assert code == 5 and report["error"]["code"] == "SELF_TEST_FAILED"
    message = f"{report['error']['message']} ({report['error']['remedy']})"
    assert "CKM_AES_KEY_WRAP_PAD" in message and "zero-pads" in message
    assert "RFC 5649" in message and "--keystore" in message
    assert list(out.iterdir()) == []
    assert softhsm.objects(key_name) == [], "the key made for this run is removed when the self-test refuses"


# --- HMAC keys (raw bytes, as long as the hash output) ---------------------------------------

@pytest.mark.token
@pytest.mark.parametrize("key_type, length", [("HMAC-224", 28), ("HMAC-512", 64)])
def test_aws_hmac_from_softhsm_under_oaep(cli, softhsm, pin_file, kek_files, out, key_name, key_type, length):
    kek, private = kek_files(4096)
    code, report = cli.json(["aws", key_name, str(kek), "RSAES_OAEP_SHA_1", "-k", key_type, "--out-dir", str(out),
                             *softhsm.cli_args(pin_file)], token=softhsm)
    assert code == 0, report
    plaintext = unwrap.oaep_decrypt(private, (out / f"{key_name}-wrapped").read_bytes(), "sha1")
    assert len(plaintext) == length
    assert hashlib.sha256(plaintext).digest() == softhsm.digest(key_name)


@pytest.mark.parametrize("provider, algorithm, digest", [("google-cloud-key-management", None, "sha1")])
def test_hmac_384_through_rsa_aes(cli, kek_files, keystore, out, key_name, provider, algorithm, digest):
    kek, private = kek_files(4096)
    args = [provider, key_name, str(kek)] + ([algorithm] if algorithm else [])
    code, report = cli.json(args + ["-k", "HMAC-384", "--out-dir", str(out), *keystore])
    assert code == 0, report
    name = f"{key_name}-wrapped" + ("" if provider == "aws" else ".bin")
    plaintext = unwrap.rsa_aes_unwrap(private, (out / name).read_bytes(), 512, digest)
    assert len(plaintext) == 48
    if provider == "google-cloud-key-management":
        assert "--algorithm hmac-sha384" in report["next_step"]


def test_hmac_needs_the_4096_bit_kek(cli, kek_files, out, key_name):
    kek, _ = kek_files(3072)
    code, report = cli.json(["aws", key_name, str(kek), "RSAES_OAEP_SHA_256", "-k", "HMAC-256", "--out-dir", str(out)])
    assert code == 4 and "HMAC-256 needs 152" in report["error"]["message"]


def test_azure_takes_no_hmac(cli, kek_files, out, key_name):
    kek, _ = kek_files(4096)
    code, report = cli.json(["microsoft-azure", key_name, str(kek), "-a", KID, "-k", "HMAC-256", "--out-dir", str(out)])
    assert code == 4
