"""The command line's funnel: run, and render one line of text or one JSON object, and the exit status.

This is the only module that prints or chooses an exit status. It does no cryptography, and it
imports the PKCS#11 and cryptography stacks only when an export really runs (and argparse only
when there is something to parse), so --help and --version stay fast.
"""
from __future__ import annotations

import os
import sys

from . import __version__
from .errors import CssadminError, UsageError

def _json_requested(argv: list[str]) -> bool:
    return "--json" in argv[: argv.index("--")] if "--" in argv else "--json" in argv


INTERRUPTED_EXIT = 130   # 128 + SIGINT, as shells report it


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = _json_requested(argv)
    verbose = "--verbose" in argv
    try:
        if argv == ["--version"]:   # before argparse: start-up is most of what --version costs
            print(version_text())
            return 0
        if not argv:
            raise UsageError("missing arguments: provider keyName wrapKey [wrapAlg] (see --help)")
        from .arguments import build_parser, parse
        if "-h" in argv or "--help" in argv:
            build_parser().print_help()
            return 0
        namespace = parse(argv)
        if namespace.version:
            if as_json:
                from ._build_info import facts
                _render_success({"ok": True, **facts(__version__)}, as_json)
            else:
                print(version_text())
            return 0
        from .commands import dispatch
        _render_success(dispatch(namespace), as_json)
        return 0
    except CssadminError as failure:
        _render_failure(failure, as_json)
        return failure.exit_code
    except KeyboardInterrupt:
        _render_failure(CssadminError("interrupted; no output was written unless it is listed as verified",
                                      code="INTERRUPTED"), as_json)
        return INTERRUPTED_EXIT
    except Exception as bug:  # the one place a bug is caught: report it, traceback only on request
        if verbose:
            import traceback
            traceback.print_exc()
        _render_failure(CssadminError(f"internal error: {type(bug).__name__}: {bug}"
                                      + ("" if verbose else " (run with --verbose for the traceback)")),
                        as_json)
        return 1


def version_text() -> str:
    from ._build_info import describe
    return describe(__version__)


def _render_failure(failure: CssadminError, as_json: bool) -> None:
    text = " ".join(str(failure).split())
    if as_json:
        import json
        print(json.dumps({"ok": False, "error": {"code": failure.code, "exit": failure.exit_code,
                                                 "message": text}}))
    else:
        print(f"cssadmin: error: {text}", file=sys.stderr)


def _render_success(result: dict, as_json: bool) -> None:
    if as_json:
        import json
        print(json.dumps({k: v for k, v in result.items() if k != "summary"}, indent=2))
        return
    for warning in result.get("warnings", []):
        print(f"cssadmin: warning: {warning}", file=sys.stderr)
    for line in result.get("summary", []):
        print(line)
    if "key" in result:
        _render_export(result)


def _render_export(result: dict) -> None:
    key, kek = result["key"], result["wrapping_key"]
    print(f"key: {key['name']} ({key['type']}, {'created' if key['created'] else 'existing'}, "
          f"protection: {key['protection']})")
    print(f"wrapping key: RSA-{kek['bits']}, SHA-256 of SubjectPublicKeyInfo {kek['sha256_spki']}")
    print(f"algorithm: {result['algorithm']}")
    for item in result["outputs"] + [result["manifest"]] + ([result["signature"]] if result.get("signature") else []):
        print(f"wrote {item['path']} ({item['bytes']} bytes, sha256 {item['sha256']})")
    if result.get("signer"):
        print(f"signed by: {result['signer']['label']} (SHA-256 of SubjectPublicKeyInfo "
              f"{result['signer']['sha256_spki']}, protection: {result['signer']['protection']})")
    if result.get("audit"):
        print(f"audit head: {result['audit']['seq']}:{result['audit']['sha256']} in {result['audit']['path']}")
    print(f"next step: {result['next_step']}")


def run() -> None:
    try:
        status = main()
        sys.stdout.flush()
    except BrokenPipeError:   # the reader went away (`| head`); nothing more to say to it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = 1
    sys.exit(status)
