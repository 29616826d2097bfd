"""A ceremony plan: one key, wrapped for several destinations in one run (`cssadmin export-plan PLAN.toml`).

The same steps as an export (export.py), once per destination where they concern the destination and
once in all where they concern the key: every destination is checked, its wrapping key loaded and
judged, before the custody is opened; then one key, one login, one self-test per distinct scheme, one
wrap per destination; the files of every destination and the plan manifest are placed as one unit.
Any refusal names the destination it concerns.
"""
from __future__ import annotations

import os
import tomllib
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Callable

from . import export, output, trust
from .checkpoints import checkpoint
from .custody import Custody
from .errors import CssadminError, UsageError
from .facts import FileFacts
from .keynames import check_key_name
from .keytypes import KeyType
from .plan_manifest import build_plan_manifest, key_identifier, plan_manifest_name
from .providers import get_provider
from .providers.base import Options
from .wrapping_key import WrappingKey, load_wrapping_key_file, normalise_fingerprint

MAX_PLAN_BYTES = 1 << 20
PLAN_FIELDS = frozenset({"key", "key_type", "destination"})
DESTINATION_FIELDS = frozenset({"name", "provider", "wrapping_key", "algorithm", "expect_fingerprint",
                                "azure_kek", "import_method", "csek_uri", "pins", "ca_bundle", "trust_unpinned"})
_FORBIDDEN_IN_NAME = set('/\\:*?"<>|\0')
_WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", *(f"COM{n}" for n in range(1, 10)), *(f"LPT{n}" for n in range(1, 10))}


@dataclass(frozen=True)
class Settings:
    """What comes from the command line, as for an export: output, audit and policy overrides."""
    out_dir: str = "."
    force: bool = False
    require_removable: bool = False
    allow_weaker_kek: bool = False
    allow_deprecated: bool = False
    reuse_key: bool = False
    require_pinned: bool = False
    audit_log: Path | None = None
    signing_key: str | None = None   # signs every destination's manifest and audit record


@dataclass(frozen=True)
class Destination:
    name: str
    request: export.Request      # out_dir is <out-dir>/<name>


@dataclass(frozen=True)
class CeremonyPlan:
    path: str
    key_name: str
    key_type: KeyType
    destinations: tuple[Destination, ...]
    settings: Settings


@dataclass(frozen=True)
class Judged:
    """One destination, checked and with its wrapping key loaded and judged: ready for the custody."""
    destination: Destination
    plan: export.Plan
    kek: WrappingKey
    verdict: trust.TrustVerdict
    policy: export.PolicyDecision


@contextmanager
def naming(destination: str):
    """Every refusal about one destination says which: the same error class, code and remedy."""
    try:
        yield
    except CssadminError as failure:
        raise type(failure)(f"destination '{destination}': {failure.message}", code=failure.code,
                            remedy=failure.remedy) from None


# --- reading the plan ----------------------------------------------------------------------
def load(path: str, settings: Settings) -> CeremonyPlan:
    document = _read_toml(path)
    _no_unknown(document, PLAN_FIELDS, "the plan")
    key_name = document.get("key")
    if not isinstance(key_name, str):
        raise UsageError(f"plan {path}: `key` (the key name) is required", code="PLAN_MALFORMED")
    check_key_name(key_name)
    entries = document.get("destination")
    if not isinstance(entries, list) or not entries or not all(isinstance(entry, dict) for entry in entries):
        raise UsageError(f"plan {path}: at least one [[destination]] table is required", code="PLAN_MALFORMED")
    base = Path(path).resolve().parent
    destinations = tuple(_destination(entry, position, key_name, base, settings)
                         for position, entry in enumerate(entries, 1))
    names = [destination.name for destination in destinations]
    if len({name.casefold() for name in names}) != len(names):
        raise UsageError(f"plan {path}: destination names repeat (compared without case): {', '.join(names)}",
                         code="PLAN_MALFORMED")
    key_type = _common_key_type(document.get("key_type"), destinations)
    destinations = tuple(replace(d, request=replace(d.request, key_type=key_type.name)) for d in destinations)
    return CeremonyPlan(path, key_name, key_type, destinations, settings)


def _read_toml(path: str) -> dict:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_PLAN_BYTES + 1)
    except OSError as failure:
        raise UsageError(f"cannot read plan {path}: {failure.strerror or failure}", code="PLAN_UNREADABLE") from None
    if len(data) > MAX_PLAN_BYTES:
        raise UsageError(f"plan {path} is larger than {MAX_PLAN_BYTES} bytes", code="PLAN_MALFORMED")
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as failure:
        raise UsageError(f"plan {path} is not valid UTF-8 TOML: {failure}", code="PLAN_MALFORMED") from None


def _no_unknown(table: dict, allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise UsageError(f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}",
                         code="PLAN_MALFORMED")


def check_destination_name(name: object, position: int) -> str:
    """A bare directory name: one path component, portable, not hidden, not '.' or '..'."""
    if (not isinstance(name, str) or not name or len(name) > 64 or name != name.strip() or name.startswith(".")
            or name.rstrip(". ") != name or any(char in _FORBIDDEN_IN_NAME or ord(char) < 32 for char in name)
            or name.split(".")[0].upper() in _WINDOWS_DEVICES):
        raise UsageError(f"destination {position}: name {name!r} is not a bare directory name (1-64 characters, "
                         "no path separators, no leading dot or trailing dot or space, no Windows device name)", code="BAD_DESTINATION_NAME")
    return name


def _text(entry: dict, field: str, where: str, *, required: bool = False) -> str | None:
    value = entry.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise UsageError(f"{where}: `{field}` must be a non-empty string", code="PLAN_MALFORMED")
    return value


def _destination(entry: dict, position: int, key_name: str, base: Path, settings: Settings) -> Destination:
    name = check_destination_name(entry.get("name"), position)
    where = f"destination '{name}'"
    _no_unknown(entry, DESTINATION_FIELDS, where)
    with naming(name):
        provider = get_provider(_text(entry, "provider", where, required=True))
        fingerprints = entry.get("expect_fingerprint", [])
        fingerprints = [fingerprints] if isinstance(fingerprints, str) else fingerprints
        if not isinstance(fingerprints, list) or not all(isinstance(item, str) for item in fingerprints):
            raise UsageError("`expect_fingerprint` must be a string or a list of strings", code="PLAN_MALFORMED")
        unpinned = entry.get("trust_unpinned", False)
        if not isinstance(unpinned, bool):
            raise UsageError("`trust_unpinned` must be true or false", code="PLAN_MALFORMED")
        relative = {field: _text(entry, field, where) for field in ("wrapping_key", "pins", "ca_bundle")}
        if relative["wrapping_key"] is None:
            raise UsageError("`wrapping_key` (a file, relative to the plan) is required", code="PLAN_MALFORMED")
        paths = {field: None if value is None else str(base / value) for field, value in relative.items()}
        request = export.Request(
            provider=provider, key_name=key_name, wrap_key_path=paths["wrapping_key"],
            options=Options(wrap_alg=_text(entry, "algorithm", where), import_method=_text(entry, "import_method", where),
                            azure_kek=_text(entry, "azure_kek", where), csek_uri=_text(entry, "csek_uri", where),
                            allow_deprecated=settings.allow_deprecated),
            trust=trust.TrustRequest(expected_fingerprints=tuple(normalise_fingerprint(f) for f in fingerprints),
                                     ca_bundle=paths["ca_bundle"], pins=paths["pins"], trust_unpinned=unpinned,
                                     require_pinned=settings.require_pinned),
            out_dir=os.path.join(settings.out_dir, name), force=settings.force,
            allow_weaker_kek=settings.allow_weaker_kek, audit_log=settings.audit_log,
            signing_key=settings.signing_key)
    return Destination(name, request)


def _common_key_type(requested: object, destinations: tuple[Destination, ...]) -> KeyType:
    """The key type every destination takes (exit 4 naming the first that does not)."""
    if requested is not None and not isinstance(requested, str):
        raise UsageError("`key_type` must be a string such as \"AES-256\"", code="PLAN_MALFORMED")
    if requested is None:
        defaults = {d.name: d.request.provider.default_key_type for d in destinations}
        if len(set(defaults.values())) > 1:
            listed = ", ".join(f"{name}: {kind}" for name, kind in defaults.items())
            raise UsageError(f"the destinations' default key types differ ({listed}); set `key_type` in the plan",
                             code="PLAN_KEY_TYPE_MISSING")
        requested = next(iter(defaults.values()))
    key_type = None
    for destination in destinations:
        with naming(destination.name):
            key_type = destination.request.provider.key_type(requested)
            destination.request.provider.check_target(key_type, destination.request.options)
    return key_type


# --- the steps -----------------------------------------------------------------------------
def judge_all(plan: CeremonyPlan, now: datetime) -> tuple[Judged, ...]:
    """Everything up to the token, for every destination: any refusal fails the whole plan."""
    checked = []
    for destination in plan.destinations:
        with naming(destination.name):
            checked.append(export.check_request(destination.request))
    settings = plan.settings
    output.preflight_tree(settings.out_dir, [(d.name, [*c.output_names, *export.evidence_names(d.request)])
                                             for d, c in zip(plan.destinations, checked)],
                          [plan_manifest_name(plan.key_name)], settings.force,
                          require_removable=settings.require_removable)
    judged = []
    for destination, checked_plan in zip(plan.destinations, checked):
        with naming(destination.name):
            kek = load_wrapping_key_file(destination.request.wrap_key_path)
            verdict = export.judge_wrapping_key(checked_plan, kek, now)
            policy = export.decide_policy(checked_plan, kek)
        judged.append(Judged(destination, checked_plan, kek, verdict, policy))
    return tuple(judged)


def run(plan: CeremonyPlan, open_custody: Callable[[], Custody],
        now: Callable[[], datetime] = export.utc_now) -> dict:
    settings = plan.settings
    with export.open_audit(settings.audit_log, signing=settings.signing_key is not None) as log:
        judged = judge_all(plan, now())
        providers = list(dict.fromkeys(j.plan.request.provider.name for j in judged))
        # A plan that names several providers declares the key's reuse across them; a plan for one
        # provider re-exports only a key made for it, unless --reuse-key.
        reuse_key = settings.reuse_key or len(providers) > 1
        with open_custody() as custody, export.signing_key(custody, settings.signing_key) as signer, \
                custody.key(plan.key_name, plan.key_type, providers[0], reuse_key) as key:
            exported = export.wrap_for_each(plan.key_type, [(j.policy, j.kek) for j in judged], custody, key)
            created = now()
            facts = [export.describe(j.plan, j.kek, j.verdict, j.policy, e, created) for j, e in zip(judged, exported)]
            identifiers = [key_identifier(e.wrapped) for e in exported]
            # Each destination's record is chained onto the one before, not yet appended, so that
            # each manifest carries the head its own record makes; all are appended together below.
            evidence: list[export.Evidence] = []
            for j, e, f in zip(judged, exported, facts):
                evidence.append(export.make_evidence(j.plan, e.wrapped, f, log, signer,
                                                     after=evidence[-1].pending if evidence else None))
            groups = [(j.destination.name, [*ev.files, *export.vouching_files(j.plan, ev)])
                      for j, ev in zip(judged, evidence)]
            voucher = (plan_manifest_name(plan.key_name),
                       build_plan_manifest(plan.key_name, plan.key_type.name, identifiers[0], created,
                                           [(j.destination.name, f, i, files)
                                            for j, f, i, (_, files) in zip(judged, facts, identifiers, groups)]))
            new_directories = tuple(path for path in (Path(settings.out_dir, j.destination.name) for j in judged)
                                    if not path.exists())
            written = output.write_tree(settings.out_dir, groups, voucher, settings.force)
            placed = [item for files in written for item in files]
            output.verify_all(placed)
            with output.withdrawn_on_failure(placed, new_directories):
                if log is not None:   # one record per destination, in one write
                    checkpoint("recording")
                    log.append_all([ev.pending for ev in evidence])
    return _report(plan, identifiers, facts, written, [export.audit_summary(log, ev) for ev in evidence], signer)


def check(plan: CeremonyPlan, now: Callable[[], datetime] = export.utc_now) -> dict:
    """--check: everything up to the token, and what would be done."""
    with export.open_audit(plan.settings.audit_log):
        judged = judge_all(plan, now())
    destinations = []
    for j in judged:
        request = j.plan.request
        destinations.append({
            "name": j.destination.name, "provider": request.provider.name,
            "wrapping_key": {"sha256_spki": j.kek.sha256_spki, "sha256_cert": j.kek.sha256_cert, "bits": j.kek.bits,
                             "strength": j.policy.strength.kek_strength, "pinned_by": j.verdict.pinned_by,
                             "trust_unpinned": j.verdict.trust_unpinned},
            "algorithm": j.policy.algorithm, "scheme": j.policy.scheme.describe(),
            "outputs": [str(Path(request.out_dir, name))
                        for name in (*j.plan.output_names, *export.evidence_names(request))],
            "warnings": list(j.plan.warnings + j.verdict.warnings + j.policy.warnings)})
    schemes = list(dict.fromkeys(j.policy.scheme.describe() for j in judged))
    summary = [f"plan {plan.path}: key {plan.key_name} ({plan.key_type.name}) for {len(judged)} destinations; "
               "checked, nothing was generated or written"]
    summary += [f"  {d['name']}: {d['provider']}, {d['algorithm']}, wrapping key RSA-{d['wrapping_key']['bits']} "
                f"{d['wrapping_key']['sha256_spki']} -> {', '.join(d['outputs'])}" for d in destinations]
    summary += [f"  self-test once: {scheme}" for scheme in schemes]
    signing_key = plan.settings.signing_key
    if signing_key is not None:
        summary.append(f"  every manifest signed by the signing key {signing_key!r} (created at the ceremony "
                       "if it is not on the token yet; `cssadmin signing-key` shows its fingerprint)")
    return {"ok": True, "check": True, "plan": plan.path, "key_name": plan.key_name, "key_type": plan.key_type.name,
            "signing_key": signing_key, "self_tests": schemes, "destinations": destinations,
            "warnings": sorted({w for d in destinations for w in d["warnings"]}), "summary": summary}


def _report(plan: CeremonyPlan, identifiers: list[dict], facts, written: list[list[FileFacts]],
            heads: list[dict | None], signer) -> dict:
    identifier = identifiers[0]
    destinations = []
    vouchers = 2 if signer else 1
    for destination, f, i, files, head in zip(plan.destinations, facts, identifiers, written, heads):
        entry = export.Report(f, tuple(files[:-vouchers]), files[-1], files[-2] if signer else None,
                              export.signer_summary(signer), head).as_dict()
        del entry["ok"]
        destinations.append({"name": destination.name, **entry, "key_identifier": i})
    voucher = written[-1][0]
    summary = [f"key: {plan.key_name} ({plan.key_type.name}, {'created' if facts[0].key.created else 'existing'}, "
               f"protection: {facts[0].key.protection}); key identifier ({identifier['kind']}) {identifier['value']}"]
    for entry in destinations:
        summary.append(f"{entry['name']} ({entry['provider']}, {entry['algorithm']}):")
        summary += [f"  wrote {item['path']} ({item['bytes']} bytes, sha256 {item['sha256']})"
                    for item in entry["outputs"] + [entry["manifest"]] + ([entry["signature"]] if signer else [])]
        if entry["audit"]:
            summary.append(f"  audit head: {entry['audit']['seq']}:{entry['audit']['sha256']} in {entry['audit']['path']}")
        summary.append(f"  next step: {entry['next_step']}")
    summary.append(f"wrote {voucher.path} ({voucher.bytes} bytes, sha256 {voucher.sha256})")
    if signer:
        summary.append(f"signed by: {signer.facts.label} (SHA-256 of SubjectPublicKeyInfo {signer.facts.sha256_spki}, "
                       f"protection: {signer.facts.protection})")
    return {"ok": True, "plan": plan.path, "key_identifier": identifier, "destinations": destinations,
            "manifest": voucher.as_dict(),
            "warnings": list(dict.fromkeys(w for f in facts for w in f.warnings)), "summary": summary}
