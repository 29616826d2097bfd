"""The command line's funnel: run, and render one line of text or one JSON object, and the exit status.

This is the only module that prints or chooses an exit status. It does no cryptography, and it
imports the PKCS#11 and cryptography stacks only when an export really runs (and argparse only
when there is something to parse), so --help and --version stay fast.
"""
from __future__ import annotations

import os
import signal
import sys

from . import __version__
from .errors import CssadminError, Interrupted, UsageError

def _json_requested(argv: list[str]) -> bool:
    return "--json" in argv[: argv.index("--")] if "--" in argv else "--json" in argv


STDOUT_CLOSED_EXIT = 141  # 128 + SIGPIPE: the reader of stdout went away before the report was printed


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = _json_requested(argv)
    verbose = "--verbose" in argv
    try:
        result = _execute(argv, as_json)
    except CssadminError as failure:
        return _fail(failure, as_json)
    except KeyboardInterrupt:
        return _fail(Interrupted("interrupted; no output was written unless it is listed as verified"), as_json)
    except Exception as bug:  # the one place a bug is caught: report it, traceback only on request
        if verbose:
            import traceback
            traceback.print_exc()
        return _fail(CssadminError(f"internal error: {type(bug).__name__}: {bug}"
                                   + ("" if verbose else " (run with --verbose for the traceback)")), as_json)
    _settle()
    if sys.stdout is None:   # started with stdout closed (`>&-`): the report has nowhere to go
        return STDOUT_CLOSED_EXIT
    try:
        result() if callable(result) else _render_success(result, as_json)
        sys.stdout.flush()
    except _CLOSED_PIPE:
        # The run succeeded and is on the record (files verified, audit record written before rendering);
        # only its report could not be delivered. As a Unix tool killed by SIGPIPE: no traceback, 141.
        _discard_stdout()
        return STDOUT_CLOSED_EXIT
    return 0


def _execute(argv: list[str], as_json: bool):
    """The run: a result to render, or a callable that prints it (help, version)."""
    if argv == ["--version"]:   # before argparse: start-up is most of what --version costs
        return lambda: print(version_text())
    if not argv:
        raise UsageError("missing arguments: provider keyName wrapKey [wrapAlg] (see --help)")
    from .arguments import build_parser, parse
    if "-h" in argv or "--help" in argv:
        text = build_parser().format_help()   # not print_help: argparse would swallow a broken pipe
        return lambda: print(text, end="")
    namespace = parse(argv)
    if namespace.version:
        if as_json:
            from ._build_info import facts
            return {"ok": True, **facts(__version__)}
        return lambda: print(version_text())
    from . import secret_input
    for variable in (namespace.pin_env, namespace.passphrase_env):
        if variable:   # out of the environment before any vendor module is loaded
            secret_input.take_from_env(variable)
    from .commands import dispatch
    return dispatch(namespace, _progress)


def _progress(text: str) -> None:
    """What a long action is doing, on stderr, only when stderr is a terminal (never in a pipe or a log)."""
    if sys.stderr.isatty():
        print(f"cssadmin: {text}", file=sys.stderr, flush=True)


def _fail(failure: CssadminError, as_json: bool) -> int:
    """Report a failure; its exit code stands even when stdout or stderr is already closed."""
    _settle()
    if isinstance(failure, Interrupted) and _stopped_by != signal.SIGINT:
        failure.exit_code = 128 + _stopped_by
        failure.message = f"{signal.Signals(_stopped_by).name}: {failure.message}"
    try:
        _render_failure(failure, as_json)
        if sys.stdout is not None:
            sys.stdout.flush()
    except _CLOSED_PIPE:
        _discard_stdout()
    return failure.exit_code


if os.name == "nt":
    # Windows reports a write to a pipe whose reader has gone as EINVAL (OSError 22), not EPIPE.
    _CLOSED_PIPE: tuple[type[BaseException], ...] = (BrokenPipeError, OSError)
else:
    _CLOSED_PIPE = (BrokenPipeError,)


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's own flush at exit does not fail again."""
    try:
        descriptor = os.open(os.devnull, os.O_WRONLY)
        os.dup2(descriptor, sys.stdout.fileno())
        os.close(descriptor)
    except (OSError, ValueError, AttributeError):
        pass


def version_text() -> str:
    from ._build_info import describe
    return describe(__version__)


def _one_line(text: str | None) -> str | None:
    return None if text is None else " ".join(str(text).split())


def _render_failure(failure: CssadminError, as_json: bool) -> None:
    stream = sys.stdout if as_json else sys.stderr
    if stream is None:   # closed when the process started (`>&-`, `2>&-`): print would pick another
        return
    if as_json:
        import json
        print(json.dumps({"ok": False, "error": {
            "code": failure.code, "exit": failure.exit_code,
            "message": _one_line(getattr(failure, "message", str(failure))),
            "remedy": _one_line(getattr(failure, "remedy", None) or None)}}))
    else:
        print(f"cssadmin: error: {_one_line(str(failure))}", file=sys.stderr)


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
    print(f"algorithm: {result['algorithm']} (wrapped with {result['mechanism']})")
    for item in result["outputs"] + [result["manifest"]] + ([result["signature"]] if result.get("signature") else []):
        print(f"wrote {item['path']} ({item['bytes']} bytes, sha256 {item['sha256']})")
    if result.get("signer"):
        print(f"signed by: {result['signer']['label']} (SHA-256 of SubjectPublicKeyInfo "
              f"{result['signer']['sha256_spki']}, protection: {result['signer']['protection']})")
    if result.get("audit"):
        print(f"audit head: {result['audit']['seq']}:{result['audit']['sha256']} in {result['audit']['path']}")
    print(f"next step: {result['next_step']}")


# Signals that stop a run as Ctrl-C does: the clean-up runs (a key this run created is destroyed) and
# the status is 128 + the signal, as a shell reports a process the signal killed.
_STOPPING_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
_stopped_by = signal.SIGINT


def _settle() -> None:
    """The outcome is decided and is being reported: from here a stop signal cannot change the status
    (a success already printed stays 0). Only where run() installed _stop_once: never in a host process."""
    for number in _STOPPING_SIGNALS:
        if signal.getsignal(number) is _stop_once:
            signal.signal(number, signal.SIG_IGN)


def _stop_once(signum, frame) -> None:
    """One stop is one interrupt. The terminal signals every process of its foreground group, and a
    one-file frozen binary's bootloader forwards its own copy to its child: without this, that second
    SIGINT (or an impatient second Ctrl-C) could cut short the clean-up the first one started, such as
    destroying the key this run created. SIGQUIT (Ctrl-\\) and SIGKILL still stop the process."""
    global _stopped_by
    _stopped_by = signum
    for number in _STOPPING_SIGNALS:
        signal.signal(number, signal.SIG_IGN)
    raise KeyboardInterrupt


def run() -> None:
    for number in _STOPPING_SIGNALS:
        signal.signal(number, _stop_once)
    try:
        status = main()
    except KeyboardInterrupt:   # between main's own handlers (at start-up, or while reporting)
        status = 128 + _stopped_by
    sys.exit(status)
