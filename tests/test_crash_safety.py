"""SIGKILL at each step of the output protocol: the destination never holds a partial final file.

The CLI runs as a subprocess with CSSADMIN_TEST_PAUSE_AT=<step>; it reports "cssadmin: paused at <step>"
on stderr and sleeps, and the test kills it there. Whatever final file exists afterwards must be complete
(the wrapped key decrypts to the token's key, the manifest verifies); temp files may remain, but only under
their hidden temp names. A second run without the hook then finishes the export with the same key.
"""
from __future__ import annotations

import hashlib
import os
import re
import selectors
import signal
import subprocess
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from keks import rsa_key, write_spki

pytestmark = pytest.mark.token

ROOT = Path(__file__).resolve().parent.parent

STEPS = ("writing", "staged", "renamed-one", "renamed", "verified")
PAUSE_TIMEOUT = 60.0
OAEP_SHA1 = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)


def popen(cli, args: list[str], *, token, env: dict, stdout) -> subprocess.Popen:
    """Start the CLI the way conftest's Cli.run does, without waiting for it."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CSSADMIN_")}
    environment.update({"HOME": str(cli.home), "XDG_STATE_HOME": str(cli.home / "state"),
                        "PYTHONPATH": str(ROOT)})
    environment.update(token.env)
    environment["CSSADMIN_PKCS11_MODULE"] = token.module
    environment.update(env)
    return subprocess.Popen(cli.command + args, env=environment, stdin=subprocess.DEVNULL,
                            stdout=stdout, stderr=subprocess.PIPE)


def wait_for_pause(process: subprocess.Popen, step: str, timeout: float = PAUSE_TIMEOUT) -> None:
    """Read stderr until the pause line; fail (after killing the process) on exit or timeout."""
    wanted = f"cssadmin: paused at {step}".encode()
    seen = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stderr, selectors.EVENT_READ)
        while wanted not in seen:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                process.kill()
                process.wait()
                pytest.fail(f"no pause at {step} within {timeout} s; stderr so far: {seen!r}")
            chunk = os.read(process.stderr.fileno(), 4096)
            if not chunk:
                process.wait()
                pytest.fail(f"exited with {process.returncode} before pausing at {step}; stderr: {seen!r}")
            seen += chunk


def temp_name_pattern(final_name: str) -> re.Pattern:
    return re.compile(rf"\.{re.escape(final_name)}\.cssadmin-[0-9a-f]+\.tmp")


@pytest.fixture
def kek(tmp_path):
    key = rsa_key(4096)
    return key, write_spki(key, tmp_path / "WrappingKey.bin")


@pytest.mark.parametrize("step", STEPS)
def test_kill_at_each_step_leaves_no_partial_final_file(cli, softhsm, pin_file, kek, tmp_path, key_name, step):
    private_key, kek_path = kek
    out = tmp_path / "out"
    out.mkdir()
    wrapped_name, manifest_name = f"{key_name}-wrapped", f"{key_name}-manifest.json"
    export_args = ["aws", key_name, str(kek_path), "RSAES_OAEP_SHA_1", "--out-dir", str(out),
                   *softhsm.cli_args(pin_file)]

    with open(tmp_path / "paused-stdout", "wb") as stdout:
        process = popen(cli, ["--json"] + export_args, token=softhsm,
                        env={"CSSADMIN_TEST_PAUSE_AT": step}, stdout=stdout)
        try:
            wait_for_pause(process, step)
            process.send_signal(signal.SIGKILL)
            assert process.wait(timeout=30) == -signal.SIGKILL
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            process.stderr.close()

    # The key was generated before any output was written; the token holds it through the kill.
    token_digest = softhsm.digest(key_name)

    # Every entry in the directory is a final name or a hidden temp of one - never anything else.
    finals = {wrapped_name, manifest_name}
    temps = {name: temp_name_pattern(name) for name in finals}
    for entry in out.iterdir():
        assert entry.name in finals or any(p.fullmatch(entry.name) for p in temps.values()), entry.name
        if entry.name not in finals:
            assert entry.is_file() and not entry.is_symlink()
            assert entry.stat().st_mode & 0o777 == 0o600, f"temp file {entry.name} is not 0600"

    present = {name for name in finals if (out / name).exists()}
    # Where the process stopped decides which final files may exist (both, or one while renaming, or none).
    if step in ("writing", "staged"):
        assert present == set(), f"final files before the rename at {step}: {present}"
    elif step == "renamed-one":
        assert len(present) == 1, f"exactly one file is renamed at renamed-one, found {present}"
    else:
        assert present == finals, f"both files must be in place at {step}, found {present}"
    if step == "writing":
        [temp] = [e for e in out.iterdir() if temps[wrapped_name].fullmatch(e.name)]
        assert temp.stat().st_size == 256, "the first staged file is half written at 'writing'"

    if wrapped_name in present:
        blob = (out / wrapped_name).read_bytes()
        assert len(blob) == 512, f"partial final file: {len(blob)} bytes"
        assert hashlib.sha256(private_key.decrypt(blob, OAEP_SHA1)).digest() == token_digest
    if manifest_name in present:
        result = cli.run(["verify-manifest", str(out / manifest_name)])
        assert result.returncode == 0, (result.stdout, result.stderr)

    # Re-run without the hook: it finishes the export with the same key (a re-export).
    code, report = cli.json(export_args + (["--force"] if present else []), token=softhsm)
    assert code == 0, report
    assert report["key"]["created"] is False
    assert {Path(o["path"]).name for o in report["outputs"]} == finals
    blob = (out / wrapped_name).read_bytes()
    assert len(blob) == 512
    assert hashlib.sha256(private_key.decrypt(blob, OAEP_SHA1)).digest() == token_digest
    assert softhsm.digest(key_name) == token_digest
    result = cli.run(["verify-manifest", str(out / manifest_name)])
    assert result.returncode == 0, (result.stdout, result.stderr)
    for entry in out.iterdir():   # the leftover temps of the killed run were not renamed over anything
        assert entry.name in finals or any(p.fullmatch(entry.name) for p in temps.values()), entry.name


def test_the_pause_hook_does_nothing_unless_set(cli, softhsm, pin_file, kek, tmp_path, key_name):
    """A value that names no step is ignored: the export runs through."""
    private_key, kek_path = kek
    code, report = cli.json(["aws", key_name, str(kek_path), "RSAES_OAEP_SHA_1", "--out-dir", str(tmp_path),
                             *softhsm.cli_args(pin_file)], token=softhsm,
                            env={"CSSADMIN_TEST_PAUSE_AT": "no-such-step"})
    assert code == 0, report
    blob = (tmp_path / f"{key_name}-wrapped").read_bytes()
    assert hashlib.sha256(private_key.decrypt(blob, OAEP_SHA1)).digest() == softhsm.digest(key_name)
