"""The clouds cssadmin exports to, by the seed's provider names."""
from __future__ import annotations

import importlib
import re

from ..errors import UsageError
from .base import Provider

PROVIDER_NAMES = ("aws", "google-compute-engine", "google-cloud-key-management",
                  "microsoft-azure", "salesforce")

# Every algorithm name any provider knows: a name outside this set is a usage error (exit 2),
# a known one that a provider does not allow is a policy refusal (exit 4).
KNOWN_ALGORITHMS = frozenset({
    "RSAES_OAEP_SHA_256", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_512", "RSAES_PKCS1_V1_5",
    "RSA_AES_KEY_WRAP_SHA_256", "RSA_AES_KEY_WRAP_SHA_1",
})


def get_provider(name: str) -> Provider:
    if name not in PROVIDER_NAMES:
        shown = repr(name) if re.fullmatch(r"[a-z]+(?:-[a-z]+)*", name) else "(the 1st positional argument, not shown)"
        raise UsageError(f"unknown provider {shown}; one of: {', '.join(PROVIDER_NAMES)}",
                         code="UNKNOWN_PROVIDER")
    module = importlib.import_module(f"{__name__}.{name.replace('-', '_')}")
    return module.PROVIDER
