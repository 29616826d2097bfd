"""The clouds cssadmin exports to, by the seed's provider names."""
from __future__ import annotations

import importlib
import re

from ..errors import UsageError
from .base import KNOWN_ALGORITHMS, Provider

PROVIDER_NAMES = ("aws", "google-compute-engine", "google-cloud-key-management",
                  "microsoft-azure", "salesforce", "oci", "hashicorp-vault")

__all__ = ["KNOWN_ALGORITHMS", "PROVIDER_NAMES", "Provider", "get_provider"]


def get_provider(name: str) -> Provider:
    if name not in PROVIDER_NAMES:
        shown = repr(name) if re.fullmatch(r"[a-z]+(?:-[a-z]+)*", name) else "(the 1st positional argument, not shown)"
        raise UsageError(f"unknown provider {shown}; one of: {', '.join(PROVIDER_NAMES)}",
                         code="UNKNOWN_PROVIDER")
    module = importlib.import_module(f"{__name__}.{name.replace('-', '_')}")
    return module.PROVIDER

