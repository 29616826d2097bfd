"""A keystore export made by the command line (the frozen binary with -m binary --binary: cssadmin.exe
under Wine in tests/run-windows.sh) unwraps with the OpenSSL command line to the keystore's own key.

Under Wine, `openssl` is tests/windows/openssl_standin.py, which runs the host's /usr/bin/openssl:
so a Windows export is checked by OpenSSL on Linux, as the receiving side would.
"""
from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from cssadmin.custody.software import SoftwareKeystore
from cssadmin.keytypes import KEY_TYPES

PASSPHRASE = "correct horse battery staple"

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


def openssl(*arguments: str, stdin: bytes | None = None) -> bytes:
    result = subprocess.run(["openssl", *arguments], input=stdin, capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout


@pytest.fixture(scope="module")
def aws_kek(tmp_path_factory) -> tuple[Path, Path]:
    """AWS's RSA_4096 wrapping key as ImportParameters gives it (DER SPKI), and its private half (PEM)."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    folder = tmp_path_factory.mktemp("kek")
    (folder / "kek.pem").write_bytes(private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (folder / "WrappingKey.bin").write_bytes(private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
    return folder / "WrappingKey.bin", folder / "kek.pem"


def export(cli, tmp_path, aws_kek, key_name, key_type, algorithm) -> tuple[bytes, Path]:
    out = tmp_path / "out"
    out.mkdir()
    code, report = cli.json(["aws", key_name, str(aws_kek[0]), algorithm, "-k", key_type,
                             "--keystore", str(tmp_path / "ks"), "--passphrase-env", "CSSADMIN_TEST_PASSPHRASE",
                             "--out-dir", str(out)], env={"CSSADMIN_TEST_PASSPHRASE": PASSPHRASE})
    assert code == 0, report
    assert report["key"]["protection"] == "software"
    wrapped = out / f"{key_name}-wrapped"
    public = [f"{key_name}-public.pem"] if key_type.startswith(("EC", "RSA")) else []
    assert [Path(o["path"]).name for o in report["outputs"]] == [wrapped.name, *public]
    return wrapped.read_bytes(), tmp_path / "ks"


def oaep_decrypt(blob: bytes, kek_pem: Path, work: Path) -> bytes:
    (work / "oaep.bin").write_bytes(blob)
    return openssl("pkeyutl", "-decrypt", "-inkey", str(kek_pem), "-in", str(work / "oaep.bin"),
                   "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256",
                   "-pkeyopt", "rsa_mgf1_md:sha256")


def test_aes_export_unwraps_with_openssl_to_the_keystore_key(cli, tmp_path, aws_kek, key_name):
    blob, keystore_dir = export(cli, tmp_path, aws_kek, key_name, "AES-256", "RSAES_OAEP_SHA_256")
    secret = oaep_decrypt(blob, aws_kek[1], tmp_path)
    keystore = SoftwareKeystore(str(keystore_dir), lambda confirm=False: PASSPHRASE)
    try:
        key = keystore.get_or_create(key_name, KEY_TYPES["AES-256"], "aws")
        assert not key.created
        assert len(secret) == 32 and hashlib.sha256(secret).digest() == keystore.digest(key.handle)
    finally:
        keystore.close()


def test_ec_export_unwraps_with_openssl_to_the_keystore_key(cli, tmp_path, aws_kek, key_name):
    blob, keystore_dir = export(cli, tmp_path, aws_kek, key_name, "EC-NISTP256", "RSA_AES_KEY_WRAP_SHA_256")
    ephemeral = oaep_decrypt(blob[:512], aws_kek[1], tmp_path)
    assert len(ephemeral) == 32
    pkcs8 = openssl("enc", "-d", "-id-aes256-wrap-pad", "-K", ephemeral.hex(), "-iv", "A65959A6", stdin=blob[512:])
    (tmp_path / "key.der").write_bytes(pkcs8)
    private_pem = openssl("pkcs8", "-nocrypt", "-inform", "DER", "-in", str(tmp_path / "key.der"))
    keystore = SoftwareKeystore(str(keystore_dir), lambda confirm=False: PASSPHRASE)
    try:
        key = keystore.get_or_create(key_name, KEY_TYPES["EC-NISTP256"], "aws")
        assert openssl("pkey", "-pubout", stdin=private_pem) == keystore.public_key_pem(key)
    finally:
        keystore.close()
