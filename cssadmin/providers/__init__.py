"""The clouds cssadmin exports to, by the seed's provider names."""
from __future__ import annotations

import importlib

from ..errors import UsageError
from .base import KNOWN_ALGORITHMS, Provider

PROVIDER_NAMES = ("aws", "google-compute-engine", "google-cloud-key-management",
                  "microsoft-azure", "salesforce", "oci", "hashicorp-vault")

__all__ = ["KNOWN_ALGORITHMS", "PROVIDER_NAMES", "Provider", "certificate_provider_names", "get_provider"]


def get_provider(name: str) -> Provider:
    if name not in PROVIDER_NAMES:
        raise UsageError(f"unknown provider {name!r}; one of: {', '.join(PROVIDER_NAMES)}",
                         code="UNKNOWN_PROVIDER")
    module = importlib.import_module(f"{__name__}.{name.replace('-', '_')}")
    return module.PROVIDER


def certificate_provider_names() -> tuple[str, ...]:
    """The providers whose wrapping key is a certificate: the ones a pins file may name."""
    return tuple(name for name in PROVIDER_NAMES if get_provider(name).needs_certificate)
