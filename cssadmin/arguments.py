"""The seed-compatible command line and our options: what is accepted, and the --help text."""
from __future__ import annotations

import argparse

from .errors import UsageError

USAGE = ("cssadmin [-h] [--version] [-m MODULE] [-O CARDSET | -S SOFTCARD | -M] [-a AZUREKEK] "
         "[-k KEYTYPE] [options] provider keyName wrapKey [wrapAlg]\n"
         "       cssadmin export-plan PLAN.toml [--check] [options]\n"
         "       cssadmin verify-manifest FILE\n"
         "       cssadmin verify-audit FILE")

DESCRIPTION = """\
Generate a key inside a PKCS#11 token, wrap it inside the token with a cloud's public wrapping
key, and write the files that the cloud's bring-your-own-key import expects.

providers: aws, google-compute-engine, google-cloud-key-management, microsoft-azure, salesforce,
oci, hashicorp-vault

export-plan PLAN.toml wraps one key for every destination of a TOML ceremony plan: all wrapping
keys are judged before the token is opened, files go to <out-dir>/<destination name>/, all or
nothing; --check stops before the token and prints what would be done (README: ceremony plans)."""

EXIT_CODES = """\
exit codes:
  0  success
  1  unexpected internal error (a bug; --verbose shows the traceback)
  2  usage error
  3  wrapping key rejected (unreadable, not RSA, too small, wrong size for the provider,
     certificate invalid, expired or untrusted, fingerprint mismatch)
  4  policy refusal (KEK strength, deprecated algorithm, key type or algorithm not allowed)
  5  custody error (module, token, PIN or passphrase source, login, mechanism, self-test)
  6  key conflict (a key of that name exists but was not made by cssadmin, or has another type)
  7  output error (file exists without --force, destination missing, unwritable or not
     removable, write or read-back failed, disk full)
130  interrupted (Ctrl-C)

PINs and passphrases are never taken on the command line: use --pin-file (mode 0600),
--pin-env VAR, or the terminal prompt."""

MODULE_VARIABLE = "CSSADMIN_PKCS11_MODULE"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        if message.startswith("unrecognized arguments:"):
            # Never repeat what followed an unknown option: it may be a PIN typed as `--pin 1234`.
            options = sorted({word.split("=")[0] for word in message.split()[2:] if word.startswith("-")})
            message = (f"unrecognized arguments: {', '.join(options) or 'extra positional arguments'} "
                       "(values not shown; PINs and passphrases are never taken on the command line)")
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cssadmin", usage=USAGE, description=DESCRIPTION, epilog=EXIT_CODES,
                     formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
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
    key.add_argument("-k", "--key-type", metavar="KEYTYPE",
                     help="AES-256, EC-NISTP256, EC-NISTP384, EC-NISTP521, EC-SECP256K1, RSA-2048, RSA-3072, "
                          "RSA-4096; aws and google-cloud-key-management also HMAC-224, HMAC-256, HMAC-384, HMAC-512; "
                          "AES-128 and AES-192 for oci and microsoft-azure (Managed HSM), AES-128 for "
                          "hashicorp-vault (see README's provider table)")
    key.add_argument("-a", "--azure-kek", metavar="AZUREKEK", help="Azure key ID (kid) of the KEK")
    key.add_argument("--import-method", metavar="METHOD", help="Google Cloud KMS import method")
    key.add_argument("--csek-uri", metavar="URI", help="also write the gcloud --csek-key-file for this disk URI")

    trust = parser.add_argument_group("wrapping key trust")
    trust.add_argument("--expect-fingerprint", metavar="SHA256HEX", action="append", default=[],
                       help="SHA-256 of the wrapping key's SubjectPublicKeyInfo or certificate (repeatable)")
    trust.add_argument("--ca-bundle", metavar="FILE", help="trust anchors for a CA-signed certificate")
    trust.add_argument("--pins", metavar="FILE", help="JSON file of pinned certificate fingerprints")
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
    return parser


def parse(argv: list[str]) -> argparse.Namespace:
    # Everything after "--" is positional; Python 3.11's parse_intermixed_args would reject
    # an argument there that starts with "-", so split it off first.
    trailing: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, trailing = argv[:cut], argv[cut + 1:]
    namespace = build_parser().parse_intermixed_args(argv)
    namespace.args = list(namespace.args) + trailing
    return namespace
