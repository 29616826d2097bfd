"""The software keystore: sealed at rest, re-used by name, and its wraps checked by OpenSSL's CLI."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from cssadmin.custody import keystore_format
from cssadmin.custody.software import SoftwareKeystore
from cssadmin.errors import CustodyError, KeyConflictError, UsageError
from cssadmin.keytypes import KEY_TYPES
from cssadmin.schemes import OAEP_SHA1, OAEP_SHA256, RSA_AES_SHA1, RSA_AES_SHA256

# scrypt at n=16 costs nothing; one test below holds the production parameters to account.
FAST_N = 2**4
PASSPHRASE = "correct horse battery staple"
PROVIDER = "aws"   # the provider keys are created for here; tests/test_provenance.py covers the others
AES = KEY_TYPES["AES-256"]
P256 = KEY_TYPES["EC-NISTP256"]
P521 = KEY_TYPES["EC-NISTP521"]
RSA2048 = KEY_TYPES["RSA-2048"]
posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX modes: Windows has ACLs, not mode bits")
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


class Passphrase:
    """A passphrase source that counts how often it was asked, and for what."""

    def __init__(self, value: str = PASSPHRASE):
        self.value = value
        self.asked = 0
        self.confirmations = 0

    def __call__(self, *, confirm: bool = False) -> str:
        self.asked += 1
        self.confirmations += confirm
        return self.value


def open_keystore(directory, passphrase: str = PASSPHRASE) -> tuple[SoftwareKeystore, Passphrase]:
    source = Passphrase(passphrase)
    return SoftwareKeystore(str(directory), source, scrypt_n=FAST_N), source


def key_file(directory, name: str) -> Path:
    return Path(directory) / f"{name}.cssadmin-key"


def edit_header(path: Path, **changes) -> None:
    document = json.loads(path.read_text())
    document.update(changes)
    path.write_text(json.dumps(document))


def plaintext_of(key) -> bytes:
    return key.handle.plaintext


# --- creation, reuse, passphrase --------------------------------------------------------
def test_production_kdf_is_memory_hard(tmp_path):
    assert keystore_format.SCRYPT_R == 8 and keystore_format.SCRYPT_P == 1
    assert 128 * keystore_format.SCRYPT_R * keystore_format.SCRYPT_N >= 64 * 2**20, "at least 64 MiB per derivation"
    keystore = SoftwareKeystore(str(tmp_path / "ks"), Passphrase())
    keystore.get_or_create("prod", AES, PROVIDER)
    kdf = json.loads(key_file(tmp_path / "ks", "prod").read_text())["kdf"]
    assert (kdf["name"], kdf["n"], kdf["r"], kdf["p"]) == ("scrypt", keystore_format.SCRYPT_N, 8, 1)
    assert len(base64.b64decode(kdf["salt"])) == 16


@pytest.mark.parametrize("key_type", [AES, P256], ids=lambda kt: kt.name)
def test_second_run_reuses_the_same_material(tmp_path, key_type):
    first, _ = open_keystore(tmp_path)
    created = first.get_or_create("k1", key_type, PROVIDER)
    before = (first.public_key_pem(created) if key_type.is_private_key else first.digest(created.handle))
    first.close()

    second, _ = open_keystore(tmp_path)
    reused = second.get_or_create("k1", key_type, PROVIDER)
    after = (second.public_key_pem(reused) if key_type.is_private_key else second.digest(reused.handle))
    assert (created.created, reused.created) == (True, False)
    assert after == before


def test_passphrase_asked_once_per_run_and_only_when_needed(tmp_path):
    keystore, source = open_keystore(tmp_path)
    assert source.asked == 0, "opening the keystore alone does not ask"
    keystore.get_or_create("a", AES, PROVIDER)
    keystore.get_or_create("b", P256, PROVIDER)
    keystore.get_or_create("a", AES, PROVIDER)
    assert source.asked == 1
    assert source.confirmations == 1, "a new key file asks for confirmation at a terminal"
    reopened, again = open_keystore(tmp_path)
    reopened.get_or_create("a", AES, PROVIDER)
    assert (again.asked, again.confirmations) == (1, 0), "opening an existing key does not"


def test_wrong_passphrase_refused_and_file_untouched(tmp_path):
    keystore, _ = open_keystore(tmp_path)
    keystore.get_or_create("k1", AES, PROVIDER)
    path = key_file(tmp_path, "k1")
    before = (path.read_bytes(), path.stat().st_mtime_ns)

    other, _ = open_keystore(tmp_path, "not the passphrase")
    with pytest.raises(CustodyError) as caught:
        other.get_or_create("k1", AES, PROVIDER)
    assert (caught.value.code, caught.value.exit_code) == ("WRONG_PASSPHRASE", 5)
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


def test_description_names_the_libraries(tmp_path):
    keystore, _ = open_keystore(tmp_path)
    assert keystore.protection == "software"
    assert re.fullmatch(r"software keystore .+ \(cryptography [\d.]+, OpenSSL .+\)", keystore.description)


# --- files and directory ----------------------------------------------------------------
@posix_only
def test_new_directory_is_0700_and_key_file_0600(tmp_path):
    directory = tmp_path / "new" / "ks"
    keystore, _ = open_keystore(directory)
    keystore.get_or_create("k1", AES, PROVIDER)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(key_file(directory, "k1").stat().st_mode) == 0o600
    assert sorted(p.name for p in directory.iterdir()) == ["k1.cssadmin-key"], "no temp file left behind"


def test_a_directory_a_concurrent_run_made_first_is_used(tmp_path, monkeypatch):
    """Eight runs with one new --keystore: the directory appears between one run's look and its mkdir."""
    from cssadmin.custody import software
    directory = tmp_path / "ks"
    make_directories = os.makedirs

    def the_other_run_wins(path, mode=0o777, exist_ok=False):
        make_directories(path, 0o700)
        raise FileExistsError(17, "File exists", str(path))

    monkeypatch.setattr(software.os, "makedirs", the_other_run_wins)
    software.prepare_directory(str(directory))
    monkeypatch.undo()
    keystore, _ = open_keystore(directory)
    assert keystore.get_or_create("k1", AES, PROVIDER).created


@posix_only
def test_directory_open_to_others_is_refused(tmp_path):
    directory = tmp_path / "ks"
    directory.mkdir()
    directory.chmod(0o750)
    with pytest.raises(CustodyError) as caught:
        open_keystore(directory)
    assert (caught.value.code, caught.value.exit_code) == ("KEYSTORE_TOO_OPEN", 5)
    assert f"chmod 700 {directory}" in str(caught.value)


def test_keystore_path_that_is_a_file_is_refused(tmp_path):
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("x")
    with pytest.raises(CustodyError) as caught:
        open_keystore(not_a_directory)
    assert (caught.value.code, caught.value.exit_code) == ("KEYSTORE_NOT_DIRECTORY", 5)


@pytest.mark.parametrize("name", ["../escape", ".hidden", "-dash", "a/b", "x" * 65, ""])
def test_unchecked_names_never_become_paths(tmp_path, name):
    keystore, source = open_keystore(tmp_path / "ks")
    with pytest.raises(UsageError):
        keystore.get_or_create(name, AES, PROVIDER)
    assert source.asked == 0
    assert not (tmp_path / "escape.cssadmin-key").exists()


def encodings_of(secret: bytes) -> list[bytes]:
    """The secret raw, in hex, and in base64 at each of the three alignments it could sit at."""
    forms = [secret, secret.hex().encode(), secret.hex().upper().encode()]
    for shift in range(3):
        encoded = base64.b64encode(secret[shift:])
        forms.append(encoded[4:-4])     # the middle, whatever the neighbouring bytes
    return forms


@pytest.mark.parametrize("key_type", [AES, P256, RSA2048], ids=lambda kt: kt.name)
def test_key_file_does_not_contain_the_key(tmp_path, key_type):
    keystore, _ = open_keystore(tmp_path)
    key = keystore.get_or_create("k1", key_type, PROVIDER)
    stored = key_file(tmp_path, "k1").read_bytes()
    secrets_to_hide = [plaintext_of(key)]
    private = key.handle.private_key
    if key_type.family == "ec":
        secrets_to_hide.append(private.private_numbers().private_value.to_bytes(32, "big"))
    if key_type.family == "rsa":
        secrets_to_hide.append(private.private_numbers().d.to_bytes(256, "big"))
    for secret in secrets_to_hide:
        for form in encodings_of(secret):
            assert form not in stored
    if key_type.is_private_key:
        assert json.loads(stored)["public_key_pem"].encode() == keystore.public_key_pem(key)


# --- reuse rules: ours, type, tampering -------------------------------------------------
def test_other_key_type_is_a_conflict_before_any_passphrase(tmp_path):
    open_keystore(tmp_path)[0].get_or_create("k1", AES, PROVIDER)
    keystore, source = open_keystore(tmp_path)
    with pytest.raises(KeyConflictError) as caught:
        keystore.get_or_create("k1", P256, PROVIDER)
    assert (caught.value.code, caught.value.exit_code) == ("KEY_TYPE_CONFLICT", 6)
    assert source.asked == 0


@pytest.mark.parametrize("content", [b"", b"not json", b'{"format": "something-else"}', b"[1, 2]", b"\xff\xfe"])
def test_file_that_is_not_ours_is_a_conflict(tmp_path, content):
    key_file(tmp_path, "k1").write_bytes(content)
    keystore, _ = open_keystore(tmp_path)
    with pytest.raises(KeyConflictError) as caught:
        keystore.get_or_create("k1", AES, PROVIDER)
    assert (caught.value.code, caught.value.exit_code) == ("KEY_NOT_OURS", 6)
    assert key_file(tmp_path, "k1").read_bytes() == content


@pytest.mark.skipif(not hasattr(os, "symlink") or os.name != "posix", reason="the keystore refuses symlinks with O_NOFOLLOW, which Windows lacks")
def test_symlink_at_the_key_name_is_not_followed(tmp_path):
    keystore, _ = open_keystore(tmp_path / "ks")
    keystore.get_or_create("real", AES, PROVIDER)
    os.symlink(tmp_path / "ks" / "real.cssadmin-key", key_file(tmp_path / "ks", "link"))
    with pytest.raises(KeyConflictError) as caught:
        keystore.get_or_create("link", AES, PROVIDER)
    assert caught.value.code == "KEY_NOT_OURS"


@pytest.mark.parametrize("field, value", [
    ("kdf", {"name": "scrypt", "n": 3, "r": 8, "p": 1, "salt": "AAAAAAAAAAAAAAAAAAAAAA=="}),
    ("kdf", {"name": "scrypt", "n": 2**30, "r": 8, "p": 1, "salt": "AAAAAAAAAAAAAAAAAAAAAA=="}),
    ("aead", {"name": "AES-256-GCM", "nonce": "short"}),
    ("ciphertext", "not base64!"),
    ("key_type", "AES-512"),
    ("name", "someone-else"),
])
def test_damaged_header_is_a_conflict(tmp_path, field, value):
    open_keystore(tmp_path)[0].get_or_create("k1", AES, PROVIDER)
    edit_header(key_file(tmp_path, "k1"), **{field: value})
    keystore, _ = open_keystore(tmp_path)
    with pytest.raises(KeyConflictError) as caught:
        keystore.get_or_create("k1", AES, PROVIDER)
    assert (caught.value.code, caught.value.exit_code) == ("KEY_FILE_CORRUPT", 6)


def test_changed_key_type_is_detected_both_ways(tmp_path):
    open_keystore(tmp_path)[0].get_or_create("k1", P256, PROVIDER)
    edit_header(key_file(tmp_path, "k1"), key_type="EC-SECP256K1")
    with pytest.raises(KeyConflictError) as as_created:
        open_keystore(tmp_path)[0].get_or_create("k1", P256, PROVIDER)
    assert as_created.value.code == "KEY_TYPE_CONFLICT"
    with pytest.raises(CustodyError) as as_claimed:
        open_keystore(tmp_path)[0].get_or_create("k1", KEY_TYPES["EC-SECP256K1"], PROVIDER)
    assert as_claimed.value.code == "WRONG_PASSPHRASE", "the header is bound into the AEAD"


def test_file_moved_to_another_name_is_detected(tmp_path):
    open_keystore(tmp_path)[0].get_or_create("k1", AES, PROVIDER)
    moved = key_file(tmp_path, "k2")
    key_file(tmp_path, "k1").rename(moved)
    edit_header(moved, name="k2")
    with pytest.raises(CustodyError) as caught:
        open_keystore(tmp_path)[0].get_or_create("k2", AES, PROVIDER)
    assert caught.value.code == "WRONG_PASSPHRASE"


@pytest.mark.parametrize("field, change", [
    ("kdf", lambda kdf: {**kdf, "n": kdf["n"] * 2}),
    ("kdf", lambda kdf: {**kdf, "salt": base64.b64encode(b"\x01" * 16).decode()}),
    ("public_key_pem", lambda pem: pem.replace("A", "B", 1)),
])
def test_changed_kdf_or_public_key_is_detected(tmp_path, field, change):
    open_keystore(tmp_path)[0].get_or_create("k1", P256, PROVIDER)
    path = key_file(tmp_path, "k1")
    edit_header(path, **{field: change(json.loads(path.read_text())[field])})
    with pytest.raises((CustodyError, KeyConflictError)) as caught:
        open_keystore(tmp_path)[0].get_or_create("k1", P256, PROVIDER)
    assert caught.value.code in ("WRONG_PASSPHRASE", "KEY_FILE_CORRUPT")


def test_sealed_pkcs8_with_trailing_bytes_is_refused(tmp_path):
    keystore, _ = open_keystore(tmp_path)
    good = keystore.get_or_create("k1", P256, PROVIDER)
    document = keystore_format.seal("k2", P256, plaintext_of(good) + b"\0", PASSPHRASE, FAST_N,
                             keystore.public_key_pem(good), "2026-01-01T00:00:00+00:00")
    key_file(tmp_path, "k2").write_bytes(document)
    with pytest.raises(KeyConflictError) as caught:
        open_keystore(tmp_path)[0].get_or_create("k2", P256, PROVIDER)
    assert caught.value.code == "KEY_FILE_CORRUPT"


def test_close_drops_the_material(tmp_path):
    keystore, _ = open_keystore(tmp_path)
    key = keystore.get_or_create("k1", AES, PROVIDER)
    keystore.close()
    assert key.handle.plaintext is None
    with pytest.raises(CustodyError) as caught:
        keystore.digest(key.handle)
    assert caught.value.code == "KEYSTORE_CLOSED"


# --- wrapping, checked by OpenSSL's command line ------------------------------------------
@pytest.fixture(scope="module")
def kek(tmp_path_factory):
    """An RSA-3072 wrapping key, its private half written where openssl can read it."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    path = tmp_path_factory.mktemp("kek") / "kek.pem"
    path.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return private, path


@pytest.fixture(scope="module")
def every_key(tmp_path_factory):
    """One keystore holding a key of every type (RSA-4096 generation is the slow part: once)."""
    keystore, _ = open_keystore(tmp_path_factory.mktemp("every") / "ks")
    keys = {name: keystore.get_or_create(name, key_type, PROVIDER) for name, key_type in KEY_TYPES.items()}
    yield keystore, keys
    keystore.close()


def openssl(*arguments: str, stdin: bytes | None = None) -> bytes:
    result = subprocess.run(["openssl", *arguments], input=stdin, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout


def openssl_oaep_decrypt(ciphertext: bytes, kek_path: Path, hash_name: str, work: Path) -> bytes:
    blob = work / "oaep.bin"
    blob.write_bytes(ciphertext)
    return openssl("pkeyutl", "-decrypt", "-inkey", str(kek_path), "-in", str(blob),
                   "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", f"rsa_oaep_md:{hash_name}",
                   "-pkeyopt", f"rsa_mgf1_md:{hash_name}")


def openssl_rsa_aes_unwrap(blob: bytes, kek, hash_name: str, work: Path) -> bytes:
    private, kek_path = kek
    split = private.key_size // 8
    ephemeral = openssl_oaep_decrypt(blob[:split], kek_path, hash_name, work)
    assert len(ephemeral) == 32
    return openssl("enc", "-d", "-id-aes256-wrap-pad", "-K", ephemeral.hex(), "-iv", "A65959A6",
                   stdin=blob[split:])


def check_pkcs8_with_openssl(pkcs8: bytes, expected_public_pem: bytes, work: Path) -> None:
    der = work / "target.der"
    der.write_bytes(pkcs8)
    first_line = openssl("asn1parse", "-inform", "DER", "-in", str(der)).decode().splitlines()[0]
    header, length = map(int, re.search(r"hl=\s*(\d+) l=\s*(\d+) cons: SEQUENCE", first_line).groups())
    assert header + length == len(pkcs8), "the outer SEQUENCE covers the whole buffer, no trailing bytes"
    private_pem = openssl("pkcs8", "-nocrypt", "-inform", "DER", "-in", str(der))
    assert openssl("pkey", "-pubout", stdin=private_pem) == expected_public_pem


def check_recovered(keystore, key, recovered: bytes, work: Path) -> None:
    if key.key_type.is_private_key:
        check_pkcs8_with_openssl(recovered, keystore.public_key_pem(key), work)
    else:
        assert len(recovered) == key.key_type.secret_bytes
        assert hashlib.sha256(recovered).digest() == keystore.digest(key.handle)


@needs_openssl
@pytest.mark.parametrize("scheme", [RSA_AES_SHA1, RSA_AES_SHA256], ids=["rsa-aes-sha1", "rsa-aes-sha256"])
@pytest.mark.parametrize("type_name", list(KEY_TYPES))
def test_rsa_aes_wrap_unwraps_with_openssl(every_key, kek, tmp_path, type_name, scheme):
    keystore, keys = every_key
    key = keys[type_name]
    keystore.self_test(key.key_type, scheme)
    blob = keystore.wrap(key.handle, scheme, kek[0].public_key())
    check_recovered(keystore, key, openssl_rsa_aes_unwrap(blob, kek, scheme.hash, tmp_path), tmp_path)


@needs_openssl
@pytest.mark.parametrize("scheme", [OAEP_SHA1, OAEP_SHA256], ids=["oaep-sha1", "oaep-sha256"])
@pytest.mark.parametrize("type_name", ["AES-256", "EC-NISTP256"])
def test_plain_oaep_wrap_unwraps_with_openssl(every_key, kek, tmp_path, type_name, scheme):
    keystore, keys = every_key
    key = keys[type_name]
    keystore.self_test(key.key_type, scheme)
    blob = keystore.wrap(key.handle, scheme, kek[0].public_key())
    assert len(blob) == kek[0].key_size // 8
    check_recovered(keystore, key, openssl_oaep_decrypt(blob, kek[1], scheme.hash, tmp_path), tmp_path)


def test_target_too_long_for_plain_oaep_names_the_sizes(every_key):
    keystore, keys = every_key
    rsa_2048_kek = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    with pytest.raises(CustodyError) as caught:
        keystore.wrap(keys["EC-NISTP521"].handle, OAEP_SHA256, rsa_2048_kek)
    assert (caught.value.code, caught.value.exit_code) == ("TARGET_TOO_LONG", 5)
    length = len(keys["EC-NISTP521"].handle.plaintext)
    assert f"{length} bytes" in str(caught.value) and "at most 190 bytes" in str(caught.value)


def test_rsa_target_refused_for_plain_oaep_at_self_test(every_key):
    keystore, _ = every_key
    with pytest.raises(CustodyError) as caught:
        keystore.self_test(RSA2048, OAEP_SHA256)
    assert caught.value.code == "TARGET_TOO_LONG"
