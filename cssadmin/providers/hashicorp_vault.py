"""HashiCorp Vault / OpenBao transit bring-your-own-key import: the base64 ciphertext for transit/keys/NAME/import.

The blob is RSA-AES: OAEP(h) of a one-time AES-256 key under the mount's RSA-4096 wrapping key (the
first 512 bytes), then RFC 5649 key wrap of the target (raw for AES and HMAC keys, PKCS#8 for RSA
and EC keys). The import names h as `hash_function`.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import schemes
from ..keytypes import KeyType
from . import base64text
from .base import Options, Provider, Wrapped

TRANSIT_TYPES = {
    "AES-128": "aes128-gcm96", "AES-256": "aes256-gcm96",
    "RSA-2048": "rsa-2048", "RSA-3072": "rsa-3072", "RSA-4096": "rsa-4096",
    "EC-NISTP256": "ecdsa-p256", "EC-NISTP384": "ecdsa-p384", "EC-NISTP521": "ecdsa-p521",
    "HMAC-256": "hmac", "HMAC-384": "hmac", "HMAC-512": "hmac",
}
HASH_FUNCTIONS = {"RSA_AES_KEY_WRAP_SHA_1": "SHA1", "RSA_AES_KEY_WRAP_SHA_256": "SHA256",
                  "RSA_AES_KEY_WRAP_SHA_512": "SHA512"}


@dataclass(frozen=True)
class HashicorpVault(Provider):
    def output_names(self, key_name: str, key_type: KeyType, options: Options) -> list[str]:
        return [f"{key_name}-ciphertext.b64"]

    def contents(self, wrapped: Wrapped, options: Options) -> list[bytes]:
        return [base64text.standard(wrapped.blob)]

    def next_step(self, wrapped: Wrapped, options: Options) -> str:
        return (f"vault write transit/keys/<NAME>/import ciphertext=@{wrapped.key_name}-ciphertext.b64 "
                f"hash_function={HASH_FUNCTIONS[wrapped.algorithm]} type={TRANSIT_TYPES[wrapped.key_type.name]}")


PROVIDER = HashicorpVault(
    name="hashicorp-vault",
    key_types=tuple(TRANSIT_TYPES),
    default_key_type="AES-256",
    algorithms={"RSA_AES_KEY_WRAP_SHA_256": schemes.RSA_AES_SHA256, "RSA_AES_KEY_WRAP_SHA_1": schemes.RSA_AES_SHA1,
                "RSA_AES_KEY_WRAP_SHA_512": schemes.RSA_AES_SHA512},
    default_algorithm="RSA_AES_KEY_WRAP_SHA_256",
    wrap_alg_positional=True,
    strongest_kek=152,
    kek_sizes=(4096,),
    kek_name="transit wrapping keys",
    kek_source="read the mount's wrapping key: vault read -field=public_key transit/wrapping_key",
)
