"""The bad-input corpus: everything a user or a hostile file can hand the CLI, refused cleanly.

Each case runs the real CLI as a subprocess with an empty --out-dir, an empty working directory and no
PKCS#11 module, and asserts the exit code, the stable error code, a one-line message and that nothing was
written (no output, no temp file, no audit record). These inputs must fail before key custody: a case that
got as far as the token would fail with exit 5 (MODULE_NOT_GIVEN) instead, and the test would say so.
Only the PIN-file cases need to reach custody; they run against SoftHSM2 and check that no key was made.
"""
from __future__ import annotations

import base64
import hashlib
import os
import random
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

import certs
from conftest import default_audit_log, skip_symlinks_under_wine

AWS_ALG = "RSAES_OAEP_SHA_1"
VERSION = "0123456789abcdef0123456789abcdef"
GOOD_KID = f"https://myvault.vault.azure.net/keys/mykek/{VERSION}"
MiB = 1 << 20


# --- input files ------------------------------------------------------------------------------------------


def spki_4096_der() -> bytes:
    return certs.spki_der(certs.rsa_key(4096))


def spki_4096_pem() -> bytes:
    return certs.spki_pem(certs.rsa_key(4096))


def pem(label: str, body: bytes) -> bytes:
    return (f"-----BEGIN {label}-----\n".encode() + base64.encodebytes(body)
            + f"-----END {label}-----\n".encode())


def csr_pem() -> bytes:
    request = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not a wrapping key")]))
               .sign(certs.rsa_key(2048), hashes.SHA256()))
    return request.public_bytes(serialization.Encoding.PEM)


def bad_signature_cert() -> x509.Certificate:
    """A 2048-bit self-signed wrapping certificate valid now (not at certs.NOW), one signature bit flipped."""
    now = datetime.now(timezone.utc)
    good = certs.make_cert("google-cloud-csek-ingress", certs.rsa_key(2048),
                           not_before=now - timedelta(days=30), not_after=now + timedelta(days=365))
    return certs.corrupted_signature(good)


def good_gce_cert_pem() -> bytes:
    now = datetime.now(timezone.utc)
    return certs.pem(certs.make_cert("google-cloud-csek-ingress", certs.rsa_key(2048),
                                     not_before=now - timedelta(days=30), not_after=now + timedelta(days=365)))


def file_with(name: str, make: Callable[[], bytes]) -> Callable[[Path], str]:
    def write(workspace: Path) -> str:
        path = workspace / name
        path.write_bytes(make())
        return str(path)
    return write


def good_kek(workspace: Path) -> str:
    return file_with("WrappingKey.bin", spki_4096_der)(workspace)


def directory(workspace: Path) -> str:
    path = workspace / "a-directory"
    path.mkdir()
    return str(path)


def missing(workspace: Path) -> str:
    return str(workspace / "no-such-file.bin")


# --- the corpus -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    args: Callable[[Path], list[str]]    # the workspace (inputs live here) -> positionals and options
    exit: int
    code: str
    fragment: str = ""                   # must appear in the message


def aws_with_kek(kek: Callable[[Path], str]) -> Callable[[Path], list[str]]:
    return lambda ws: ["aws", "k1", kek(ws), AWS_ALG]


def kek_case(case_id: str, kek: Callable[[Path], str], code: str, fragment: str = "") -> Case:
    return Case(case_id, aws_with_kek(kek), 3, code, fragment)


def azure(kid: str) -> Callable[[Path], list[str]]:
    return lambda ws: ["microsoft-azure", "k1", good_kek(ws), "-a", kid]


def aws_named(name: str, *, after_double_dash: bool = False) -> Callable[[Path], list[str]]:
    if after_double_dash:
        return lambda ws: ["--", "aws", name, good_kek(ws), AWS_ALG]
    return lambda ws: ["aws", name, good_kek(ws), AWS_ALG]


def aws_with(*options: str) -> Callable[[Path], list[str]]:
    return lambda ws: ["aws", "k1", good_kek(ws), AWS_ALG, *options]


def gce_bad_signature(ws: Path) -> list[str]:
    cert = bad_signature_cert()
    path = certs.write_pem(ws / "google-cloud-csek-ingress.pem", cert)
    return ["google-compute-engine", "k1", str(path), AWS_ALG,
            "--expect-fingerprint", hashlib.sha256(certs.der(cert)).hexdigest()]


def gce_with(*options: str) -> Callable[[Path], list[str]]:
    return lambda ws: ["google-compute-engine", "k1", file_with("google-cloud-csek-ingress.pem",
                                                                 good_gce_cert_pem)(ws), AWS_ALG, *options]


def _garbage() -> bytes:
    return random.Random(20260601).randbytes(700)


UNREADABLE = "WRAPPING_KEY_UNREADABLE"
IS_PRIVATE = "WRAPPING_KEY_IS_PRIVATE"
NOT_RSA = "WRAPPING_KEY_NOT_RSA"

WRAPPING_KEY_CASES = [
    kek_case("kek-truncated-der", file_with("k.der", lambda: spki_4096_der()[: len(spki_4096_der()) // 2]),
             UNREADABLE),
    kek_case("kek-truncated-pem", file_with("k.pem", lambda: spki_4096_pem()[: len(spki_4096_pem()) // 2]),
             UNREADABLE),
    kek_case("kek-pem-without-last-line", file_with("k.pem", lambda: spki_4096_pem().rsplit(b"-----END", 1)[0]),
             UNREADABLE, "no END line"),
    kek_case("kek-empty", file_with("k.bin", lambda: b""), UNREADABLE, "empty"),
    kek_case("kek-random-bytes", file_with("k.bin", _garbage), UNREADABLE),
    kek_case("kek-nul-bytes", file_with("k.bin", lambda: b"\0" * 600), UNREADABLE),
    kek_case("kek-oversized", file_with("k.pem", lambda: spki_4096_pem() + b"# padding\n" * (MiB // 10 + 1)),
             UNREADABLE, "larger than"),
    kek_case("kek-oversized-garbage", file_with("k.bin", lambda: b"\x30" * (MiB + 1)), UNREADABLE, "larger than"),
    kek_case("kek-pem-private-key", file_with("k.pem", lambda: certs.private_pem(certs.rsa_key(4096))),
             IS_PRIVATE, "PRIVATE KEY"),
    kek_case("kek-pem-rsa-private-key", file_with("k.pem", lambda: certs.private_pem(
        certs.rsa_key(4096), serialization.PrivateFormat.TraditionalOpenSSL)), IS_PRIVATE, "RSA PRIVATE KEY"),
    kek_case("kek-pem-ec-private-key", file_with("k.pem", lambda: certs.private_pem(
        certs.ec_key(), serialization.PrivateFormat.TraditionalOpenSSL)), IS_PRIVATE, "EC PRIVATE KEY"),
    kek_case("kek-der-private-key", file_with("k.der", lambda: certs.private_der(certs.rsa_key(4096))), IS_PRIVATE),
    kek_case("kek-pem-certificate-request", file_with("k.pem", csr_pem), UNREADABLE, "CERTIFICATE REQUEST"),
    kek_case("kek-pem-garbage-label", file_with("k.pem", lambda: pem("WRAPPING KEY PLEASE", spki_4096_der())),
             UNREADABLE, "WRAPPING KEY PLEASE"),
    kek_case("kek-pem-mismatched-end", file_with("k.pem", lambda: spki_4096_pem().replace(
        b"END PUBLIC KEY", b"END CERTIFICATE")), UNREADABLE),
    kek_case("kek-pem-bad-base64", file_with("k.pem", lambda: pem("PUBLIC KEY", spki_4096_der()).replace(
        b"\n", b"!\n", 2)), UNREADABLE, "base64"),
    kek_case("kek-ec-spki", file_with("k.der", lambda: certs.spki_der(certs.ec_key())), NOT_RSA, "EC"),
    kek_case("kek-ec-certificate", file_with("k.pem", lambda: certs.pem(certs.ec_cert()[0])), NOT_RSA, "EC"),
    kek_case("kek-dsa", file_with("k.pem", lambda: certs.spki_pem(certs.dsa_key())), NOT_RSA, "DSA"),
    kek_case("kek-ed25519", file_with("k.pem", lambda: certs.spki_pem(certs.ed25519_key())), NOT_RSA, "Ed25519"),
    kek_case("kek-rsa-1024", file_with("k.der", lambda: certs.spki_der(certs.rsa_key(1024))),
             "WRAPPING_KEY_TOO_SMALL", "1024"),
    kek_case("kek-directory", directory, UNREADABLE, "a-directory"),
    kek_case("kek-missing-file", missing, UNREADABLE, "no-such-file.bin"),
    Case("kek-certificate-bad-signature", gce_bad_signature, 3, "CERTIFICATE_BAD_SIGNATURE"),
    Case("kek-azure-rsa-2560", lambda ws: ["microsoft-azure", "k1", file_with(
        "k.der", lambda: certs.spki_der(certs.rsa_key(2560)))(ws), "-a", GOOD_KID], 3, "WRAPPING_KEY_WRONG_SIZE"),
]

BAD_KID = "BAD_AZURE_KID"
AZURE_KID_CASES = [
    Case("kid-path-traversal", azure(f"https://myvault.vault.azure.net/keys/mykek/../../secrets/s/{VERSION}"),
         2, BAD_KID),
    Case("kid-encoded-traversal", azure(f"https://myvault.vault.azure.net/keys/%2e%2e/{VERSION}"), 2, BAD_KID),
    Case("kid-wrong-host", azure(f"https://myvault.vault.example.com/keys/mykek/{VERSION}"), 2, BAD_KID),
    Case("kid-lookalike-host", azure(f"https://myvault.vault.azure.net.evil.example/keys/mykek/{VERSION}"),
         2, BAD_KID),
    Case("kid-userinfo-host", azure(f"https://myvault.vault.azure.net@evil.example/keys/mykek/{VERSION}"),
         2, BAD_KID),
    Case("kid-http", azure(f"http://myvault.vault.azure.net/keys/mykek/{VERSION}"), 2, BAD_KID),
    Case("kid-missing-version", azure("https://myvault.vault.azure.net/keys/mykek"), 2, BAD_KID),
    Case("kid-short-version", azure(f"https://myvault.vault.azure.net/keys/mykek/{VERSION[:-1]}"), 2, BAD_KID),
    # Azure prints versions in lowercase hex; azure_kid.py accepts only that, so uppercase is refused.
    Case("kid-uppercase-version", azure(f"https://myvault.vault.azure.net/keys/mykek/{VERSION.upper()}"),
         2, BAD_KID),
    Case("kid-query-string", azure(f"{GOOD_KID}?api-version=7.4"), 2, BAD_KID),
    Case("kid-fragment", azure(f"{GOOD_KID}#x"), 2, BAD_KID),
    Case("kid-port", azure(f"https://myvault.vault.azure.net:8443/keys/mykek/{VERSION}"), 2, BAD_KID),
    Case("kid-secrets-not-keys", azure(f"https://myvault.vault.azure.net/secrets/mykek/{VERSION}"), 2, BAD_KID),
    Case("kid-non-ascii", azure(f"https://myvault.vault.azure.net/keys/mykéy/{VERSION}"), 2, BAD_KID),
    Case("kid-missing", lambda ws: ["microsoft-azure", "k1", good_kek(ws)], 2, "AZURE_KID_MISSING"),
]

BAD_NAME = "BAD_KEY_NAME"
KEY_NAME_CASES = [
    Case("name-slash", aws_named("a/b"), 2, BAD_NAME),
    Case("name-dotdot", aws_named(".."), 2, BAD_NAME),
    Case("name-dotdot-path", aws_named("../escape"), 2, BAD_NAME),
    Case("name-space", aws_named("my key"), 2, BAD_NAME),
    Case("name-leading-dash", aws_named("-k", after_double_dash=True), 2, BAD_NAME),
    Case("name-leading-dot", aws_named(".hidden"), 2, BAD_NAME),
    Case("name-65-characters", aws_named("a" * 65), 2, BAD_NAME),
    Case("name-non-ascii", aws_named("clé"), 2, BAD_NAME),
    Case("name-empty", aws_named(""), 2, BAD_NAME),
    Case("name-backslash", aws_named("a\\b"), 2, BAD_NAME),
    Case("name-newline", aws_named("a\nb"), 2, BAD_NAME),
]

PROVIDER_CASES = [
    Case("unknown-provider", lambda ws: ["oracle-cloud", "k1", good_kek(ws), AWS_ALG], 2, "UNKNOWN_PROVIDER"),
    Case("unknown-wrap-alg", lambda ws: ["aws", "k1", good_kek(ws), "RSAES_OAEP_SHA_3"], 2, "WRAP_ALG_UNKNOWN"),
    Case("wrap-alg-for-gckm", lambda ws: ["google-cloud-key-management", "k1", good_kek(ws), AWS_ALG], 2, "USAGE"),
    Case("missing-wrap-alg", lambda ws: ["aws", "k1", good_kek(ws)], 2, "WRAP_ALG_MISSING"),
    Case("algorithm-not-allowed", lambda ws: ["google-compute-engine", "k1", good_kek(ws), "RSAES_OAEP_SHA_256"],
         4, "ALGORITHM_NOT_ALLOWED"),
    Case("key-type-not-allowed", lambda ws: ["salesforce", "k1", good_kek(ws), AWS_ALG, "-k", "RSA-2048"],
         4, "KEY_TYPE_NOT_ALLOWED"),
    Case("unknown-key-type", aws_with("-k", "AES-512"), 4, "KEY_TYPE_NOT_ALLOWED"),
    Case("unknown-import-method", lambda ws: ["google-cloud-key-management", "k1", good_kek(ws),
                                              "--import-method", "RSA_OAEP_9999"], 2, "IMPORT_METHOD_UNKNOWN"),
    Case("csek-uri-not-https", gce_with("--csek-uri", "http://compute.googleapis.com/x"), 2, "BAD_CSEK_URI"),
]

TRUST_OPTION_CASES = [
    Case("expect-fingerprint-malformed", aws_with("--expect-fingerprint", "12:34"), 2, "USAGE", "5 characters, not shown"),
    Case("expect-fingerprint-mismatch", aws_with("--expect-fingerprint", "ab" * 32), 3, "FINGERPRINT_MISMATCH"),
    Case("pins-file-missing", gce_with("--pins", "/nonexistent/pins.json"), 2, "USAGE", "pins.json"),
    Case("pins-file-garbage", lambda ws: gce_with("--pins", file_with("pins.json", _garbage)(ws))(ws), 2, "USAGE",
         "not valid JSON"),
    Case("ca-bundle-missing", gce_with("--ca-bundle", "/nonexistent/ca.pem", "--trust-unpinned"), 3,
         "CA_BUNDLE_UNREADABLE"),
    Case("unpinned-certificate", gce_with(), 3, "CERTIFICATE_UNPINNED"),
]

CONFLICT_CASES = [
    Case("pin-file-and-pin-env", aws_with("--pin-file", "/dev/null", "--pin-env", "PIN"), 2, "USAGE", "--pin-env"),
    Case("cardset-and-softcard", aws_with("-O", "a", "-S", "b"), 2, "USAGE"),
    Case("keystore-and-pkcs11-module", aws_with("--keystore", "/nonexistent-ks", "--pkcs11-module", "/x.so"),
         2, "USAGE", "--keystore"),
    Case("passphrase-file-without-keystore", aws_with("--passphrase-file", "/nonexistent"), 2, "USAGE",
         "--keystore"),
    Case("pin-on-the-command-line", aws_with("--pin", "1234"), 2, "USAGE", "unrecognized"),
    Case("token-and-cardset-differ", aws_with("--token", "a", "-O", "b"), 2, "USAGE", "different tokens"),
    Case("slot-not-a-number", aws_with("-m", "one"), 2, "USAGE", "-m"),
    Case("too-many-positionals", aws_with("extra"), 2, "USAGE", "extra"),
]

ALL_CASES = (WRAPPING_KEY_CASES + AZURE_KID_CASES + KEY_NAME_CASES + PROVIDER_CASES + TRUST_OPTION_CASES
             + CONFLICT_CASES)


# --- running a case ---------------------------------------------------------------------------------------


@pytest.fixture
def workspace(tmp_path) -> Path:
    path = tmp_path / "inputs"
    path.mkdir()
    return path


@pytest.fixture
def empty_dirs(tmp_path) -> tuple[Path, Path]:
    out, cwd = tmp_path / "out", tmp_path / "cwd"
    out.mkdir(), cwd.mkdir()
    return out, cwd


def check_failure(cli, args: list[str], *, cwd: Path, expected_exit: int, expected_code: str, fragment: str = "",
                  token=None) -> dict:
    code, report = cli.json(args, cwd=cwd, token=token)
    assert report["ok"] is False, report
    assert set(report) == {"ok", "error"}
    error = report["error"]
    assert (code, error["exit"], error["code"]) == (expected_exit, expected_exit, expected_code), error
    assert error["message"] and "\n" not in error["message"] and "\r" not in error["message"]
    assert fragment in error["message"], error["message"]
    return error


def assert_nothing_written(cli, *dirs: Path) -> None:
    for directory in dirs:
        assert list(directory.iterdir()) == [], f"{directory} was written to"
    assert not default_audit_log(cli.home).parent.exists(), "an audit record was written for a refused export"


def with_out_dir(args: list[str], out: Path) -> list[str]:
    # Options go first: a case may end its options with "--".
    return ["--out-dir", str(out)] + args


@pytest.mark.parametrize("case", ALL_CASES, ids=[case.id for case in ALL_CASES])
def test_bad_input_is_refused_before_custody_and_writes_nothing(cli, workspace, empty_dirs, case):
    out, cwd = empty_dirs
    check_failure(cli, with_out_dir(case.args(workspace), out), cwd=cwd, expected_exit=case.exit,
                  expected_code=case.code, fragment=case.fragment)
    assert_nothing_written(cli, out, cwd)


# --- the destination --------------------------------------------------------------------------------------


@pytest.fixture
def read_only_dir(tmp_path):
    """An empty directory on a read-only tmpfs: root's DAC override cannot write there."""
    if os.name == "nt":
        pytest.skip("mounts a read-only tmpfs: Linux only, not on Windows")
    mount_point = tmp_path / "ro"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(mount_point)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here (needs root or CAP_SYS_ADMIN): {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_read_only_out_dir_is_refused(cli, workspace, empty_dirs, read_only_dir):
    _, cwd = empty_dirs
    check_failure(cli, ["--out-dir", str(read_only_dir), "aws", "k1", good_kek(workspace), AWS_ALG], cwd=cwd,
                  expected_exit=7, expected_code="DESTINATION_NOT_WRITABLE", fragment="not writable")
    assert_nothing_written(cli, read_only_dir, cwd)


def test_a_file_as_out_dir_is_refused_and_left_alone(cli, workspace, empty_dirs):
    out, cwd = empty_dirs
    target = out / "a-file"
    target.write_bytes(b"keep me")
    check_failure(cli, ["--out-dir", str(target), "aws", "k1", good_kek(workspace), AWS_ALG], cwd=cwd,
                  expected_exit=7, expected_code="DESTINATION_MISSING", fragment=str(target))
    assert [p.name for p in out.iterdir()] == ["a-file"] and target.read_bytes() == b"keep me"
    assert_nothing_written(cli, cwd)


def test_missing_out_dir_is_refused_and_not_created(cli, workspace, empty_dirs):
    out, cwd = empty_dirs
    check_failure(cli, ["--out-dir", str(out / "missing"), "aws", "k1", good_kek(workspace), AWS_ALG], cwd=cwd,
                  expected_exit=7, expected_code="DESTINATION_MISSING")
    assert_nothing_written(cli, out, cwd)


def _obstacle(kind: str):
    """Put something at a final name before the run."""
    def place(out: Path) -> None:
        final = out / "k1-wrapped"
        if kind == "dangling-symlink":
            final.symlink_to(out / "nowhere")
        elif kind == "symlink-to-file":
            (out / "victim").write_bytes(b"victim")
            final.symlink_to(out / "victim")
        elif kind == "existing-file":
            final.write_bytes(b"old export")
        elif kind == "directory":
            (out / "k1-manifest.json").mkdir()
    return place


def snapshot(directory: Path) -> dict:
    def state(path: Path):
        if path.is_symlink():
            return ("link", str(path.readlink()))
        return ("dir",) if path.is_dir() else ("file", path.read_bytes())
    return {path.name: state(path) for path in directory.iterdir()}


@pytest.mark.parametrize("kind, force, code_name", [
    pytest.param("dangling-symlink", False, "OUTPUT_IS_SYMLINK", marks=skip_symlinks_under_wine),
    pytest.param("dangling-symlink", True, "OUTPUT_IS_SYMLINK", marks=skip_symlinks_under_wine),
    pytest.param("symlink-to-file", True, "OUTPUT_IS_SYMLINK", marks=skip_symlinks_under_wine),
    ("existing-file", False, "OUTPUT_EXISTS"),
    ("directory", True, "OUTPUT_EXISTS"),
])
def test_an_obstacle_at_a_final_name_is_refused_before_custody_and_left_alone(cli, workspace, empty_dirs, kind,
                                                                             force, code_name):
    out, cwd = empty_dirs
    _obstacle(kind)(out)
    before = snapshot(out)
    check_failure(cli, ["--out-dir", str(out), "aws", "k1", good_kek(workspace), AWS_ALG]
                  + (["--force"] if force else []),
                  cwd=cwd, expected_exit=7, expected_code=code_name)
    assert snapshot(out) == before
    assert_nothing_written(cli, cwd)


# --- text mode --------------------------------------------------------------------------------------------


TEXT_CASES = [case for case in ALL_CASES if case.id in (
    "kek-random-bytes", "kek-pem-private-key", "kid-path-traversal", "name-slash", "unknown-provider",
    "algorithm-not-allowed", "pin-file-and-pin-env")]


@pytest.mark.parametrize("case", TEXT_CASES, ids=[case.id for case in TEXT_CASES])
def test_text_mode_prints_one_error_line_on_stderr_only(cli, workspace, empty_dirs, case):
    out, cwd = empty_dirs
    result = cli.run(with_out_dir(case.args(workspace), out), cwd=cwd)
    assert result.returncode == case.exit
    assert result.stdout == ""
    assert result.stderr.startswith("cssadmin: error: ")
    assert result.stderr.endswith("\n") and result.stderr.count("\n") == 1, result.stderr
    assert case.fragment in result.stderr
    assert_nothing_written(cli, out, cwd)


# --- PIN files: these reach custody, so they need a token; none may leave a key behind --------------------


def _pin(mode: int | None, content: bytes = b"1234\n", *, as_directory: bool = False):
    def make(workspace: Path) -> str:
        path = workspace / "pin"
        if as_directory:
            path.mkdir()
        elif mode is not None:
            path.write_bytes(content)
            path.chmod(mode)
        return str(path)
    return make


PIN_CASES = [
    ("pin-file-missing", _pin(None), "SECRET_SOURCE_UNUSABLE"),
    ("pin-file-empty", _pin(0o600, b""), "SECRET_SOURCE_UNUSABLE"),
    ("pin-file-only-newline", _pin(0o600, b"\n"), "SECRET_SOURCE_UNUSABLE"),
    ("pin-file-group-readable-0640", _pin(0o640), "SECRET_FILE_TOO_OPEN"),
    ("pin-file-world-readable-0604", _pin(0o604), "SECRET_FILE_TOO_OPEN"),
    ("pin-file-group-writable-0620", _pin(0o620), "SECRET_FILE_TOO_OPEN"),
    ("pin-file-is-a-directory", _pin(None, as_directory=True), "SECRET_SOURCE_UNUSABLE"),
]


@pytest.mark.token
@pytest.mark.parametrize("make_pin, code_name", [case[1:] for case in PIN_CASES], ids=[case[0] for case in PIN_CASES])
def test_unusable_pin_file_exits_5_before_any_key_is_made(cli, softhsm, workspace, empty_dirs, key_name,
                                                          make_pin, code_name):
    out, cwd = empty_dirs
    pin_path = make_pin(workspace)
    check_failure(cli, ["--out-dir", str(out), "aws", key_name, good_kek(workspace), AWS_ALG,
                        "--token", softhsm.label, "--pin-file", pin_path],
                  cwd=cwd, token=softhsm, expected_exit=5, expected_code=code_name, fragment=pin_path)
    assert_nothing_written(cli, out, cwd)
    assert softhsm.objects(key_name) == []


@pytest.mark.token
def test_unset_pin_env_exits_5_before_any_key_is_made(cli, softhsm, workspace, empty_dirs, key_name):
    out, cwd = empty_dirs
    check_failure(cli, ["--out-dir", str(out), "aws", key_name, good_kek(workspace), AWS_ALG,
                        "--token", softhsm.label, "--pin-env", "CSSADMIN_TEST_NO_SUCH_PIN"],
                  cwd=cwd, token=softhsm, expected_exit=5, expected_code="SECRET_SOURCE_UNUSABLE",
                  fragment="CSSADMIN_TEST_NO_SUCH_PIN")
    assert_nothing_written(cli, out, cwd)
    assert softhsm.objects(key_name) == []


def test_the_corpus_is_large_enough():
    # The parametrised corpus alone (the output-directory and PIN cases come on top of it).
    assert len(ALL_CASES) >= 40
    assert len({case.id for case in ALL_CASES}) == len(ALL_CASES)
