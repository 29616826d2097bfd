"""Issue 13's contract at the core: an interrupt anywhere leaves no key and no file; the audit log and
the destination are checked before a key is made; keystore passphrases follow their rules."""
from __future__ import annotations

import json
import os
import signal

import pytest

from cssadmin import output, removable
from cssadmin.custody import keystore_format
from cssadmin.custody.software import SoftwareKeystore
from cssadmin.errors import CustodyError, OutputError
from cssadmin.keytypes import KEY_TYPES
from conftest import stopped_at
from keks import rsa_key, write_spki

INTERRUPT_POINTS = ["trusted", "policy-decided", "key-ready", "wrapped", "evidence-made", "writing", "staged",
                    "renamed-one", "renamed", "verified", "recording"]


@pytest.fixture
def kek(tmp_path):
    return write_spki(rsa_key(4096), tmp_path / "WrappingKey.bin")


@pytest.mark.token
@pytest.mark.parametrize("step", INTERRUPT_POINTS)
def test_sigint_anywhere_before_the_audit_record_leaves_no_key_and_no_file(cli, softhsm, pin_file, tmp_path, kek,
                                                                         key_name, step):
    out = tmp_path / "out"
    out.mkdir()
    args = ["aws", key_name, str(kek), "RSAES_OAEP_SHA_1", "--out-dir", str(out), *softhsm.cli_args(pin_file)]
    status, stdout = stopped_at(cli, args, step, signal.SIGINT, token=softhsm)
    assert status == 130
    error = json.loads(stdout)["error"]
    assert (error["exit"], error["code"]) == (130, "INTERRUPTED")
    assert softhsm.objects(key_name) == [], f"an interrupt at {step} left the new key on the token"
    assert list(out.iterdir()) == [], f"an interrupt at {step} left files behind"
    assert not (cli.home / "state/cssadmin/audit.jsonl").exists() or \
        (cli.home / "state/cssadmin/audit.jsonl").read_text() == ""


@pytest.mark.token
@pytest.mark.parametrize("log", ["dev-null", "garbage-last-line"])
def test_an_unusable_audit_log_fails_before_a_key_is_made(cli, softhsm, pin_file, tmp_path, kek, key_name, log):
    path = tmp_path / "audit.jsonl"
    if log == "dev-null":
        path = "/dev/null"
    else:
        path.write_text('{"seq": 1}\nthis is not a record\n')
    code, report = cli.json(["aws", key_name, str(kek), "RSAES_OAEP_SHA_1", "--out-dir", str(tmp_path),
                             "--audit-log", str(path), *softhsm.cli_args(pin_file)], token=softhsm)
    assert code == 7 and report["error"]["code"] in ("AUDIT_NOT_A_FILE", "AUDIT_CHAIN_BROKEN"), report
    assert softhsm.objects(key_name) == []
    assert not any(tmp_path.glob(f"{key_name}*"))


def test_the_destination_is_checked_again_just_before_the_first_file_is_placed(monkeypatch, tmp_path):
    """--require-removable: a mount swapped in after the pre-flight is caught on the directory's descriptor."""
    seen = []

    def not_removable_fd(descriptor, path_text, **kwargs):
        seen.append(os.fstat(descriptor).st_ino)
        return removable.Detection(False, f"{path_text} is on a tmpfs now")

    def not_removable_path(path, **kwargs):   # Windows cannot open a directory: asked by path there
        seen.append(os.stat(path).st_ino)
        return removable.Detection(False, f"{path} is on a tmpfs now")
    monkeypatch.setattr(removable, "detect_fd", not_removable_fd)
    monkeypatch.setattr(removable, "detect", not_removable_path)
    with pytest.raises(OutputError) as caught:
        output.place_all(tmp_path, [("k-wrapped", b"blob"), ("k-manifest.json", b"{}")], False, require_removable=True)
    assert caught.value.code == "NOT_REMOVABLE" and "checked again" in caught.value.message
    assert seen == [os.stat(tmp_path).st_ino]
    assert list(tmp_path.iterdir()) == []


# --- keystore passphrases --------------------------------------------------------------------
AES = KEY_TYPES["AES-256"]


def keystore(directory, passphrase: str) -> SoftwareKeystore:
    return SoftwareKeystore(str(directory), lambda confirm=False: passphrase, scrypt_n=2 ** 4)


def test_a_short_passphrase_is_refused_for_a_new_key(cli, tmp_path, kek):
    secret = tmp_path / "passphrase"
    secret.write_text("12345")
    secret.chmod(0o600)
    code, report = cli.json(["aws", "k1", str(kek), "RSAES_OAEP_SHA_1", "--out-dir", str(tmp_path), "--keystore",
                             str(tmp_path / "ks"), "--passphrase-file", str(secret)])
    assert (code, report["error"]["code"]) == (5, "PASSPHRASE_TOO_SHORT"), report
    assert "at least 12 characters" in report["error"]["message"] and "12345" not in json.dumps(report)
    assert [p for p in (tmp_path / "ks").iterdir() if not p.name.startswith(".")] == []


def test_a_new_key_must_use_the_passphrase_of_the_directory(tmp_path):
    keystore(tmp_path, "the usual passphrase").get_or_create("first", AES, "aws")
    with pytest.raises(CustodyError) as caught:
        keystore(tmp_path, "the usual passphrasf").get_or_create("second", AES, "aws")
    assert caught.value.code == "PASSPHRASE_MISMATCH" and "first.cssadmin-key" in caught.value.message
    assert not (tmp_path / "second.cssadmin-key").exists()
    keystore(tmp_path, "the usual passphrase").get_or_create("second", AES, "aws")


def test_new_files_cost_at_least_2_to_the_17_and_older_files_still_open(tmp_path):
    assert keystore_format.SCRYPT_N >= 2 ** 17
    old = keystore_format.seal("old", AES, b"\x07" * 32, "the usual passphrase", 2 ** 16, None,
                               "2025-01-01T00:00:00+00:00")
    (tmp_path / "old.cssadmin-key").write_bytes(old)
    (tmp_path / "old.cssadmin-key").chmod(0o600)
    tmp_path.chmod(0o700)
    key = SoftwareKeystore(str(tmp_path), lambda confirm=False: "the usual passphrase").get_or_create("old", AES, "aws")
    assert key.created is False and key.handle.plaintext == b"\x07" * 32
