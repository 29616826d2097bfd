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
PLAN_ACTION = "export-plan"
# What a plan sets per destination, so the command line must not.
_PLAN_FIELDS_NOT_OPTIONS = (("key_type", "-k/--key-type"), ("azure_kek", "-a/--azure-kek"),
                            ("import_method", "--import-method"), ("csek_uri", "--csek-uri"),
                            ("expect_fingerprint", "--expect-fingerprint"), ("ca_bundle", "--ca-bundle"),
                            ("pins", "--pins"), ("trust_unpinned", "--trust-unpinned"))


def dispatch(namespace: argparse.Namespace) -> dict:
    args = namespace.args
    if args and args[0] in VERIFY_ACTIONS:
        return _verify_action(args)
    if args and args[0] == PLAN_ACTION:
        return export_plan(namespace)
    if namespace.check:
        raise UsageError("--check applies to export-plan only")
    if len(args) < 3:
        raise UsageError("missing arguments: provider keyName wrapKey [wrapAlg] are required (see --help)")
    if len(args) > 4:
        raise UsageError(f"too many arguments: {' '.join(args[4:])}")
    return export(namespace)


def _verify_action(args: list[str]) -> dict:
    if len(args) != 2:
        raise UsageError(f"usage: cssadmin {args[0]} FILE")
    action, path = args
    if action == "verify-manifest":
        from .manifest import verify_manifest
        files = verify_manifest(path)
        return {"ok": True, "manifest": path, "files": files,
                "summary": [f"{path}: all {len(files)} listed files are present and match"]}
    from .audit import verify_audit
    records = verify_audit(path)
    return {"ok": True, "audit_log": path, "records": records,
            "summary": [f"{path}: the chain of {records} records is intact"]}


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
                           trust_unpinned=namespace.trust_unpinned),
        out_dir=namespace.out_dir,
        force=namespace.force,
        require_removable=namespace.require_removable,
        allow_weaker_kek=namespace.allow_weaker_kek,
        audit_log=None if namespace.no_audit else _audit_path(namespace.audit_log),
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
                             audit_log=None if namespace.no_audit else _audit_path(namespace.audit_log))
    ceremony = plan.load(namespace.args[1], settings)
    if namespace.check:
        return plan.check(ceremony)
    return plan.run(ceremony, lambda: _open_custody(namespace))


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
