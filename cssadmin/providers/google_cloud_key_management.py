"""Google Cloud KMS key import: the wrapped key file for an import job."""
from __future__ import annotations

from dataclasses import dataclass

from .. import schemes
from ..errors import PolicyError, UsageError, WrappingKeyError
from ..keytypes import KeyType
from ..schemes import WrapScheme
from ..wrapping_key import WrappingKey
from .base import Options, Provider, Wrapped

IMPORT_METHODS: dict[str, tuple[int, WrapScheme]] = {
    "RSA_OAEP_3072_SHA1_AES_256": (3072, schemes.RSA_AES_SHA1),
    "RSA_OAEP_4096_SHA1_AES_256": (4096, schemes.RSA_AES_SHA1),
    "RSA_OAEP_3072_SHA256_AES_256": (3072, schemes.RSA_AES_SHA256),
    "RSA_OAEP_4096_SHA256_AES_256": (4096, schemes.RSA_AES_SHA256),
    "RSA_OAEP_3072_SHA256": (3072, schemes.OAEP_SHA256),
    "RSA_OAEP_4096_SHA256": (4096, schemes.OAEP_SHA256),
}

# The Cloud KMS algorithm to name on import; the purpose is the operator's choice, so the most
# common one is suggested and the next-step text says so.
_KMS_ALGORITHMS = {
    "AES-256": "google-symmetric-encryption",
    "RSA-2048": "rsa-sign-pkcs1-2048-sha256",
    "RSA-3072": "rsa-sign-pkcs1-3072-sha256",
    "RSA-4096": "rsa-sign-pkcs1-4096-sha256",
    "EC-NISTP256": "ec-sign-p256-sha256",
    "EC-NISTP384": "ec-sign-p384-sha384",
    "EC-SECP256K1": "ec-sign-secp256k1-sha256",
    "HMAC-224": "hmac-sha224",
    "HMAC-256": "hmac-sha256",
    "HMAC-384": "hmac-sha384",
    "HMAC-512": "hmac-sha512",
}


@dataclass(frozen=True)
class GoogleCloudKms(Provider):
    def check_options(self, options: Options) -> None:
        super().check_options(options)
        if options.import_method is not None and options.import_method not in IMPORT_METHODS:
            raise UsageError("the --import-method value (not shown) is not a Cloud KMS import method; one of: "
                             f"{', '.join(IMPORT_METHODS)}", code="IMPORT_METHOD_UNKNOWN")

    def check_wrapping_key(self, kek: WrappingKey, options: Options) -> None:
        super().check_wrapping_key(kek, options)
        if options.import_method and IMPORT_METHODS[options.import_method][0] != kek.bits:
            raise WrappingKeyError(f"--import-method {options.import_method} needs an RSA-"
                                   f"{IMPORT_METHODS[options.import_method][0]} wrapping key; this one is "
                                   f"RSA-{kek.bits}", code="WRAPPING_KEY_WRONG_SIZE")

    def choose_algorithm(self, key_type: KeyType, kek: WrappingKey, options: Options) -> tuple[str, WrapScheme]:
        method = options.import_method or f"RSA_OAEP_{kek.bits}_SHA1_AES_256"
        scheme = IMPORT_METHODS[method][1]
        if scheme.kind == "oaep":
            if key_type.family == "rsa":
                raise PolicyError(f"{method} wraps the key directly with RSA-OAEP, which cannot carry an "
                                  f"{key_type.name} private key ({key_type.plaintext_bytes} bytes)",
                                  code="ALGORITHM_NOT_ALLOWED",
                                  remedy=f"use RSA_OAEP_{kek.bits}_SHA256_AES_256")
            self.require_fit(key_type, method, scheme, kek.bits, remedy=f"use RSA_OAEP_{kek.bits}_SHA256_AES_256")
        return method, scheme

    def output_names(self, key_name: str, key_type: KeyType, options: Options) -> list[str]:
        return [f"{key_name}-wrapped.bin", *self.public_key_names(key_name, key_type)]

    def contents(self, wrapped: Wrapped, options: Options) -> list[bytes]:
        return [wrapped.blob, *self.public_key_contents(wrapped)]

    def next_step(self, wrapped: Wrapped, options: Options) -> str:
        step = ("gcloud kms keys versions import --import-job <IMPORT_JOB> --location <LOCATION> "
                f"--keyring <KEY_RING> --key <KEY> --algorithm {_KMS_ALGORITHMS[wrapped.key_type.name]} "
                f"--wrapped-key-file {wrapped.key_name}-wrapped.bin")
        if wrapped.key_type.is_private_key:
            step += (f" (choose the --algorithm that matches the key's purpose; afterwards compare "
                     f"`gcloud kms keys versions get-public-key` with {wrapped.key_name}-public.pem)")
        return step


PROVIDER = GoogleCloudKms(
    name="google-cloud-key-management",
    key_types=tuple(_KMS_ALGORITHMS),
    default_key_type="RSA-2048",
    algorithms={},
    wrap_alg_positional=False,
    takes=frozenset({"import_method"}),
    kek_sizes=(3072, 4096),
    kek_name="Cloud KMS import job keys",
    kek_source="download the import job's public key (gcloud kms import-jobs describe)",
    stronger_kek="create the import job with an RSA_OAEP_4096_* import method",
    strongest_kek=152,
)
