"""Facts about private-key plaintext: the curves, and what a well-formed PKCS#8 blob is."""
from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

EC_CURVES = {
    "secp256r1": ec.SECP256R1,
    "secp384r1": ec.SECP384R1,
    "secp521r1": ec.SECP521R1,
    "secp256k1": ec.SECP256K1,
}


def der_length(buffer: bytes) -> int:
    """Length of the DER element at the start of `buffer` (header and content)."""
    if len(buffer) < 2:
        raise ValueError("too short for DER")
    first = buffer[1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    if count == 0 or count > 4 or len(buffer) < 2 + count:
        raise ValueError("bad DER length")
    return 2 + count + int.from_bytes(buffer[2:2 + count], "big")


def pkcs8_problem(pkcs8: bytes, expected_public) -> str | None:
    """Why `pkcs8` is not exactly the PrivateKeyInfo of `expected_public`, or None when it is."""
    try:
        if pkcs8[:1] != b"\x30":
            return "it is not a DER SEQUENCE"
        covered = der_length(pkcs8)
    except ValueError as failure:
        return str(failure)
    if covered != len(pkcs8):
        trailing = pkcs8[covered:]
        kind = "zero " if trailing and not any(trailing) else ""
        return f"it carries {len(pkcs8) - covered} trailing {kind}bytes after the PrivateKeyInfo"
    try:
        private = serialization.load_der_private_key(pkcs8, password=None)
    except (ValueError, TypeError) as failure:
        return f"it does not parse as PKCS#8: {failure}"
    def spki(key):
        return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if spki(private.public_key()) != spki(expected_public):
        return "its public key differs from the token's"
    return None


# --- made in software: the keystore's keys and throwaway test keys ----------------------------
def generate(key_type):
    """A new key of that type: raw bytes for a secret key, a private key object otherwise."""
    import os

    from cryptography.hazmat.primitives.asymmetric import rsa
    if not key_type.is_private_key:
        return os.urandom(key_type.secret_bytes)
    if key_type.family == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=key_type.bits)
    return ec.generate_private_key(EC_CURVES[key_type.curve]())


def pkcs8_der(private_key) -> bytes:
    return private_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())


def spki_pem(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def is_of_type(private_key, key_type) -> bool:
    from cryptography.hazmat.primitives.asymmetric import rsa
    if key_type.family == "rsa":
        return isinstance(private_key, rsa.RSAPrivateKey) and private_key.key_size == key_type.bits
    return isinstance(private_key, ec.EllipticCurvePrivateKey) and private_key.curve.name == key_type.curve
