"""From parsed arguments to a finished action: the export, or one of the verify actions.

Part of the command-line layer: it builds requests and chooses custody, and does no cryptography.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from . import secret_input
from .errors import UsageError

VERIFY_ACTIONS = ("verify-manifest", "verify-audit")
REQUIRE_PINNED_VARIABLE = "CSSADMIN_REQUIRE_PINNED"   # a host can enforce pinning for every run
SIGNING_KEY_ACTION = "signing-key"
_VERIFY_OPTIONS = ("--signer-fingerprint", "signer_fingerprint"), ("--signer-key", "signer_key"), \
    ("--expect-head", "expect_head")
PLAN_ACTION = "export-plan"
CHECK_TOKEN_ACTION = "check-token"
# What a plan sets per destination, so the command line must not.
_PLAN_FIELDS_NOT_OPTIONS = (("key_type", "-k/--key-type"), ("azure_kek", "-a/--azure-kek"),
                            ("import_method", "--import-method"), ("csek_uri", "--csek-uri"),
                            ("expect_fingerprint", "--expect-fingerprint"), ("ca_bundle", "--ca-bundle"),
                            ("pins", "--pins"), ("trust_unpinned", "--trust-unpinned"))


def dispatch(namespace: argparse.Namespace, progress=None) -> dict:
    """`progress`, when given, is told what a long action is doing (cli.py shows it on a terminal)."""
    args = namespace.args
    if args and args[0] == CHECK_TOKEN_ACTION:
        _refuse(namespace, args[0], *_VERIFY_OPTIONS, ("--signing-key", "signing_key"), ("--out", "out"))
        return check_token(namespace, progress or (lambda _text: None))
    if args and args[0] in VERIFY_ACTIONS:
        _refuse(namespace, args[0], ("--signing-key", "signing_key"), ("--out", "out"))
        return _verify_action(namespace)
    if args and args[0] == SIGNING_KEY_ACTION:
        _refuse(namespace, args[0], *_VERIFY_OPTIONS)
        return _signing_key_action(namespace)
    if args and args[0] == PLAN_ACTION:
        _refuse(namespace, args[0], *_VERIFY_OPTIONS, ("--out", "out"))
        return export_plan(namespace)
    if namespace.check:
        raise UsageError("--check applies to export-plan only")
    if len(args) < 3:
        raise UsageError("missing arguments: provider keyName wrapKey [wrapAlg] are required (see --help)")
    _refuse(namespace, "an export", *_VERIFY_OPTIONS, ("--out", "out"))
    return export(namespace)


def _refuse(namespace: argparse.Namespace, action: str, *options: tuple[str, str]) -> None:
    given = [flag for flag, attribute in options if getattr(namespace, attribute, None) is not None]
    if given:
        raise UsageError(f"{', '.join(given)} cannot be used with {action}")


def _verify_action(namespace: argparse.Namespace) -> dict:
    args = namespace.args
    if len(args) != 2:
        raise UsageError(f"usage: cssadmin {args[0]} FILE [--signer-fingerprint SHA256 | --signer-key PEM] "
                         "[--expect-head SEQ:SHA256]")
    from .audit import parse_head
    from .signatures import load_pin
    action, path = args
    expect_head = parse_head(namespace.expect_head) if namespace.expect_head is not None else None
    pin = load_pin(namespace.signer_fingerprint, namespace.signer_key)
    if action == "verify-manifest":
        from .manifest import verify_manifest
        verdict = verify_manifest(path, pin, expect_head)
        return {"ok": True, "manifest": path, "files": verdict.files, "verified": verdict.as_dict(),
                "warnings": verdict.warnings, "summary": _manifest_summary(path, verdict)}
    from .audit_verify import verify_audit
    verdict = verify_audit(path, pin, expect_head)
    return {"ok": True, "audit_log": path, "records": verdict.records, "verified": verdict.as_dict(),
            "warnings": verdict.warnings, "summary": _audit_summary(path, verdict)}


def _manifest_summary(path: str, verdict) -> list[str]:
    lines = [f"{path}: all {len(verdict.files)} listed files are present and match"]
    if verdict.signature:
        pinned = "the expected signer" if verdict.signer_pinned else "a signer that was not pinned"
        lines.append(f"signature: valid, by {pinned}, SHA-256 of SubjectPublicKeyInfo {verdict.signer_sha256_spki}")
    if verdict.audit_head is not None:
        head = verdict.audit_head
        lines.append(f"audit head: {head['seq']}:{head['sha256']}" + (" (as expected)" if verdict.head_expected else ""))
    return lines


def _audit_summary(path: str, verdict) -> list[str]:
    lines = [f"{path}: the chain of {verdict.records} records is intact"
             + (f"; {verdict.anchored} carry their own sha256" if verdict.records else "")]
    if verdict.signed:
        lines.append(f"signatures: {verdict.signed} valid, by {', '.join(verdict.signers)}"
                     + ("" if verdict.signer_pinned else " (not pinned)"))
    if verdict.head is not None:
        lines.append(f"head: {verdict.head.seq}:{verdict.head.sha256}")
    if verdict.expected_head is not None:
        lines.append(f"expected head {verdict.expected_head.seq}:{verdict.expected_head.sha256}: found")
    return lines


def _signing_key_action(namespace: argparse.Namespace) -> dict:
    """Create the signing key if it is missing, and hand out its public key (PEM) for the online side."""
    args = namespace.args
    if len(args) != 2:
        raise UsageError("usage: cssadmin signing-key LABEL [--out FILE]")
    from . import output
    from .keynames import check_key_name
    label = args[1]
    check_key_name(label)
    _check_conflicts(namespace)
    target = Path(namespace.out) if namespace.out is not None else None
    if target is not None:
        output.preflight(target.parent, [target.name], namespace.force)
    with _open_custody(namespace) as custody, custody.signing_key(label) as signer:
        written = None
        if target is not None:
            [written] = output.write_all(target.parent, [(target.name, signer.facts.public_key_pem.encode("ascii"))],
                                         namespace.force)
            output.verify_all([written])
    facts = signer.facts
    summary = [f"signing key '{label}' ({'created' if signer.created else 'existing'}, protection: "
               f"{facts.protection})", f"SHA-256 of SubjectPublicKeyInfo: {facts.sha256_spki}"]
    summary.append(f"wrote {written.path}" if written else facts.public_key_pem.rstrip("\n"))
    return {"ok": True, "signer": {"label": facts.label, "sha256_spki": facts.sha256_spki,
                                   "protection": facts.protection, "created": signer.created},
            "public_key_pem": facts.public_key_pem, "out": written.as_dict() if written else None,
            "warnings": [] if facts.protection == "hsm" else
            ["the signing key is held in a software keystore, not an HSM"], "summary": summary}


def export(namespace: argparse.Namespace) -> dict:
    from . import export
    from .providers import get_provider
    from .providers.base import Options
    from .trust import TrustRequest

    provider_name, key_name, wrap_key_path, *rest = namespace.args
    _check_conflicts(namespace)
    request = export.Request(
        provider=get_provider(provider_name),
        key_name=key_name,
        wrap_key_path=wrap_key_path,
        key_type=namespace.key_type,
        options=Options(wrap_alg=rest[0] if rest else None, import_method=namespace.import_method,
                        azure_kek=namespace.azure_kek, csek_uri=namespace.csek_uri,
                        allow_deprecated=namespace.allow_deprecated),
        trust=TrustRequest(expected_fingerprints=tuple(_fingerprints(namespace.expect_fingerprint)),
                           ca_bundle=namespace.ca_bundle, pins=namespace.pins,
                           trust_unpinned=namespace.trust_unpinned,
                           require_pinned=_require_pinned(namespace)),
        out_dir=namespace.out_dir,
        force=namespace.force,
        require_removable=namespace.require_removable,
        allow_weaker_kek=namespace.allow_weaker_kek,
        reuse_key=namespace.reuse_key,
        audit_log=None if namespace.no_audit else _audit_path(namespace.audit_log),
        signing_key=namespace.signing_key,
    )
    return export.run(request, lambda: _open_custody(namespace)).as_dict()


def export_plan(namespace: argparse.Namespace) -> dict:
    from . import plan

    if len(namespace.args) != 2:
        raise UsageError(f"usage: cssadmin {PLAN_ACTION} PLAN.toml [--check] [options]")
    _check_conflicts(namespace)
    given = [flag for field, flag in _PLAN_FIELDS_NOT_OPTIONS if getattr(namespace, field)]
    if given:
        raise UsageError(f"{', '.join(given)}: a plan sets these per destination (and key_type once), not on "
                         "the command line", code="OPTION_NOT_APPLICABLE")
    settings = plan.Settings(out_dir=namespace.out_dir, force=namespace.force,
                             require_removable=namespace.require_removable,
                             allow_weaker_kek=namespace.allow_weaker_kek, allow_deprecated=namespace.allow_deprecated,
                             reuse_key=namespace.reuse_key, require_pinned=_require_pinned(namespace),
                             audit_log=None if namespace.no_audit else _audit_path(namespace.audit_log),
                             signing_key=namespace.signing_key)
    ceremony = plan.load(namespace.args[1], settings)
    if namespace.check:
        return plan.check(ceremony)
    return plan.run(ceremony, lambda: _open_custody(namespace))


def check_token(namespace: argparse.Namespace, progress) -> dict:
    from . import token_check

    _check_conflicts(namespace)
    if namespace.keystore:
        raise UsageError("check-token checks a PKCS#11 token; --keystore does not apply", code="OPTION_NOT_APPLICABLE")
    with _open_custody(namespace) as custody:
        token = custody.token_facts()
        rows = [row.as_dict() for row in token_check.check(custody, progress)]
    passed = sum(row["ok"] for row in rows)
    summary = [f"token '{token['label']}' ({token['manufacturer']} {token['model']}, firmware {token['firmware']}): "
               f"{passed} of {len(rows)} exports possible", *_table(rows)]
    return {"ok": True, "token": token, "results": rows, "warnings": [], "summary": summary}


def _table(rows: list[dict]) -> list[str]:
    heading = ("provider", "key type", "algorithm", "verdict", "mechanism", "reason")
    cells = [(row["provider"], row["key_type"], row["algorithm"], "ok" if row["ok"] else "refused",
              row["mechanism"] or "-", row["reason"] or "") for row in rows]
    widths = [max(len(line[column]) for line in [heading, *cells]) for column in range(5)]
    return ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)) + "  " + line[5]
            for line in [heading, *cells]]


def _require_pinned(namespace: argparse.Namespace) -> bool:
    return namespace.require_pinned or os.environ.get(REQUIRE_PINNED_VARIABLE) == "1"


def _audit_path(given: str | None) -> Path:
    from .audit import default_audit_path
    return Path(given) if given else default_audit_path()


def _fingerprints(values: list[str]) -> list[str]:
    from .wrapping_key import normalise_fingerprint
    return [normalise_fingerprint(value) for value in values]


def _check_conflicts(namespace: argparse.Namespace) -> None:
    token_options = [flag for flag, value in (
        ("--pkcs11-module", namespace.pkcs11_module), ("--token", namespace.token), ("-m", namespace.module),
        ("-O", namespace.cardset), ("-S", namespace.softcard), ("--pin-file", namespace.pin_file),
        ("--pin-env", namespace.pin_env)) if value is not None]
    if namespace.keystore and token_options:
        raise UsageError(f"--keystore cannot be combined with {', '.join(token_options)}")
    if not namespace.keystore and (namespace.passphrase_file or namespace.passphrase_env):
        raise UsageError("--passphrase-file and --passphrase-env need --keystore")
    if namespace.no_audit and namespace.audit_log:
        raise UsageError("--audit-log and --no-audit contradict each other; give one")
    label_options = [value for value in (namespace.token, namespace.cardset, namespace.softcard) if value]
    if len(label_options) > 1 and len(set(label_options)) > 1:
        raise UsageError("--token, -O and -S name different tokens; give one")


def _secret_source(file_path: str | None, variable: str | None, what: str, prompt: str):
    def read(*, confirm: bool = False) -> str:
        if file_path:
            return secret_input.from_file(file_path, what)
        if variable:
            return secret_input.from_env(variable, what)
        return secret_input.from_terminal(prompt, what, confirm=confirm)
    return read


def _open_custody(namespace: argparse.Namespace):
    if namespace.keystore:
        from .custody.software import SoftwareKeystore
        return SoftwareKeystore(namespace.keystore, _secret_source(
            namespace.passphrase_file, namespace.passphrase_env, "passphrase", "Keystore passphrase: "))
    from .custody.pkcs11 import Pkcs11Custody, TokenSelector
    from .arguments import MODULE_VARIABLE
    module = namespace.pkcs11_module or os.environ.get(MODULE_VARIABLE, "")
    label = namespace.token or namespace.cardset or namespace.softcard
    return Pkcs11Custody(module, TokenSelector(label=label, slot_id=namespace.module),
                         _secret_source(namespace.pin_file, namespace.pin_env, "PIN", "Token PIN: "),
                         force_login=bool(namespace.cardset or namespace.softcard))
