"""Azure Key Vault Premium / Managed HSM BYOK: the KeyTransferPackage .byok file."""
from __future__ import annotations

import json
from dataclasses import dataclass

from .. import schemes
from ..errors import PolicyError, UsageError
from ..keytypes import KeyType
from ..schemes import WrapScheme
from ..wrapping_key import WrappingKey
from . import base64text
from .azure_kid import parse_kid
from .base import Options, Provider, Wrapped

ENC = "CKM_RSA_AES_KEY_WRAP"
_EC_CURVES = {"EC-NISTP256": "P-256", "EC-NISTP384": "P-384", "EC-NISTP521": "P-521", "EC-SECP256K1": "P-256K"}


@dataclass(frozen=True)
class MicrosoftAzure(Provider):
    def check_options(self, options: Options) -> None:
        super().check_options(options)
        if options.azure_kek is None:
            raise UsageError("microsoft-azure needs the KEK's key ID: -a/--azure-kek https://<vault>.vault.azure.net"
                             "/keys/<name>/<version>", code="AZURE_KID_MISSING")
        parse_kid(options.azure_kek)

    def check_target(self, key_type: KeyType, options: Options) -> None:
        if key_type.family == "aes" and parse_kid(options.azure_kek).service != "managedhsm":
            vault_types = ", ".join(name for name in self.key_types if not name.startswith("AES-"))
            raise PolicyError(f"{key_type.name} (oct-HSM) imports only into an Azure Managed HSM; Key Vault has no "
                              f"oct-HSM import, and this KEK's kid names a vault (a vault takes: {vault_types})",
                              code="KEY_TYPE_NOT_ALLOWED",
                              remedy="use the kid of a KEK in a Managed HSM (https://<hsm>.managedhsm.azure.net/...)")

    def choose_algorithm(self, key_type: KeyType, kek: WrappingKey, options: Options) -> tuple[str, WrapScheme]:
        return ENC, schemes.RSA_AES_SHA1

    def output_names(self, key_name: str, key_type: KeyType, options: Options) -> list[str]:
        return [f"KeyTransferPackage-{key_name}.byok", *self.public_key_names(key_name, key_type)]

    def contents(self, wrapped: Wrapped, options: Options) -> list[bytes]:
        package = {
            "schema_version": "1.0.0",
            "header": {"kid": options.azure_kek, "alg": "dir", "enc": ENC},
            "ciphertext": base64text.url_unpadded(wrapped.blob),
            "generator": wrapped.generator,
        }
        return [json.dumps(package, indent=2).encode(), *self.public_key_contents(wrapped)]

    def next_step(self, wrapped: Wrapped, options: Options) -> str:
        kid = parse_kid(options.azure_kek)
        target = f"--hsm-name {kid.name}" if kid.service == "managedhsm" else f"--vault-name {kid.name}"
        family = wrapped.key_type.family
        kty = (f" --kty EC --curve {_EC_CURVES[wrapped.key_type.name]}" if family == "ec"
               else " --kty oct-HSM" if family == "aes" else "")
        return (f"az keyvault key import {target} --name <KEY_NAME> "
                f"--byok-file KeyTransferPackage-{wrapped.key_name}.byok{kty}")


PROVIDER = MicrosoftAzure(
    name="microsoft-azure",
    key_types=("RSA-2048", "RSA-3072", "RSA-4096", "EC-NISTP256", "EC-NISTP384", "EC-NISTP521", "EC-SECP256K1",
               "AES-128", "AES-192", "AES-256"),   # AES (oct-HSM): Managed HSM only, see check_target
    default_key_type="RSA-2048",
    algorithms={},
    wrap_alg_positional=False,
    takes=frozenset({"azure_kek"}),
    kek_name="Azure KEKs (RSA-HSM keys with key_ops import)",
    kek_source="download the KEK's public key: az keyvault key download --name KEK --vault-name V --file KEK.pem",
    stronger_kek="create the KEK as an RSA-HSM key of 3072 or 4096 bits with key_ops import",
    strongest_kek=152,
)
