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
import signal
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from conftest import wait_for_pause
from keks import rsa_key, write_spki


STEPS = ("writing", "staged", "renamed-one", "renamed", "verified")
OAEP_SHA1 = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)


def popen(cli, args: list[str], *, token, env: dict, stdout) -> subprocess.Popen:
    """Start the CLI the way conftest's Cli.run does, without waiting for it."""
    return subprocess.Popen(cli.command + args, env=cli.environment(token=token, env=env), stdin=subprocess.DEVNULL,
                            stdout=stdout, stderr=subprocess.PIPE)


def temp_name_pattern(final_name: str) -> re.Pattern:
    return re.compile(rf"\.{re.escape(final_name)}\.cssadmin-[0-9a-f]+\.tmp")


@pytest.fixture
def kek(tmp_path):
    key = rsa_key(4096)
    return key, write_spki(key, tmp_path / "WrappingKey.bin")


def kill_at(cli, token, args: list[str], step: str, tmp_path: Path) -> None:
    """Run the export with the pause hook at step, wait for the pause, and SIGKILL it there."""
    with open(tmp_path / f"paused-stdout-{step}", "wb") as stdout:
        process = popen(cli, ["--json"] + args, token=token, env={"CSSADMIN_TEST_PAUSE_AT": step}, stdout=stdout)
        try:
            paused = wait_for_pause(process, step)
            os.kill(paused, signal.SIGKILL)
            status = process.wait(timeout=30)
            # From source the paused process is the one started; a frozen binary's bootloader reports
            # its child's death by SIGKILL as that signal or as 128 + 9.
            assert status in (-signal.SIGKILL, 128 + signal.SIGKILL), status
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            process.stderr.close()


class Destination:
    """The out dir of one export: its final names, and the hidden temp names that may be left beside them."""

    def __init__(self, out: Path, key_name: str):
        self.out = out
        self.wrapped, self.manifest = f"{key_name}-wrapped", f"{key_name}-manifest.json"
        self.finals = {self.wrapped, self.manifest}
        self._temps = [temp_name_pattern(name) for name in self.finals]

    def is_temp(self, name: str) -> bool:
        return any(pattern.fullmatch(name) for pattern in self._temps)

    def present(self) -> set[str]:
        return {name for name in self.finals if (self.out / name).exists()}

    def temps(self) -> list[Path]:
        return [entry for entry in self.out.iterdir() if entry.name not in self.finals]

    def check_names(self) -> None:
        """Every entry is a final name or a private hidden temp of one - never anything else."""
        for entry in self.out.iterdir():
            assert entry.name in self.finals or self.is_temp(entry.name), entry.name
            if entry.name not in self.finals:
                assert entry.is_file() and not entry.is_symlink()
                assert entry.stat().st_mode & 0o777 == 0o600, f"temp file {entry.name} is not 0600"

    def check_complete(self, cli, private_key, token_digest: bytes) -> None:
        """Whatever final file exists is complete: the key unwraps to the token's, the manifest verifies."""
        present = self.present()
        if self.wrapped in present:
            blob = (self.out / self.wrapped).read_bytes()
            assert len(blob) == 512, f"partial final file: {len(blob)} bytes"
            assert hashlib.sha256(private_key.decrypt(blob, OAEP_SHA1)).digest() == token_digest
        if self.manifest in present:
            result = cli.run(["verify-manifest", str(self.out / self.manifest)])
            assert result.returncode == 0, f"the manifest left by the killed run does not verify: {result.stderr}"

    def contents(self) -> dict[str, bytes]:
        return {name: (self.out / name).read_bytes() for name in self.present()}


def finish_and_check(cli, softhsm, args: list[str], destination: Destination, private_key, token_digest: bytes):
    """Re-run without the hook: it finishes the export with the same key (a re-export)."""
    code, report = cli.json(args + (["--force"] if destination.present() else []), token=softhsm)
    assert code == 0, report
    assert report["key"]["created"] is False
    assert {Path(o["path"]).name for o in report["outputs"] + [report["manifest"]]} == destination.finals
    assert destination.present() == destination.finals
    destination.check_complete(cli, private_key, token_digest)
    assert softhsm.digest(label=report["key"]["name"]) == token_digest
    destination.check_names()   # the leftover temps of the killed run were not renamed over anything


@pytest.mark.token
@pytest.mark.parametrize("step", STEPS)
def test_kill_at_each_step_leaves_no_partial_final_file(cli, softhsm, pin_file, kek, tmp_path, key_name, step):
    private_key, kek_path = kek
    out = tmp_path / "out"
    out.mkdir()
    destination = Destination(out, key_name)
    args = ["aws", key_name, str(kek_path), "RSAES_OAEP_SHA_1", "--out-dir", str(out), *softhsm.cli_args(pin_file)]

    kill_at(cli, softhsm, args, step, tmp_path)

    # The key was generated before any output was written; the token holds it through the kill.
    token_digest = softhsm.digest(key_name)
    destination.check_names()
    present = destination.present()
    # Where the process stopped decides which final files may exist (none, one while renaming, or both).
    if step in ("writing", "staged"):
        assert present == set(), f"final files before the rename at {step}: {present}"
    elif step == "renamed-one":
        assert len(present) == 1, f"exactly one file is renamed at renamed-one, found {present}"
    else:
        assert present == destination.finals, f"both files must be in place at {step}, found {present}"
    if step == "writing":   # one file is being staged, half written: it exists only under its temp name
        [temp] = destination.temps()
        if temp_name_pattern(destination.wrapped).fullmatch(temp.name):
            assert temp.stat().st_size == 256
    destination.check_complete(cli, private_key, token_digest)

    finish_and_check(cli, softhsm, args, destination, private_key, token_digest)


@pytest.mark.token
@pytest.mark.parametrize("step", STEPS)
def test_kill_during_a_forced_reexport_leaves_old_or_new_complete_files(cli, softhsm, pin_file, kek, tmp_path,
                                                                        key_name, step):
    """--force over a previous export: until every new file is staged the old ones stay as they were, and at
    no point is the pair left so that the manifest in the directory fails to verify."""
    private_key, kek_path = kek
    out = tmp_path / "out"
    out.mkdir()
    destination = Destination(out, key_name)
    args = ["aws", key_name, str(kek_path), "RSAES_OAEP_SHA_1", "--out-dir", str(out), *softhsm.cli_args(pin_file)]
    code, report = cli.json(args, token=softhsm)
    assert code == 0, report
    token_digest = softhsm.digest(key_name)
    previous = destination.contents()
    assert set(previous) == destination.finals

    kill_at(cli, softhsm, args + ["--force"], step, tmp_path)

    destination.check_names()
    if step in ("writing", "staged"):
        assert destination.contents() == previous, f"the previous export was changed before the rename at {step}"
    else:
        changed = {name for name, data in destination.contents().items() if data != previous.get(name)}
        assert changed, f"nothing was replaced by {step}"
    destination.check_complete(cli, private_key, token_digest)

    finish_and_check(cli, softhsm, args, destination, private_key, token_digest)


@pytest.mark.token
def test_the_pause_hook_does_nothing_unless_set(cli, softhsm, pin_file, kek, tmp_path, key_name):
    """A value that names no step is ignored: the export runs through."""
    private_key, kek_path = kek
    code, report = cli.json(["aws", key_name, str(kek_path), "RSAES_OAEP_SHA_1", "--out-dir", str(tmp_path),
                             *softhsm.cli_args(pin_file)], token=softhsm,
                            env={"CSSADMIN_TEST_PAUSE_AT": "no-such-step"})
    assert code == 0, report
    blob = (tmp_path / f"{key_name}-wrapped").read_bytes()
    assert hashlib.sha256(private_key.decrypt(blob, OAEP_SHA1)).digest() == softhsm.digest(key_name)
