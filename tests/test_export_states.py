"""The export's order, held by its data: nothing touches custody before the policy decision, and
nothing touches the output directory before the wrap, except the pre-flight checks."""
from __future__ import annotations

import pytest

from cssadmin import export
from cssadmin.custody.software import SoftwareKeystore
from cssadmin.errors import CssadminError, CustodyError
from cssadmin.providers import get_provider
from cssadmin.providers.base import Options
from cssadmin.trust import TrustRequest
from keks import rsa_key, write_spki


class Opened:
    """An open_custody that records whether it was called, and can make the custody fail at one step."""

    def __init__(self, directory, fail_at: str | None = None):
        self.directory, self.fail_at, self.calls = directory, fail_at, 0

    def __call__(self):
        self.calls += 1
        keystore = SoftwareKeystore(str(self.directory), lambda confirm=False: "passphrase 123456", scrypt_n=2 ** 10)
        if self.fail_at:
            def refuse(*args, **kwargs):
                raise CustodyError(f"refused at {self.fail_at}", code="TEST_REFUSAL")
            setattr(keystore, self.fail_at, refuse)
        return keystore


@pytest.fixture
def setting(tmp_path):
    kek = write_spki(rsa_key(4096), tmp_path / "WrappingKey.bin")
    out = tmp_path / "out"
    out.mkdir()
    request = export.Request(provider=get_provider("aws"), key_name="state-test", wrap_key_path=str(kek),
                             options=Options(wrap_alg="RSAES_OAEP_SHA_1"), out_dir=str(out))
    return request, out, tmp_path / "ks"


def test_the_steps_in_order_write_the_files(setting):
    request, out, keystore = setting
    opened = Opened(keystore)
    report = export.run(request, opened)
    assert opened.calls == 1
    assert sorted(p.name for p in out.iterdir()) == ["state-test-manifest.json", "state-test-wrapped"]
    assert report.manifest.path.endswith("state-test-manifest.json")
    assert [item.path for item in report.outputs] == [str(out / "state-test-wrapped")]


REFUSALS_BEFORE_CUSTODY = {
    "parse": dict(key_name="-bad"),
    "wrapping key": dict(wrap_key_path="/nonexistent/WrappingKey.bin"),
    "trust": dict(trust=TrustRequest(expected_fingerprints=("00" * 32,))),
    "policy": dict(key_type="RSA-2048"),   # not with RSAES_OAEP_SHA_1
}


@pytest.mark.parametrize("step", REFUSALS_BEFORE_CUSTODY)
def test_a_refusal_before_the_policy_decision_never_opens_custody(setting, step):
    request, out, keystore = setting
    opened = Opened(keystore)
    refused = export.Request(**{**request.__dict__, **REFUSALS_BEFORE_CUSTODY[step]})
    with pytest.raises(CssadminError):
        export.run(refused, opened)
    assert opened.calls == 0, "nothing touches custody before the policy decision"
    assert list(out.iterdir()) == [], "nothing touches the output directory before the wrap"


@pytest.mark.parametrize("fail_at", ["self_test", "wrap"])
def test_a_refusal_in_custody_writes_nothing_and_discards_the_new_key(setting, fail_at):
    request, out, keystore = setting
    opened = Opened(keystore, fail_at)
    with pytest.raises(CustodyError) as caught:
        export.run(request, opened)
    assert caught.value.code == "TEST_REFUSAL"
    assert list(out.iterdir()) == [], "nothing touches the output directory before the wrap"
    assert not (keystore / "state-test.cssadmin-key").exists(), "the key this run created was discarded"


def test_an_audit_record_that_cannot_be_written_withdraws_the_files_and_the_new_key(setting, tmp_path, monkeypatch):
    """An export stands only once it is on the record: a failed append leaves no file and no key."""
    from dataclasses import replace

    from cssadmin import audit
    from cssadmin.errors import OutputError
    request, out, keystore = setting
    log = tmp_path / "audit.jsonl"

    def disk_full(self, pendings):
        raise OutputError("no space left on device", code="AUDIT_WRITE_FAILED")
    monkeypatch.setattr(audit.AuditLog, "append_all", disk_full)
    with pytest.raises(OutputError) as failure:
        export.run(replace(request, audit_log=log), Opened(keystore))
    assert failure.value.code == "AUDIT_WRITE_FAILED" and "outputs were removed" in failure.value.message
    assert list(out.iterdir()) == []
    assert [entry.name for entry in keystore.iterdir() if not entry.name.startswith(".")] == []
    assert not log.exists() or log.read_bytes() == b""
