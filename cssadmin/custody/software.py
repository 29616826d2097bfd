"""Key custody in a software keystore (`--keystore DIR`): for hosts without an HSM, and evaluation.

One file per key in the format of keystore_format.py, written by the durable writer so that a
concurrent run never replaces a key. Naming and reuse follow the token custodian: an existing key is
re-exported with the same material; a file that is not ours, or holds another type, is exit 6.
"""
from __future__ import annotations

import hashlib
import os
import stat
from datetime import datetime, timezone
from pathlib import Path

import cryptography
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .. import durable, softwrap
from ..durable import ON_WINDOWS
from ..errors import CustodyError, KeyConflictError, UsageError
from ..keymaterial import der_length, generate, is_of_type, pkcs8_der, spki_pem
from ..keynames import KEY_NAME
from ..keytypes import KEY_TYPES, KeyType
from ..schemes import WrapScheme
from . import CustodyBase, KeyRef, SecretSource, SigningKeyRef, WrapPath
from . import selftest
from .keystore_format import (MAX_FILE_BYTES, SCRYPT_N, SIGNING_KEY_TYPE, SUFFIX, SealedKey, corrupt, parse_sealed,
                              seal, unseal)
from .provenance import check_provider

SOFTWARE_PATH = "software (cryptography)"   # the mechanism an export from the keystore reports

_SIGNING_CURVE_TYPE = KEY_TYPES["EC-NISTP256"]


MIN_NEW_PASSPHRASE_CHARACTERS = 12


def _openssl_version() -> str:
    try:
        from cryptography.hazmat.backends.openssl.backend import backend
        return backend.openssl_version_text()
    except (ImportError, AttributeError):
        return "OpenSSL version unknown"



# --- files on disk ---------------------------------------------------------------------------
def prepare_directory(directory: str) -> None:
    """Create the keystore directory 0700 if missing; refuse one others can reach."""
    try:
        os.makedirs(directory, mode=0o700)
        if not ON_WINDOWS:
            os.chmod(directory, 0o700)   # exactly 0700, whatever the umask
    except FileExistsError:
        pass    # there already, or made by a concurrent run just now: judged below like any existing one
    except OSError as failure:
        raise CustodyError(f"cannot create keystore directory {directory}: {failure.strerror}",
                           code="KEYSTORE_UNUSABLE") from None
    try:
        mode = os.stat(directory).st_mode
    except OSError as failure:
        raise CustodyError(f"keystore {directory} cannot be read: {failure.strerror}",
                           code="KEYSTORE_UNUSABLE") from None
    if not stat.S_ISDIR(mode):
        raise CustodyError(f"keystore {directory} exists but is not a directory", code="KEYSTORE_NOT_DIRECTORY",
                           remedy="give --keystore a directory, or a path that does not exist yet")
    if not ON_WINDOWS and mode & 0o077:
        raise CustodyError(f"keystore directory {directory} is open to group or others "
                           f"(mode {stat.S_IMODE(mode):04o})", code="KEYSTORE_TOO_OPEN",
                           remedy=f"chmod 700 {directory}")


def read_key_file(path: str) -> bytes:
    """The file's bytes, never through a symbolic link, never more than MAX_FILE_BYTES."""
    info = os.lstat(path)
    if not stat.S_ISREG(info.st_mode):
        raise KeyConflictError(f"{path} is not a regular file (a link, directory or device)",
                               code="KEY_NOT_OURS", remedy="choose another key name")
    try:
        descriptor = durable.open_private(path, os.O_RDONLY)
    except OSError as failure:
        raise CustodyError(f"cannot read keystore file {path}: {failure.strerror}",
                           code="KEYSTORE_UNUSABLE") from None
    with os.fdopen(descriptor, "rb") as handle:
        raw = handle.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise KeyConflictError(f"{path} is too large to be a cssadmin keystore file", code="KEY_NOT_OURS",
                               remedy="choose another key name")
    return raw


def write_new_file(path: str, data: bytes) -> None:
    """Durably create `path`, never replacing: a key another run created meanwhile survives."""
    final = Path(path)
    try:
        temp = durable.stage(final, data)
        try:
            durable.place(temp, final, replace=False)
        finally:
            durable.remove_quietly([temp])
        durable.fsync_directory(final.parent)
    except durable.AlreadyExists:
        raise KeyConflictError(f"{path} appeared while this run was creating it", code="KEY_CREATED_CONCURRENTLY",
                               remedy="run again to re-export the key the other run created") from None
    except OSError as failure:
        raise CustodyError(f"cannot write keystore file {path}: {failure.strerror}",
                           code="KEYSTORE_UNUSABLE") from None


# --- key material ----------------------------------------------------------------------------
class Material:
    """A key in this process's memory: raw secret bytes, or PKCS#8 DER and the loaded private key.
    The keystore's handle for the real key and for the self-test's throwaway keys alike."""

    def __init__(self, plaintext: bytes, private_key=None):
        self.plaintext: bytes | None = plaintext
        self.private_key = private_key

    @classmethod
    def of(cls, key) -> Material:
        """From what keymaterial.generate returns."""
        return cls(key) if isinstance(key, bytes) else cls(pkcs8_der(key), key)

    def drop(self) -> None:
        self.plaintext = None
        self.private_key = None


def material_from_plaintext(key_type: KeyType, plaintext: bytes, sealed: SealedKey, path: str) -> Material:
    if not key_type.is_private_key:
        if len(plaintext) != key_type.secret_bytes:
            raise corrupt(path, f"it holds {len(plaintext)} bytes, not a {key_type.name} key")
        return Material(plaintext)
    try:
        if der_length(plaintext) != len(plaintext):
            raise ValueError("trailing bytes")
        # GCM has authenticated what this tool sealed; OpenSSL's RSA check would add about a second
        # per RSA-4096 key and prove nothing more.
        private_key = serialization.load_der_private_key(plaintext, password=None,
                                                         unsafe_skip_rsa_key_validation=True)
    except (ValueError, TypeError):
        raise corrupt(path, "the sealed key is not exactly one PKCS#8 PrivateKeyInfo") from None
    if not is_of_type(private_key, key_type):
        raise corrupt(path, f"the sealed key is not {key_type.name}")
    if sealed.public_key_pem is not None and sealed.public_key_pem.encode("ascii") != spki_pem(private_key.public_key()):
        raise corrupt(path, "its public_key_pem is not the public half of the sealed key")
    return Material(plaintext, private_key)


# --- the custodian ---------------------------------------------------------------------------
class SoftwareKeystore(CustodyBase):
    protection = "software"

    def __init__(self, directory: str, passphrase_source: SecretSource, *, scrypt_n: int | None = None):
        prepare_directory(directory)
        self.directory = directory
        self.description = (f"software keystore {directory} "
                            f"(cryptography {cryptography.__version__}, {_openssl_version()})")
        self._passphrase_source = passphrase_source
        self._passphrase: str | None = None
        self._scrypt_n = scrypt_n or SCRYPT_N
        self._materials: list[Material] = []

    def _passphrase_once(self, *, new: bool = False) -> str:
        """Asked once per run; for a new key file a terminal prompt asks twice, since a mistyped
        passphrase would lock away a key that may already be in a cloud."""
        if self._passphrase is None:
            self._passphrase = self._passphrase_source(confirm=new)
        return self._passphrase

    def path_of(self, name: str) -> str:
        if not isinstance(name, str) or not KEY_NAME.fullmatch(name):
            raise UsageError(f"key name {name!r} is not allowed", code="BAD_KEY_NAME")
        return os.path.join(self.directory, name + SUFFIX)

    def close(self) -> None:
        for material in self._materials:
            material.drop()
        self._materials.clear()
        self._passphrase = None

    def discard(self, key: KeyRef) -> None:
        """Remove a key this run created and never exported."""
        if key.created:
            os.unlink(self.path_of(key.name))

    # --- finding and creating keys -------------------------------------------------------
    def lock_path(self, name: str) -> str:
        return os.path.join(self.directory, f".{os.path.basename(self.path_of(name))}.lock")

    def get_or_create(self, name: str, key_type: KeyType, provider: str, reuse_key: bool = False) -> KeyRef:
        path = self.path_of(name)
        if os.path.lexists(path):
            material = self._open_existing(path, name, key_type, provider, reuse_key)
            created = False
        else:
            material = self._create(path, name, key_type, provider)
            created = True
        return KeyRef(name, key_type, created, self._keep(material))

    def _keep(self, material: Material) -> Material:
        self._materials.append(material)   # dropped at close()
        return material

    def _open_existing(self, path: str, name: str, key_type: KeyType, provider: str, reuse_key: bool) -> Material:
        sealed = parse_sealed(read_key_file(path), path)
        if sealed.name != name:
            raise corrupt(path, f"it records the key name {sealed.name!r}")
        if sealed.key_type == SIGNING_KEY_TYPE:
            raise KeyConflictError(f"'{name}' in keystore {self.directory} is cssadmin's evidence-signing key; "
                                   "it is never a target key and is never exported", code="KEY_IS_SIGNING_KEY",
                                   remedy="choose another key name")
        if sealed.key_type not in KEY_TYPES:
            raise corrupt(path, f"unknown key type {sealed.key_type!r}")
        if sealed.key_type != key_type.name:
            raise KeyConflictError(f"key '{name}' exists as {sealed.key_type}, not {key_type.name}",
                                   code="KEY_TYPE_CONFLICT",
                                   remedy="choose another key name or the key type it was created with")
        check_provider(name, sealed.provider, provider, reuse_key)
        plaintext = unseal(sealed, self._passphrase_once(), path)
        return material_from_plaintext(key_type, plaintext, sealed, path)

    def _new_key_passphrase(self, name: str) -> str:
        """The passphrase for a new key file: long enough, and the one this directory's keys already use
        (a typo would otherwise make a key the usual passphrase cannot open). Asked before a slow RSA
        generation, so a refusal costs nothing."""
        passphrase = self._passphrase_once(new=True)
        if len(passphrase) < MIN_NEW_PASSPHRASE_CHARACTERS:
            raise CustodyError(f"a new keystore key needs a passphrase of at least {MIN_NEW_PASSPHRASE_CHARACTERS} "
                               "characters", code="PASSPHRASE_TOO_SHORT",
                               remedy="choose a longer passphrase (a few unrelated words are easy to type)")
        for other in sorted(Path(self.directory).glob("*" + SUFFIX)):
            if other.name == os.path.basename(self.path_of(name)):
                continue
            try:
                unseal(parse_sealed(read_key_file(str(other)), str(other)), passphrase, str(other))
            except KeyConflictError:
                continue   # not a keystore file of ours: it says nothing about the passphrase
            except CustodyError as failure:
                if failure.code != "WRONG_PASSPHRASE":
                    raise
                raise CustodyError(f"the passphrase does not open {other.name}, which is already in keystore "
                                   f"{self.directory}; a new key must use the passphrase its directory's keys use",
                                   code="PASSPHRASE_MISMATCH",
                                   remedy="type the keystore's passphrase again, or use another --keystore "
                                   "directory for another passphrase") from None
            break   # one key opened: the passphrase is the directory's
        return passphrase

    def _create(self, path: str, name: str, key_type: KeyType, provider: str) -> Material:
        passphrase = self._new_key_passphrase(name)
        material = Material.of(generate(key_type))
        public_pem = spki_pem(material.private_key.public_key()) if material.private_key else None
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        write_new_file(path, seal(name, key_type, material.plaintext, passphrase, self._scrypt_n, public_pem, created,
                                  provider))
        return material

    # --- the operations the export and the self-test share (custody.Custody, custody.SelfTestable) ---
    @staticmethod
    def _plaintext(handle: Material) -> bytes:
        if not isinstance(handle, Material) or handle.plaintext is None:
            raise CustodyError("the key is no longer open (the keystore was closed)", code="KEYSTORE_CLOSED")
        return handle.plaintext

    def digest(self, handle: Material) -> bytes:
        return hashlib.sha256(self._plaintext(handle)).digest()

    def wrap_paths(self, scheme: WrapScheme) -> tuple[str, ...]:
        return (SOFTWARE_PATH,)

    def wrap(self, handle: Material, scheme: WrapScheme, wrapping_key: rsa.RSAPublicKey,
             path: str | None = None) -> bytes:
        return wrap_bytes(self._plaintext(handle), scheme, wrapping_key)

    def public_key_pem(self, key: KeyRef) -> bytes | None:
        self._plaintext(key.handle)
        if key.handle.private_key is None:
            return None
        return spki_pem(key.handle.private_key.public_key())

    def self_test(self, key_type: KeyType, scheme: WrapScheme) -> WrapPath:
        """The wrap is done by the library that would check it, so this mainly proves the round trip
        and the lengths; it costs little and keeps one definition of what a good blob is."""
        return selftest.choose(self, key_type, scheme)

    def throwaway_secret(self, length: int) -> Material:
        return self._keep(Material(os.urandom(length)))

    def throwaway_pair(self, key_type: KeyType):
        # RSA-2048 whatever the target's size: PKCS#8 all the same, at a tenth of RSA-4096's cost.
        private = (rsa.generate_private_key(public_exponent=65537, key_size=2048) if key_type.family == "rsa"
                   else generate(key_type))
        return self._keep(Material.of(private)), private.public_key()

    @staticmethod
    def destroy(handle: Material) -> None:
        handle.drop()

    @staticmethod
    def kwp_name() -> str:
        return "RFC 5649 key wrap with padding (cryptography)"


    # --- the evidence-signing key (issue 11) ------------------------------------------------
    def get_or_create_signing_key(self, label: str) -> SigningKeyRef:
        path = self.path_of(label)
        if os.path.lexists(path):
            material, created = self._open_signing_key(path, label), False
        else:
            passphrase = self._new_key_passphrase(label)
            material, created = Material.of(generate(_SIGNING_CURVE_TYPE)), True
            stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
            write_new_file(path, seal(label, SIGNING_KEY_TYPE, material.plaintext, passphrase, self._scrypt_n,
                                      spki_pem(material.private_key.public_key()), stamp))
        self._keep(material)
        return SigningKeyRef(label, created, material, material.private_key.public_key())

    def _open_signing_key(self, path: str, label: str) -> Material:
        sealed = parse_sealed(read_key_file(path), path)
        if sealed.name != label:
            raise corrupt(path, f"it records the key name {sealed.name!r}")
        if sealed.key_type != SIGNING_KEY_TYPE:
            raise KeyConflictError(f"'{label}' in keystore {self.directory} is a {sealed.key_type} target key, not "
                                   "cssadmin's signing key", code="SIGNING_KEY_CONFLICT",
                                   remedy="choose another --signing-key label")
        plaintext = unseal(sealed, self._passphrase_once(), path)
        return material_from_plaintext(_SIGNING_CURVE_TYPE, plaintext, sealed, path)

    def sign(self, key: SigningKeyRef, data: bytes) -> bytes:
        self._plaintext(key.handle)
        return key.handle.private_key.sign(data, ec.ECDSA(hashes.SHA256()))

    def discard_signing_key(self, key: SigningKeyRef) -> None:
        if key.created:
            os.unlink(self.path_of(key.label))


def wrap_bytes(target: bytes, scheme: WrapScheme, wrapping_key: rsa.RSAPublicKey) -> bytes:
    limit = scheme.max_plaintext(wrapping_key.key_size)
    if limit is not None and len(target) > limit:
        raise CustodyError(f"the target is {len(target)} bytes, but {scheme.describe()} under an "
                           f"RSA-{wrapping_key.key_size} wrapping key carries at most {limit} bytes",
                           code="TARGET_TOO_LONG", remedy="use an RSA-AES key wrap algorithm, or a larger wrapping key")
    try:
        return softwrap.wrap(wrapping_key, scheme, target)
    except ValueError as failure:
        raise CustodyError(f"wrapping the key with {scheme.describe()} failed: {failure}",
                           code="WRAP_FAILED") from None
