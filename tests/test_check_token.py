"""`cssadmin check-token` on real tokens: every offer self-tested, the token left exactly as it was.

openCryptoki 3.27 passes every RSA-AES row (natively, CKM_RSA_AES_KEY_WRAP) and every OAEP-SHA-256/512
row that PKCS#11 allows (secret keys; an EC private key under plain RSA-OAEP or PKCS#1 v1.5 is
CKR_KEY_NOT_WRAPPABLE by rule). SoftHSM2 2.6.1 fails every private-key RSA-AES row (zero-padding KWP,
or its OAEP SHA-256 before that) and every OAEP-SHA-256 row.
"""
from __future__ import annotations

import pytest

from test_token_exports import CASES

pytestmark = pytest.mark.token

PRIVATE = ("RSA-", "EC-")


def _is_rsa_aes(algorithm: str) -> bool:
    # RSA_AES_KEY_WRAP_*, RSA_OAEP_*_AES_256, CKM_RSA_AES_KEY_WRAP, RSA_OAEP_AES_SHA256 (not RSAES_*)
    return "_AES_" in algorithm


def _is_oaep(algorithm: str, *hashes: str) -> bool:
    return "OAEP" in algorithm and not _is_rsa_aes(algorithm) and any(h in algorithm.replace("_", "") for h in hashes)


def _check(cli, token, pin_file, *extra):
    before = token.object_count()
    code, report = cli.json(["check-token", *token.cli_args(pin_file), *extra], token=token)
    assert code == 0, report
    assert token.object_count() == before, "check-token left objects behind or removed some"
    return report


def test_opencryptoki_327_passes_every_rsa_aes_and_oaep_sha256_row(cli, opencryptoki327, pin_file):
    report = _check(cli, opencryptoki327, pin_file)
    assert report["ok"] is True
    assert report["token"] == {"label": opencryptoki327.label, "manufacturer": "IBM", "model": "Soft",
                               "firmware": "3.0"}
    rows = report["results"]
    assert all(set(row) == {"provider", "key_type", "algorithm", "ok", "mechanism", "reason"} for row in rows)
    # The rows are the whole matrix the export tests run (and oci and hashicorp-vault besides).
    offered = {(r["provider"], r["key_type"], r["algorithm"]) for r in rows}
    assert {(c[0], c[1], c[2]) for c in CASES} <= offered
    assert {r["provider"] for r in rows} >= {"oci", "hashicorp-vault"}
    for row in rows:
        if _is_rsa_aes(row["algorithm"]):
            assert row["ok"] and row["mechanism"] == "CKM_RSA_AES_KEY_WRAP" and row["reason"] is None, row
        elif row["key_type"].startswith("EC-"):
            # PKCS#11 defines the RSA mechanisms' C_WrapKey for secret keys: refused, with the reason.
            assert not row["ok"] and "KeyNotWrappable" in row["reason"], row
        elif _is_oaep(row["algorithm"], "SHA256", "SHA512", "SHA1"):
            assert row["ok"] and row["mechanism"] == "CKM_RSA_PKCS_OAEP", row
        else:
            assert row["algorithm"] == "RSAES_PKCS1_V1_5" and row["ok"] and row["mechanism"] == "CKM_RSA_PKCS", row
    assert any(_is_oaep(r["algorithm"], "SHA512") for r in rows)


def test_opencryptoki_327_two_step_path_when_native_is_not_offered(cli, opencryptoki327, pin_file):
    before = opencryptoki327.object_count()
    code, report = cli.json(["check-token", *opencryptoki327.cli_args(pin_file)], token=opencryptoki327,
                            env={"CSSADMIN_TEST_RSA_AES_PATH": "two-step"})
    assert code == 0 and opencryptoki327.object_count() == before
    for row in report["results"]:
        if _is_rsa_aes(row["algorithm"]):
            assert row["ok"] and row["mechanism"] == "CKM_AES_KEY_WRAP_KWP+CKM_RSA_PKCS_OAEP", row


def test_softhsm_261_refuses_private_key_rsa_aes_and_oaep_sha256(cli, softhsm, pin_file):
    rows = _check(cli, softhsm, pin_file)["results"]
    for row in rows:
        sha256 = any(h in row["algorithm"].replace("_", "") for h in ("SHA256", "SHA512"))
        if row["key_type"].startswith(PRIVATE) and _is_rsa_aes(row["algorithm"]):
            assert not row["ok"], row
            if not sha256:
                assert "CKM_AES_KEY_WRAP_PAD zero-pads: PKCS#8 would carry trailing bytes" in row["reason"], row
        if "OAEP" in row["algorithm"] and sha256:
            assert not row["ok"] and "ArgumentsBad" in row["reason"], row
    ok = {(r["provider"], r["key_type"], r["algorithm"]) for r in rows if r["ok"]}
    assert ("aws", "AES-256", "RSA_AES_KEY_WRAP_SHA_1") in ok and ("salesforce", "AES-256", "RSAES_OAEP_SHA_1") in ok


def test_text_table_and_no_progress_off_a_terminal(cli, softhsm, pin_file):
    result = cli.run(["check-token", *softhsm.cli_args(pin_file)], token=softhsm)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"token '{softhsm.label}'") and "exports possible" in lines[0]
    assert lines[1].split()[:4] == ["provider", "key", "type", "algorithm"]
    assert any(line.split()[:5] == ["aws", "AES-256", "RSA_AES_KEY_WRAP_SHA_1", "ok",
                                    "CKM_AES_KEY_WRAP_PAD+CKM_RSA_PKCS_OAEP"] for line in lines)
    assert result.stderr == ""


def test_unusable_pin_is_exit_5(cli, softhsm, pin_file):
    code, report = cli.json(["check-token", "--token", softhsm.label, "--pin-file", pin_file("0000")], token=softhsm)
    assert code == 5 and report["error"]["code"] == "LOGIN_FAILED", report


def test_check_token_takes_no_arguments_and_no_keystore(cli, tmp_path):
    code, report = cli.json(["check-token", "extra"])
    assert code == 2, report
    code, report = cli.json(["check-token", "--keystore", str(tmp_path)])
    assert code == 2 and "--keystore" in report["error"]["message"], report
