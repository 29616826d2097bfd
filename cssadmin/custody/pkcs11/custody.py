"""The custodian on a PKCS#11 token: target keys, C_DigestKey, C_WrapKey, the mechanism self-test.

The target key is generated in the token, marked as ours, and only ever leaves it wrapped by
C_WrapKey. Nothing here reads CKA_VALUE or a private component; the secret's hash comes from
C_DigestKey.
"""
from __future__ import annotations

import os
from contextlib import contextmanager, suppress

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pkcs11 import Attribute, KeyType as P11KeyType, Mechanism, ObjectClass, TokenFlag
from pkcs11 import exceptions as p11e

from ...durable import host_lock_path
from ...errors import CustodyError, KeyConflictError, ParametersRefused
from ...keytypes import KeyType
from ...schemes import WrapScheme
from .. import CustodyBase, KeyRef, SecretSource, WrapPath
from .. import provenance, selftest
from ..provenance import TokenObject
from .mechanisms import (KWP_MECHANISMS, NATIVE_RSA_AES, RSA_AES_KEY_BITS, RSA_AES_KEY_WRAP, RSA_OAEP, RSA_PKCS1,
                         RsaAesParameters, oaep_parameters, two_step_name)
from .module import TokenSelector, load_module, select_token, token_step
from .objects import EC_PARAMS, RSA_PUBLIC_EXPONENT, public_from_object
from .signing import SigningKeyMixin

# Test seam, read only here and documented in tests/tokens/FACTS.md; no user option. "two-step": do not
# offer native CKM_RSA_AES_KEY_WRAP, so the two-step path is tested on a token that has both;
# "broken-native": the native path asks for a 128-bit one-time key, so its self-test fails and the
# fallback (two-step, with a warning) is tested. Anything else, or unset: normal behaviour.
_SEAM = os.environ.get("CSSADMIN_TEST_RSA_AES_PATH", "")

class Pkcs11Custody(SigningKeyMixin, CustodyBase):
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

    def token_facts(self) -> dict:
        """What the token says it is: {"label", "manufacturer", "model", "firmware"}."""
        return {"label": self._token.label.strip(), "manufacturer": self._token.manufacturer_id.strip(),
                "model": self._token.model.strip(), "firmware": ".".join(map(str, self._token.firmware_version))}

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
        with _generating(key_type):
            return self._session.generate_key(
                kind, key_type.bits, label=label, id=object_id, store=store, mechanism=mechanism,
                capabilities=0, template=self._key_template(store))

    def _generate_pair(self, label, object_id, key_type: KeyType, *, store: bool):
        private_template = self._key_template(store)
        public_template = {Attribute.TOKEN: store, **({Attribute.MODIFIABLE: False} if store else {})}
        with _generating(key_type):
            if key_type.family == "rsa":
                public_template[Attribute.PUBLIC_EXPONENT] = RSA_PUBLIC_EXPONENT
                return self._session.generate_keypair(
                    P11KeyType.RSA, key_type.bits, label=label, id=object_id, store=store, capabilities=0,
                    public_template=public_template, private_template=private_template)
            public_template[Attribute.EC_PARAMS] = EC_PARAMS[key_type.curve]
            return self._session.generate_keypair(
                P11KeyType.EC, label=label, id=object_id, store=store, capabilities=0,
                public_template=public_template, private_template=private_template)

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

    def wrap_paths(self, scheme: WrapScheme) -> tuple[str, ...]:
        """The ways this token can wrap under `scheme`, best first: for RSA-AES the native mechanism
        when listed, then the two-step path. The self-test picks the first that passes."""
        if scheme.kind == "pkcs1v15":
            return (RSA_PKCS1,)
        if scheme.kind == "oaep":
            return (RSA_OAEP,)
        kwp = next((m for m in KWP_MECHANISMS if m in self._mechanisms), KWP_MECHANISMS[0])
        native = (NATIVE_RSA_AES,) if RSA_AES_KEY_WRAP in self._mechanisms and _SEAM != "two-step" else ()
        return (*native, two_step_name(kwp))

    def wrap(self, handle, scheme: WrapScheme, wrapping_key: rsa.RSAPublicKey, path: str | None = None) -> bytes:
        """Wrap under `scheme` along `path` (one of wrap_paths(scheme); the first when None)."""
        path = path or self.wrap_paths(scheme)[0]
        if path not in self.wrap_paths(scheme):
            raise CustodyError(f"{path} is not a way this token wraps with {scheme.describe()}",
                               code="MECHANISM_MISSING")
        with token_step("import the wrapping key as a session object"):
            kek = self._import_public(wrapping_key)
        try:
            if path == NATIVE_RSA_AES:
                return self._wrap_native_rsa_aes(handle, scheme, kek)
            if scheme.kind == "rsa_aes":
                return self._wrap_rsa_aes(handle, scheme, kek)
            return self._wrap_rsa(handle, scheme, kek)
        finally:
            with suppress(p11e.PKCS11Error):   # a session object; closing the session removes it anyway
                kek.destroy()

    def _wrap_native_rsa_aes(self, handle, scheme: WrapScheme, kek) -> bytes:
        """C_WrapKey with CKM_RSA_AES_KEY_WRAP: the token makes, uses and forgets the one-time key."""
        # The seam "broken-native" asks for a 128-bit one-time key, which the self-test must refuse.
        parameters = RsaAesParameters(scheme.hash, 128 if _SEAM == "broken-native" else RSA_AES_KEY_BITS)
        try:
            return kek.wrap_key(handle, mechanism=RSA_AES_KEY_WRAP, mechanism_param=parameters.raw)
        except p11e.PKCS11Error as failure:
            raise CustodyError(f"the token refused to wrap with {NATIVE_RSA_AES} ({scheme.describe()}): "
                               f"{type(failure).__name__}", code="MECHANISM_FAILED") from None
        finally:
            del parameters   # referenced until here: its pOAEPParams points into it

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
                P11KeyType.AES, RSA_AES_KEY_BITS, store=False, capabilities=0,
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
        for mechanism in KWP_MECHANISMS:
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
    def self_test(self, key_type: KeyType, scheme: WrapScheme) -> WrapPath:
        with token_step(f"run the mechanism self-test for {scheme.describe()}", code="SELF_TEST_FAILED"):
            return selftest.choose(self, key_type, scheme)

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


@contextmanager
def _generating(key_type: KeyType):
    """A token's refusal to generate, as a custody error; a refused attribute is never dropped to retry."""
    try:
        yield
    except (p11e.AttributeTypeInvalid, p11e.AttributeValueInvalid, p11e.TemplateInconsistent) as failure:
        raise CustodyError(f"the token refused the attributes of a new {key_type.name} key "
                           f"({type(failure).__name__}); cssadmin asks for CKA_MODIFIABLE and CKA_COPYABLE false "
                           "and will not drop them", code="KEY_ATTRIBUTES_REFUSED",
                           remedy="use a token that honours CKA_MODIFIABLE and CKA_COPYABLE") from None
    except p11e.PKCS11Error as failure:
        raise CustodyError(f"the token could not generate {key_type.name}: {type(failure).__name__}",
                           code="KEYGEN_FAILED") from None
