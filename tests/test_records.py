"""The receiving side's checks through the CLI: manifest and audit log, and removable media refusal."""
from __future__ import annotations

import hashlib
import json
from pathlib import PurePath

import pytest

from conftest import default_audit_log
from keks import rsa_key, write_spki


@pytest.fixture
def exported(cli, tmp_path, pin_file, key_name):
    """One Azure export through the software keystore, with its manifest and audit record."""
    kek = write_spki(rsa_key(4096), tmp_path / "KEK.pem", pem=True)
    out = tmp_path / "out"
    out.mkdir()
    audit_log = tmp_path / "audit.jsonl"
    args = ["microsoft-azure", key_name, str(kek), "-a",
            "https://vault1.vault.azure.net/keys/KEK/0123456789abcdef0123456789abcdef", "-k", "EC-NISTP256",
            "--keystore", str(tmp_path / "ks"), "--passphrase-file", pin_file("keystore passphrase"),
            "--out-dir", str(out), "--audit-log", str(audit_log)]
    code, report = cli.json(args)
    assert code == 0, report
    return out, audit_log, report, args


def test_manifest_lists_every_output_and_verifies(cli, exported, key_name):
    out, _, report, _ = exported
    manifest_path = out / f"{key_name}-manifest.json"
    manifest = json.loads(manifest_path.read_text())
    listed = {entry["name"]: entry for entry in manifest["files"]}
    assert set(listed) == {f"KeyTransferPackage-{key_name}.byok", f"{key_name}-public.pem"}
    assert report["manifest"]["path"] == str(manifest_path)
    assert report["manifest"]["sha256"] == hashlib.sha256(manifest_path.read_bytes()).hexdigest()
    assert len(report["outputs"]) == 2
    for output in report["outputs"]:
        name = PurePath(output["path"]).name
        assert (listed[name]["sha256"], listed[name]["bytes"]) == (output["sha256"], output["bytes"])
    assert manifest["provider"] == "microsoft-azure" and manifest["key_type"] == "EC-NISTP256"
    assert manifest["wrapping_key_sha256_spki"] == report["wrapping_key"]["sha256_spki"]
    code, result = cli.json(["verify-manifest", str(manifest_path)])
    assert code == 0 and result["ok"] is True and len(result["files"]) == 2


def test_a_one_byte_change_to_an_output_fails_the_manifest(cli, exported, key_name):
    out, _, _, _ = exported
    target = out / f"{key_name}-public.pem"
    data = bytearray(target.read_bytes())
    data[30] ^= 0x01
    target.write_bytes(bytes(data))
    code, result = cli.json(["verify-manifest", str(out / f"{key_name}-manifest.json")])
    assert code == 8 and f"{key_name}-public.pem" in result["error"]["message"]
    assert result["error"]["code"] == "MANIFEST_SHA256_MISMATCH"


def test_audit_chain_verifies_and_a_one_byte_change_is_found(cli, exported, key_name, tmp_path):
    out, audit_log, _, args = exported
    code, report = cli.json(args + ["--force"])
    assert code == 0, report
    lines = audit_log.read_bytes().splitlines(keepends=True)
    assert len(lines) == 2
    records = [json.loads(line) for line in lines]
    assert [r["seq"] for r in records] == [1, 2]
    assert records[0]["key"]["name"] == key_name and records[1]["key"]["created"] is False
    assert "passphrase" not in audit_log.read_text() and "keystore passphrase" not in audit_log.read_text()
    code, result = cli.json(["verify-audit", str(audit_log)])
    assert code == 0 and result["records"] == 2
    position = lines[0].index(b'"EC-NISTP256"') + len(b'"EC-NISTP')
    tampered = lines[0][:position] + b"3" + lines[0][position + 1:]   # one byte: P256 -> P356
    assert len(tampered) == len(lines[0]) and tampered != lines[0]
    audit_log.write_bytes(tampered + lines[1])
    code, result = cli.json(["verify-audit", str(audit_log)])
    assert code == 8 and "line 1" in result["error"]["message"]   # the record's own sha256 finds it
    assert result["error"]["code"] == "AUDIT_RECORD_CHANGED"


def test_default_audit_log_is_in_the_state_home(cli, tmp_path, pin_file, key_name):
    kek = write_spki(rsa_key(4096), tmp_path / "job.pem", pem=True)
    code, report = cli.json(["google-cloud-key-management", key_name, str(kek), "-k", "AES-256",
                             "--keystore", str(tmp_path / "ks"), "--passphrase-file", pin_file("a keystore passphrase"),
                             "--out-dir", str(tmp_path)])
    assert code == 0, report
    log = default_audit_log(cli.home)
    assert json.loads(log.read_text())["key"]["name"] == key_name
    code, report = cli.json(["google-cloud-key-management", key_name, str(kek), "-k", "AES-256", "--force",
                             "--keystore", str(tmp_path / "ks"), "--passphrase-file", pin_file("a keystore passphrase"),
                             "--out-dir", str(tmp_path), "--no-audit"])
    assert code == 0, report
    assert len(log.read_text().splitlines()) == 1


def test_require_removable_refuses_this_machines_disk(cli, tmp_path):
    kek = write_spki(rsa_key(4096), tmp_path / "WrappingKey.bin")
    code, report = cli.json(["aws", "k", str(kek), "RSAES_OAEP_SHA_1", "--out-dir", str(tmp_path),
                             "--require-removable"])
    assert code == 7 and report["error"]["code"] == "NOT_REMOVABLE"
    assert str(tmp_path) in report["error"]["message"]
    assert "removable" in report["error"]["message"]
