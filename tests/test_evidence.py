"""Evidence that cannot be quietly rewritten (issue 11), without a token: self-checking audit records,
the head that the manifest carries, signed records and manifests, and what verification reports."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import multiprocessing
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from cssadmin import audit, output
from cssadmin.audit import GENESIS_SHA256, AuditLog, Head, append_record, parse_head
from cssadmin.audit_verify import verify_audit
from cssadmin.errors import UsageError, VerificationError
from cssadmin.manifest import manifest_name, signature_name, verify_manifest
from cssadmin.signatures import Signer, SignerPin, der_from_raw, load_public_pem, signer_facts, spki_sha256

from test_manifest import KEY_NAME, OUTPUTS, make_manifest


# ------------------------------------------------------------------------------ helpers

def software_signer(label: str = "evidence-signer") -> tuple[Signer, ec.EllipticCurvePrivateKey]:
    private = ec.generate_private_key(ec.SECP256R1())
    facts = signer_facts(label, private.public_key(), "software")
    return Signer(facts, lambda data: private.sign(data, ec.ECDSA(hashes.SHA256()))), private


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def legacy_log(path: Path, count: int) -> Path:
    """A log as cssadmin 0.1.0 wrote it: chained lines, no record's own sha256."""
    previous = None
    lines = []
    for seq in range(1, count + 1):
        record = {"event": "export", "note": f"legacy {seq}", "seq": seq, "time": "2025-01-01T00:00:00Z",
                  "user": "op", "host": "hsm-host",
                  "prev_sha256": GENESIS_SHA256 if previous is None else hashlib.sha256(previous).hexdigest()}
        previous = audit.serialize(record)
        lines.append(previous)
    write_lines(path, lines)
    return path


def failure(path: Path, **kwargs) -> VerificationError:
    with pytest.raises(VerificationError) as caught:
        verify_audit(path, **kwargs)
    assert caught.value.exit_code == 8
    return caught.value


def pin_of(signer: Signer, *, with_key: bool = False) -> SignerPin:
    key = load_public_pem(signer.facts.public_key_pem)
    return SignerPin(spki_sha256(key), key if with_key else None)


# ------------------------------------------------------------------------------ own hash

def test_each_record_carries_the_sha256_of_its_canonical_form_without_it(tmp_path):
    path = tmp_path / "audit.jsonl"
    written = append_record(path, {"event": "test", "note": "one"})
    [line] = lines_of(path)
    record = json.loads(line)
    assert record == written
    without = {key: value for key, value in record.items() if key != "sha256"}
    assert record["sha256"] == hashlib.sha256(audit.serialize(without)).hexdigest()


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_editing_any_single_record_is_found_the_last_included(tmp_path, index):
    path = tmp_path / "audit.jsonl"
    for number in range(4):
        append_record(path, {"event": "test", "note": f"record {number}"})
    lines = lines_of(path)
    lines[index] = lines[index].replace(f"record {index}".encode(), b"record 9")
    write_lines(path, lines)
    error = failure(path)
    assert error.code == "AUDIT_RECORD_CHANGED" and f"line {index + 1}:" in error.message


def test_the_last_record_edited_with_its_hash_redone_is_found_only_by_a_signature(tmp_path):
    """Without a key, whoever can write the log can also recompute a record's hash: only the head
    that travelled (or a signature) catches that, and the test shows both."""
    path = tmp_path / "audit.jsonl"
    signer, _ = software_signer()
    append_record(path, {"event": "test", "note": "one"}, signer)
    head = verify_audit(path).head
    record = json.loads(lines_of(path)[0])
    record["note"] = "forged"
    record["sha256"] = hashlib.sha256(audit.covered_bytes(record)).hexdigest()
    write_lines(path, [audit.serialize(record)])
    assert failure(path).code == "AUDIT_SIGNATURE_BAD"
    assert failure(path, expect_head=head).code == "AUDIT_SIGNATURE_BAD"


def test_a_removed_own_hash_after_anchored_records_is_found(tmp_path):
    path = tmp_path / "audit.jsonl"
    for number in range(3):
        append_record(path, {"event": "test", "note": f"record {number}"})
    lines = lines_of(path)
    record = json.loads(lines[2])
    del record["sha256"]
    lines[2] = audit.serialize(record)
    write_lines(path, lines)
    error = failure(path)
    assert error.code == "AUDIT_RECORD_CHANGED" and "line 3:" in error.message


# ------------------------------------------------------------------------------ 0.1.0 logs

def test_a_0_1_0_log_verifies_and_is_reported_unanchored(tmp_path):
    verdict = verify_audit(legacy_log(tmp_path / "audit.jsonl", 3))
    assert (verdict.records, verdict.anchored, verdict.unanchored, verdict.head) == (3, 0, 3, None)
    assert any("unanchored" in warning for warning in verdict.warnings)


def test_a_0_1_0_log_continued_by_this_version_is_anchored_from_there(tmp_path):
    path = legacy_log(tmp_path / "audit.jsonl", 2)
    written = append_record(path, {"event": "test"})
    verdict = verify_audit(path)
    assert (verdict.records, verdict.anchored, verdict.unanchored) == (3, 1, 2)
    assert verdict.head == Head(3, written["sha256"])


def test_a_0_1_0_log_with_a_broken_chain_is_still_broken(tmp_path):
    path = legacy_log(tmp_path / "audit.jsonl", 3)
    lines = lines_of(path)
    lines[0] = lines[0].replace(b"legacy 1", b"legacy 7")
    write_lines(path, lines)
    assert failure(path).code == "AUDIT_CHAIN_BROKEN"


# ------------------------------------------------------------------------------ the head

def test_expect_head_passes_for_the_head_and_for_a_log_that_grew_past_it(tmp_path):
    path = tmp_path / "audit.jsonl"
    first = append_record(path, {"event": "test"})
    assert verify_audit(path, expect_head=Head(1, first["sha256"])).expected_head == Head(1, first["sha256"])
    append_record(path, {"event": "test"})
    assert verify_audit(path, expect_head=Head(1, first["sha256"])).records == 2


def test_a_log_cut_back_below_the_expected_head_fails(tmp_path):
    path = tmp_path / "audit.jsonl"
    append_record(path, {"event": "test"})
    last = append_record(path, {"event": "test"})
    write_lines(path, lines_of(path)[:1])
    assert verify_audit(path).records == 1, "without the anchor, a cut at a line boundary is not visible"
    error = failure(path, expect_head=Head(2, last["sha256"]))
    assert error.code == "AUDIT_HEAD_MISMATCH" and "cut back" in error.message


def test_a_head_with_another_hash_fails(tmp_path):
    path = tmp_path / "audit.jsonl"
    append_record(path, {"event": "test"})
    assert failure(path, expect_head=Head(1, "0" * 64)).code == "AUDIT_HEAD_MISMATCH"


@pytest.mark.parametrize("text", ["1", "x:" + "a" * 64, "0:" + "a" * 64, "1:" + "a" * 63, "1:" + "g" * 64])
def test_a_malformed_expected_head_is_a_usage_error(text):
    with pytest.raises(UsageError):
        parse_head(text)


def test_parse_head_reads_what_the_manifest_carries():
    assert parse_head("12:" + "AB" * 32) == Head(12, "ab" * 32)


def test_the_head_computed_under_the_lock_is_the_one_appended(tmp_path):
    path = tmp_path / "audit.jsonl"
    append_record(path, {"event": "test"})
    with AuditLog(path) as log:
        pending = log.next_head({"event": "export"})
        written = log.append(pending)
    assert verify_audit(path).head == pending.head == Head(2, written["sha256"])


def hold_then_append(path: str, ready, release) -> None:
    from cssadmin.audit import AuditLog as ChildLog
    with ChildLog(path) as log:
        ready.set()
        release.wait(60)
        log.append(log.next_head({"event": "first"}))


@pytest.mark.skipif(os.name == "nt", reason="Windows under Wine: a cross-process msvcrt.locking wait was not shown to work there")
def test_the_lock_is_held_from_opening_to_the_append(tmp_path):
    """A second writer waits while an export holds the log, so the held head stays the head."""
    context = multiprocessing.get_context("spawn")
    path = tmp_path / "audit.jsonl"
    append_record(path, {"event": "earlier"})   # an existing log is locked from the pre-flight on
    ready, release = context.Event(), context.Event()
    holder = context.Process(target=hold_then_append, args=(str(path), ready, release))
    holder.start()
    assert ready.wait(60)
    started = time.monotonic()
    context_timer = __import__("threading").Timer(0.5, release.set)
    context_timer.start()
    second = append_record(path, {"event": "second"})     # blocks until the holder appended and closed
    holder.join(60)
    assert holder.exitcode == 0
    assert time.monotonic() - started >= 0.45
    records = [json.loads(line) for line in lines_of(path)]
    assert [r["event"] for r in records] == ["earlier", "first", "second"] and second["seq"] == 3


def test_a_log_that_does_not_exist_yet_is_only_checked_at_the_pre_flight(tmp_path):
    """So a refused export leaves no log behind; it is created and locked when the head is computed."""
    path = tmp_path / "state" / "cssadmin" / "audit.jsonl"
    with AuditLog(path):
        pass
    assert not (tmp_path / "state").exists()
    with AuditLog(path) as log:
        pending = log.next_head({"event": "export"})
        assert path.exists()
        log.append(pending)
    assert verify_audit(path).head == pending.head


def test_a_log_changed_between_head_and_append_is_not_appended_to(tmp_path):
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as log:
        pending = log.next_head({"event": "export"})
        with open(path, "ab") as intruder:   # not through the lock: what a careless tool might do
            intruder.write(b"junk\n")
        with pytest.raises(audit.OutputError) as caught:
            log.append(pending)
    assert caught.value.code == "AUDIT_WRITE_FAILED"
    assert path.read_bytes() == b"junk\n"


# ------------------------------------------------------------------------------ signed records

def test_signed_records_verify_pinned_by_fingerprint_and_by_key(tmp_path):
    path = tmp_path / "audit.jsonl"
    signer, _ = software_signer()
    for number in range(3):
        written = append_record(path, {"event": "test", "n": number}, signer)
    assert written["signer_sha256_spki"] == signer.facts.sha256_spki
    assert written["signer_public_key_pem"] == signer.facts.public_key_pem
    for pin in (pin_of(signer), pin_of(signer, with_key=True)):
        verdict = verify_audit(path, pin=pin)
        assert (verdict.signed, verdict.signers, verdict.signer_pinned) == (3, [signer.facts.sha256_spki], True)
        assert verdict.warnings == []


def test_a_record_signature_is_over_the_bytes_its_own_hash_covers(tmp_path):
    path = tmp_path / "audit.jsonl"
    signer, private = software_signer()
    record = append_record(path, {"event": "test"}, signer)
    covered = audit.covered_bytes(record)
    assert hashlib.sha256(covered).hexdigest() == record["sha256"]
    private.public_key().verify(base64.b64decode(record["signature"]), covered, ec.ECDSA(hashes.SHA256()))


def test_without_a_pin_signatures_are_checked_and_the_signer_reported_unpinned(tmp_path):
    path = tmp_path / "audit.jsonl"
    signer, _ = software_signer()
    append_record(path, {"event": "test"}, signer)
    verdict = verify_audit(path)
    assert verdict.signed == 1 and verdict.signer_pinned is False
    assert any("not pinned" in warning and signer.facts.sha256_spki in warning for warning in verdict.warnings)


def test_another_signer_fails_under_a_pin(tmp_path):
    path = tmp_path / "audit.jsonl"
    signer, _ = software_signer()
    other, _ = software_signer("other")
    append_record(path, {"event": "test"}, signer)
    append_record(path, {"event": "test"}, other)     # someone else's key appended a record
    assert verify_audit(path).signers == [signer.facts.sha256_spki, other.facts.sha256_spki]
    error = failure(path, pin=pin_of(signer))
    assert error.code == "AUDIT_SIGNER_MISMATCH" and "line 2" in error.message


def test_an_unsigned_record_after_signed_ones_fails(tmp_path):
    path = tmp_path / "audit.jsonl"
    signer, _ = software_signer()
    append_record(path, {"event": "test"}, signer)
    append_record(path, {"event": "test"})            # appended by someone without the key
    assert failure(path).code == "AUDIT_UNSIGNED"


def test_a_removed_signature_fails(tmp_path):
    path = tmp_path / "audit.jsonl"
    signer, _ = software_signer()
    append_record(path, {"event": "test"}, signer)
    record = json.loads(lines_of(path)[0])
    del record["signature"]
    write_lines(path, [audit.serialize(record)])
    assert failure(path).code == "AUDIT_UNSIGNED"
    assert failure(path, pin=pin_of(signer)).code == "AUDIT_UNSIGNED"


def test_a_signature_from_another_key_under_the_claimed_signer_fails(tmp_path):
    path = tmp_path / "audit.jsonl"
    signer, _ = software_signer()
    _, other_private = software_signer()
    append_record(path, {"event": "test"}, signer)
    record = json.loads(lines_of(path)[0])
    record["signature"] = base64.b64encode(other_private.sign(audit.covered_bytes(record),
                                                              ec.ECDSA(hashes.SHA256()))).decode()
    write_lines(path, [audit.serialize(record)])
    assert failure(path).code == "AUDIT_SIGNATURE_BAD"


def test_with_a_pin_an_unsigned_log_fails_and_a_signed_suffix_passes(tmp_path):
    path = legacy_log(tmp_path / "audit.jsonl", 2)
    signer, _ = software_signer()
    append_record(path, {"event": "test"})
    assert failure(path, pin=pin_of(signer)).code == "AUDIT_UNSIGNED"
    append_record(path, {"event": "test"}, signer)
    verdict = verify_audit(path, pin=pin_of(signer))
    assert (verdict.records, verdict.signed, verdict.unanchored) == (4, 1, 2)
    assert any("through the chain" in warning for warning in verdict.warnings)


# ------------------------------------------------------------------------------ signed manifests

@pytest.fixture
def signed_export(tmp_path):
    """An export's files as export.write_files places them: outputs, signature, then manifest."""
    signer, private = software_signer()
    document = make_manifest(audit_head=Head(7, "ab" * 32), signer=signer.facts)
    files = [*OUTPUTS, (signature_name(KEY_NAME), signer.sign(document)), (manifest_name(KEY_NAME), document)]
    output.verify_all(output.write_all(tmp_path, files, force=False, vouchers=2))
    return tmp_path / manifest_name(KEY_NAME), signer


def manifest_failure(path: Path, **kwargs) -> VerificationError:
    with pytest.raises(VerificationError) as caught:
        verify_manifest(path, **kwargs)
    assert caught.value.exit_code == 8
    return caught.value


def test_a_signed_manifest_verifies_pinned(signed_export):
    path, signer = signed_export
    for pin in (pin_of(signer), pin_of(signer, with_key=True)):
        verdict = verify_manifest(path, pin)
        assert verdict.as_dict() == {"files": 2, "signature": True, "signer_sha256_spki": signer.facts.sha256_spki,
                                     "signer_pinned": True, "head": {"seq": 7, "sha256": "ab" * 32},
                                     "head_expected": False}
        assert verdict.warnings == []


def test_a_signed_manifest_without_a_pin_is_checked_and_reported_unpinned(signed_export):
    path, signer = signed_export
    verdict = verify_manifest(path)
    assert verdict.signature is True and verdict.signer_pinned is False
    assert any("not pinned" in warning for warning in verdict.warnings)


def test_one_changed_manifest_byte_fails(signed_export):
    path, signer = signed_export
    data = path.read_bytes()
    path.write_bytes(data.replace(b'"provider": "aws"', b'"provider": "awz"'))
    assert manifest_failure(path, pin=pin_of(signer)).code == "MANIFEST_SIGNATURE_BAD"
    assert manifest_failure(path).code == "MANIFEST_SIGNATURE_BAD"


def test_a_signature_from_another_key_fails(signed_export):
    path, signer = signed_export
    other, _ = software_signer()
    path.with_name(path.name + ".sig").write_bytes(other.sign(path.read_bytes()))
    assert manifest_failure(path, pin=pin_of(signer)).code == "MANIFEST_SIGNATURE_BAD"


def test_a_manifest_re_signed_by_another_key_fails_only_under_a_pin(signed_export):
    path, signer = signed_export
    other, _ = software_signer()
    document = make_manifest(audit_head=Head(7, "ab" * 32), signer=other.facts)
    path.write_bytes(document)
    path.with_name(path.name + ".sig").write_bytes(other.sign(document))
    assert verify_manifest(path).signer_sha256_spki == other.facts.sha256_spki   # reported, with a warning
    assert manifest_failure(path, pin=pin_of(signer)).code == "MANIFEST_SIGNER_MISMATCH"
    assert manifest_failure(path, pin=pin_of(signer, with_key=True)).code == "MANIFEST_SIGNER_MISMATCH"


def test_a_missing_signature_fails_with_a_pin_and_when_the_manifest_names_a_signer(signed_export):
    path, signer = signed_export
    path.with_name(path.name + ".sig").unlink()
    assert manifest_failure(path, pin=pin_of(signer)).code == "MANIFEST_SIGNATURE_MISSING"
    assert manifest_failure(path).code == "MANIFEST_SIGNATURE_MISSING"


def test_an_unsigned_manifest_passes_without_a_pin_and_fails_with_one(tmp_path):
    files = [*OUTPUTS, (manifest_name(KEY_NAME), make_manifest())]
    output.verify_all(output.write_all(tmp_path, files, force=False))
    path = tmp_path / manifest_name(KEY_NAME)
    verdict = verify_manifest(path)
    assert verdict.signature is False and any("not signed" in warning for warning in verdict.warnings)
    signer, _ = software_signer()
    assert manifest_failure(path, pin=pin_of(signer)).code == "MANIFEST_SIGNATURE_MISSING"


def test_the_manifest_head_is_checked_against_the_expected_one(signed_export):
    path, _ = signed_export
    assert verify_manifest(path, expect_head=Head(7, "ab" * 32)).head_expected is True
    assert manifest_failure(path, expect_head=Head(8, "ab" * 32)).code == "MANIFEST_HEAD_MISMATCH"


def test_the_signature_and_the_manifest_are_placed_last_and_replaced_as_a_pair(signed_export):
    path, signer = signed_export
    stale = path.with_name(path.name + ".sig")
    with pytest.raises(audit.OutputError):   # without --force nothing is replaced
        output.write_all(path.parent, [(stale.name, b"x"), (path.name, b"y")], force=False, vouchers=2)
    assert verify_manifest(path, pin_of(signer)).signature is True


# ------------------------------------------------------------------------------ signature encoding

def test_a_token_raw_signature_becomes_der_that_verifies():
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.sign(b"data", ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    assert der_from_raw(raw) == der
    with pytest.raises(ValueError):
        der_from_raw(raw[:-1])
