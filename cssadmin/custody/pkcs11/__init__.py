"""Key custody in a PKCS#11 token. This package is the only importer of `pkcs11` (python-pkcs11).

module.py loads the module and selects the token; custody.py is the custodian (target keys, digest,
wrap, self-test); signing.py the evidence-signing key; mechanisms.py the mechanisms and their explicit
parameters; objects.py what key objects look like on a token.
"""
from __future__ import annotations

from .custody import Pkcs11Custody
from .module import COMMON_MODULES, TokenSelector, load_module, select_token, token_step
from .objects import public_from_object
from .signing import SIGNING_MARKER

__all__ = ["COMMON_MODULES", "Pkcs11Custody", "SIGNING_MARKER", "TokenSelector", "load_module",
           "public_from_object", "select_token", "token_step"]
