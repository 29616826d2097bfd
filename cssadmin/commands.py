"""From parsed arguments to a finished action: the export, or one of the verify actions.

Part of the command-line layer: it builds requests and chooses custody, and does no cryptography.
"""
from __future__ import annotations

import argparse
import os

from . import secret_input
from .errors import UsageError

VERIFY_ACTIONS = ("verify-manifest", "verify-audit")


def dispatch(namespace: argparse.Namespace) -> dict:
    args = namespace.args
    if args and args[0] in VERIFY_ACTIONS:
        return _verify_action(args)
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
    from .export import Export, Request, TrustOptions
    from .providers import get_provider
    from .providers.base import Options

    provider_name, key_name, wrap_key_path, *rest = namespace.args
    _check_conflicts(namespace)
    provider = get_provider(provider_name)
    request = Request(
        provider=provider,
        key_name=key_name,
        wrap_key_path=wrap_key_path,
        key_type=namespace.key_type,
        options=Options(wrap_alg=rest[0] if rest else None, import_method=namespace.import_method,
                        azure_kek=namespace.azure_kek, csek_uri=namespace.csek_uri,
                        allow_deprecated=namespace.allow_deprecated),
        trust=TrustOptions(expected_fingerprints=tuple(_fingerprints(namespace.expect_fingerprint)),
                           ca_bundle=namespace.ca_bundle, pins=namespace.pins,
                           trust_unpinned=namespace.trust_unpinned),
        out_dir=namespace.out_dir,
        force=namespace.force,
        require_removable=namespace.require_removable,
        allow_weaker_kek=namespace.allow_weaker_kek,
    )
    job = Export(request, lambda: _open_custody(namespace))
    if not namespace.no_audit:
        from .audit import check_appendable, default_audit_path
        check_appendable(namespace.audit_log or default_audit_path())
    report = job.run()
    if not namespace.no_audit:
        _audit(report, namespace.audit_log)
    return report.as_dict()


def _audit(report, audit_log: str | None) -> None:
    from . import __version__, audit
    from .errors import OutputError
    record = audit.build_export_record(
        tool_version=__version__, provider=report.provider, key_name=report.key["name"],
        key_type=report.key["type"], key_created=report.key["created"], protection=report.key["protection"],
        algorithm=report.algorithm, wrapping_key=report.wrapping_key, outputs=report.outputs + [report.manifest],
        warnings=report.warnings)
    try:
        audit.append_record(audit_log or audit.default_audit_path(), record)
    except OutputError as failure:
        raise OutputError(f"the outputs were written and verified, but the audit record was not: {failure}",
                          code="AUDIT_WRITE_FAILED",
                          remedy="fix the audit log, or pass --no-audit to export without one") from None


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
