"""Key custody in a software keystore (`--keystore DIR`): for hosts without an HSM, and evaluation.

One file per key, `<name>.cssadmin-key`: a small JSON document whose secret part is the raw AES key
or the DER PKCS#8 of an RSA/EC key, sealed with AES-256-GCM under a key derived from the passphrase
with scrypt. The associated data binds the header (format, name, key type, KDF parameters and salt),
so a field moved or changed is refused. Naming and reuse follow the token custodian: an existing key
is re-exported with the same material; a file that is not ours, or holds another type, is exit 6.
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import secrets
import stat
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone

import cryptography
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .. import softwrap
from ..durable import fsync_directory, write_fully
from ..errors import CustodyError, KeyConflictError, UsageError
from ..keynames import KEY_NAME
from ..keymaterial import EC_CURVES, der_length
from ..keytypes import KEY_TYPES, KeyType
from ..schemes import WrapScheme
from . import KeyRef, SecretSource
from . import selftest

FORMAT = "cssadmin-keystore-v1"
SUFFIX = ".cssadmin-key"

# scrypt cost for new files: 128 * r * n bytes = 64 MiB; one derivation measured 0.30-0.53 s (median
# 0.41 s) on the 2-core build host, where n = 2**17 took 0.62-0.94 s. Files record their own parameters.
SCRYPT_N = 2**16
SCRYPT_R = 8
SCRYPT_P = 1
# What a file may ask of us when opened: a tampered header must not make us allocate gigabytes.
MAX_SCRYPT_MEMORY = 1 << 30
SALT_BYTES = 16
NONCE_BYTES = 12
MAX_FILE_BYTES = 1 << 16


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def _openssl_version() -> str:
    try:
        from cryptography.hazmat.backends.openssl.backend import backend
        return backend.openssl_version_text()
    except (ImportError, AttributeError):
        return "OpenSSL version unknown"


# --- the file format -------------------------------------------------------------------------
@dataclass(frozen=True)
class KdfParameters:
    n: int
    r: int
    p: int
    salt: bytes

    def as_json(self) -> dict:
        return {"name": "scrypt", "n": self.n, "r": self.r, "p": self.p, "salt": _b64(self.salt)}

    def derive(self, passphrase: str) -> bytes:
        secret = unicodedata.normalize("NFC", passphrase).encode("utf-8")
        return Scrypt(salt=self.salt, length=32, n=self.n, r=self.r, p=self.p).derive(secret)


@dataclass(frozen=True)
class SealedKey:
    """A keystore file as read, before the passphrase opens it."""
    name: str
    key_type: str
    created: str
    kdf: KdfParameters
    nonce: bytes
    ciphertext: bytes
    public_key_pem: str | None


def associated_data(name: str, key_type: str, kdf: KdfParameters) -> bytes:
    header = {"format": FORMAT, "name": name, "key_type": key_type, "kdf": kdf.as_json()}
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")


def seal(name: str, key_type: KeyType, plaintext: bytes, passphrase: str, scrypt_n: int,
         public_key_pem: bytes | None, created: str) -> bytes:
    kdf = KdfParameters(scrypt_n, SCRYPT_R, SCRYPT_P, os.urandom(SALT_BYTES))
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = AESGCM(kdf.derive(passphrase)).encrypt(
        nonce, plaintext, associated_data(name, key_type.name, kdf))
    document = {
        "format": FORMAT,
        "name": name,
        "key_type": key_type.name,
        "created": created,
        "kdf": kdf.as_json(),
        "aead": {"name": "AES-256-GCM", "nonce": _b64(nonce)},
        "public_key_pem": public_key_pem.decode("ascii") if public_key_pem else None,
        "ciphertext": _b64(ciphertext),
    }
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")


def unseal(sealed: SealedKey, passphrase: str, path: str) -> bytes:
    key = sealed.kdf.derive(passphrase)
    try:
        return AESGCM(key).decrypt(sealed.nonce, sealed.ciphertext,
                                   associated_data(sealed.name, sealed.key_type, sealed.kdf))
    except InvalidTag:
        # GCM cannot tell a wrong passphrase from an altered header; both leave the file as it is.
        raise CustodyError(f"the passphrase does not open keystore file {path} (wrong passphrase, "
                           "or the file's header was altered)", code="WRONG_PASSPHRASE",
                           remedy="check the passphrase; the file was not changed") from None


def _corrupt(path: str, detail: str) -> KeyConflictError:
    return KeyConflictError(f"keystore file {path} is damaged: {detail}", code="KEY_FILE_CORRUPT",
                            remedy="restore it from a backup, or choose another key name")


def parse_sealed(raw: bytes, path: str) -> SealedKey:
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        document = None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise KeyConflictError(f"{path} is not a cssadmin keystore file ({FORMAT})", code="KEY_NOT_OURS",
                               remedy="choose another key name; cssadmin never exports a key it did not make")
    try:
        return SealedKey(
            name=_field(document, "name", str),
            key_type=_field(document, "key_type", str),
            created=_field(document, "created", str),
            kdf=_parse_kdf(_field(document, "kdf", dict)),
            nonce=_parse_nonce(_field(document, "aead", dict)),
            ciphertext=_unb64(_field(document, "ciphertext", str)),
            public_key_pem=_optional_text(document, "public_key_pem"),
        )
    except (KeyError, TypeError, ValueError, binascii.Error) as failure:
        raise _corrupt(path, str(failure) or type(failure).__name__) from None


def _field(document: dict, key: str, kind: type):
    value = document[key]
    # bool is an int in Python; a header of true/false is not a number we wrote.
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(f"field {key!r} is not a {kind.__name__}")
    return value


def _optional_text(document: dict, key: str) -> str | None:
    return None if document.get(key) is None else _field(document, key, str)


def _parse_kdf(kdf: dict) -> KdfParameters:
    if kdf.get("name") != "scrypt":
        raise ValueError(f"unknown KDF {kdf.get('name')!r}")
    n, r, p = (_field(kdf, key, int) for key in ("n", "r", "p"))
    if n < 2 or n & (n - 1) or not 1 <= r <= 32 or not 1 <= p <= 16 or 128 * r * n > MAX_SCRYPT_MEMORY:
        raise ValueError(f"scrypt parameters n={n} r={r} p={p} are out of range")
    salt = _unb64(_field(kdf, "salt", str))
    if len(salt) < SALT_BYTES:
        raise ValueError("the scrypt salt is too short")
    return KdfParameters(n, r, p, salt)


def _parse_nonce(aead: dict) -> bytes:
    if aead.get("name") != "AES-256-GCM":
        raise ValueError(f"unknown AEAD {aead.get('name')!r}")
    nonce = _unb64(_field(aead, "nonce", str))
    if len(nonce) != NONCE_BYTES:
        raise ValueError("the AES-GCM nonce is not 12 bytes")
    return nonce


# --- files on disk ---------------------------------------------------------------------------
def prepare_directory(directory: str) -> None:
    """Create the keystore directory 0700 if missing; refuse one others can reach."""
    if not os.path.lexists(directory):
        try:
            os.makedirs(directory, mode=0o700)
            if os.name == "posix":
                os.chmod(directory, 0o700)   # exactly 0700, whatever the umask
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
    if os.name == "posix" and mode & 0o077:
        raise CustodyError(f"keystore directory {directory} is open to group or others "
                           f"(mode {stat.S_IMODE(mode):04o})", code="KEYSTORE_TOO_OPEN",
                           remedy=f"chmod 700 {directory}")


def read_key_file(path: str) -> bytes:
    """The file's bytes, never through a symbolic link, never more than MAX_FILE_BYTES."""
    info = os.lstat(path)
    if not stat.S_ISREG(info.st_mode):
        raise KeyConflictError(f"{path} is not a regular file (a link, directory or device)",
                               code="KEY_NOT_OURS", remedy="choose another key name")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        descriptor = os.open(path, flags)
    except OSError as failure:
        raise CustodyError(f"cannot read keystore file {path}: {failure.strerror}",
                           code="KEYSTORE_UNUSABLE") from None
    with os.fdopen(descriptor, "rb") as handle:
        raw = handle.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise KeyConflictError(f"{path} is too large to be a cssadmin keystore file", code="KEY_NOT_OURS",
                               remedy="choose another key name")
    return raw


def write_new_file(directory: str, path: str, data: bytes) -> None:
    """Temp file beside it (exclusive, 0600), fsync, put in place without replacing, fsync the directory."""
    temp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        descriptor = os.open(temp, flags, 0o600)
        try:
            if os.name == "posix":
                os.fchmod(descriptor, 0o600)
            write_fully(descriptor, data)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        _place_without_replacing(temp, path)
        fsync_directory(directory)
    except OSError as failure:
        raise CustodyError(f"cannot write keystore file {path}: {failure.strerror}",
                           code="KEYSTORE_UNUSABLE") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp)



def _place_without_replacing(temp: str, path: str) -> None:
    """A hard link never replaces, so a key another run created meanwhile survives; os.replace only
    where the file system has no hard links."""
    try:
        os.link(temp, path)
        return
    except FileExistsError:
        raise _appeared(path) from None
    except (OSError, NotImplementedError):
        pass
    if os.path.lexists(path):
        raise _appeared(path)
    os.replace(temp, path)


def _appeared(path: str) -> KeyConflictError:
    return KeyConflictError(f"{path} appeared while this run was creating it", code="KEY_CREATED_CONCURRENTLY",
                            remedy="run again to re-export the key the other run created")



# --- key material ----------------------------------------------------------------------------
class Material:
    """The decrypted key for this run: raw AES bytes, or PKCS#8 DER and the loaded private key."""

    def __init__(self, key_type: KeyType, plaintext: bytes, private_key=None):
        self.key_type = key_type
        self.plaintext: bytes | None = plaintext
        self.private_key = private_key

    def drop(self) -> None:
        self.plaintext = None
        self.private_key = None


def generate(key_type: KeyType):
    """A new key of that type: raw bytes for a secret key, a private key object otherwise."""
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


def is_of_type(private_key, key_type: KeyType) -> bool:
    if key_type.family == "rsa":
        return isinstance(private_key, rsa.RSAPrivateKey) and private_key.key_size == key_type.bits
    return isinstance(private_key, ec.EllipticCurvePrivateKey) and private_key.curve.name == key_type.curve


def material_from_plaintext(key_type: KeyType, plaintext: bytes, sealed: SealedKey, path: str) -> Material:
    if not key_type.is_private_key:
        if len(plaintext) != key_type.secret_bytes:
            raise _corrupt(path, f"it holds {len(plaintext)} bytes, not a {key_type.name} key")
        return Material(key_type, plaintext)
    try:
        if der_length(plaintext) != len(plaintext):
            raise ValueError("trailing bytes")
        # GCM has authenticated what this tool sealed; OpenSSL's RSA check would add about a second
        # per RSA-4096 key and prove nothing more.
        private_key = serialization.load_der_private_key(plaintext, password=None,
                                                         unsafe_skip_rsa_key_validation=True)
    except (ValueError, TypeError):
        raise _corrupt(path, "the sealed key is not exactly one PKCS#8 PrivateKeyInfo") from None
    if not is_of_type(private_key, key_type):
        raise _corrupt(path, f"the sealed key is not {key_type.name}")
    if sealed.public_key_pem is not None and sealed.public_key_pem.encode("ascii") != spki_pem(private_key.public_key()):
        raise _corrupt(path, "its public_key_pem is not the public half of the sealed key")
    return Material(key_type, plaintext, private_key)


# --- the custodian ---------------------------------------------------------------------------
class SoftwareKeystore:
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
    def get_or_create(self, name: str, key_type: KeyType) -> KeyRef:
        path = self.path_of(name)
        if os.path.lexists(path):
            material = self._open_existing(path, name, key_type)
            created = False
        else:
            material = self._create(path, name, key_type)
            created = True
        self._materials.append(material)
        return KeyRef(name, key_type, created, material)

    def _open_existing(self, path: str, name: str, key_type: KeyType) -> Material:
        sealed = parse_sealed(read_key_file(path), path)
        if sealed.name != name:
            raise _corrupt(path, f"it records the key name {sealed.name!r}")
        if sealed.key_type not in KEY_TYPES:
            raise _corrupt(path, f"unknown key type {sealed.key_type!r}")
        if sealed.key_type != key_type.name:
            raise KeyConflictError(f"key '{name}' exists as {sealed.key_type}, not {key_type.name}",
                                   code="KEY_TYPE_CONFLICT",
                                   remedy="choose another key name or the key type it was created with")
        plaintext = unseal(sealed, self._passphrase_once(), path)
        return material_from_plaintext(key_type, plaintext, sealed, path)

    def _create(self, path: str, name: str, key_type: KeyType) -> Material:
        passphrase = self._passphrase_once(new=True)   # before a slow RSA generation, so a refusal costs nothing
        key = generate(key_type)
        if not key_type.is_private_key:
            plaintext, private_key, public_pem = key, None, None
        else:
            plaintext, private_key, public_pem = pkcs8_der(key), key, spki_pem(key.public_key())
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        document = seal(name, key_type, plaintext, passphrase, self._scrypt_n, public_pem, created)
        write_new_file(self.directory, path, document)
        return Material(key_type, plaintext, private_key)

    @staticmethod
    def _material(key: KeyRef) -> Material:
        material = key.handle
        if not isinstance(material, Material) or material.plaintext is None:
            raise CustodyError(f"key '{key.name}' is no longer open (the keystore was closed)",
                               code="KEYSTORE_CLOSED")
        return material

    # --- digest, public half -------------------------------------------------------------
    def secret_sha256(self, key: KeyRef) -> bytes:
        material = self._material(key)
        if key.key_type.is_private_key:
            raise CustodyError(f"key '{key.name}' is {key.key_type.name}, not a secret key",
                               code="NOT_A_SECRET_KEY")
        return hashlib.sha256(material.plaintext).digest()

    def public_key_pem(self, key: KeyRef) -> bytes | None:
        material = self._material(key)
        if material.private_key is None:
            return None
        return spki_pem(material.private_key.public_key())

    # --- wrapping ------------------------------------------------------------------------
    def wrap(self, key: KeyRef, scheme: WrapScheme, wrapping_key: rsa.RSAPublicKey) -> bytes:
        return wrap_bytes(self._material(key).plaintext, key.key_type.name, scheme, wrapping_key)

    # --- self-test -----------------------------------------------------------------------
    # --- the self-test: the same probes as a token's (custody/selftest.py) ---------------------
    def self_test(self, key_type: KeyType, scheme: WrapScheme) -> None:
        """The wrap is done by the library that would check it, so this mainly proves the round trip
        and the lengths; it costs little and keeps one definition of what a good blob is."""
        selftest.run(self, key_type, scheme)

    @staticmethod
    def throwaway_secret(length: int) -> bytes:
        return os.urandom(length)

    @staticmethod
    def throwaway_pair(key_type: KeyType):
        # RSA-2048 whatever the target's size: PKCS#8 all the same, at a tenth of RSA-4096's cost.
        private = (rsa.generate_private_key(public_exponent=65537, key_size=2048) if key_type.family == "rsa"
                   else generate(key_type))
        return private, private.public_key()

    @staticmethod
    def wrap_object(handle, scheme: WrapScheme, wrapping_key: rsa.RSAPublicKey) -> bytes:
        target = handle if isinstance(handle, bytes) else pkcs8_der(handle)
        return wrap_bytes(target, "throwaway", scheme, wrapping_key)

    @staticmethod
    def digest_object(handle: bytes) -> bytes:
        return hashlib.sha256(handle).digest()

    @staticmethod
    def destroy(handle) -> None:
        """Nothing to destroy: throwaway keys live only in this process's memory."""

    @staticmethod
    def kwp_name() -> str:
        return "RFC 5649 key wrap with padding (cryptography)"


def _too_long(what: str, scheme: WrapScheme, length: int, modulus_bits: int) -> CustodyError:
    return CustodyError(f"the {what} target is {length} bytes, but {scheme.describe()} under an "
                        f"RSA-{modulus_bits} wrapping key carries at most {scheme.max_plaintext(modulus_bits)} bytes",
                        code="TARGET_TOO_LONG", remedy="use an RSA-AES key wrap algorithm, or a larger wrapping key")


def wrap_bytes(target: bytes, what: str, scheme: WrapScheme, wrapping_key: rsa.RSAPublicKey) -> bytes:
    limit = scheme.max_plaintext(wrapping_key.key_size)
    if limit is not None and len(target) > limit:
        raise _too_long(what, scheme, len(target), wrapping_key.key_size)
    try:
        return softwrap.wrap(wrapping_key, scheme, target)
    except ValueError as failure:
        raise CustodyError(f"wrapping the {what} key with {scheme.describe()} failed: {failure}",
                           code="WRAP_FAILED") from None
