"""Oracle OCI Vault bring-your-own-key: the WrappedImportKey JSON under the vault's RSA-4096 wrapping key."""
from __future__ import annotations

import json
from dataclasses import dataclass

from .. import schemes
from ..errors import PolicyError
from ..keytypes import KeyType
from ..schemes import WrapScheme
from ..wrapping_key import WrappingKey
from . import base64text
from .base import Options, Provider, Wrapped

RSA_AES = "RSA_OAEP_AES_SHA256"
PLAIN_OAEP = "RSA_OAEP_SHA256"


@dataclass(frozen=True)
class Oci(Provider):
    def choose_algorithm(self, key_type: KeyType, kek: WrappingKey, options: Options) -> tuple[str, WrapScheme]:
        name, scheme = super().choose_algorithm(key_type, kek, options)
        if scheme.kind == "oaep" and key_type.family != "aes":
            raise PolicyError(f"OCI Vault takes {PLAIN_OAEP} for AES keys only; an {key_type.name} key needs "
                              f"{RSA_AES}", code="ALGORITHM_NOT_ALLOWED", remedy=f"use {RSA_AES} (the default)")
        return name, scheme

    def output_names(self, key_name: str, key_type: KeyType, options: Options) -> list[str]:
        return [f"{key_name}-wrapped-import-key.json", *self.public_key_names(key_name, key_type)]

    def contents(self, wrapped: Wrapped, options: Options) -> list[bytes]:
        document = {"keyMaterial": base64text.standard(wrapped.blob).decode("ascii"),
                    "wrappingAlgorithm": wrapped.algorithm}
        return [json.dumps(document).encode("ascii"), *self.public_key_contents(wrapped)]

    def next_step(self, wrapped: Wrapped, options: Options) -> str:
        key_type = wrapped.key_type
        algorithm = "AES" if key_type.family == "aes" else "RSA"
        shape = json.dumps({"algorithm": algorithm, "length": key_type.bits // 8})
        return (f"oci kms management key import --wrapped-import-key file://{wrapped.key_name}-wrapped-import-key.json "
                f"--key-shape '{shape}' --compartment-id <OCID> --display-name <NAME> --protection-mode HSM "
                "--endpoint <VAULT_MANAGEMENT_ENDPOINT>")


PROVIDER = Oci(
    name="oci",
    key_types=("AES-128", "AES-192", "AES-256", "RSA-2048", "RSA-3072", "RSA-4096"),
    default_key_type="AES-256",
    algorithms={RSA_AES: schemes.RSA_AES_SHA256, PLAIN_OAEP: schemes.OAEP_SHA256},
    default_algorithm=RSA_AES,
    wrap_alg_positional=True,
    strongest_kek=152,
    kek_sizes=(4096,),
    kek_name="OCI Vault wrapping keys",
    kek_source="download the vault's wrapping key: oci kms management wrapping-key get --endpoint "
               "<VAULT_MANAGEMENT_ENDPOINT>",
)
