"""One export, top to bottom: parse, wrapping key, trust, policy, custody (key, self-test, wrap),
evidence, files (written and verified), audit, report.

Each step returns a frozen value and takes, as arguments, the values of the steps it depends on,
so the order is fixed by the data and no step reaches into another's state. Nothing touches the
token before the policy decision; nothing touches the output directory before the wrap, except the
pre-flight checks of the parse step, so a doomed run fails before the HSM generates anything.
The audit log is locked from the pre-flight to the append, so the head written into the manifest
is the head that is appended; the record lists the cloud's files, not the manifest or its signature.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

from . import __version__, audit, manifest, output, trust
from .checkpoints import checkpoint
from .custody import Custody, KeyRef
from .errors import CustodyError, KeyConflictError, OutputError, ParametersRefused
from .facts import ExportFacts, FileFacts, KeyFacts, WrappingKeyFacts
from .keynames import check_key_name
from .keytypes import KeyType
from .providers.base import Options, Provider, Wrapped
from .schemes import WrapScheme
from .signatures import Signer
from .strength import StrengthVerdict, judge_kek
from .wrapping_key import WrappingKey, load_wrapping_key_file

SOFTWARE_WARNING = ("the key is held in a software keystore, not an HSM: it has existed in plaintext in this "
                    "computer's memory")


@dataclass(frozen=True)
class Request:
    provider: Provider
    key_name: str
    wrap_key_path: str
    key_type: str | None = None
    options: Options = Options()
    trust: trust.TrustRequest = trust.TrustRequest()
    out_dir: str = "."
    force: bool = False
    require_removable: bool = False
    allow_weaker_kek: bool = False
    reuse_key: bool = False             # --reuse-key: re-export a key made for another provider
    audit_log: Path | None = None       # None: no audit record (--no-audit)
    signing_key: str | None = None      # --signing-key: sign the manifest and the audit record


@dataclass(frozen=True)
class Plan:
    """The request checked, and its destination and audit log found usable."""
    request: Request
    key_type: KeyType
    output_names: tuple[str, ...]       # the cloud's files; the signature and the manifest come after them
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class PolicyDecision:
    algorithm: str
    scheme: WrapScheme
    strength: StrengthVerdict
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class Exported:
    """What left the custody: the wrapped key and the facts about it."""
    key: KeyFacts
    wrapped: Wrapped
    warnings: tuple[str, ...]     # the software keystore's, and those of a better path whose self-test failed

    @property
    def mechanism(self) -> str:
        return self.wrapped.mechanism


@dataclass(frozen=True)
class Evidence:
    """What vouches for the cloud's files: the manifest, its signature, and the pending audit record
    whose head the manifest carries. All made before any file is written."""
    files: tuple[tuple[str, bytes], ...]            # the cloud's files, in the provider's order
    manifest: bytes
    signature: bytes | None
    pending: audit.PendingRecord | None
    signer: Signer | None


@dataclass(frozen=True)
class Report:
    facts: ExportFacts
    outputs: tuple[FileFacts, ...]      # the files the cloud's import takes
    manifest: FileFacts                 # the file that lists them, for the receiving side's check
    signature: FileFacts | None = None  # <key>-manifest.json.sig, with --signing-key
    signer: dict | None = None          # {"label", "sha256_spki", "protection"}
    audit: dict | None = None           # {"path", "seq", "sha256"}: the log's head after this export

    def as_dict(self) -> dict:
        facts = self.facts
        return {"ok": True, "provider": facts.provider, "key": facts.key.as_dict(),
                "wrapping_key": facts.wrapping_key.as_dict(), "algorithm": facts.algorithm,
                "mechanism": facts.mechanism, "outputs": [item.as_dict() for item in self.outputs], "manifest": self.manifest.as_dict(),
                "signature": self.signature.as_dict() if self.signature else None, "signer": self.signer,
                "audit": self.audit, "next_step": facts.next_step, "warnings": list(facts.warnings)}


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def run(request: Request, open_custody: Callable[[], Custody], now: Callable[[], datetime] = utc_now) -> Report:
    plan = parse(request)
    with open_audit(request.audit_log, signing=request.signing_key is not None) as log:
        kek = load_wrapping_key_file(request.wrap_key_path)
        verdict = judge_wrapping_key(plan, kek, now())
        checkpoint("trusted")
        policy = decide_policy(plan, kek)
        checkpoint("policy-decided")
        # A key (or signing key) this run created is discarded, and the files withdrawn, if anything
        # fails before the audit record is written.
        with open_custody() as custody, signing_key(custody, request.signing_key) as signer, \
                custody.key(request.key_name, plan.key_type, request.provider.name, request.reuse_key) as key:
            checkpoint("key-ready")
            exported = wrap(plan, policy, kek, custody, key)
            checkpoint("wrapped")
            facts = describe(plan, kek, verdict, policy, exported, now())
            evidence = make_evidence(plan, exported.wrapped, facts, log, signer)
            checkpoint("evidence-made")
            written = write_files(plan, evidence)
            with output.withdrawn_on_failure(written):
                record_audit(log, evidence)
    count = len(evidence.files)
    return Report(facts, tuple(written[:count]), written[-1], written[count] if evidence.signature else None,
                  signer_summary(signer), audit_summary(log, evidence))


# --- the steps, in order ---------------------------------------------------------------------
def parse(request: Request) -> Plan:
    """The request checked, and its destination found usable (the audit log is the next pre-flight)."""
    plan = check_request(request)
    output.preflight(request.out_dir, [*plan.output_names, *evidence_names(request)], request.force,
                     require_removable=request.require_removable)
    return plan


def evidence_names(request: Request) -> list[str]:
    """The files that vouch for the cloud's: the manifest, and its signature with --signing-key."""
    names = [manifest.manifest_name(request.key_name)]
    if request.signing_key is not None:
        names.append(manifest.signature_name(request.key_name))
    return names


def check_request(request: Request) -> Plan:
    """The request on its own, touching nothing: names, options, key type, the files it will make."""
    provider = request.provider
    check_key_name(request.key_name)
    if request.signing_key is not None:
        check_key_name(request.signing_key)
        if request.signing_key == request.key_name:
            raise KeyConflictError(f"'{request.key_name}' cannot be both the key to export and the signing key",
                                   code="KEY_IS_SIGNING_KEY", remedy="give the signing key a label of its own")
    provider.check_options(request.options)
    provider.check_trust_options([flag for flag, given in (
        ("--ca-bundle", request.trust.ca_bundle), ("--trust-unpinned", request.trust.trust_unpinned)) if given])
    key_type = provider.key_type(request.key_type)
    provider.check_target(key_type, request.options)
    names = tuple(provider.output_names(request.key_name, key_type, request.options))
    return Plan(request, key_type, names, tuple(provider.warnings(request.options)))


def open_audit(path: Path | None, signing: bool = False):
    """The audit log, opened and locked until the record is appended: the last pre-flight check. A log
    whose records are signed takes only signed records: an unsigned one after them is what verify-audit
    reports as appended without the key."""
    if path is None:
        return nullcontext(None)
    log = audit.AuditLog(path)
    if log.ends_signed and not signing:
        log.close()
        raise OutputError(f"audit log {path} ends in signed records, and this run would append an unsigned one",
                          code="AUDIT_LOG_SIGNED", remedy="pass --signing-key with the label that signs this log, "
                          "or --audit-log FILE for another log")
    return log


def signing_key(custody: Custody, label: str | None):
    return custody.signing_key(label) if label is not None else nullcontext(None)


def judge_wrapping_key(plan: Plan, kek: WrappingKey, now: datetime) -> trust.TrustVerdict:
    """The provider's own rules on the wrapping key (the sizes it issues), then the trust decision."""
    request = plan.request
    request.provider.check_wrapping_key(kek, request.options)
    return trust.decide(kek, request.provider, trust.load_options(request.trust), now)


def decide_policy(plan: Plan, kek: WrappingKey) -> PolicyDecision:
    request, provider = plan.request, plan.request.provider
    algorithm, scheme = provider.choose_algorithm(plan.key_type, kek, request.options)
    strength = judge_kek(kek.bits, plan.key_type, provider.strongest_kek, allow_weaker=request.allow_weaker_kek,
                         remedy=provider.stronger_kek)
    warnings = [strength.warning] if strength.warning else []
    if request.options.allow_deprecated and algorithm in provider.deprecated:
        warnings.append(f"--allow-deprecated: {algorithm}: {provider.deprecated[algorithm]}")
    return PolicyDecision(algorithm, scheme, strength, tuple(warnings))


def wrap(plan: Plan, policy: PolicyDecision, kek: WrappingKey, custody: Custody, key: KeyRef) -> Exported:
    """Self-test the mechanism on throwaway keys, then wrap the real one, both in the custody."""
    try:
        return wrap_for_each(plan.key_type, [(policy, kek)], custody, key)[0]
    except CustodyError as failure:
        raise _with_next_steps(failure, plan, policy) from None


def _with_next_steps(failure: CustodyError, plan: Plan, policy: PolicyDecision) -> CustodyError:
    """A token's refusal, with the way out that fits this provider and this request."""
    request, provider = plan.request, plan.request.provider
    steps = [failure.remedy] if failure.remedy else []
    if isinstance(failure, ParametersRefused) and policy.scheme.hash in provider.hash_refused:
        steps.insert(0, provider.hash_refused[policy.scheme.hash])
    if request.key_type is None and failure.code == "SELF_TEST_FAILED":
        steps.append(f"{plan.key_type.name}, the default key type of {provider.name}; pass -k to choose another")
    return type(failure)(failure.message, code=failure.code, remedy="; ".join(steps) or None)


def wrap_for_each(key_type: KeyType, jobs: Sequence[tuple[PolicyDecision, WrappingKey]], custody: Custody,
                  key: KeyRef) -> tuple[Exported, ...]:
    """Self-test each distinct scheme once, then wrap the key for each (policy, wrapping key) along the
    path whose self-test passed."""
    paths = {scheme: custody.self_test(key_type, scheme) for scheme in dict.fromkeys(policy.scheme for policy, _ in jobs)}
    blobs = [custody.wrap(key.handle, policy.scheme, kek.public_key, paths[policy.scheme].mechanism)
             for policy, kek in jobs]
    secret_sha256 = None if key_type.is_private_key else custody.digest(key.handle)
    public_key_pem = custody.public_key_pem(key)
    generator = f"cssadmin {__version__}; {custody.description}"
    facts = KeyFacts(key.name, key_type.name, key.created, custody.protection)
    warnings = (SOFTWARE_WARNING,) if custody.protection == "software" else ()
    return tuple(Exported(facts, Wrapped(key_name=key.name, key_type=key_type, algorithm=policy.algorithm,
                                         blob=blob, secret_sha256=secret_sha256, public_key_pem=public_key_pem,
                                         generator=generator, mechanism=paths[policy.scheme].mechanism),
                          warnings + paths[policy.scheme].warnings)
                 for (policy, _), blob in zip(jobs, blobs, strict=True))


def describe(plan: Plan, kek: WrappingKey, verdict: trust.TrustVerdict, policy: PolicyDecision,
             exported: Exported, created_utc: datetime) -> ExportFacts:
    request = plan.request
    wrapping_key = WrappingKeyFacts(
        sha256_spki=kek.sha256_spki, bits=kek.bits, strength=policy.strength.kek_strength,
        required_strength=policy.strength.required, sha256_cert=kek.sha256_cert, pinned_by=verdict.pinned_by,
        trust_unpinned=verdict.trust_unpinned, certificate=verdict.certificate,
        allow_weaker_kek=policy.strength.weaker_allowed)
    return ExportFacts(
        tool_version=__version__, provider=request.provider.name, key=exported.key, wrapping_key=wrapping_key,
        algorithm=policy.algorithm, mechanism=exported.mechanism, created_utc=created_utc,
        next_step=request.provider.next_step(exported.wrapped, request.options),
        warnings=plan.warnings + verdict.warnings + policy.warnings + exported.warnings)


def make_evidence(plan: Plan, wrapped: Wrapped, facts: ExportFacts, log: audit.AuditLog | None,
                  signer: Signer | None, after: audit.PendingRecord | None = None) -> Evidence:
    """The audit record (and so the head), then the manifest that carries that head, then its signature.
    `after`: the record this one is chained onto before either is appended (a plan's destinations)."""
    files = cloud_files(plan, wrapped)
    pending = (log.next_head(audit.build_export_record(facts, listed(plan, files)), signer, after=after)
               if log is not None else None)
    document = manifest.build_manifest(facts, files, audit_head=pending.head if pending else None,
                                       signer=signer.facts if signer else None)
    return Evidence(tuple(files), document, signer.sign(document) if signer else None, pending, signer)


def cloud_files(plan: Plan, wrapped: Wrapped) -> list[tuple[str, bytes]]:
    """The files the cloud's import takes, as (name, bytes)."""
    return [(item.name, item.data) for item in plan.request.provider.outputs(wrapped, plan.request.options)]


def listed(plan: Plan, files: list[tuple[str, bytes]]) -> list[FileFacts]:
    """Those files as the audit record lists them: where they will be placed, their SHA-256 and size."""
    directory = Path(plan.request.out_dir)
    return [FileFacts(str((directory / name).resolve()), output.sha256_hex(data), len(data)) for name, data in files]


def vouching_files(plan: Plan, evidence: Evidence) -> list[tuple[str, bytes]]:
    """The files placed after the cloud's: the signature, then the manifest (last: it vouches for them)."""
    key_name = plan.request.key_name
    signature = [(manifest.signature_name(key_name), evidence.signature)] if evidence.signature is not None else []
    return signature + [(manifest.manifest_name(key_name), evidence.manifest)]


def write_files(plan: Plan, evidence: Evidence) -> list[FileFacts]:
    """The cloud's files, then the signature, then the manifest that lists them, placed as one unit and read back."""
    request = plan.request
    vouching = vouching_files(plan, evidence)
    return output.place_all(request.out_dir, [*evidence.files, *vouching], request.force, vouchers=len(vouching),
                            require_removable=request.require_removable)


def record_audit(log: audit.AuditLog | None, evidence: Evidence) -> None:
    if log is None or evidence.pending is None:
        return
    checkpoint("recording")
    try:
        log.append(evidence.pending)
    except OutputError as failure:
        raise OutputError("the audit record could not be written, so the outputs were removed and a key "
                          f"this run created was destroyed: {failure}",
                          code="AUDIT_WRITE_FAILED",
                          remedy="fix the audit log, or pass --no-audit to export without one") from None


def signer_summary(signer: Signer | None) -> dict | None:
    if signer is None:
        return None
    return {"label": signer.facts.label, "sha256_spki": signer.facts.sha256_spki,
            "protection": signer.facts.protection, "created": signer.created}


def audit_summary(log: audit.AuditLog | None, evidence: Evidence) -> dict | None:
    if log is None or evidence.pending is None:
        return None
    return {"path": str(log.path), **evidence.pending.head.as_dict()}
