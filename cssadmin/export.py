"""One export, top to bottom: parse, wrapping key, trust, policy, custody, self-test, wrap, files,
verify, audit, report.

Each step returns a frozen value and takes, as arguments, the values of the steps it depends on,
so the order is fixed by the data and no step reaches into another's state. Nothing touches the
token before the policy decision; nothing touches the output directory before the wrap, except the
pre-flight checks of the parse step, so a doomed run fails before the HSM generates anything.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

from . import __version__, audit, manifest, output, trust
from .custody import Custody
from .errors import OutputError
from .facts import ExportFacts, FileFacts, KeyFacts, WrappingKeyFacts
from .keynames import check_key_name
from .keytypes import KeyType
from .providers.base import Options, Provider, Wrapped
from .schemes import WrapScheme
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
    audit_log: Path | None = None       # None: no audit record (--no-audit)


@dataclass(frozen=True)
class Plan:
    """The request checked, and its destination and audit log found usable."""
    request: Request
    key_type: KeyType
    output_names: tuple[str, ...]       # the cloud's files; the manifest comes last, after them
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
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class Report:
    facts: ExportFacts
    outputs: tuple[FileFacts, ...]      # the files the cloud's import takes
    manifest: FileFacts                 # the file that lists them, for the receiving side's check

    def as_dict(self) -> dict:
        facts = self.facts
        return {"ok": True, "provider": facts.provider, "key": facts.key.as_dict(),
                "wrapping_key": facts.wrapping_key.as_dict(), "algorithm": facts.algorithm,
                "outputs": [item.as_dict() for item in self.outputs], "manifest": self.manifest.as_dict(),
                "next_step": facts.next_step, "warnings": list(facts.warnings)}


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def run(request: Request, open_custody: Callable[[], Custody], now: Callable[[], datetime] = utc_now) -> Report:
    plan = parse(request)
    kek = load_wrapping_key_file(request.wrap_key_path)
    verdict = judge_wrapping_key(plan, kek, now())
    policy = decide_policy(plan, kek)
    exported = wrap_in_custody(plan, policy, kek, open_custody)
    facts = describe(plan, kek, verdict, policy, exported, now())
    written = write_files(plan, exported.wrapped, facts)
    output.verify_all(written)
    record_audit(plan, facts, written)
    return Report(facts, tuple(written[:-1]), written[-1])


# --- the steps, in order ---------------------------------------------------------------------
def parse(request: Request) -> Plan:
    plan = check_request(request)
    output.preflight(request.out_dir, [*plan.output_names, manifest.manifest_name(request.key_name)], request.force,
                     require_removable=request.require_removable)
    if request.audit_log is not None:
        audit.check_appendable(request.audit_log)
    return plan


def check_request(request: Request) -> Plan:
    """The request on its own, touching nothing: names, options, key type, the files it will make."""
    provider = request.provider
    check_key_name(request.key_name)
    provider.check_options(request.options)
    provider.check_trust_options([flag for flag, given in (
        ("--ca-bundle", request.trust.ca_bundle), ("--pins", request.trust.pins),
        ("--trust-unpinned", request.trust.trust_unpinned)) if given])
    key_type = provider.key_type(request.key_type)
    provider.check_target(key_type, request.options)
    names = tuple(provider.output_names(request.key_name, key_type, request.options))
    return Plan(request, key_type, names, tuple(provider.warnings(request.options)))


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


def wrap_in_custody(plan: Plan, policy: PolicyDecision, kek: WrappingKey,
                    open_custody: Callable[[], Custody]) -> Exported:
    return wrap_for_each(plan.request.key_name, plan.key_type, [(policy, kek)], open_custody)[0]


def wrap_for_each(key_name: str, key_type: KeyType, jobs: Sequence[tuple[PolicyDecision, WrappingKey]],
                  open_custody: Callable[[], Custody]) -> tuple[Exported, ...]:
    """Open the custody, find or create the key, self-test each distinct scheme once, wrap the key for
    each (policy, wrapping key). A key this run created is discarded if any of that fails."""
    with open_custody() as custody, custody.key(key_name, key_type) as key:
        for scheme in dict.fromkeys(policy.scheme for policy, _ in jobs):
            custody.self_test(key_type, scheme)
        blobs = [custody.wrap(key.handle, policy.scheme, kek.public_key) for policy, kek in jobs]
        secret_sha256 = None if key_type.is_private_key else custody.digest(key.handle)
        public_key_pem = custody.public_key_pem(key)
        generator = f"cssadmin {__version__}; {custody.description}"
        facts = KeyFacts(key.name, key_type.name, key.created, custody.protection)
        warnings = (SOFTWARE_WARNING,) if custody.protection == "software" else ()
        return tuple(Exported(facts, Wrapped(key_name=key.name, key_type=key_type, algorithm=policy.algorithm,
                                             blob=blob, secret_sha256=secret_sha256,
                                             public_key_pem=public_key_pem, generator=generator), warnings)
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
        algorithm=policy.algorithm, created_utc=created_utc,
        next_step=request.provider.next_step(exported.wrapped, request.options),
        warnings=plan.warnings + verdict.warnings + policy.warnings + exported.warnings)


def write_files(plan: Plan, wrapped: Wrapped, facts: ExportFacts) -> list[FileFacts]:
    """The cloud's files, then the manifest that lists them, placed as one unit."""
    return output.write_all(plan.request.out_dir, build_files(plan, wrapped, facts), plan.request.force)


def build_files(plan: Plan, wrapped: Wrapped, facts: ExportFacts) -> list[tuple[str, bytes]]:
    """The cloud's files, then the manifest that lists them (last: it vouches for the others)."""
    request = plan.request
    files = [(item.name, item.data) for item in request.provider.outputs(wrapped, request.options)]
    files.append((manifest.manifest_name(request.key_name), manifest.build_manifest(facts, files)))
    return files


def record_audit(plan: Plan, facts: ExportFacts, written: list[FileFacts]) -> None:
    if plan.request.audit_log is None:
        return
    try:
        audit.append_record(plan.request.audit_log, audit.build_export_record(facts, written))
    except OutputError as failure:
        raise OutputError(f"the outputs were written and verified, but the audit record was not: {failure}",
                          code="AUDIT_WRITE_FAILED",
                          remedy="fix the audit log, or pass --no-audit to export without one") from None
