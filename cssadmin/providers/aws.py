"""AWS KMS ImportKeyMaterial: raw EncryptedKeyMaterial under the WrappingKey from ImportParameters."""
from __future__ import annotations

from dataclasses import dataclass

from .. import schemes
from ..errors import PolicyError
from ..keytypes import KeyType
from ..schemes import WrapScheme
from ..wrapping_key import WrappingKey
from .base import Options, Provider, Wrapped

_AWS_KEY_SPECS = {
    "AES-256": "SYMMETRIC_DEFAULT", "RSA-2048": "RSA_2048", "RSA-3072": "RSA_3072", "RSA-4096": "RSA_4096",
    "EC-NISTP256": "ECC_NIST_P256", "EC-NISTP384": "ECC_NIST_P384", "EC-NISTP521": "ECC_NIST_P521",
    "EC-SECP256K1": "ECC_SECG_P256K1",
    "HMAC-224": "HMAC_224", "HMAC-256": "HMAC_256", "HMAC-384": "HMAC_384", "HMAC-512": "HMAC_512",
}


@dataclass(frozen=True)
class Aws(Provider):
    def choose_algorithm(self, key_type: KeyType, kek: WrappingKey, options: Options) -> tuple[str, WrapScheme]:
        name, scheme = super().choose_algorithm(key_type, kek, options)
        if scheme.kind == "rsa_aes" or not key_type.is_private_key:
            return name, scheme
        if key_type.family == "rsa":
            raise PolicyError(f"AWS KMS imports {key_type.name} keys only with RSA_AES_KEY_WRAP_SHA_256 or "
                              f"RSA_AES_KEY_WRAP_SHA_1; {name} cannot carry a private RSA key",
                              code="ALGORITHM_NOT_ALLOWED")
        self.require_fit(key_type, name, scheme, kek.bits,
                         remedy="use RSA_AES_KEY_WRAP_SHA_256 or a larger wrapping key spec")
        return name, scheme

    def output_names(self, key_name: str, key_type: KeyType, options: Options) -> list[str]:
        # An RSA or EC target also gets its public key, to compare with `aws kms get-public-key`.
        return [f"{key_name}-wrapped", *self.public_key_names(key_name, key_type)]

    def contents(self, wrapped: Wrapped, options: Options) -> list[bytes]:
        return [wrapped.blob, *self.public_key_contents(wrapped)]

    def next_step(self, wrapped: Wrapped, options: Options) -> str:
        step = ("aws kms import-key-material --key-id <KEY_ID> "
                f"--encrypted-key-material fileb://{wrapped.key_name}-wrapped "
                "--import-token fileb://<ImportToken_*.bin> --expiration-model KEY_MATERIAL_DOES_NOT_EXPIRE")
        if wrapped.key_type.is_private_key:
            step += (" (afterwards compare `aws kms get-public-key --key-id <KEY_ID> --output text --query "
                     f"PublicKey | base64 -d` with the DER of {wrapped.key_name}-public.pem)")
        return step


PROVIDER = Aws(
    name="aws",
    key_types=tuple(_AWS_KEY_SPECS),
    default_key_type="AES-256",
    algorithms={
        "RSAES_OAEP_SHA_256": schemes.OAEP_SHA256,
        "RSAES_OAEP_SHA_1": schemes.OAEP_SHA1,
        "RSAES_PKCS1_V1_5": schemes.PKCS1_V15,
        "RSA_AES_KEY_WRAP_SHA_256": schemes.RSA_AES_SHA256,
        "RSA_AES_KEY_WRAP_SHA_1": schemes.RSA_AES_SHA1,
    },
    wrap_alg_positional=True,
    strongest_kek=152,
    deprecated={"RSAES_PKCS1_V1_5": "AWS KMS stopped accepting it on 2023-10-10"},
    kek_name="AWS KMS wrapping keys",
    kek_source="use the WrappingKey file of the key's ImportParameters (RSA_2048, RSA_3072 or RSA_4096 spec)",
    stronger_kek="download the import parameters again with the RSA_4096 wrapping key spec",
    hash_refused={"sha256": "download the import parameters again with RSAES_OAEP_SHA_1, or use a token with "
                            "OAEP-SHA-256 (RSA_AES_KEY_WRAP_SHA_1 is the SHA-1 choice for RSA-AES)"},
)
