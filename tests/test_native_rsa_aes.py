"""Native CKM_RSA_AES_KEY_WRAP (0x1054) and the two-step RSA-AES path, both on openCryptoki 3.27.

The same key is exported along each path (the two-step path forced with the package's test seam
CSSADMIN_TEST_RSA_AES_PATH); each output is opened with OpenSSL's command line and both give the same
key: a secret equal to the token's C_DigestKey, a private key the same PKCS#8 whose public key is the
token's. The export's `mechanism` field says which path wrapped the key.
"""
from __future__ import annotations

import hashlib

import pytest

import unwrap
from keks import rsa_key, write_private_pem, write_spki

pytestmark = pytest.mark.token

NATIVE = "CKM_RSA_AES_KEY_WRAP"
TWO_STEP = "CKM_AES_KEY_WRAP_KWP+CKM_RSA_PKCS_OAEP"


def _export(cli, token, pin_file, tmp_path, key_name, key_type, algorithm, name, env=None):
    key = rsa_key(4096)
    kek = write_spki(key, tmp_path / "kek.pem", pem=True)
    private = write_private_pem(key, tmp_path / "kek-private.pem")
    out = tmp_path / name
    out.mkdir()
    code, report = cli.json(["aws", key_name, str(kek), algorithm, "-k", key_type, "--out-dir", str(out),
                             *token.cli_args(pin_file)], token=token, env=env)
    assert code == 0, report
    digest = "sha256" if algorithm.endswith("SHA_256") else "sha1"
    plaintext = unwrap.rsa_aes_unwrap(private, (out / f"{key_name}-wrapped").read_bytes(), 512, digest)
    return report, plaintext


@pytest.mark.parametrize("key_type, algorithm", [
    ("AES-256", "RSA_AES_KEY_WRAP_SHA_256"), ("HMAC-384", "RSA_AES_KEY_WRAP_SHA_1"),
    ("EC-NISTP256", "RSA_AES_KEY_WRAP_SHA_256"), ("RSA-2048", "RSA_AES_KEY_WRAP_SHA_1"),
])
def test_native_and_two_step_paths_give_the_same_key(cli, opencryptoki327, pin_file, tmp_path, key_name,
                                                     key_type, algorithm):
    native, native_plain = _export(cli, opencryptoki327, pin_file, tmp_path, key_name, key_type, algorithm, "native")
    assert native["mechanism"] == NATIVE
    assert not [w for w in native["warnings"] if "self-test" in w]
    two_step, two_step_plain = _export(cli, opencryptoki327, pin_file, tmp_path, key_name, key_type, algorithm,
                                       "two-step", env={"CSSADMIN_TEST_RSA_AES_PATH": "two-step"})
    assert two_step["mechanism"] == TWO_STEP
    assert two_step["key"]["created"] is False, "the same token key, re-exported"
    if key_type.startswith(("AES", "HMAC")):
        assert hashlib.sha256(native_plain).digest() == opencryptoki327.digest(key_name)
        assert native_plain == two_step_plain
    else:
        public = opencryptoki327.public_pem(key_name)
        for plaintext in (native_plain, two_step_plain):
            assert unwrap.der_covers_whole_buffer(plaintext), "trailing bytes after the PKCS#8"
            assert unwrap.pkcs8_public_pem(plaintext) == public
        assert native_plain == two_step_plain


def test_a_failing_native_self_test_falls_back_to_two_step_with_a_warning(cli, opencryptoki327, pin_file, tmp_path,
                                                                          key_name):
    # The seam "broken-native" makes the native path ask for a 128-bit one-time key: a real token output
    # that the self-test must refuse (every cloud's RSA-AES format takes an AES-256 one-time key).
    report, plaintext = _export(cli, opencryptoki327, pin_file, tmp_path, key_name, "EC-NISTP384",
                                "RSA_AES_KEY_WRAP_SHA_256", "out", env={"CSSADMIN_TEST_RSA_AES_PATH": "broken-native"})
    assert report["mechanism"] == TWO_STEP
    [warning] = [w for w in report["warnings"] if "self-test" in w]
    assert warning.startswith(f"{NATIVE} failed its self-test") and TWO_STEP in warning and "not AES-256" in warning
    assert unwrap.der_covers_whole_buffer(plaintext)
    assert unwrap.pkcs8_public_pem(plaintext) == opencryptoki327.public_pem(key_name)


def test_mechanism_field_for_rsa_and_softhsm_paths(cli, softhsm, pin_file, tmp_path, key_name):
    key = rsa_key(4096)
    kek = write_spki(key, tmp_path / "kek.pem", pem=True)
    for algorithm, expected in [("RSAES_OAEP_SHA_1", "CKM_RSA_PKCS_OAEP"),
                                ("RSA_AES_KEY_WRAP_SHA_1", "CKM_AES_KEY_WRAP_PAD+CKM_RSA_PKCS_OAEP")]:
        out = tmp_path / algorithm
        out.mkdir()
        code, report = cli.json(["aws", key_name, str(kek), algorithm, "--out-dir", str(out),
                                 *softhsm.cli_args(pin_file)], token=softhsm)
        assert code == 0, report
        assert report["mechanism"] == expected


def test_the_stand_in_mechanism_leaves_python_pkcs11_alone():
    from pkcs11 import Mechanism

    from cssadmin.custody.pkcs11.mechanisms import RSA_AES_KEY_WRAP, RsaAesParameters
    assert isinstance(RSA_AES_KEY_WRAP, Mechanism) and int(RSA_AES_KEY_WRAP) == 0x1054
    assert 0x1054 not in Mechanism._value2member_map_, "not registered in python-pkcs11's enum"
    raw = RsaAesParameters("sha256").raw
    assert int.from_bytes(raw[:8], "little") == 256 and int.from_bytes(raw[8:16], "little") != 0
