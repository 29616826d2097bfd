"""The check of an audit log: each record's own hash, the chain, the signatures, and an expected head.

A mismatch is a VerificationError (exit 8) naming the first line at fault; a log that cannot be read
is an OutputError (exit 7). Records written by cssadmin 0.1.0 carry no own `sha256`: they verify
through the chain alone and are reported as unanchored, not as broken - but once a record carries
its own hash, every later one must, and once one is signed, every later one must be. Nothing here prints.
"""
from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass, field
from pathlib import Path

from . import inputs
from .audit import (GENESIS_SHA256, MAX_AUDIT_LINE_BYTES, MAX_AUDIT_LOG_BYTES, SIGNER_FIELDS, Head, covered_bytes,
                    is_seq, parse_line, serialize, sha256_hex)
from .errors import OutputError, VerificationError
from .signatures import SignerPin, check_pinned, embedded_signer, is_valid


@dataclass
class AuditVerdict:
    """What was verified, for the report of `verify-audit`."""
    records: int = 0
    anchored: int = 0                   # records carrying their own sha256
    signed: int = 0
    signers: list[str] = field(default_factory=list)   # SPKI fingerprints of the signers, in order seen
    signer_pinned: bool = False
    head: Head | None = None            # the last record's seq and own sha256
    expected_head: Head | None = None   # --expect-head, found in the log
    warnings: list[str] = field(default_factory=list)

    @property
    def unanchored(self) -> int:
        return self.records - self.anchored

    def as_dict(self) -> dict:
        return {"records": self.records, "chain": True, "anchored": self.anchored, "unanchored": self.unanchored,
                "signed": self.signed, "signer_sha256_spki": self.signers, "signer_pinned": self.signer_pinned,
                "head": self.head.as_dict() if self.head else None,
                "expected_head": self.expected_head.as_dict() if self.expected_head else None}


def verify_audit(path: str | os.PathLike, pin: SignerPin | None = None,
                 expect_head: Head | None = None) -> AuditVerdict:
    """The verdict when every check passes; otherwise VerificationError naming the first broken line."""
    log_path = Path(path)
    try:
        with inputs.open_stream(log_path) as handle:
            lines = inputs.bounded_lines(handle, MAX_AUDIT_LINE_BYTES, MAX_AUDIT_LOG_BYTES)
            verdict, sha256_by_seq = _verify_lines(log_path, lines, pin)
    except FileNotFoundError:
        raise OutputError(f"audit log {log_path} does not exist", code="AUDIT_MISSING") from None
    except inputs.NotRegularFile as refusal:
        raise OutputError(f"audit log {log_path} is {refusal}, not a regular file; not read",
                          code="AUDIT_READ_FAILED") from None
    except inputs.TooLarge as refusal:
        raise OutputError(f"audit log {log_path}: {refusal} (no record cssadmin writes is); not read further",
                          code="AUDIT_TOO_LARGE") from None
    except OSError as failure:
        raise OutputError(f"reading the audit log {log_path} failed: {failure.strerror or failure}",
                          code="AUDIT_READ_FAILED") from None
    _conclude(log_path, verdict, sha256_by_seq, pin, expect_head)
    return verdict


class _Walk:
    """The state carried from one line to the next."""

    def __init__(self, pin: SignerPin | None):
        self.pin = pin
        self.verdict = AuditVerdict(signer_pinned=pin is not None)
        self.previous_line: bytes | None = None
        self.sha256_by_seq: dict[int, str | None] = {}


def _verify_lines(log_path: Path, lines, pin: SignerPin | None) -> tuple[AuditVerdict, dict[int, str | None]]:
    walk = _Walk(pin)
    for number, raw in enumerate(lines, 1):
        record = _chained_record(log_path, number, raw, walk.previous_line)
        _check_seal(log_path, number, record, walk)
        walk.previous_line = raw[:-1]
        walk.verdict.records = number
        own = record.get("sha256")
        walk.sha256_by_seq[number] = own
        walk.verdict.head = Head(number, own) if own else None
    return walk.verdict, walk.sha256_by_seq


def _chained_record(log_path: Path, number: int, raw: bytes, previous_line: bytes | None) -> dict:
    """The record on this line, when it is whole, canonical and linked to the line before."""
    problem, record = _link_problem(number, raw, previous_line)
    if problem:
        raise VerificationError(f"audit log {log_path}: line {number}: {problem}", code="AUDIT_CHAIN_BROKEN")
    return record


def _link_problem(number: int, raw: bytes, previous_line: bytes | None) -> tuple[str | None, dict]:
    if not raw.endswith(b"\n"):
        return "incomplete: no newline at the end (an interrupted write, or the file was cut)", {}
    line = raw[:-1]
    record = parse_line(line)
    if record is None:
        return "not a JSON object", {}
    if not _is_canonical(record, line):
        return "not in the canonical form cssadmin writes (the line was edited)", record
    if record.get("seq") != number or not is_seq(record.get("seq")):
        return (f"seq is {record.get('seq')!r}, expected {number} "
                "(a record was removed, inserted or reordered)"), record
    expected = GENESIS_SHA256 if previous_line is None else sha256_hex(previous_line)
    if record.get("prev_sha256") != expected:
        if previous_line is None:
            return "prev_sha256 is not 64 zeros: this is not the first record of a log", record
        return f"prev_sha256 does not match line {number - 1} (one of the two was changed)", record
    return None, record


def _check_seal(log_path: Path, number: int, record: dict, walk: _Walk) -> None:
    """The record's own sha256, then its signature."""
    where = f"audit log {log_path}: line {number}"
    verdict = walk.verdict
    covered = covered_bytes(record)
    if "sha256" not in record:
        if verdict.anchored or "signature" in record or SIGNER_FIELDS & set(record):
            raise VerificationError(f"{where}: the record's own sha256 is missing, but it follows records "
                                    "that carry one, or is signed (it was removed)", code="AUDIT_RECORD_CHANGED")
        return   # a record of cssadmin 0.1.0: the chain covers it
    if record["sha256"] != sha256_hex(covered):
        raise VerificationError(f"{where}: the record does not match its own sha256 (it was changed)",
                                code="AUDIT_RECORD_CHANGED")
    verdict.anchored += 1
    if "signature" not in record:
        if verdict.signed or SIGNER_FIELDS & set(record):
            raise VerificationError(f"{where}: unsigned, but it follows signed records or names a signer "
                                    "(the signature was removed, or the record was added without the key)",
                                    code="AUDIT_UNSIGNED")
        return
    signer = embedded_signer(record.get("signer_public_key_pem"), record.get("signer_sha256_spki"), where,
                             "AUDIT_SIGNATURE_BAD")
    check_pinned(walk.pin, record["signer_sha256_spki"], where, "AUDIT_SIGNER_MISMATCH")
    if not is_valid(signer, _signature(record), covered):   # a pinned key has this same fingerprint
        raise VerificationError(f"{where}: the signature does not verify (the record was changed, or "
                                "signed by another key)", code="AUDIT_SIGNATURE_BAD")
    verdict.signed += 1
    if record["signer_sha256_spki"] not in verdict.signers:
        verdict.signers.append(record["signer_sha256_spki"])


def _signature(record: dict) -> bytes:
    try:
        return base64.b64decode(str(record["signature"]).encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return b""


def _conclude(log_path: Path, verdict: AuditVerdict, sha256_by_seq: dict[int, str | None],
              pin: SignerPin | None, expect_head: Head | None) -> None:
    """What holds of the log as a whole: with a signer, the last record signed (once one record is
    signed every later one must be, so `signed` > 0 says the last one is); the expected head."""
    if pin is not None and not verdict.signed:
        raise VerificationError(f"audit log {log_path}: no record is signed by the expected signer",
                                code="AUDIT_UNSIGNED", remedy="records are signed only by exports run with "
                                "--signing-key; start a new --audit-log when adopting one")
    if expect_head is not None:
        found = sha256_by_seq.get(expect_head.seq, "absent")
        if found == "absent":
            raise VerificationError(f"audit log {log_path} has {verdict.records} records, so not the expected "
                                    f"head {expect_head.seq}:{expect_head.sha256} (the log was cut back)",
                                    code="AUDIT_HEAD_MISMATCH")
        if found != expect_head.sha256:
            raise VerificationError(f"audit log {log_path}: record {expect_head.seq} has sha256 {found}, "
                                    f"not the expected head {expect_head.sha256}", code="AUDIT_HEAD_MISMATCH")
        verdict.expected_head = expect_head
    if verdict.unanchored:
        last = "the last record too, so an edit to it cannot be found" if verdict.head is None else \
            "they are covered by the chain of the records after them"
        verdict.warnings.append(f"{verdict.unanchored} records carry no own sha256 (written by cssadmin 0.1.0): "
                                f"unanchored; {last}")
    if verdict.signed and pin is None:
        verdict.warnings.append("signatures were checked against the public keys the records carry, but the "
                                "signer was not pinned: compare " + ", ".join(verdict.signers)
                                + " with the signing key's fingerprint, or pass --signer-fingerprint")
    elif pin is not None and verdict.signed < verdict.records:
        verdict.warnings.append(f"{verdict.records - verdict.signed} records before the first signed one are "
                                "covered by the signatures through the chain, not signed themselves")


def _is_canonical(record: dict, line: bytes) -> bool:
    try:
        return serialize(record) == line
    except ValueError:   # NaN or Infinity: JSON that cssadmin never writes
        return False
