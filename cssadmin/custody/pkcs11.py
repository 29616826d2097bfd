"""Key custody in a PKCS#11 token: the only module that imports `pkcs11`.

The target key is generated in the token, marked as ours, and only ever leaves it wrapped by
C_WrapKey. Nothing here reads CKA_VALUE or a private component; the secret's hash comes from
C_DigestKey. The evidence-signing key (its own section, at the end of the class) is an EC P-256 pair
whose private half can only sign: never extractable, never a target key.
"""
from __future__ import annotations

import hashlib
import os
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import pkcs11
from pkcs11 import Attribute, KeyType as P11KeyType, Mechanism, MGF, ObjectClass, TokenFlag
from pkcs11 import exceptions as p11e
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .._frozen import restore_library_path
from ..durable import host_lock_path
from ..errors import CustodyError, KeyConflictError, ParametersRefused
from ..keymaterial import EC_CURVES
from ..keytypes import KEY_TYPES, KeyType
from ..schemes import WrapScheme
from ..signatures import der_from_raw
from . import CustodyBase, KeyRef, SecretSource, SigningKeyRef
from . import provenance
from .provenance import TokenObject
from . import selftest

COMMON_MODULES = (
    "/opt/nfast/toolkits/pkcs11/libcknfast.so (Entrust nShield)",
    r"C:\Program Files\nCipher\nfast\toolkits\pkcs11\cknfast.dll (nShield on Windows)",
    "/usr/safenet/lunaclient/lib/libCryptoki2_64.so (Thales Luna)",
    "/opt/cloudhsm/lib/libcloudhsm_pkcs11.so (AWS CloudHSM)",
    "/usr/lib/softhsm/libsofthsm2.so (SoftHSM2 on Debian/Ubuntu)",
)

# CKA_ID of the evidence-signing key's two objects: this marker, then the label it was created under.
# It must never start with provenance.MARKER, the target keys' marker.
SIGNING_MARKER = b"cssadmin-signing:"

_HASH_MECHANISMS = {
    "sha1": (Mechanism.SHA_1, MGF.SHA1),
    "sha256": (Mechanism.SHA256, MGF.SHA256),
    "sha512": (Mechanism.SHA512, MGF.SHA512),
}

# DER of the namedCurve OIDs, for CKA_EC_PARAMS.
RSA_PUBLIC_EXPONENT = (65537).to_bytes(3, "big")

_EC_PARAMS = {
    "secp256r1": bytes.fromhex("06082a8648ce3d030107"),
    "secp384r1": bytes.fromhex("06052b81040022"),
    "secp521r1": bytes.fromhex("06052b81040023"),
    "secp256k1": bytes.fromhex("06052b8104000a"),
}

# RFC 5649 key wrap with padding. PKCS#11 3.0 names it CKM_AES_KEY_WRAP_KWP; many tokens (SoftHSM2
# among them) offer it as CKM_AES_KEY_WRAP_PAD. The self-test decides whether the output conforms.
_KWP_MECHANISMS = (Mechanism.AES_KEY_WRAP_KWP, Mechanism.AES_KEY_WRAP_PAD)


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


def oaep_parameters(hash_name: str) -> tuple:
    digest, mgf = _HASH_MECHANISMS[hash_name]
    return (digest, mgf, None)


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


class Pkcs11Custody(CustodyBase):
    protection = "hsm"

    def __init__(self, module_path: str, selector: TokenSelector, pin_source: SecretSource, *,
                 force_login: bool = False):
        lib = load_module(module_path)
        self._module_path = module_path
        self._slot, self._token = select_token(lib, selector)
        self._force_login = force_login
        self.description = (f"{self._token.manufacturer_id.strip()} {self._token.model.strip()} "
                            f"firmware {'.'.join(map(str, self._token.firmware_version))}")
        self._session = self._login(pin_source)
        with token_step("list its mechanisms"):
            self._mechanisms = self._slot.get_mechanisms()

    def _login(self, pin_source: SecretSource):
        needs_pin = self._force_login or bool(self._token.flags & TokenFlag.LOGIN_REQUIRED)
        pin = pin_source() if needs_pin else None
        try:
            return self._token.open(rw=True, user_pin=pin)
        except (p11e.PinIncorrect, p11e.PinInvalid, p11e.PinLenRange):
            raise CustodyError(f"login to token '{self._token.label}' failed: wrong PIN",
                               code="LOGIN_FAILED",
                               remedy="not retried, so as not to lock the token; check the PIN and run again") from None
        except p11e.PinLocked:
            raise CustodyError(f"the PIN of token '{self._token.label}' is locked", code="PIN_LOCKED") from None
        except p11e.PKCS11Error as failure:
            raise CustodyError(f"cannot open a session on token '{self._token.label}': "
                               f"{type(failure).__name__}", code="LOGIN_FAILED") from None

    def close(self) -> None:
        self._session.close()

    # --- finding and creating keys -------------------------------------------------------
    def lock_path(self, name: str) -> str:
        serial = self._token.serial.decode("ascii", errors="replace") if isinstance(self._token.serial, bytes) \
            else str(self._token.serial)
        return host_lock_path(f"{self._module_path}\0{serial}\0{self._token.label}\0{name}")

    def get_or_create(self, name: str, key_type: KeyType, provider: str, reuse_key: bool = False) -> KeyRef:
        with token_step(f"look up or create key '{name}'"):
            existing = self._labelled(name)
            if existing:
                self._refuse_signing_key(name, {obj.cka_id for obj in existing})
                key = provenance.choose_existing(self._token.label, name, key_type, provider, reuse_key, existing)
                return KeyRef(name, key_type, False, key.handle)
            marker = provenance.new_marker(key_type, provider)
            if key_type.is_private_key:
                handle = self._generate_pair(name, marker, key_type, store=True)[1]
            else:
                handle = self._generate_secret(name, marker, key_type, store=True)
            key = KeyRef(name, key_type, True, handle)
            self._check_created(key, marker)
            return key

    def _check_created(self, key: KeyRef, marker: bytes) -> None:
        """The new key is the only one of its name (a run on another host may have raced us), and the
        token kept CKA_MODIFIABLE and CKA_COPYABLE false as asked."""
        keys = [obj for obj in self._labelled(key.name) if obj.object_class in provenance.KEY_CLASSES]
        if len(keys) != 1 or keys[0].cka_id != marker:
            self.discard(key)
            raise provenance.ambiguous(self._token.label, key.name, keys)
        for attribute in (Attribute.MODIFIABLE, Attribute.COPYABLE):
            if self._attribute(key.handle, attribute) is not False:
                self.discard(key)
                raise CustodyError(f"the token did not keep CKA_{attribute.name} false on the new key",
                                   code="KEY_ATTRIBUTES_REFUSED",
                                   remedy="use a token that honours CKA_MODIFIABLE and CKA_COPYABLE")

    def _labelled(self, name: str) -> list[TokenObject]:
        return [self._describe(obj) for obj in self._session.get_objects({Attribute.LABEL: name})]

    def _describe(self, obj) -> TokenObject:
        names = {"CKA_LOCAL": Attribute.LOCAL, "CKA_ALWAYS_SENSITIVE": Attribute.ALWAYS_SENSITIVE,
                 "CKA_SENSITIVE": Attribute.SENSITIVE, "CKA_EXTRACTABLE": Attribute.EXTRACTABLE,
                 "CKA_NEVER_EXTRACTABLE": Attribute.NEVER_EXTRACTABLE}
        object_class = {ObjectClass.SECRET_KEY: "secret key", ObjectClass.PRIVATE_KEY: "private key",
                        ObjectClass.PUBLIC_KEY: "public key"}.get(obj.object_class, str(obj.object_class))
        attributes = {name: self._attribute(obj, attribute) if object_class in provenance.KEY_CLASSES else None
                      for name, attribute in names.items()}
        return TokenObject(obj, object_class, bytes(self._attribute(obj, Attribute.ID) or b""), attributes)

    def discard(self, key: KeyRef) -> None:
        """Destroy the objects this run created for `key` (its CKA_ID is random and this run's own)."""
        if not key.created:
            return
        with suppress(p11e.PKCS11Error):   # the error that made us discard is the one to report
            marker = bytes(key.handle[Attribute.ID])
            for obj in self._session.get_objects({Attribute.LABEL: key.name, Attribute.ID: marker}):
                obj.destroy()

    @staticmethod
    def _attribute(obj, attribute):
        try:
            return obj[attribute]
        except (p11e.AttributeTypeInvalid, p11e.AttributeSensitive):
            return None

    def _key_template(self, store: bool) -> dict:
        template = {
            Attribute.TOKEN: store,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: True,
        }
        if store:   # a stored key can never be changed or copied into one with weaker attributes
            template.update({Attribute.MODIFIABLE: False, Attribute.COPYABLE: False})
        return template

    def _generate_secret(self, label, object_id, key_type: KeyType, *, store: bool):
        if key_type.family == "aes":
            kind, mechanism = P11KeyType.AES, Mechanism.AES_KEY_GEN
        else:
            kind, mechanism = P11KeyType.GENERIC_SECRET, Mechanism.GENERIC_SECRET_KEY_GEN
        try:
            return self._session.generate_key(
                kind, key_type.bits, label=label, id=object_id, store=store, mechanism=mechanism,
                capabilities=0, template=self._key_template(store))
        except (p11e.AttributeTypeInvalid, p11e.AttributeValueInvalid, p11e.TemplateInconsistent) as failure:
            raise CustodyError(f"the token refused the attributes of a new {key_type.name} key "
                               f"({type(failure).__name__}); cssadmin asks for CKA_MODIFIABLE and CKA_COPYABLE false "
                               "and will not drop them", code="KEY_ATTRIBUTES_REFUSED",
                               remedy="use a token that honours CKA_MODIFIABLE and CKA_COPYABLE") from None
        except p11e.PKCS11Error as failure:
            raise CustodyError(f"the token could not generate {key_type.name}: {type(failure).__name__}",
                               code="KEYGEN_FAILED") from None

    def _generate_pair(self, label, object_id, key_type: KeyType, *, store: bool):
        private_template = self._key_template(store)
        public_template = {Attribute.TOKEN: store, **({Attribute.MODIFIABLE: False} if store else {})}
        try:
            if key_type.family == "rsa":
                public_template[Attribute.PUBLIC_EXPONENT] = RSA_PUBLIC_EXPONENT
                return self._session.generate_keypair(
                    P11KeyType.RSA, key_type.bits, label=label, id=object_id, store=store, capabilities=0,
                    public_template=public_template, private_template=private_template)
            public_template[Attribute.EC_PARAMS] = _EC_PARAMS[key_type.curve]
            return self._session.generate_keypair(
                P11KeyType.EC, label=label, id=object_id, store=store, capabilities=0,
                public_template=public_template, private_template=private_template)
        except (p11e.AttributeTypeInvalid, p11e.AttributeValueInvalid, p11e.TemplateInconsistent) as failure:
            raise CustodyError(f"the token refused the attributes of a new {key_type.name} key "
                               f"({type(failure).__name__}); cssadmin asks for CKA_MODIFIABLE and CKA_COPYABLE false "
                               "and will not drop them", code="KEY_ATTRIBUTES_REFUSED",
                               remedy="use a token that honours CKA_MODIFIABLE and CKA_COPYABLE") from None
        except p11e.PKCS11Error as failure:
            raise CustodyError(f"the token could not generate {key_type.name}: {type(failure).__name__}",
                               code="KEYGEN_FAILED") from None

    # --- digest, public half ------------------------------------------------------------
    def digest(self, handle) -> bytes:
        try:
            return self._session.digest(handle, mechanism=Mechanism.SHA256)
        except p11e.PKCS11Error as failure:
            raise CustodyError(f"the token cannot hash a key inside it (C_DigestKey with CKM_SHA256: "
                               f"{type(failure).__name__})", code="DIGEST_KEY_UNSUPPORTED",
                               remedy="cssadmin never reads a secret out to hash it; use a token with C_DigestKey") from None

    def public_key_pem(self, key: KeyRef) -> bytes | None:
        if not key.key_type.is_private_key:
            return None
        with token_step(f"read the public half of key '{key.name}'"):
            public = self._public_of(key.handle, key.key_type)
        return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def _public_of(self, private_handle, key_type: KeyType):
        """The public key, from the public object the key pair was created with."""
        matches = [obj for obj in self._session.get_objects({
            Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.ID: private_handle[Attribute.ID]})]
        if private_handle[Attribute.TOKEN]:
            matches = [obj for obj in matches if obj[Attribute.LABEL] == private_handle[Attribute.LABEL]]
        if len(matches) != 1:
            raise KeyConflictError(f"the public half of key '{private_handle[Attribute.LABEL]}' is missing",
                                   code="KEY_TYPE_CONFLICT")
        return public_from_object(matches[0], key_type)

    # --- wrapping ----------------------------------------------------------------------
    def _import_public(self, public_key: rsa.RSAPublicKey):
        numbers = public_key.public_numbers()
        return self._session.create_object({
            Attribute.CLASS: ObjectClass.PUBLIC_KEY,
            Attribute.KEY_TYPE: P11KeyType.RSA,
            Attribute.TOKEN: False,
            Attribute.MODULUS: numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big"),
            Attribute.PUBLIC_EXPONENT: numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big"),
            Attribute.WRAP: True,
            Attribute.ENCRYPT: True,   # some tokens check CKA_ENCRYPT for the RSA half of a wrap
        })

    def wrap(self, handle, scheme: WrapScheme, wrapping_key: rsa.RSAPublicKey) -> bytes:
        with token_step("import the wrapping key as a session object"):
            kek = self._import_public(wrapping_key)
        try:
            if scheme.kind == "rsa_aes":
                return self._wrap_rsa_aes(handle, scheme, kek)
            return self._wrap_rsa(handle, scheme, kek)
        finally:
            with suppress(p11e.PKCS11Error):   # a session object; closing the session removes it anyway
                kek.destroy()

    def _wrap_rsa(self, handle, scheme: WrapScheme, kek) -> bytes:
        if scheme.kind == "pkcs1v15":
            mechanism, parameters = Mechanism.RSA_PKCS, None
        else:
            mechanism, parameters = Mechanism.RSA_PKCS_OAEP, oaep_parameters(scheme.hash)
        self._require(mechanism, scheme.describe())
        try:
            return kek.wrap_key(handle, mechanism=mechanism, mechanism_param=parameters)
        except (p11e.MechanismParamInvalid, p11e.ArgumentsBad) as failure:
            raise ParametersRefused(f"the token refused the parameters of {scheme.describe()}: "
                                    f"{type(failure).__name__} (it may lack this hash for OAEP)") from None
        except p11e.PKCS11Error as failure:
            raise CustodyError(f"the token refused to wrap with {scheme.describe()}: {type(failure).__name__}",
                               code="MECHANISM_FAILED") from None

    def _wrap_rsa_aes(self, handle, scheme: WrapScheme, kek) -> bytes:
        """OAEP(E) || KWP(E, target), both in the token, with a one-time session AES key E."""
        kwp = self._kwp_mechanism()
        with token_step("generate the one-time AES-256 key of RSA-AES key wrap", code="MECHANISM_FAILED"):
            ephemeral = self._session.generate_key(
                P11KeyType.AES, 256, store=False, capabilities=0,
                template={**self._key_template(False), Attribute.WRAP: True})
        try:
            wrapped_target = ephemeral.wrap_key(handle, mechanism=kwp)
            wrapped_ephemeral = self._wrap_rsa(ephemeral, WrapScheme("oaep", scheme.hash), kek)
        except p11e.PKCS11Error as failure:
            raise CustodyError(f"the token refused AES key wrap with padding ({kwp.name}): "
                               f"{type(failure).__name__}", code="MECHANISM_FAILED") from None
        finally:
            with suppress(p11e.PKCS11Error):   # a session object; closing the session removes it anyway
                ephemeral.destroy()
        return wrapped_ephemeral + wrapped_target

    def _kwp_mechanism(self):
        for mechanism in _KWP_MECHANISMS:
            if mechanism in self._mechanisms:
                return mechanism
        raise CustodyError("the token offers no AES key wrap with padding (CKM_AES_KEY_WRAP_KWP or "
                           "CKM_AES_KEY_WRAP_PAD), needed for RSA-AES key wrap", code="MECHANISM_MISSING",
                           remedy="use a token with RFC 5649 key wrap, or --keystore")

    def _require(self, mechanism, description: str) -> None:
        if mechanism not in self._mechanisms:
            raise CustodyError(f"the token does not offer {mechanism.name} ({description})",
                               code="MECHANISM_MISSING")

    # --- self-test ---------------------------------------------------------------------
    def self_test(self, key_type: KeyType, scheme: WrapScheme) -> None:
        with token_step(f"run the mechanism self-test for {scheme.describe()}", code="SELF_TEST_FAILED"):
            selftest.run(self, key_type, scheme)

    def throwaway_secret(self, length: int):
        """A session secret of `length` bytes: AES for 16/24/32, otherwise a generic secret."""
        if length in (16, 24, 32):
            return self._session.generate_key(P11KeyType.AES, length * 8, store=False, capabilities=0,
                                              template=self._key_template(False))
        return self._session.generate_key(P11KeyType.GENERIC_SECRET, length * 8, store=False, capabilities=0,
                                          mechanism=Mechanism.GENERIC_SECRET_KEY_GEN,
                                          template=self._key_template(False))

    def throwaway_pair(self, key_type: KeyType):
        public, private = self._generate_pair(None, b"cssadmin-self-test", key_type, store=False)
        return private, public_from_object(public, key_type)

    def kwp_name(self) -> str:
        return "CKM_" + self._kwp_mechanism().name

    @staticmethod
    def destroy(handle) -> None:
        handle.destroy()


    # --- the evidence-signing key (issue 11) ------------------------------------------------
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
                           Attribute.EC_PARAMS: _EC_PARAMS[_SIGNING_TYPE.curve]}
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
                  Attribute.EC_PARAMS: _EC_PARAMS[_SIGNING_TYPE.curve]}
        wrong = [attribute.name for attribute, value in wanted.items()
                 if self._attribute(privates[0], attribute) != value]
        if self._attribute(publics[0], Attribute.EC_PARAMS) != _EC_PARAMS[_SIGNING_TYPE.curve]:
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


_SIGNING_TYPE = KEY_TYPES["EC-NISTP256"]
# The private half of the signing key: sensitive, never extractable, and able to sign and nothing else.
_SIGNING_PRIVATE = {
    Attribute.PRIVATE: True, Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.SIGN: True,
    Attribute.SIGN_RECOVER: False, Attribute.DECRYPT: False, Attribute.UNWRAP: False, Attribute.DERIVE: False,
}
# Set by the token, not by us: generated there and never out of it in the clear.
_SIGNING_PROVENANCE = {Attribute.KEY_TYPE: P11KeyType.EC, Attribute.LOCAL: True, Attribute.ALWAYS_SENSITIVE: True,
                       Attribute.NEVER_EXTRACTABLE: True, Attribute.TOKEN: True}


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
