"""Loading a PKCS#11 module and choosing its one token (by label, slot, or as the only one)."""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass

import pkcs11
from pkcs11 import TokenFlag
from pkcs11 import exceptions as p11e

from ..._frozen import restore_library_path
from ...errors import CustodyError

COMMON_MODULES = (
    "/opt/nfast/toolkits/pkcs11/libcknfast.so (Entrust nShield)",
    r"C:\Program Files\nCipher\nfast\toolkits\pkcs11\cknfast.dll (nShield on Windows)",
    "/usr/safenet/lunaclient/lib/libCryptoki2_64.so (Thales Luna)",
    "/opt/cloudhsm/lib/libcloudhsm_pkcs11.so (AWS CloudHSM)",
    "/usr/lib/softhsm/libsofthsm2.so (SoftHSM2 on Debian/Ubuntu)",
)



@contextmanager
def token_step(what: str, code: str = "TOKEN_OPERATION_FAILED"):
    """Turn a token's refusal that no narrower handler named into a custody error saying what failed."""
    try:
        yield
    except p11e.PKCS11Error as failure:
        raise CustodyError(f"the token failed to {what}: {type(failure).__name__}", code=code) from None


@dataclass(frozen=True)
class TokenSelector:
    label: str | None = None     # --token, -O CARDSET, -S SOFTCARD
    slot_id: int | None = None   # -m MODULE


def load_module(path: str):
    if not path:
        raise CustodyError("no PKCS#11 module given", code="MODULE_NOT_GIVEN",
                           remedy="pass --pkcs11-module PATH or set CSSADMIN_PKCS11_MODULE; common places: "
                           + "; ".join(COMMON_MODULES))
    if not os.path.isfile(path):
        raise CustodyError(f"PKCS#11 module {path} does not exist", code="MODULE_NOT_FOUND",
                           remedy="common places: " + "; ".join(COMMON_MODULES))
    restore_library_path()
    try:
        return pkcs11.lib(path)
    except (p11e.PKCS11Error, OSError) as failure:
        reason = str(failure) or f"{type(failure).__name__} from C_Initialize (check the module's own configuration)"
        raise CustodyError(f"PKCS#11 module {path} will not load: {reason}", code="MODULE_NOT_LOADED",
                           remedy="common places: " + "; ".join(COMMON_MODULES)) from None


def _describe_slot(slot, token) -> str:
    return f"slot {slot.slot_id} '{token.label}' ({token.manufacturer_id} {token.model})"


# A file-backed token that another process was writing when the module read its tokens (SoftHSM2
# does so in C_Initialize) is absent for the life of that initialisation; initialise again a few
# times before calling it missing.
_SELECTION_ATTEMPTS = 5
_SELECTION_RETRY_SECONDS = 0.1


def _candidates(lib, selector: TokenSelector) -> list:
    candidates = []
    for slot in lib.get_slots(token_present=True):
        token = slot.get_token()
        if not token.flags & TokenFlag.TOKEN_INITIALIZED:
            continue
        if selector.slot_id is not None and slot.slot_id != selector.slot_id:
            continue
        if selector.label is not None and token.label != selector.label:
            continue
        candidates.append((slot, token))
    return candidates


def select_token(lib, selector: TokenSelector):
    for attempt in range(_SELECTION_ATTEMPTS):
        try:
            candidates = _candidates(lib, selector)
        except p11e.PKCS11Error as failure:   # C_GetTokenInfo of a token being rewritten
            if attempt == _SELECTION_ATTEMPTS - 1:
                raise CustodyError(f"the PKCS#11 module cannot describe its tokens: {type(failure).__name__}",
                                   code="TOKEN_UNREADABLE", remedy="run again; if it persists, check the HSM") from None
            candidates = []
        if candidates or attempt == _SELECTION_ATTEMPTS - 1:
            break
        time.sleep(_SELECTION_RETRY_SECONDS)
        lib.reinitialize()
    wanted = " and ".join(filter(None, [
        f"label '{selector.label}'" if selector.label is not None else None,
        f"slot {selector.slot_id}" if selector.slot_id is not None else None,
    ])) or "an initialised token"
    if not candidates:
        raise CustodyError(f"no token with {wanted} in the PKCS#11 module", code="TOKEN_NOT_FOUND",
                           remedy="check the card set / softcard / token label, or list tokens with "
                           "`pkcs11-tool --module MODULE --list-slots`")
    if len(candidates) > 1:
        listed = "; ".join(_describe_slot(slot, token) for slot, token in candidates)
        raise CustodyError(f"several tokens match ({listed})", code="TOKEN_AMBIGUOUS",
                           remedy="choose one with --token LABEL or -m SLOT")
    return candidates[0]

