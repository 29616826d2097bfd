"""Azure Key Vault / Managed HSM key identifiers (kid) of a KEK: shape and host checks."""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UsageError

_HOST_SUFFIXES = {
    "vault.azure.net": "vault", "vault.azure.cn": "vault", "vault.usgovcloudapi.net": "vault",
    "vault.microsoftazure.de": "vault",
    "managedhsm.azure.net": "managedhsm", "managedhsm.azure.cn": "managedhsm",
    "managedhsm.usgovcloudapi.net": "managedhsm",
}
_KID = re.compile(
    r"https://(?P<name>[a-z0-9](?:[a-z0-9-]{1,22}[a-z0-9]))\.(?P<suffix>[a-z.]+)"
    r"/keys/(?P<key>[0-9A-Za-z-]{1,127})/(?P<version>[0-9a-f]{32})")
EXPECTED_SHAPE = ("https://<vault>.vault.azure.net/keys/<name>/<32-hex version> "
                  "(or .managedhsm.azure.net, and the sovereign clouds' hosts)")


@dataclass(frozen=True)
class AzureKid:
    kid: str
    service: str      # "vault" | "managedhsm"
    name: str         # vault or managed HSM name
    key: str


def parse_kid(text: str) -> AzureKid:
    if not isinstance(text, str) or not text.isascii():
        raise UsageError(f"--azure-kek is not an Azure key ID; expected {EXPECTED_SHAPE}", code="BAD_AZURE_KID")
    match = _KID.fullmatch(text)
    if not match or match["suffix"] not in _HOST_SUFFIXES:
        raise UsageError(f"--azure-kek {text!r} is not an Azure Key Vault or Managed HSM key ID; expected "
                         f"{EXPECTED_SHAPE}", code="BAD_AZURE_KID")
    return AzureKid(text, _HOST_SUFFIXES[match["suffix"]], match["name"], match["key"])
