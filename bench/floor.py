"""The floor for bench/bench.py: the least a program can do to make what `cssadmin aws` makes.

Open the token, log in, generate an AES-256 token key (sensitive, extractable, label and id), import
the RSA-4096 wrapping key as a session object and wrap the key with CKM_RSA_PKCS_OAEP, SHA-1 and
MGF1-SHA1. Nothing else: no checks, no self-test, no files. python-pkcs11 (and asn1crypto, which it
imports anyway, to read the SubjectPublicKeyInfo) only.

With --with-selftest it also does what cssadmin's mechanism self-test adds for AES-256: a session
AES-256 key wrapped to the published self-test key, C_DigestKey of it, and the OAEP decrypt in
software (cryptography) compared with the digest.

    python bench/floor.py --module /usr/lib/softhsm/libsofthsm2.so --token bench \
        --pin-file pin --wrapping-key WrappingKey.bin --label floor-1 [--with-selftest]
"""
from __future__ import annotations

import argparse
import sys

import pkcs11
from asn1crypto.keys import PublicKeyInfo
from pkcs11 import MGF, Attribute, KeyType, Mechanism, ObjectClass


def import_public(session, modulus: int, exponent: int):
    return session.create_object({
        Attribute.CLASS: ObjectClass.PUBLIC_KEY,
        Attribute.KEY_TYPE: KeyType.RSA,
        Attribute.TOKEN: False,
        Attribute.MODULUS: modulus.to_bytes((modulus.bit_length() + 7) // 8, "big"),
        Attribute.PUBLIC_EXPONENT: exponent.to_bytes((exponent.bit_length() + 7) // 8, "big"),
        Attribute.WRAP: True,
        Attribute.ENCRYPT: True,
    })


OAEP_SHA1 = (Mechanism.SHA_1, MGF.SHA1, None)
KEY_TEMPLATE = {Attribute.PRIVATE: True, Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: True}


def self_test(session) -> None:
    import hashlib

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from cssadmin.custody.selftest_key import SELF_TEST_PRIVATE_KEY_PEM

    private = load_pem_private_key(SELF_TEST_PRIVATE_KEY_PEM, password=None, unsafe_skip_rsa_key_validation=True)
    numbers = private.public_key().public_numbers()
    probe = session.generate_key(KeyType.AES, 256, store=False, capabilities=0,
                                 template={**KEY_TEMPLATE, Attribute.TOKEN: False})
    kek = import_public(session, numbers.n, numbers.e)
    blob = kek.wrap_key(probe, mechanism=Mechanism.RSA_PKCS_OAEP, mechanism_param=OAEP_SHA1)
    digest = session.digest(probe, mechanism=Mechanism.SHA256)
    kek.destroy()
    probe.destroy()
    recovered = private.decrypt(blob, padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None))
    if hashlib.sha256(recovered).digest() != digest:
        sys.exit("floor.py: self-test mismatch")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--module", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--pin-file", required=True)
    parser.add_argument("--wrapping-key", required=True, help="DER SubjectPublicKeyInfo")
    parser.add_argument("--label", required=True)
    parser.add_argument("--with-selftest", action="store_true")
    args = parser.parse_args()

    with open(args.wrapping_key, "rb") as stream:
        rsa = PublicKeyInfo.load(stream.read())["public_key"].parsed
    with open(args.pin_file) as stream:
        pin = stream.read().strip()

    token = pkcs11.lib(args.module).get_token(token_label=args.token)
    with token.open(rw=True, user_pin=pin) as session:
        key = session.generate_key(KeyType.AES, 256, label=args.label, id=b"floor", store=True, capabilities=0,
                                   template={**KEY_TEMPLATE, Attribute.TOKEN: True})
        if args.with_selftest:
            self_test(session)
        kek = import_public(session, rsa["modulus"].native, rsa["public_exponent"].native)
        blob = kek.wrap_key(key, mechanism=Mechanism.RSA_PKCS_OAEP, mechanism_param=OAEP_SHA1)
        kek.destroy()
    sys.stdout.buffer.write(blob)


if __name__ == "__main__":
    main()
