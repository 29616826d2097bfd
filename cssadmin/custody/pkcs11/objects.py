"""What key objects look like on a token: the EC curves' parameters, public halves read back."""
from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pkcs11 import Attribute

from ...keymaterial import EC_CURVES
from ...keytypes import KeyType

RSA_PUBLIC_EXPONENT = (65537).to_bytes(3, "big")

# DER of the namedCurve OIDs, for CKA_EC_PARAMS.
EC_PARAMS = {
    "secp256r1": bytes.fromhex("06082a8648ce3d030107"),
    "secp384r1": bytes.fromhex("06052b81040022"),
    "secp521r1": bytes.fromhex("06052b81040023"),
    "secp256k1": bytes.fromhex("06052b8104000a"),
}


def public_from_object(public_object, key_type: KeyType):
    if key_type.family == "rsa":
        return rsa.RSAPublicNumbers(
            int.from_bytes(public_object[Attribute.PUBLIC_EXPONENT], "big"),
            int.from_bytes(public_object[Attribute.MODULUS], "big"),
        ).public_key()
    point = _unwrap_octet_string(bytes(public_object[Attribute.EC_POINT]))
    curve = EC_CURVES[key_type.curve]()
    return ec.EllipticCurvePublicKey.from_encoded_point(curve, point)


def _unwrap_octet_string(data: bytes) -> bytes:
    """CKA_EC_POINT is a DER OCTET STRING around the point; a few tokens return the bare point."""
    if len(data) >= 2 and data[0] == 0x04:
        length, offset = data[1], 2
        if length & 0x80:
            count = length & 0x7F
            length, offset = int.from_bytes(data[2:2 + count], "big"), 2 + count
        if offset + length == len(data):
            return data[offset:]
    return data
