"""AWS KMS ImportKeyMaterial: raw EncryptedKeyMaterial under the WrappingKey from ImportParameters."""
from __future__ import annotations

from dataclasses import dataclass

from .. import schemes
from ..keytypes import KeyType
from .base import OutputFile, Options, Provider, Wrapped


@dataclass(frozen=True)
class Aws(Provider):
    def kek_remedy(self, kek_bits: int) -> str | None:
        return "download the import parameters again with the RSA_4096 wrapping key spec"

    def output_names(self, key_name: str, key_type: KeyType, options: Options) -> list[str]:
        return [f"{key_name}-wrapped"]

    def outputs(self, wrapped: Wrapped, options: Options) -> list[OutputFile]:
        return [OutputFile(f"{wrapped.key_name}-wrapped", wrapped.blob)]

    def next_step(self, wrapped: Wrapped, options: Options) -> str:
        return ("aws kms import-key-material --key-id <KEY_ID> "
                f"--encrypted-key-material fileb://{wrapped.key_name}-wrapped "
                "--import-token fileb://<ImportToken file from the same ImportParameters> "
                "--expiration-model KEY_MATERIAL_DOES_NOT_EXPIRE")


PROVIDER = Aws(
    name="aws",
    key_types=("AES-256",),
    default_key_type="AES-256",
    algorithms={
        "RSAES_OAEP_SHA_256": schemes.OAEP_SHA256,
        "RSAES_OAEP_SHA_1": schemes.OAEP_SHA1,
        "RSAES_PKCS1_V1_5": schemes.PKCS1_V15,
    },
    wrap_alg_positional=True,
    strongest_kek=152,
    deprecated={"RSAES_PKCS1_V1_5": "AWS KMS stopped accepting it on 2023-10-10"},
)
