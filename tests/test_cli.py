"""The command line's contract without a token: usage, refusals before custody, JSON shape, help."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from keks import ec_key, rsa_key, spki_der, write_spki


@pytest.fixture
def kek4096(tmp_path):
    return write_spki(rsa_key(4096), tmp_path / "WrappingKey.bin")


def failure(cli, args, **kwargs) -> tuple[int, dict]:
    code, report = cli.json(args, **kwargs)
    assert report["ok"] is False
    assert set(report) == {"ok", "error"}
    assert set(report["error"]) == {"code", "exit", "message", "remedy"}
    assert report["error"]["exit"] == code
    assert "\n" not in report["error"]["message"]
    return code, report["error"]


def test_help_documents_exit_codes_and_the_seed_usage(cli):
    result = cli.run(["--help"])
    assert result.returncode == 0
    assert "provider keyName wrapKey [wrapAlg]" in result.stdout
    assert "[-O CARDSET | -S SOFTCARD | -M]" in result.stdout
    for code in range(9):
        assert f"\n  {code}  " in result.stdout
    assert "verification failed" in result.stdout
    for option in ("--signing-key", "--signer-fingerprint", "--signer-key", "--expect-head", "signing-key LABEL"):
        assert option in result.stdout


def test_readme_documents_every_exit_code_of_the_help():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for code in (*range(9), 130):
        assert f"\n| {code} | " in readme


def test_version(cli):
    result = cli.run(["--version"])
    assert result.returncode == 0
    assert result.stdout.startswith("cssadmin 0.")
    for fact in ("python:", "cryptography:", "python-pkcs11:", "openssl:"):
        assert fact in result.stdout
    if cli.frozen:
        assert "commit:" in result.stdout and "build date:" in result.stdout


@pytest.mark.parametrize("args, code_name", [
    (["nosuchcloud", "k", "f", "RSAES_OAEP_SHA_1"], "UNKNOWN_PROVIDER"),
    (["aws", "k", "WrappingKey.bin"], "WRAP_ALG_MISSING"),
    (["aws", "k", "WrappingKey.bin", "RSAES_OAEP_SHA_3"], "WRAP_ALG_UNKNOWN"),
    (["aws", "k"], "USAGE"),
    (["aws", "k", "WrappingKey.bin", "RSAES_OAEP_SHA_1", "extra"], "USAGE"),
    (["aws", "bad/name", "WrappingKey.bin", "RSAES_OAEP_SHA_1"], "BAD_KEY_NAME"),
    (["google-cloud-key-management", "k", "WrappingKey.bin", "RSAES_OAEP_SHA_1"], "USAGE"),
])
def test_usage_errors_exit_2(cli, tmp_path, kek4096, args, code_name):
    code, error = failure(cli, args + ["--out-dir", str(tmp_path / "out")], cwd=tmp_path)
    assert code == 2
    assert error["code"] == code_name


def test_missing_wrap_alg_lists_the_allowed_values(cli, tmp_path, kek4096):
    _, error = failure(cli, ["aws", "k", str(kek4096)])
    for name in ("RSAES_OAEP_SHA_256", "RSAES_OAEP_SHA_1", "RSAES_PKCS1_V1_5"):
        assert name in error["message"]


@pytest.mark.parametrize("flag", ["--pin", "--pin=1234", "-p", "--passphrase"])
def test_no_pin_is_accepted_on_the_command_line(cli, tmp_path, kek4096, flag):
    code, error = failure(cli, ["aws", "k", str(kek4096), "RSAES_OAEP_SHA_1", flag, "1234"])
    assert code == 2 and "unrecognized arguments" in error["message"]


def test_options_after_the_positionals_and_after_double_dash(cli, tmp_path, kek4096):
    # The failure is the intended one (no module), which shows the arguments were all understood.
    code, error = failure(cli, ["--out-dir", str(tmp_path), "--", "aws", "k", str(kek4096), "RSAES_OAEP_SHA_1"],
                          env={"CSSADMIN_PKCS11_MODULE": ""})
    assert (code, error["code"]) == (5, "MODULE_NOT_GIVEN")
    code, error = failure(cli, ["aws", "k", str(kek4096), "RSAES_OAEP_SHA_1", "--out-dir", str(tmp_path),
                                "--pkcs11-module", "/nonexistent.so"])
    assert (code, error["code"]) == (5, "MODULE_NOT_FOUND")


def test_a_dash_name_after_double_dash_is_a_positional(cli, tmp_path, kek4096):
    code, error = failure(cli, ["--", "aws", "-k", str(kek4096), "RSAES_OAEP_SHA_1"])
    assert (code, error["code"]) == (2, "BAD_KEY_NAME")


def test_ec_wrapping_key_is_refused(cli, tmp_path):
    path = write_spki(ec_key(), tmp_path / "ec.der")
    code, error = failure(cli, ["aws", "k", str(path), "RSAES_OAEP_SHA_1", "--out-dir", str(tmp_path)])
    assert code == 3 and "RSA" in error["message"]


def test_rsa_1024_wrapping_key_is_refused(cli, tmp_path):
    path = write_spki(rsa_key(1024), tmp_path / "small.der")
    code, error = failure(cli, ["aws", "k", str(path), "RSAES_OAEP_SHA_1", "--out-dir", str(tmp_path)])
    assert code == 3 and "1024" in error["message"]


@pytest.mark.parametrize("bits", [2048, 3072])
def test_aws_refuses_a_kek_weaker_than_aes_256_needs(cli, tmp_path, bits):
    path = write_spki(rsa_key(bits), tmp_path / "WrappingKey.bin")
    out = tmp_path / "out"
    out.mkdir()
    code, error = failure(cli, ["aws", "k", str(path), "RSAES_OAEP_SHA_1", "--out-dir", str(out)])
    assert code == 4 and error["code"] == "KEK_TOO_WEAK"
    assert "RSA_4096" in error["remedy"] and "--allow-weaker-kek" in error["remedy"]
    assert list(out.iterdir()) == []


def test_wrong_fingerprint_is_refused(cli, tmp_path, kek4096):
    code, error = failure(cli, ["aws", "k", str(kek4096), "RSAES_OAEP_SHA_1", "--out-dir", str(tmp_path),
                                "--expect-fingerprint", "00" * 32])
    assert code == 3 and error["code"] == "FINGERPRINT_MISMATCH"
    assert hashlib.sha256(spki_der(rsa_key(4096))).hexdigest() in error["message"].lower().replace(":", "")


def test_a_known_algorithm_the_provider_does_not_allow_is_policy(cli, tmp_path, kek4096):
    code, error = failure(cli, ["google-compute-engine", "k", str(kek4096), "RSAES_OAEP_SHA_256"])
    assert code == 4 and "RSAES_OAEP_SHA_1" in error["message"]


def test_unsupported_key_type_lists_the_allowed(cli, tmp_path, kek4096):
    code, error = failure(cli, ["salesforce", "k", str(kek4096), "RSAES_OAEP_SHA_1", "-k", "RSA-2048"])
    assert code == 4 and "AES-256" in error["message"]


def test_missing_out_dir_fails_before_anything(cli, tmp_path, kek4096):
    code, error = failure(cli, ["aws", "k", str(kek4096), "RSAES_OAEP_SHA_1", "--out-dir", str(tmp_path / "nope")])
    assert code == 7 and error["code"] == "DESTINATION_MISSING"


def test_text_mode_error_is_one_line_on_stderr(cli, tmp_path):
    result = cli.run(["aws", "k", str(tmp_path / "missing.bin"), "RSAES_OAEP_SHA_1"])
    assert result.returncode == 3
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("cssadmin: error: ")


def test_json_failure_prints_only_one_object(cli, tmp_path):
    result = cli.run(["aws", "k", str(tmp_path / "missing.bin"), "RSAES_OAEP_SHA_1", "--json"])
    assert result.returncode == 3
    assert json.loads(result.stdout)["error"]["exit"] == 3
    assert result.stdout.count("\n") == 1


def test_a_pin_typed_on_the_command_line_is_not_echoed(cli, tmp_path, kek4096):
    code, error = failure(cli, ["aws", "k", str(kek4096), "RSAES_OAEP_SHA_1", "--pin", "271828"])
    assert code == 2 and "271828" not in error["message"] and "--pin" in error["message"]
    result = cli.run(["aws", "k", str(kek4096), "RSAES_OAEP_SHA_1", "--pin=271828"])
    assert result.returncode == 2 and "271828" not in result.stderr + result.stdout


def test_json_version(cli):
    code, report = cli.json(["--version"])
    assert code == 0 and report["ok"] is True
    assert report["version"].startswith("0.") and report["cryptography"] and report["python-pkcs11"]


@pytest.mark.parametrize("args, flag", [
    (["aws", "k", "KEK", "RSAES_OAEP_SHA_1", "--csek-uri", "https://x"], "--csek-uri"),
    (["aws", "k", "KEK", "RSAES_OAEP_SHA_1", "-a", "https://v.vault.azure.net/keys/k/" + "0" * 32], "--azure-kek"),
    (["salesforce", "k", "KEK", "RSAES_OAEP_SHA_1", "--import-method", "RSA_OAEP_4096_SHA256"], "--import-method"),
    (["aws", "k", "KEK", "RSAES_OAEP_SHA_1", "--trust-unpinned"], "--trust-unpinned"),
    (["google-cloud-key-management", "k", "KEK", "--ca-bundle", "ca.pem"], "--ca-bundle"),
])
def test_options_of_another_provider_are_refused_not_ignored(cli, tmp_path, kek4096, args, flag):
    args = [str(kek4096) if arg == "KEK" else arg for arg in args]
    code, error = failure(cli, args)
    assert code == 2 and error["code"] == "OPTION_NOT_APPLICABLE" and flag in error["message"]


@pytest.mark.parametrize("bits", [3072, 4096])
def test_gce_uses_only_googles_rsa_2048_certificate(cli, tmp_path, bits):
    import certs
    from datetime import datetime, timedelta, timezone
    now = datetime.now(timezone.utc)
    key = certs.rsa_key(bits)
    path = certs.write_pem(tmp_path / "c.pem", certs.make_cert("c", key, not_before=now - timedelta(days=1),
                                                                not_after=now + timedelta(days=9)))
    code, error = failure(cli, ["google-compute-engine", "k", str(path), "RSAES_OAEP_SHA_1", "--trust-unpinned"])
    assert code == 3 and "RSA-2048" in error["message"]


def test_aws_refuses_a_size_aws_does_not_issue(cli, tmp_path):
    path = write_spki(rsa_key(2560), tmp_path / "WrappingKey.bin")
    code, error = failure(cli, ["aws", "k", str(path), "RSAES_OAEP_SHA_1", "--allow-weaker-kek"])
    assert code == 3 and "RSA_4096" in f"{error['message']} {error['remedy']}"


def test_an_unusable_audit_log_fails_before_anything(cli, tmp_path, kek4096):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    out = tmp_path / "out"
    out.mkdir()
    code, error = failure(cli, ["aws", "k", str(kek4096), "RSAES_OAEP_SHA_1", "--out-dir", str(out),
                                "--audit-log", str(blocker / "audit.jsonl")])
    assert code == 7 and "audit" in error["message"]
    assert list(out.iterdir()) == []
