"""export-plan: one key, several destinations, placed all or nothing; every blob unwrapped by OpenSSL's CLI."""
from __future__ import annotations

import hashlib
import json
import os
import signal
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

import unwrap
from keks import rsa_key, write_private_pem, write_spki
from conftest import stopped_at, wait_for_pause
from test_crash_safety import popen

PREFIX = b"cssadmin key identifier v1\0"


@pytest.fixture
def keks(tmp_path):
    """Wrapping keys beside the plan: name -> (public path relative to the plan dir, private PEM path)."""
    made = {}

    def make(name: str, bits: int, *, der: bool = False) -> str:
        key = rsa_key(bits)
        public = write_spki(key, tmp_path / f"{name}.{'bin' if der else 'pem'}", pem=not der)
        made[name] = write_private_pem(key, tmp_path / f"{name}-private.pem")
        return public.name
    make.private = made
    return make


def write_plan(tmp_path: Path, key: str, destinations: list[dict], key_type: str | None = "AES-256") -> Path:
    lines = [f'key = "{key}"'] + ([f'key_type = "{key_type}"'] if key_type else [])
    for destination in destinations:
        lines.append("[[destination]]")
        lines += [f"{field} = {json.dumps(value)}" for field, value in destination.items()]
    path = tmp_path / "plan.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def three_destinations(keks, second_algorithm: str) -> list[dict]:
    return [
        {"name": "aws-us-east-1", "provider": "aws", "wrapping_key": keks("use1", 4096, der=True),
         "algorithm": "RSAES_OAEP_SHA_1"},
        {"name": "aws-eu-west-1", "provider": "aws", "wrapping_key": keks("euw1", 4096, der=True),
         "algorithm": second_algorithm},
        {"name": "gcp-europe", "provider": "google-cloud-key-management", "wrapping_key": keks("gcp", 4096)},
    ]


def unwrap_three(out: Path, key_name: str, keks, second_hash: str) -> list[bytes]:
    private = keks.private
    return [
        unwrap.oaep_decrypt(private["use1"], (out / "aws-us-east-1" / f"{key_name}-wrapped").read_bytes(), "sha1"),
        unwrap.rsa_aes_unwrap(private["euw1"], (out / "aws-eu-west-1" / f"{key_name}-wrapped").read_bytes(), 512,
                              second_hash),
        unwrap.rsa_aes_unwrap(private["gcp"], (out / "gcp-europe" / f"{key_name}-wrapped.bin").read_bytes(), 512,
                              "sha1"),
    ]


def check_plan_outputs(cli, out: Path, key_name: str, report: dict, secret: bytes) -> None:
    assert sorted(entry.name for entry in out.iterdir()) == sorted(
        ["aws-us-east-1", "aws-eu-west-1", "gcp-europe", f"{key_name}-plan-manifest.json"])
    expected_id = hashlib.sha256(PREFIX + hashlib.sha256(secret).digest()).hexdigest()
    manifest = json.loads((out / f"{key_name}-plan-manifest.json").read_bytes())
    assert manifest["format"] == "cssadmin-plan-manifest-v1" and manifest["key_name"] == key_name
    assert manifest["key_identifier"] == {"kind": "sha256-prefixed-digestkey", "value": expected_id}
    assert [d["key_identifier"]["value"] for d in manifest["destinations"]] == [expected_id] * 3
    assert expected_id != hashlib.sha256(secret).hexdigest()
    assert report["key_identifier"]["value"] == expected_id
    assert [d["name"] for d in report["destinations"]] == ["aws-us-east-1", "aws-eu-west-1", "gcp-europe"]
    for listed, reported in zip(manifest["destinations"], report["destinations"]):
        directory = out / listed["name"]
        for item in listed["files"]:
            data = (directory / item["name"]).read_bytes()
            assert (len(data), hashlib.sha256(data).hexdigest()) == (item["bytes"], item["sha256"])
        assert {Path(o["path"]).name for o in reported["outputs"]} | {Path(reported["manifest"]["path"]).name} == \
            {item["name"] for item in listed["files"]}
        result = cli.run(["verify-manifest", str(directory / f"{key_name}-manifest.json")])
        assert result.returncode == 0, result.stderr
        assert reported["key"]["name"] == key_name and reported["wrapping_key"]["bits"] == 4096
    # The plan manifest is not an export manifest: verify-manifest points to the destinations' own.
    code, refused = cli.json(["verify-manifest", str(out / f"{key_name}-plan-manifest.json")])
    assert (code, refused["error"]["code"]) == (7, "MANIFEST_IS_A_PLAN")
    assert "<destination>/" in refused["error"]["remedy"]


def test_three_destinations_from_the_keystore(cli, keks, keystore, out, tmp_path, key_name):
    plan = write_plan(tmp_path, key_name, three_destinations(keks, "RSA_AES_KEY_WRAP_SHA_256"))
    audit = tmp_path / "audit.jsonl"
    code, report = cli.json(["export-plan", str(plan), "--out-dir", str(out), "--audit-log", str(audit), *keystore])
    assert code == 0, report
    secrets = unwrap_three(out, key_name, keks, "sha256")
    assert len(secrets[0]) == 32 and secrets.count(secrets[0]) == 3
    check_plan_outputs(cli, out, key_name, report, secrets[0])
    assert [d["algorithm"] for d in report["destinations"]] == [
        "RSAES_OAEP_SHA_1", "RSA_AES_KEY_WRAP_SHA_256", "RSA_OAEP_4096_SHA1_AES_256"]
    assert [d["mechanism"] for d in report["destinations"]] == ["software (cryptography)"] * 3
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [(r["event"], r["provider"], r["algorithm"]) for r in records] == [
        ("export", "aws", "RSAES_OAEP_SHA_1"), ("export", "aws", "RSA_AES_KEY_WRAP_SHA_256"),
        ("export", "google-cloud-key-management", "RSA_OAEP_4096_SHA1_AES_256")]
    assert cli.run(["verify-audit", str(audit)]).returncode == 0
    assert secrets[0].hex() not in audit.read_text()
    # Each destination carries the head its own record makes, in the report and in its manifest.
    for destination, record in zip(report["destinations"], records):
        head = {"path": str(audit), "seq": record["seq"], "sha256": record["sha256"]}
        assert destination["audit"] == head
        manifest = json.loads((out / destination["name"] / f"{key_name}-manifest.json").read_bytes())
        assert manifest["audit_head"] == {"seq": record["seq"], "sha256": record["sha256"]}
        expect = f"{record['seq']}:{record['sha256']}"
        assert cli.run(["verify-audit", str(audit), "--expect-head", expect]).returncode == 0


@pytest.mark.token
def test_three_destinations_from_softhsm_equal_c_digestkey(cli, softhsm, pin_file, keks, out, tmp_path, key_name):
    """SoftHSM2 2.6.1 has OAEP with SHA-1 only, so the second aws destination uses RSA_AES_KEY_WRAP_SHA_1 here
    (the keystore test above covers RSA_AES_KEY_WRAP_SHA_256)."""
    plan = write_plan(tmp_path, key_name, three_destinations(keks, "RSA_AES_KEY_WRAP_SHA_1"))
    code, report = cli.json(["export-plan", str(plan), "--out-dir", str(out), "--no-audit",
                             *softhsm.cli_args(pin_file)], token=softhsm)
    assert code == 0, report
    secrets = unwrap_three(out, key_name, keks, "sha1")
    assert secrets.count(secrets[0]) == 3
    assert hashlib.sha256(secrets[0]).digest() == softhsm.digest(key_name)
    check_plan_outputs(cli, out, key_name, report, secrets[0])
    assert {d["key"]["protection"] for d in report["destinations"]} == {"hsm"}


@pytest.mark.token
def test_one_bad_destination_refuses_the_plan_and_generates_nothing(cli, softhsm, pin_file, keks, out, tmp_path,
                                                                    key_name):
    destinations = three_destinations(keks, "RSA_AES_KEY_WRAP_SHA_1")
    destinations[1]["wrapping_key"] = keks("weak", 2048, der=True)
    plan = write_plan(tmp_path, key_name, destinations)
    code, report = cli.json(["export-plan", str(plan), "--out-dir", str(out), "--no-audit",
                             *softhsm.cli_args(pin_file)], token=softhsm)
    assert code == 4 and report["error"]["code"] == "KEK_TOO_WEAK", report
    assert report["error"]["message"].startswith("destination 'aws-eu-west-1': an RSA-2048 wrapping key")
    assert softhsm.objects(key_name) == []
    assert list(out.iterdir()) == []


def test_key_type_must_suit_every_destination_before_anything_is_loaded(cli, keystore, out, tmp_path, key_name):
    plan = write_plan(tmp_path, key_name, [
        {"name": "vault", "provider": "hashicorp-vault", "wrapping_key": "missing-1.pem"},
        {"name": "oracle", "provider": "oci", "wrapping_key": "missing-2.pem"}], key_type="EC-NISTP256")
    code, report = cli.json(["export-plan", str(plan), "--out-dir", str(out), "--no-audit", *keystore])
    assert code == 4 and report["error"]["code"] == "KEY_TYPE_NOT_ALLOWED", report
    assert report["error"]["message"].startswith("destination 'oracle': oci does not take key type 'EC-NISTP256'")
    assert not (tmp_path / "keystore").exists() and list(out.iterdir()) == []


def test_differing_default_key_types_need_key_type(cli, keks, keystore, out, tmp_path, key_name):
    plan = write_plan(tmp_path, key_name, [
        {"name": "a", "provider": "aws", "wrapping_key": keks("a", 4096), "algorithm": "RSAES_OAEP_SHA_1"},
        {"name": "g", "provider": "google-cloud-key-management", "wrapping_key": keks("g", 4096)}], key_type=None)
    code, report = cli.json(["export-plan", str(plan), "--out-dir", str(out), "--no-audit", *keystore])
    assert code == 2 and report["error"]["code"] == "PLAN_KEY_TYPE_MISSING"
    assert "a: AES-256, g: RSA-2048" in report["error"]["message"]


def test_check_judges_everything_and_touches_nothing(cli, keks, keystore, out, tmp_path, key_name):
    plan = write_plan(tmp_path, key_name, three_destinations(keks, "RSA_AES_KEY_WRAP_SHA_256"))
    audit = tmp_path / "audit.jsonl"
    code, report = cli.json(["export-plan", str(plan), "--check", "--out-dir", str(out), "--audit-log", str(audit),
                             *keystore])
    assert code == 0, report
    assert report["check"] is True and [d["name"] for d in report["destinations"]] == [
        "aws-us-east-1", "aws-eu-west-1", "gcp-europe"]
    assert report["destinations"][2]["algorithm"] == "RSA_OAEP_4096_SHA1_AES_256"
    assert len(report["self_tests"]) == 3 and report["signing_key"] is None
    assert [Path(o).name for o in report["destinations"][0]["outputs"]] == [f"{key_name}-wrapped",
                                                                           f"{key_name}-manifest.json"]
    assert not (tmp_path / "keystore").exists() and list(out.iterdir()) == [] and not audit.exists()
    text = cli.run(["export-plan", str(plan), "--check", "--out-dir", str(out), "--no-audit", *keystore])
    assert text.returncode == 0 and "nothing was generated or written" in text.stdout
    code, signed = cli.json(["export-plan", str(plan), "--check", "--out-dir", str(out), "--no-audit",
                             "--signing-key", "ceremony-signer", *keystore])
    assert (code, signed["signing_key"]) == (0, "ceremony-signer")
    assert [Path(o).name for o in signed["destinations"][0]["outputs"]][-2:] == [
        f"{key_name}-manifest.json", f"{key_name}-manifest.json.sig"]
    assert not (tmp_path / "keystore").exists() and list(out.iterdir()) == []


def test_check_reports_a_bad_destination(cli, keks, keystore, out, tmp_path, key_name):
    destinations = three_destinations(keks, "RSA_AES_KEY_WRAP_SHA_256")
    destinations[2]["expect_fingerprint"] = "00" * 32
    plan = write_plan(tmp_path, key_name, destinations)
    code, report = cli.json(["export-plan", str(plan), "--check", "--out-dir", str(out), "--no-audit", *keystore])
    assert code == 3 and report["error"]["message"].startswith("destination 'gcp-europe': "), report


@pytest.mark.parametrize("name", ["../escape", "a/b", "a\\b", ".hidden", "..", "", "trailing.", "C:x", " space", "NUL", "com1.txt"])
def test_destination_names_are_bare_directory_names(cli, keks, keystore, out, tmp_path, key_name, name):
    plan = write_plan(tmp_path, key_name, [{"name": name, "provider": "aws", "wrapping_key": keks("a", 4096),
                                            "algorithm": "RSAES_OAEP_SHA_1"}])
    code, report = cli.json(["export-plan", str(plan), "--out-dir", str(out), "--no-audit", *keystore])
    assert code == 2 and report["error"]["code"] == "BAD_DESTINATION_NAME", report
    assert list(out.iterdir()) == [] and not (tmp_path / "escape").exists()


@pytest.mark.parametrize("change, code_name", [
    (lambda d: d.append(dict(d[0])), "PLAN_MALFORMED"),                      # the same name twice
    (lambda d: d[0].update(colour="blue"), "PLAN_MALFORMED"),                # an unknown field
    (lambda d: d[0].pop("wrapping_key"), "PLAN_MALFORMED"),
    (lambda d: d[0].update(provider="nimbus"), "UNKNOWN_PROVIDER"),
])
def test_malformed_plans_are_usage_errors(cli, keks, keystore, out, tmp_path, key_name, change, code_name):
    destinations = [{"name": "a", "provider": "aws", "wrapping_key": keks("a", 4096), "algorithm": "RSAES_OAEP_SHA_1"}]
    change(destinations)
    plan = write_plan(tmp_path, key_name, destinations)
    code, report = cli.json(["export-plan", str(plan), "--out-dir", str(out), "--no-audit", *keystore])
    assert (code, report["error"]["code"]) == (2, code_name), report


def test_options_a_plan_sets_are_refused_on_the_command_line(cli, keks, keystore, out, tmp_path, key_name):
    plan = write_plan(tmp_path, key_name, three_destinations(keks, "RSA_AES_KEY_WRAP_SHA_256"))
    code, report = cli.json(["export-plan", str(plan), "-k", "AES-256", "--out-dir", str(out), *keystore])
    assert code == 2 and "-k/--key-type" in report["error"]["message"]


def test_key_pairs_are_identified_by_their_spki(cli, keks, keystore, out, tmp_path, key_name):
    kid = "https://contoso-hsm.managedhsm.azure.net/keys/KEK-1/0123456789abcdef0123456789abcdef"
    plan = write_plan(tmp_path, key_name, [
        {"name": "vault", "provider": "hashicorp-vault", "wrapping_key": keks("v", 4096)},
        {"name": "azure", "provider": "microsoft-azure", "wrapping_key": keks("z", 3072), "azure_kek": kid}],
        key_type="EC-NISTP256")
    code, report = cli.json(["export-plan", str(plan), "--out-dir", str(out), "--no-audit", *keystore])
    assert code == 0, report
    import base64
    public = serialization.load_pem_public_key((out / "azure" / f"{key_name}-public.pem").read_bytes())
    spki = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert report["key_identifier"] == {"kind": "sha256-spki", "value": hashlib.sha256(spki).hexdigest()}
    vault_blob = base64.b64decode((out / "vault" / f"{key_name}-ciphertext.b64").read_bytes())
    pkcs8 = unwrap.rsa_aes_unwrap(keks.private["v"], vault_blob, 512, "sha256")
    assert unwrap.pkcs8_public_pem(pkcs8) == (out / "azure" / f"{key_name}-public.pem").read_bytes()


def test_a_failure_at_a_later_destination_leaves_nothing(keks, tmp_path, out, key_name, monkeypatch):
    """In process: the second destination directory's rename fails; nothing of the first is left either."""
    from cssadmin import output, plan
    from cssadmin.custody.software import SoftwareKeystore
    from cssadmin.errors import OutputError
    path = write_plan(tmp_path, key_name, three_destinations(keks, "RSA_AES_KEY_WRAP_SHA_256"))
    ceremony = plan.load(str(path), plan.Settings(out_dir=str(out)))
    real_rename, calls = os.rename, []

    def failing_rename(source, target, **kwargs):
        if Path(source).parent == out:         # a destination directory being placed
            calls.append(target)
            if len(calls) == 2:
                raise OSError(5, "Input/output error")
        real_rename(source, target, **kwargs)
    monkeypatch.setattr(output.os, "rename", failing_rename)
    with pytest.raises(OutputError) as failure:
        plan.run(ceremony, lambda: SoftwareKeystore(str(tmp_path / "ks"), lambda confirm=False: "passphrase 123456",
                                                    scrypt_n=2 ** 10))
    assert failure.value.exit_code == 7 and failure.value.code == "WRITE_FAILED"
    assert len(calls) == 2 and Path(calls[0]).name == "aws-us-east-1"
    assert list(out.iterdir()) == []
    # as for an export, a key this run created is discarded when its files fail: nothing is left in custody
    assert [entry.name for entry in (tmp_path / "ks").iterdir() if not entry.name.startswith(".")] == []


@pytest.mark.token
@pytest.mark.parametrize("step", ["staged-destination", "staged"])
def test_a_plan_killed_after_staging_leaves_nothing(cli, softhsm, pin_file, keks, out, tmp_path, key_name, step):
    destinations = three_destinations(keks, "RSA_AES_KEY_WRAP_SHA_1")
    plan = write_plan(tmp_path, key_name, destinations)
    args = ["--json", "export-plan", str(plan), "--out-dir", str(out), "--no-audit", *softhsm.cli_args(pin_file)]
    with open(tmp_path / "stdout", "wb") as stdout:
        process = popen(cli, args, token=softhsm, env={"CSSADMIN_TEST_PAUSE_AT": step}, stdout=stdout)
        try:
            os.kill(wait_for_pause(process, step), signal.SIGKILL)
            assert process.wait(timeout=30) in (-signal.SIGKILL, 128 + signal.SIGKILL)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            process.stderr.close()
    left = list(out.iterdir())
    assert left and all(entry.name.startswith(".") and ".cssadmin-" in entry.name for entry in left), left
    assert not any(entry.name in {d["name"] for d in destinations} for entry in left)
    # a second run, without the hook, finishes the plan with the key the first run created
    code, report = cli.json(args[1:], token=softhsm)
    assert code == 0, report
    secrets = unwrap_three(out, key_name, keks, "sha1")
    assert secrets.count(secrets[0]) == 3 and hashlib.sha256(secrets[0]).digest() == softhsm.digest(key_name)


def test_a_second_run_needs_force_and_then_replaces_in_place(cli, keks, keystore, out, tmp_path, key_name):
    plan = write_plan(tmp_path, key_name, three_destinations(keks, "RSA_AES_KEY_WRAP_SHA_256"))
    args = ["export-plan", str(plan), "--out-dir", str(out), "--no-audit", *keystore]
    assert cli.json(args)[0] == 0
    first = unwrap_three(out, key_name, keks, "sha256")
    before = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    code, report = cli.json(args)
    assert code == 7 and report["error"]["code"] == "OUTPUT_EXISTS", report
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == before
    code, report = cli.json(args + ["--force"])
    assert code == 0, report
    assert all(d["key"]["created"] is False for d in report["destinations"])
    assert unwrap_three(out, key_name, keks, "sha256") == first
    assert (out / "aws-us-east-1" / f"{key_name}-wrapped").read_bytes() != before[out / "aws-us-east-1" / f"{key_name}-wrapped"]
    assert not [path for path in out.rglob("*") if ".cssadmin-" in path.name]


def test_one_key_one_login_each_scheme_self_tested_once(keks, tmp_path, out, key_name):
    from cssadmin import plan
    from cssadmin.custody.software import SoftwareKeystore
    calls = []

    class Counting(SoftwareKeystore):
        def get_or_create(self, name, key_type, provider, reuse_key=False):
            calls.append(("key", name))
            return super().get_or_create(name, key_type, provider, reuse_key)

        def self_test(self, key_type, scheme):
            calls.append(("self-test", scheme.kind, scheme.hash))
            return super().self_test(key_type, scheme)

    destinations = three_destinations(keks, "RSA_AES_KEY_WRAP_SHA_256")
    destinations.append({"name": "aws-ap", "provider": "aws", "wrapping_key": keks("ap", 4096, der=True),
                         "algorithm": "RSAES_OAEP_SHA_1"})
    ceremony = plan.load(str(write_plan(tmp_path, key_name, destinations)), plan.Settings(out_dir=str(out)))
    opened = []

    def open_custody():
        opened.append(1)
        return Counting(str(tmp_path / "ks"), lambda confirm=False: "passphrase 123456", scrypt_n=2 ** 10)
    report = plan.run(ceremony, open_custody)
    assert len(opened) == 1 and len(report["destinations"]) == 4
    assert calls == [("key", key_name), ("self-test", "oaep", "sha1"), ("self-test", "rsa_aes", "sha256"),
                     ("self-test", "rsa_aes", "sha1")]


@pytest.mark.skipif(os.name == "nt", reason="Windows cannot send SIGINT to one process")
def test_a_plan_interrupted_before_its_audit_records_are_written_leaves_nothing(cli, keks, keystore, out, tmp_path,
                                                                                key_name):
    plan = write_plan(tmp_path, key_name, three_destinations(keks, "RSA_AES_KEY_WRAP_SHA_256"))
    audit = tmp_path / "audit.jsonl"
    args = ["export-plan", str(plan), "--out-dir", str(out), "--audit-log", str(audit), *keystore]
    status, stdout = stopped_at(cli, args, "recording", signal.SIGINT)
    assert status == 130 and json.loads(stdout)["error"]["exit"] == 130
    assert list(out.iterdir()) == [], "an export stands only once it is on the record"
    assert not audit.exists() or audit.read_bytes() == b""
    code, report = cli.json(args)
    assert code == 0, report
    assert all(d["key"]["created"] is True for d in report["destinations"]), "the interrupted run's key was kept"


def test_a_signed_plan_signs_every_destination_and_every_record(cli, keks, keystore, out, tmp_path, key_name):
    plan = write_plan(tmp_path, key_name, three_destinations(keks, "RSA_AES_KEY_WRAP_SHA_256"))
    audit = tmp_path / "audit.jsonl"
    label = "plan-signer-" + key_name[-6:]
    code, report = cli.json(["export-plan", str(plan), "--out-dir", str(out), "--audit-log", str(audit),
                             "--signing-key", label, *keystore])
    assert code == 0, report
    secrets = unwrap_three(out, key_name, keks, "sha256")
    assert secrets.count(secrets[0]) == 3
    pem = tmp_path / "signer.pem"
    assert cli.json(["signing-key", label, "--out", str(pem), *keystore])[0] == 0
    for destination in report["destinations"]:
        where = out / destination["name"]
        manifest = where / f"{key_name}-manifest.json"
        assert destination["signature"]["path"] == str(where / f"{key_name}-manifest.json.sig")
        assert destination["signer"]["label"] == label
        assert json.loads(manifest.read_bytes())["signer"]["sha256_spki"] == destination["signer"]["sha256_spki"]
        code, verified = cli.json(["verify-manifest", str(manifest), "--signer-key", str(pem)])
        assert code == 0, verified
        assert [Path(item["path"]).name for item in destination["outputs"]] == [
            item["name"] for item in json.loads(manifest.read_bytes())["files"]], "the manifest lists the cloud's files"
    code, verified = cli.json(["verify-audit", str(audit), "--signer-key", str(pem)])
    assert code == 0 and verified["verified"]["signed"] == 3, verified
    # and a later unsigned plan onto that log is refused before a key is made, as an export is
    code, refused = cli.json(["export-plan", str(plan), "--out-dir", str(tmp_path / "none"), "--audit-log", str(audit),
                              *keystore])
    assert (code, refused["error"]["code"]) == (7, "AUDIT_LOG_SIGNED"), refused
