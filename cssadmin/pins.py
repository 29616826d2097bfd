"""The pins file (--pins FILE): fingerprints of wrapping keys confirmed over a second channel.

A UTF-8 JSON object whose keys are provider names, each with a list of pins. A pin's "sha256" is the
SHA-256 of the certificate DER (as printed by `openssl x509 -noout -fingerprint -sha256 -in FILE`) or
of the SubjectPublicKeyInfo DER (what a bare key such as AWS's WrappingKey is pinned by: `openssl pkey
-pubin -inform DER -in FILE -outform DER | openssl dgst -sha256`); colons, spaces and case are ignored. "comment" is optional free text (where and when the fingerprint was confirmed).

    {
      "google-compute-engine": [
        {"sha256": "AB:CD:...:EF", "comment": "google-cloud-csek-ingress.pem, confirmed 2025-01-02"}
      ],
      "aws": [
        {"sha256": "abcd...ef", "comment": "WrappingKey of key 1234abcd-..., confirmed in the console"}
      ]
    }

Anything else - another provider name, another key in an entry, a repeated key, a malformed
fingerprint - is a usage error (exit 2), so that a typo cannot silently drop a pin.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from os import PathLike

from .errors import UsageError
from .providers import PROVIDER_NAMES
from .wrapping_key import normalise_fingerprint, read_at_most, short_reason

PINS_MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class Pins:
    by_provider: dict[str, frozenset[str]]


def load_pins(path: str | PathLike, providers: tuple[str, ...] | None = None) -> Pins:
    """Pins by provider; `providers` names the ones a pins file may hold (default: every provider)."""
    allowed = PROVIDER_NAMES if providers is None else providers
    source = str(path)
    document = _parse_json_object(_read_pins_file(path), source)
    by_provider = {}
    for provider, entries in document.items():
        if provider not in allowed:
            raise UsageError(
                f"pins file {source}: unknown provider {provider!r}; pins apply to {', '.join(allowed)}"
            )
        if not isinstance(entries, list):
            raise UsageError(f"pins file {source}: {provider} must be a list of {{\"sha256\": ...}} objects")
        by_provider[provider] = frozenset(
            _pin_fingerprint(entry, f"pins file {source}: {provider} entry {number}")
            for number, entry in enumerate(entries, start=1)
        )
    return Pins(by_provider=by_provider)


def _read_pins_file(path: str | PathLike) -> bytes:
    try:
        data = read_at_most(path, PINS_MAX_BYTES)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read pins file {path}: {short_reason(exc)}") from None
    if len(data) > PINS_MAX_BYTES:
        raise UsageError(f"pins file {path} is larger than {PINS_MAX_BYTES} bytes")
    return data


class _DuplicateKey(ValueError):
    pass


def _reject_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    document: dict[str, object] = {}
    for name, value in pairs:
        if name in document:
            raise _DuplicateKey(f"key {name!r} appears twice")
        document[name] = value
    return document


def _parse_json_object(data: bytes, source: str) -> dict[str, object]:
    try:
        document = json.loads(data, object_pairs_hook=_reject_duplicate_keys)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise UsageError(f"pins file {source} is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise UsageError(f"pins file {source} must hold a JSON object keyed by provider")
    return document


def _pin_fingerprint(entry: object, where: str) -> str:
    if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
        raise UsageError(f"{where} must be an object with a \"sha256\" string")
    unknown = sorted(set(entry) - {"sha256", "comment"})
    if unknown:
        raise UsageError(f"{where} has unknown key(s) {', '.join(unknown)}; allowed: sha256, comment")
    if not isinstance(entry.get("comment", ""), str):
        raise UsageError(f"{where}: comment must be a string")
    try:
        return normalise_fingerprint(entry["sha256"])
    except UsageError as exc:
        raise UsageError(f"{where}: {exc.message}") from None
