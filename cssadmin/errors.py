"""Every failure the tool expects, one class per kind, each carrying its exit code.

Library code raises these; only the command line turns them into a line of text
(or a JSON object) and an exit status. Nothing here prints.
"""
from __future__ import annotations


class CssadminError(Exception):
    """Base of all expected failures. `code` is a stable name scripts may rely on.

    `message` says what went wrong; `remedy`, when there is one, what to do about it. Text output
    shows both on one line (`str()`); JSON output gives them as separate fields."""

    exit_code: int = 1
    code: str = "INTERNAL"

    def __init__(self, message: str, *, code: str | None = None, remedy: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.remedy = remedy

    def __str__(self) -> str:
        if self.remedy:
            return f"{self.message} ({self.remedy})"
        return self.message


class UsageError(CssadminError):
    exit_code = 2
    code = "USAGE"


class WrappingKeyError(CssadminError):
    """The wrapping key (or its certificate) cannot be used: exit 3."""

    exit_code = 3
    code = "WRAPPING_KEY_REJECTED"


class PolicyError(CssadminError):
    """A rule of the tool refuses the request (strength, deprecation, type): exit 4."""

    exit_code = 4
    code = "POLICY_REFUSED"


class CustodyError(CssadminError):
    """The token or keystore cannot do what is needed: exit 5."""

    exit_code = 5
    code = "CUSTODY"


class ParametersRefused(CustodyError):
    """The token has the mechanism but refuses these parameters (an OAEP hash it lacks, say): exit 5."""

    code = "MECHANISM_FAILED"


class KeyConflictError(CssadminError):
    """A key of that name exists but is not ours, or not of that type: exit 6."""

    exit_code = 6
    code = "KEY_CONFLICT"


class OutputError(CssadminError):
    """The destination cannot take the files, or they did not land intact: exit 7."""

    exit_code = 7
    code = "OUTPUT"


class VerificationError(CssadminError):
    """A verify action read its inputs and found them not as they should be: a changed or missing
    file, a broken audit chain, a bad or foreign signature, a head that does not match: exit 8."""

    exit_code = 8
    code = "VERIFICATION_FAILED"


class Interrupted(CssadminError):
    """Ctrl-C (SIGINT), at any point, a PIN or passphrase prompt included: exit 130 (128 + SIGINT).
    SIGTERM and SIGHUP stop a run the same way, with the CLI's status 128 + the signal (143, 129)."""

    exit_code = 130
    code = "INTERRUPTED"
