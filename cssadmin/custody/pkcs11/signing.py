"""The evidence-signing key on a token (issue 11): an EC P-256 pair whose private half can only sign,
never extractable, never a target key. A mixin of Pkcs11Custody: it uses the custodian's session,
token, mechanism list and attribute reader."""
from __future__ import annotations

import hashlib
from contextlib import suppress

from pkcs11 import Attribute, KeyType as P11KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11e

from ...errors import CustodyError, KeyConflictError
from ...keytypes import KEY_TYPES
from ...signatures import der_from_raw
from .. import SigningKeyRef
from .module import token_step
from .objects import EC_PARAMS, public_from_object

# CKA_ID of the evidence-signing key's two objects: this marker, then the label it was created under.
# It must never start with provenance.MARKER, the target keys' marker.
SIGNING_MARKER = b"cssadmin-signing:"

_SIGNING_TYPE = KEY_TYPES["EC-NISTP256"]
# The private half of the signing key: sensitive, never extractable, and able to sign and nothing else.
_SIGNING_PRIVATE = {
    Attribute.PRIVATE: True, Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.SIGN: True,
    Attribute.SIGN_RECOVER: False, Attribute.DECRYPT: False, Attribute.UNWRAP: False, Attribute.DERIVE: False,
}
# Set by the token, not by us: generated there and never out of it in the clear.
_SIGNING_PROVENANCE = {Attribute.KEY_TYPE: P11KeyType.EC, Attribute.LOCAL: True, Attribute.ALWAYS_SENSITIVE: True,
                       Attribute.NEVER_EXTRACTABLE: True, Attribute.TOKEN: True}



class SigningKeyMixin:
    def _refuse_signing_key(self, name: str, ids) -> None:
        if any(object_id.startswith(SIGNING_MARKER) for object_id in ids):
            raise KeyConflictError(f"'{name}' on token '{self._token.label}' is cssadmin's evidence-signing key; "
                                   "it is never a target key and never leaves the token", code="KEY_IS_SIGNING_KEY",
                                   remedy="choose another key name")

    def get_or_create_signing_key(self, label: str) -> SigningKeyRef:
        with token_step(f"look up or create signing key '{label}'"):
            objects = list(self._session.get_objects({Attribute.LABEL: label}))
            if objects:
                private, public = self._check_signing_key(label, objects)
                created = False
            else:
                public, private = self._generate_signing_pair(label)
                created = True
            return SigningKeyRef(label, created, private, public_from_object(public, _SIGNING_TYPE))

    def _generate_signing_pair(self, label: str):
        locked = {Attribute.TOKEN: True, Attribute.MODIFIABLE: False, Attribute.COPYABLE: False}
        private_template = {**locked, **_SIGNING_PRIVATE}
        public_template = {**locked, Attribute.VERIFY: True, Attribute.ENCRYPT: False, Attribute.WRAP: False,
                           Attribute.EC_PARAMS: EC_PARAMS[_SIGNING_TYPE.curve]}
        try:
            return self._session.generate_keypair(
                P11KeyType.EC, label=label, id=SIGNING_MARKER + label.encode(), store=True, capabilities=0,
                public_template=public_template, private_template=private_template)
        except p11e.PKCS11Error as failure:
            raise CustodyError(f"the token could not generate the EC P-256 signing key: {type(failure).__name__}",
                               code="KEYGEN_FAILED") from None

    def _check_signing_key(self, label: str, objects):
        """The same label, marker and attributes the key was created with; anything else is refused."""
        ids = {bytes(self._attribute(obj, Attribute.ID) or b"") for obj in objects}
        if ids != {SIGNING_MARKER + label.encode()}:
            raise KeyConflictError(f"token '{self._token.label}' holds an object labelled '{label}' that is not "
                                   "cssadmin's signing key of that label", code="SIGNING_KEY_CONFLICT",
                                   remedy="choose another --signing-key label")
        privates = [obj for obj in objects if obj.object_class == ObjectClass.PRIVATE_KEY]
        publics = [obj for obj in objects if obj.object_class == ObjectClass.PUBLIC_KEY]
        if len(privates) != 1 or len(publics) != 1 or len(objects) != 2:
            raise KeyConflictError(f"signing key '{label}' is incomplete or duplicated on the token",
                                   code="SIGNING_KEY_CONFLICT")
        wanted = {**_SIGNING_PRIVATE, **_SIGNING_PROVENANCE, Attribute.MODIFIABLE: False,
                  Attribute.EC_PARAMS: EC_PARAMS[_SIGNING_TYPE.curve]}
        wrong = [attribute.name for attribute, value in wanted.items()
                 if self._attribute(privates[0], attribute) != value]
        if self._attribute(publics[0], Attribute.EC_PARAMS) != EC_PARAMS[_SIGNING_TYPE.curve]:
            wrong.append("EC_PARAMS of the public key")
        if wrong:
            raise KeyConflictError(f"signing key '{label}' does not have the attributes cssadmin gives it "
                                   f"({', '.join('CKA_' + name for name in wrong)})", code="SIGNING_KEY_PROVENANCE",
                                   remedy="it was not made by cssadmin as a signing key; choose another label")
        return privates[0], publics[0]

    def sign(self, key: SigningKeyRef, data: bytes) -> bytes:
        """C_Sign with CKM_ECDSA_SHA256, or CKM_ECDSA over the SHA-256 digest; r||s turned into DER."""
        try:
            if Mechanism.ECDSA_SHA256 in self._mechanisms:
                raw = key.handle.sign(data, mechanism=Mechanism.ECDSA_SHA256)
            else:
                self._require(Mechanism.ECDSA, "ECDSA signatures of the evidence")
                raw = key.handle.sign(hashlib.sha256(data).digest(), mechanism=Mechanism.ECDSA)
            return der_from_raw(bytes(raw))
        except (p11e.PKCS11Error, ValueError) as failure:
            raise CustodyError(f"the token failed to sign with signing key '{key.label}': {failure or type(failure).__name__}",
                               code="SIGN_FAILED") from None

    def discard_signing_key(self, key: SigningKeyRef) -> None:
        if not key.created:
            return
        with suppress(p11e.PKCS11Error):   # the error that made us discard is the one to report
            for obj in self._session.get_objects({Attribute.LABEL: key.label,
                                                  Attribute.ID: SIGNING_MARKER + key.label.encode()}):
                obj.destroy()
