"""How a target key is wrapped under an RSA public key: the scheme and its hash, named once.

Mechanism parameters are always explicit; no library default is trusted.
"""
from __future__ import annotations

from dataclasses import dataclass

HASH_BYTES = {"sha1": 20, "sha256": 32, "sha512": 64}


@dataclass(frozen=True)
class WrapScheme:
    kind: str            # "oaep" | "pkcs1v15" | "rsa_aes"
    hash: str | None     # "sha1" | "sha256" | "sha512" for OAEP (MGF1 uses the same hash)

    def describe(self) -> str:
        if self.kind == "pkcs1v15":
            return "RSA PKCS#1 v1.5 (CKM_RSA_PKCS)"
        oaep = f"RSA-OAEP {self.hash.upper()} with MGF1-{self.hash.upper()}"
        if self.kind == "oaep":
            return f"{oaep} (CKM_RSA_PKCS_OAEP)"
        return f"RSA-AES key wrap: {oaep} of a one-time AES-256 key, then AES key wrap with padding"

    def max_plaintext(self, modulus_bits: int) -> int | None:
        """Longest target an RSA key of this size can carry directly; None when unbounded (RSA-AES)."""
        k = modulus_bits // 8
        if self.kind == "pkcs1v15":
            return k - 11
        if self.kind == "oaep":
            return k - 2 * HASH_BYTES[self.hash] - 2
        return None


OAEP_SHA1 = WrapScheme("oaep", "sha1")
OAEP_SHA256 = WrapScheme("oaep", "sha256")
OAEP_SHA512 = WrapScheme("oaep", "sha512")
PKCS1_V15 = WrapScheme("pkcs1v15", None)
RSA_AES_SHA1 = WrapScheme("rsa_aes", "sha1")
RSA_AES_SHA256 = WrapScheme("rsa_aes", "sha256")
RSA_AES_SHA512 = WrapScheme("rsa_aes", "sha512")
