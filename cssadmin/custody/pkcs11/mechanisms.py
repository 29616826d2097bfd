"""Mechanisms and their parameters, always explicit: no python-pkcs11 default is trusted.

Native CKM_RSA_AES_KEY_WRAP (0x1054) needs two things python-pkcs11 0.10.1 does not have:
- a `Mechanism` for 0x1054: the library refuses a plain int ("`mechanism` must be a Mechanism.") and
  its enum has no such member. RSA_AES_KEY_WRAP below is an instance of the `Mechanism` class carrying
  0x1054, made with int.__new__ and *not* registered in the enum, so python-pkcs11's own state is left
  untouched (get_mechanisms() still returns a plain int for 0x1054, which compares equal to it);
- CK_RSA_AES_KEY_WRAP_PARAMS: the library marshals only the parameter structs it knows, but passes a
  `bytes` parameter through as the raw pParameter/ulParameterLen (its documented "escape hatch",
  MechanismWithParam in _pkcs11.pyx) and keeps a reference to it for the call. RsaAesParameters builds
  the struct with ctypes; its pOAEPParams points at a ctypes CK_RSA_PKCS_OAEP_PARAMS that the object
  keeps alive, so the RsaAesParameters must stay referenced until C_WrapKey has returned.
When python-pkcs11 gains a member of that name, it is used instead of the stand-in.
"""
from __future__ import annotations

import ctypes
import sys

from pkcs11 import Mechanism, MGF

_HASH_MECHANISMS = {
    "sha1": (Mechanism.SHA_1, MGF.SHA1),
    "sha256": (Mechanism.SHA256, MGF.SHA256),
    "sha512": (Mechanism.SHA512, MGF.SHA512),
}

# RFC 5649 key wrap with padding. PKCS#11 3.0 names it CKM_AES_KEY_WRAP_KWP; many tokens (SoftHSM2
# among them) offer it as CKM_AES_KEY_WRAP_PAD. The self-test decides whether the output conforms.
KWP_MECHANISMS = (Mechanism.AES_KEY_WRAP_KWP, Mechanism.AES_KEY_WRAP_PAD)

CKM_RSA_AES_KEY_WRAP = 0x1054
CKZ_DATA_SPECIFIED = 0x1
RSA_AES_KEY_BITS = 256          # the one-time AES key every cloud's RSA-AES format expects

# The names an export reports as the path that wrapped the key.
NATIVE_RSA_AES = "CKM_RSA_AES_KEY_WRAP"
RSA_OAEP = "CKM_RSA_PKCS_OAEP"
RSA_PKCS1 = "CKM_RSA_PKCS"


def _stand_in(value: int, name: str) -> Mechanism:
    member = int.__new__(Mechanism, value)
    member._name_, member._value_ = name, value
    return member


RSA_AES_KEY_WRAP = getattr(Mechanism, "RSA_AES_KEY_WRAP", None) or _stand_in(CKM_RSA_AES_KEY_WRAP, "RSA_AES_KEY_WRAP")


def two_step_name(kwp: Mechanism) -> str:
    return f"CKM_{kwp.name}+{RSA_OAEP}"


def oaep_parameters(hash_name: str) -> tuple:
    digest, mgf = _HASH_MECHANISMS[hash_name]
    return (digest, mgf, None)


# PKCS#11 headers pack their structs to 1 byte on Windows, and leave natural alignment elsewhere.
_PACKED = sys.platform == "win32"


class _OaepParams(ctypes.Structure):
    if _PACKED:
        _pack_ = 1
    _fields_ = [("hashAlg", ctypes.c_ulong), ("mgf", ctypes.c_ulong), ("source", ctypes.c_ulong),
                ("pSourceData", ctypes.c_void_p), ("ulSourceDataLen", ctypes.c_ulong)]


class _RsaAesKeyWrapParams(ctypes.Structure):
    if _PACKED:
        _pack_ = 1
    _fields_ = [("ulAESKeyBits", ctypes.c_ulong), ("pOAEPParams", ctypes.POINTER(_OaepParams))]


class RsaAesParameters:
    """CK_RSA_AES_KEY_WRAP_PARAMS {ulAESKeyBits, pOAEPParams -> {hash, MGF1 of the same hash, no label}}
    as raw bytes for python-pkcs11. Keep this object referenced for the duration of the call."""

    def __init__(self, hash_name: str, aes_key_bits: int = RSA_AES_KEY_BITS):
        digest, mgf = _HASH_MECHANISMS[hash_name]
        self._oaep = _OaepParams(int(digest), int(mgf), CKZ_DATA_SPECIFIED, None, 0)
        self._params = _RsaAesKeyWrapParams(aes_key_bits, ctypes.pointer(self._oaep))
        self.raw = ctypes.string_at(ctypes.addressof(self._params), ctypes.sizeof(self._params))
