"""Security strength of RSA wrapping keys and the rule that a KEK must not weaken its target.

required = min(strength of the target, strongest KEK the provider offers); the KEK must reach it.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import PolicyError
from .keytypes import KeyType

# NIST SP 800-57 Part 1 Table 2; RSA-4096 per SP 800-56B Rev 2 Appendix D.
_RSA_STRENGTH = ((15360, 256), (7680, 192), (4096, 152), (3072, 128), (2048, 112))
_COMMON_KEK_SIZES = (2048, 3072, 4096)


def rsa_strength(bits: int) -> int:
    for floor, strength in _RSA_STRENGTH:
        if bits >= floor:
            return strength
    return 80 if bits >= 1024 else 0


@dataclass(frozen=True)
class StrengthVerdict:
    kek_strength: int
    required: int
    weaker_allowed: bool      # passed only because --allow-weaker-kek was given

    @property
    def warning(self) -> str | None:
        if not self.weaker_allowed:
            return None
        return (f"--allow-weaker-kek: the wrapping key gives {self.kek_strength} bits of security, "
                f"less than the {self.required} this key needs")


def judge_kek(kek_bits: int, target: KeyType, strongest_offered: int, *,
              allow_weaker: bool, remedy: str | None = None) -> StrengthVerdict:
    kek_strength = rsa_strength(kek_bits)
    required = min(target.strength, strongest_offered)
    if kek_strength >= required:
        return StrengthVerdict(kek_strength, required, False)
    if allow_weaker:
        return StrengthVerdict(kek_strength, required, True)
    passing = next((b for b in _COMMON_KEK_SIZES if rsa_strength(b) >= required), None)
    hint = remedy or (f"use an RSA-{passing} wrapping key" if passing else "use a stronger wrapping key")
    raise PolicyError(
        f"an RSA-{kek_bits} wrapping key gives {kek_strength} bits of security, "
        f"but {target.name} needs {required}",
        code="KEK_TOO_WEAK",
        remedy=f"{hint}, or pass --allow-weaker-kek to accept the weaker protection",
    )
