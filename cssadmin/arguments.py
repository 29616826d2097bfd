"""The seed-compatible command line and our options: what is accepted, and the --help text."""
from __future__ import annotations

import argparse
import os
import re

from .errors import UsageError

USAGE = ("cssadmin [-h] [--version] [-m MODULE] [-O CARDSET | -S SOFTCARD | -M] [-a AZUREKEK] "
         "[-k KEYTYPE] [options] provider keyName wrapKey [wrapAlg]\n"
         "       cssadmin export-plan PLAN.toml [--check] [options]\n"
         "       cssadmin verify-manifest FILE [--signer-fingerprint SHA256 | --signer-key PEM] "
         "[--expect-head SEQ:SHA256]\n"
         "       cssadmin verify-audit FILE [--signer-fingerprint SHA256 | --signer-key PEM] "
         "[--expect-head SEQ:SHA256]\n"
         "       cssadmin signing-key LABEL [--out FILE] [token or keystore options]\n"
         "       cssadmin check-token [--json] [token options]")

DESCRIPTION = """\
Generate a key inside a PKCS#11 token, wrap it inside the token with a cloud's public wrapping
key, and write the files that the cloud's bring-your-own-key import expects.

{providers}

export-plan PLAN.toml wraps one key for every destination of a TOML ceremony plan: all wrapping
keys are judged before the token is opened, files go to <out-dir>/<destination name>/, all or
nothing; --check stops before the token and prints what would be done (README: ceremony plans).

check-token runs the mechanism self-test of every provider x key type x algorithm on throwaway
session keys and prints what this token can export, for whom, and why not: run it first on a new
HSM. It writes nothing to the token."""

EXIT_CODES = """\
exit codes:
  0  success
  1  unexpected internal error (a bug; --verbose shows the traceback)
  2  usage error
  3  wrapping key rejected (unreadable, not RSA, too small, wrong size for the provider,
     structurally unsafe, the self-test key, unpinned where pins are required,
     certificate invalid, expired or untrusted, fingerprint mismatch)
  4  policy refusal (KEK strength, deprecated algorithm, key type or algorithm not allowed)
  5  custody error (module, token, login, mechanism, self-test; a PIN or passphrase source
     that is missing, empty, too open, not a regular file or not UTF-8)
  6  key conflict (a key of that name exists but was not made by cssadmin, or has another type,
     fails a provenance check, was made for another provider, or is not the only one)
  7  output error (file exists without --force, destination missing, unwritable or not
     removable, write or read-back failed, disk full; a verify input that cannot be read,
     is not a regular file or is too large)
  8  verification failed (verify-manifest, verify-audit: a changed or missing file, a broken
     audit chain or record, a bad, missing or foreign signature, a head that does not match)
130  interrupted (Ctrl-C), at any step, a PIN or passphrase prompt included
     (143 for SIGTERM, 129 for SIGHUP, with the same clean-up)
141  standard output was closed before the report was printed (`| head`, `| true`, `>&-`)
     after a successful run: the export itself finished, its files were verified and
     its audit record written (a failed run keeps its own code)

--json failures: {"ok": false, "error": {"code", "exit", "message", "remedy"}}; "exit" is
always the process status and "remedy" is null when there is none.

PINs and passphrases are never taken on the command line: use --pin-file (mode 0600),
--pin-env VAR, or the terminal prompt."""

MODULE_VARIABLE = "CSSADMIN_PKCS11_MODULE"


VERIFY_ACTIONS = ("verify-manifest", "verify-audit")
_SECRETS_NOTE = "values not shown; PINs and passphrases are never taken on the command line"
_LONG_OPTION = re.compile(r"--[A-Za-z][A-Za-z0-9-]{0,40}")
_SHORT_OPTION = re.compile(r"-[A-Za-z]")
_ALGORITHM_NAME = re.compile(r"[A-Z0-9_]+")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        # argparse quotes what it could not use ("invalid int value: '1234'"); that may be a PIN.
        raise UsageError(re.sub(r"(invalid [\w ]+ value|invalid choice): .*", r"\1 (value not shown)", message))


class _StoreOnce(argparse._StoreAction):
    """A single-value option given twice is a usage error: neither value silently wins."""

    def __call__(self, parser, namespace, values, option_string=None):
        given = namespace.__dict__.setdefault("_given_once", {})
        if self.dest in given:
            spelled = "/".join(self.option_strings)
            raise UsageError(f"{option_string} given more than once ({spelled}; values not shown); give it once",
                             code="OPTION_REPEATED")
        given[self.dest] = option_string
        setattr(namespace, self.dest, values)


def ordinal(number: int) -> str:
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def _shown_option(word: str) -> str | None:
    """The option name of an unknown word, without any value; None when even the name could be a secret."""
    name = word.split("=", 1)[0]
    if name.startswith("--"):
        return name if _LONG_OPTION.fullmatch(name) else None
    return name[:2] if _SHORT_OPTION.fullmatch(name[:2]) else None


def _unrecognized(argv: list[str], extras: list[str]) -> UsageError:
    """Name each unknown option and where it stood, never what followed it."""
    described, start = [], 0
    for word in extras:
        position = next((i for i in range(start, len(argv)) if argv[i] == word), None)
        start = position + 1 if position is not None else start
        where = f"argument {position + 1}" if position is not None else "somewhere"
        name = _shown_option(word)
        described.append(f"{name} ({where})" if name else where)
    return UsageError(f"unrecognized arguments: {', '.join(described)} ({_SECRETS_NOTE})")


def _extra_positionals(args: list[str], allowed: int, usage: str) -> UsageError:
    extra = len(args) - allowed
    places = ", ".join(ordinal(number) for number in range(allowed + 1, len(args) + 1))
    message = (f"too many arguments: {usage} takes {allowed} at most; {extra} extra positional "
               f"argument{'s' if extra > 1 else ''} ({places}; {_SECRETS_NOTE})")
    if any(os.path.isfile(arg) for arg in args[3:]):
        message += "; they name existing files: did a wildcard expand to several wrapping keys? give exactly one"
    return UsageError(message, code="USAGE")


def _check_positionals(args: list[str]) -> None:
    if args and args[0] == "check-token":
        if len(args) > 1:
            raise _extra_positionals(args, 1, "cssadmin check-token")
        return
    if args and args[0] in VERIFY_ACTIONS:
        if len(args) > 2:
            raise _extra_positionals(args, 2, f"cssadmin {args[0]} FILE")
        return
    if len(args) > 4:
        raise _extra_positionals(args, 4, "provider keyName wrapKey [wrapAlg]")
    if len(args) == 4 and not _ALGORITHM_NAME.fullmatch(args[3]) and os.path.isfile(args[3]):
        raise UsageError("the 4th positional argument (wrapAlg) names an existing file: did a wildcard expand "
                         "to several wrapping keys? give exactly one", code="WRAP_KEY_AMBIGUOUS")


_FAMILIES = {"aes": "AES", "rsa": "RSA", "ec": "EC", "hmac": "HMAC"}


def _provider_lines() -> str:
    """Each provider and the key type it makes without -k, from the provider modules themselves."""
    from .keytypes import KEY_TYPES
    from .providers import PROVIDER_NAMES, get_provider
    lines = ["providers, and the key type each makes without -k:"]
    for name in PROVIDER_NAMES:
        provider = get_provider(name)
        others = [family for family in _FAMILIES if any(KEY_TYPES[kind].family == family for kind in provider.key_types
                                                          if kind != provider.default_key_type)]
        also = f"also {', '.join(_FAMILIES[family] for family in others)}" if others else "the only type"
        lines.append(f"  {name:<28} {provider.default_key_type} ({also})")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cssadmin", usage=USAGE, description=DESCRIPTION.format(providers=_provider_lines()),
                     epilog=EXIT_CODES,
                     formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    parser.register("action", None, _StoreOnce)      # every single-value option, in every group
    parser.register("action", "store", _StoreOnce)
    parser.add_argument("--version", action="store_true", help="print version and build information")
    parser.add_argument("args", nargs="*", metavar="provider keyName wrapKey [wrapAlg]",
                        help=argparse.SUPPRESS)

    token = parser.add_argument_group("token selection")
    token.add_argument("--pkcs11-module", metavar="PATH",
                       help=f"PKCS#11 library of the HSM (default: ${MODULE_VARIABLE})")
    token.add_argument("-m", "--module", type=int, metavar="MODULE", help="slot ID of the token to use")
    token.add_argument("--token", metavar="LABEL", help="label of the token to use")
    protection = token.add_mutually_exclusive_group()
    protection.add_argument("-O", "--cardset", metavar="CARDSET", help="use the token of this card set")
    protection.add_argument("-S", "--softcard", metavar="SOFTCARD", help="use the token of this softcard")
    protection.add_argument("-M", "--module-protected", action="store_true",
                            help="module protection (default): the token named by --token/-m, else the only one")
    secret = token.add_mutually_exclusive_group()
    secret.add_argument("--pin-file", metavar="PATH", help="read the token PIN from a file only you can read")
    secret.add_argument("--pin-env", metavar="VAR", help="read the token PIN from this environment variable")

    keystore = parser.add_argument_group("software keystore (no HSM: evaluation only)")
    keystore.add_argument("--keystore", metavar="DIR", help="keep keys in this encrypted software keystore")
    passphrase = keystore.add_mutually_exclusive_group()
    passphrase.add_argument("--passphrase-file", metavar="PATH", help="keystore passphrase file (mode 0600)")
    passphrase.add_argument("--passphrase-env", metavar="VAR", help="keystore passphrase variable")

    key = parser.add_argument_group("key and provider")
    from .keytypes import KEY_TYPES
    key.add_argument("-k", "--key-type", metavar="KEYTYPE",
                     help=f"{', '.join(KEY_TYPES)}, each where its provider takes it (a type it does not take is "
                          "exit 4, listing those it does; README's provider table)")
    key.add_argument("--reuse-key", action="store_true",
                     help="re-export an existing key that was created for another provider")
    key.add_argument("-a", "--azure-kek", metavar="AZUREKEK", help="Azure key ID (kid) of the KEK")
    key.add_argument("--import-method", metavar="METHOD",
                     help="Google Cloud KMS import method, as the API or gcloud spells it "
                          "(RSA_OAEP_4096_SHA256_AES_256 or rsa-oaep-4096-sha256-aes-256)")
    key.add_argument("--csek-uri", metavar="URI", help="also write the gcloud --csek-key-file for this disk URI")

    trust = parser.add_argument_group("wrapping key trust")
    trust.add_argument("--expect-fingerprint", metavar="SHA256HEX", action="append", default=[],
                       help="SHA-256 of the wrapping key's SubjectPublicKeyInfo or certificate (repeatable)")
    trust.add_argument("--ca-bundle", metavar="FILE", help="trust anchors for a CA-signed certificate")
    trust.add_argument("--pins", metavar="FILE", help="JSON file of pinned wrapping-key fingerprints, by provider")
    trust.add_argument("--require-pinned", action="store_true",
                       help="refuse a wrapping key that is not pinned (also: CSSADMIN_REQUIRE_PINNED=1)")
    trust.add_argument("--trust-unpinned", action="store_true", help="accept a certificate that is not pinned")

    policy = parser.add_argument_group("policy overrides (each is named in the output)")
    policy.add_argument("--allow-weaker-kek", action="store_true",
                        help="accept a wrapping key weaker than the key it protects")
    policy.add_argument("--allow-deprecated", action="store_true", help="accept a deprecated algorithm")

    out = parser.add_argument_group("output")
    out.add_argument("--out-dir", metavar="DIR", default=".", help="where to write (default: current directory)")
    out.add_argument("--force", action="store_true", help="replace existing output files")
    out.add_argument("--require-removable", action="store_true", help="refuse a destination that is not removable media")
    out.add_argument("--audit-log", metavar="FILE", help="append the audit record here")
    out.add_argument("--no-audit", action="store_true", help="write no audit record")
    out.add_argument("--check", action="store_true",
                     help="export-plan: check everything up to the token and print what would be done")
    out.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    out.add_argument("--verbose", action="store_true", help="show a traceback for internal errors")

    evidence = parser.add_argument_group("evidence: signing key and verification")
    evidence.add_argument("--signing-key", metavar="LABEL",
                          help="sign the manifest (<key>-manifest.json.sig) and the audit record with this "
                               "EC P-256 key of the token or keystore, created on first use")
    signer = evidence.add_mutually_exclusive_group()
    signer.add_argument("--signer-fingerprint", metavar="SHA256",
                        help="verify-*: require signatures by the key with this SubjectPublicKeyInfo SHA-256")
    signer.add_argument("--signer-key", metavar="PEM", help="verify-*: require signatures by this public key")
    evidence.add_argument("--expect-head", metavar="SEQ:SHA256",
                          help="verify-*: the audit head to expect (the manifest's audit_head)")
    evidence.add_argument("--out", metavar="FILE", help="signing-key: write the public key (PEM) to this file")
    return parser


def parse(argv: list[str]) -> argparse.Namespace:
    # Everything after "--" is positional; Python 3.11's parse_intermixed_args would reject
    # an argument there that starts with "-", so split it off first.
    trailing: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, trailing = argv[:cut], argv[cut + 1:]
    namespace, extras = build_parser().parse_known_intermixed_args(argv)
    if extras:
        raise _unrecognized(argv, extras)
    namespace.__dict__.pop("_given_once", None)
    namespace.args = list(namespace.args) + trailing
    _check_positionals(namespace.args)
    if namespace.keystore and namespace.module_protected:
        raise UsageError("--keystore cannot be combined with -M (module protection is a token option)")
    if namespace.import_method and re.fullmatch(r"[A-Za-z0-9_-]+", namespace.import_method):
        namespace.import_method = namespace.import_method.upper().replace("-", "_")   # gcloud's spelling
    return namespace
