"""The target key types the tool can create, and their security strength."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KeyType:
    name: str          # the seed's spelling, e.g. "EC-NISTP256"
    family: str        # "aes" | "hmac" | "rsa" | "ec"
    bits: int          # AES key length, RSA modulus length, EC field size
    strength: int      # NIST SP 800-57 bits of security
    curve: str | None = None   # cryptography's curve name for EC keys
    plaintext_bytes: int = 0   # length of what is wrapped: raw key, or PKCS#8 with its public key (RSA: about)

    @property
    def is_private_key(self) -> bool:
        return self.family in ("rsa", "ec")

    @property
    def secret_bytes(self) -> int:
        """Length of a secret key (AES, HMAC): what is wrapped raw."""
        return self.bits // 8


KEY_TYPES: dict[str, KeyType] = {
    kt.name: kt
    for kt in (
        KeyType("AES-128", "aes", 128, 128, None, 16),
        KeyType("AES-192", "aes", 192, 192, None, 24),
        KeyType("AES-256", "aes", 256, 256, None, 32),
        KeyType("EC-NISTP256", "ec", 256, 128, "secp256r1", 138),
        KeyType("EC-NISTP384", "ec", 384, 192, "secp384r1", 185),
        KeyType("EC-NISTP521", "ec", 521, 256, "secp521r1", 241),
        KeyType("EC-SECP256K1", "ec", 256, 128, "secp256k1", 135),
        KeyType("RSA-2048", "rsa", 2048, 112, None, 1217),
        KeyType("RSA-3072", "rsa", 3072, 128, None, 1793),
        KeyType("RSA-4096", "rsa", 4096, 152, None, 2374),
        # HMAC keys as long as the hash output; strength bound by the key length, capped at 256.
        KeyType("HMAC-224", "hmac", 224, 224, None, 28),
        KeyType("HMAC-256", "hmac", 256, 256, None, 32),
        KeyType("HMAC-384", "hmac", 384, 256, None, 48),
        KeyType("HMAC-512", "hmac", 512, 256, None, 64),
    )
}
