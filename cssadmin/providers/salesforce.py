"""Salesforce Shield Platform Encryption, bring your own key: an encrypted tenant secret and its hash."""
from __future__ import annotations

from dataclasses import dataclass

from .. import schemes
from ..keytypes import KeyType
from . import base64text
from .base import Options, Provider, Wrapped


@dataclass(frozen=True)
class Salesforce(Provider):
    def output_names(self, key_name: str, key_type: KeyType, options: Options) -> list[str]:
        return [f"{key_name}-wrapped", f"{key_name}-hash"]

    def contents(self, wrapped: Wrapped, options: Options) -> list[bytes]:
        return [base64text.standard(wrapped.blob), base64text.standard(wrapped.secret_sha256)]

    def next_step(self, wrapped: Wrapped, options: Options) -> str:
        return ("In Salesforce Setup > Platform Encryption > Key Management, choose the tenant secret type, "
                "click 'Bring Your Own Key', select the BYOK certificate this was wrapped for, upload "
                f"{wrapped.key_name}-wrapped as the Encrypted Tenant Secret and {wrapped.key_name}-hash as "
                "the Hashed Tenant Secret")


PROVIDER = Salesforce(
    name="salesforce",
    key_types=("AES-256",),
    default_key_type="AES-256",
    algorithms={"RSAES_OAEP_SHA_1": schemes.OAEP_SHA1, "RSAES_OAEP_SHA_512": schemes.OAEP_SHA512},
    wrap_alg_positional=True,
    strongest_kek=152,
    needs_certificate=True,
    kek_sizes=(4096,),
    kek_name="keys of Salesforce BYOK certificates",
    kek_source="download the BYOK certificate from Salesforce Setup > Certificate and Key Management",
    hash_refused={"sha512": "use RSAES_OAEP_SHA_1, which Salesforce also accepts, or a token with OAEP-SHA-512"},
)
