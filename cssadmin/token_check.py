"""`cssadmin check-token`: what can this token export, and for whom?

For every provider x key type x algorithm (import method for Cloud KMS) that cssadmin offers, run the
mechanism self-test an export would run, on throwaway session keys only, and report the verdict, the
mechanism path that passed and the reason for each refusal. Verdicts are cached per probe (secret
length or private key type, and scheme) within the run: RSA-4096 probes take seconds, and AES-256 and
HMAC-256 (both 32-byte secrets) are the same probe. Nothing is written to the token.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

from .custody import Custody, WrapPath
from .errors import CustodyError, PolicyError
from .keytypes import KEY_TYPES, KeyType
from .providers import PROVIDER_NAMES, get_provider
from .providers.base import Options, Provider
from .providers.google_cloud_key_management import IMPORT_METHODS
from .schemes import WrapScheme


@dataclass(frozen=True)
class Row:
    provider: str
    key_type: str
    algorithm: str
    ok: bool
    mechanism: str | None       # the path that passed; for a refusal, the path whose failure is the reason
    reason: str | None          # why refused; for a pass, a better path that failed (if any)

    def as_dict(self) -> dict:
        return {"provider": self.provider, "key_type": self.key_type, "algorithm": self.algorithm,
                "ok": self.ok, "mechanism": self.mechanism, "reason": self.reason}


@dataclass(frozen=True)
class _NominalKek:
    """Only the size of a wrapping key, which is all an algorithm choice looks at."""
    bits: int


def offers() -> Iterator[tuple[Provider, KeyType, str, WrapScheme]]:
    """Every (provider, key type, algorithm, scheme) an export can be asked for, in the providers' order."""
    for name in PROVIDER_NAMES:
        provider = get_provider(name)
        if "import_method" in provider.takes:
            choices = [(Options(import_method=method), bits) for method, (bits, _) in IMPORT_METHODS.items()]
        elif provider.algorithms:
            choices = [(Options(wrap_alg=algorithm), max(provider.kek_sizes)) for algorithm in provider.algorithms]
        else:
            choices = [(Options(), max(provider.kek_sizes))]
        for key_type_name in provider.key_types:
            key_type = KEY_TYPES[key_type_name]
            for options, bits in choices:
                try:
                    algorithm, scheme = provider.choose_algorithm(key_type, _NominalKek(bits), options)
                except PolicyError:
                    continue     # not offered: this algorithm cannot carry this key type
                yield provider, key_type, algorithm, scheme


def check(custody: Custody, progress: Callable[[str], None] = lambda _text: None) -> list[Row]:
    verdicts: dict[tuple, WrapPath | CustodyError] = {}
    rows = []
    for provider, key_type, algorithm, scheme in offers():
        probe = (key_type.secret_bytes if not key_type.is_private_key else key_type.name, scheme)
        if probe not in verdicts:
            progress(f"self-test: {key_type.name}, {scheme.describe()}")
            try:
                verdicts[probe] = custody.self_test(key_type, scheme)
            except CustodyError as failure:
                verdicts[probe] = failure
        verdict = verdicts[probe]
        if isinstance(verdict, WrapPath):
            rows.append(Row(provider.name, key_type.name, algorithm, True, verdict.mechanism,
                            "; ".join(verdict.warnings) or None))
        else:
            rows.append(Row(provider.name, key_type.name, algorithm, False, custody.wrap_paths(scheme)[-1],
                            _reason(verdict, scheme)))
    return rows


def _reason(failure: CustodyError, scheme: WrapScheme) -> str:
    prefix = f"mechanism self-test failed for {scheme.describe()}: "
    message = failure.message[len(prefix):] if failure.message.startswith(prefix) else failure.message
    return f"{message} ({failure.code})"
