"""The tests' own view into a test token, independent of cssadmin's custody code."""
from __future__ import annotations

import os
from contextlib import contextmanager

import pkcs11
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

# DER of the namedCurve OIDs in CKA_EC_PARAMS.
_CURVES = {
    bytes.fromhex("06082a8648ce3d030107"): ec.SECP256R1(),
    bytes.fromhex("06052b81040022"): ec.SECP384R1(),
    bytes.fromhex("06052b81040023"): ec.SECP521R1(),
    bytes.fromhex("06052b8104000a"): ec.SECP256K1(),
}


class Token:
    def __init__(self, spec: dict):
        self.name = spec["name"]
        self.module = spec["module"]
        self.label = spec["token_label"]
        self.pin = spec["pin"]
        self.env = spec.get("env", {})

    def cli_args(self, pin_file_maker) -> list[str]:
        args = ["--token", self.label]
        if self.pin:
            args += ["--pin-file", pin_file_maker(self.pin)]
        return args

    @contextmanager
    def _environment(self):
        """The token's own variables (SOFTHSM2_CONF, say) for the duration of a call."""
        saved = {name: os.environ.get(name) for name in self.env}
        os.environ.update(self.env)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    @contextmanager
    def session(self):
        with self._environment():
            token = pkcs11.lib(self.module).get_token(token_label=self.label)
            with token.open(rw=True, user_pin=self.pin or None) as session:
                yield session

    def slot_id(self) -> int:
        with self._environment():
            [slot] = [slot for slot in pkcs11.lib(self.module).get_slots(token_present=True)
                      if slot.get_token().label == self.label]
            return slot.slot_id

    def objects(self, label: str) -> list:
        with self.session() as session:
            return [(obj.object_class, bytes(obj[Attribute.ID])) for obj in session.get_objects({Attribute.LABEL: label})]

    def object_count(self) -> int:
        """Every object the logged-in user sees on the token (token objects: a new session has no others)."""
        with self.session() as session:
            return len(list(session.get_objects()))

    def digest(self, label: str) -> bytes:
        """SHA-256 of a secret key, computed inside the token (C_DigestKey)."""
        with self.session() as session:
            key = session.get_key(object_class=ObjectClass.SECRET_KEY, label=label)
            return session.digest(key, mechanism=Mechanism.SHA256)

    def public_pem(self, label: str) -> bytes:
        """The SubjectPublicKeyInfo PEM of the token's public key object with this label."""
        with self.session() as session:
            public = session.get_key(object_class=ObjectClass.PUBLIC_KEY, label=label)
            if public.key_type == KeyType.RSA:
                key = rsa.RSAPublicNumbers(int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big"),
                                           int.from_bytes(public[Attribute.MODULUS], "big")).public_key()
            else:
                point = bytes(public[Attribute.EC_POINT])
                # CKA_EC_POINT: a DER OCTET STRING around the uncompressed point (PKCS#11 2.40).
                header = 2 if point[1] < 0x80 else 3
                assert point[0] == 0x04 and point[header - 1] == len(point) - header, point.hex()
                point = point[header:]
                key = ec.EllipticCurvePublicKey.from_encoded_point(_CURVES[bytes(public[Attribute.EC_PARAMS])], point)
        return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def key_attributes(self, label: str, *attributes) -> dict:
        with self.session() as session:
            key = session.get_key(object_class=ObjectClass.SECRET_KEY, label=label)
            return {attribute: key[attribute] for attribute in attributes}

    def read_value(self, label: str) -> bytes:
        with self.session() as session:
            key = session.get_key(object_class=ObjectClass.SECRET_KEY, label=label)
            return key[Attribute.VALUE]

    def create_foreign_key(self, label: str) -> None:
        """An AES key that cssadmin did not create (no marker), as another tool would leave it."""
        with self.session() as session:
            session.generate_key(KeyType.AES, 256, label=label, id=b"other-tool", store=True,
                                 template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: True})
