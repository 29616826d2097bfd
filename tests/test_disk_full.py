"""Disk full on a real tiny filesystem: exit 7, nothing partial left behind, the key intact and re-exportable.

A 16 KiB tmpfs holds four 4 KiB pages, and tmpfs charges each file's data by the page (inodes and
directory entries are not charged). A filler file leaves 0 or 1 page free: with none, the first staged
file cannot be written; with one, the 512-byte wrapped file is staged and the manifest is not - so the
failure has to clean up a file it already staged.
"""
from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from keks import rsa_key, write_spki

pytestmark = pytest.mark.token

PAGE = 4096
PAGES = 4
OAEP_SHA1 = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)


@pytest.fixture
def tiny_fs(tmp_path):
    """A freshly mounted 4-page tmpfs, unmounted at teardown."""
    if os.name == "nt":
        pytest.skip("mounts a tmpfs: Linux only, not on Windows")
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={PAGES * PAGE},mode=0755", "tmpfs",
                             str(mount_point)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {result.stderr.strip()}")
    try:
        stats = os.statvfs(mount_point)
        assert (stats.f_frsize, stats.f_bavail) == (PAGE, PAGES), "not the tiny filesystem this test designs for"
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def fill_leaving(mount_point: Path, free_pages: int) -> Path:
    filler = mount_point / "filler"
    filler.write_bytes(b"\0" * ((PAGES - free_pages) * PAGE))
    assert os.statvfs(mount_point).f_bavail == free_pages
    return filler


def probe_is_full(mount_point: Path, free_pages: int) -> None:
    """Check the premise: exactly free_pages pages can still be written, and not one byte more."""
    probe = mount_point / f"probe-{uuid.uuid4().hex}"
    descriptor = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        assert os.write(descriptor, b"x" * (free_pages * PAGE)) == free_pages * PAGE
        with pytest.raises(OSError) as caught:
            os.write(descriptor, b"x")
        assert caught.value.errno == errno.ENOSPC
    finally:
        os.close(descriptor)
        probe.unlink()
    assert os.statvfs(mount_point).f_bavail == free_pages


@pytest.mark.parametrize("free_pages", [0, 1], ids=["no-page-free", "one-page-free"])
def test_disk_full_exits_7_leaves_nothing_and_the_key_reexports(cli, softhsm, pin_file, tmp_path, tiny_fs,
                                                               key_name, free_pages):
    private_key = rsa_key(4096)
    kek_path = write_spki(private_key, tmp_path / "WrappingKey.bin")
    filler = fill_leaving(tiny_fs, free_pages)
    probe_is_full(tiny_fs, free_pages)
    args = ["aws", key_name, str(kek_path), "RSAES_OAEP_SHA_1", "--out-dir", str(tiny_fs),
            *softhsm.cli_args(pin_file)]

    code, report = cli.json(args, token=softhsm)
    assert report["ok"] is False, report
    assert (code, report["error"]["code"], report["error"]["exit"]) == (7, "DISK_FULL", 7), report
    assert "\n" not in report["error"]["message"]
    assert sorted(p.name for p in tiny_fs.iterdir()) == ["filler"], "a final or temp file was left behind"
    assert os.statvfs(tiny_fs).f_bavail == free_pages, "the failed run still holds space"

    # The key this run generated was never exported, so it was destroyed; the next run makes a new one.
    assert softhsm.objects(key_name) == [], "a key whose files failed was left on the token"
    filler.unlink()
    code, report = cli.json(args, token=softhsm)
    assert code == 0, report
    assert report["key"]["created"] is True
    digest = softhsm.digest(key_name)
    blob = (tiny_fs / f"{key_name}-wrapped").read_bytes()
    assert len(blob) == 512
    assert hashlib.sha256(private_key.decrypt(blob, OAEP_SHA1)).digest() == digest
    result = cli.run(["verify-manifest", str(tiny_fs / f"{key_name}-manifest.json")])
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert sorted(p.name for p in tiny_fs.iterdir()) == sorted([f"{key_name}-wrapped", f"{key_name}-manifest.json"])


@pytest.mark.parametrize("free_pages", [0, 1], ids=["no-page-free", "one-page-free"])
def test_disk_full_during_a_forced_reexport_leaves_the_previous_files_as_they_were(
        cli, softhsm, pin_file, tmp_path, tiny_fs, key_name, free_pages):
    private_key = rsa_key(4096)
    kek_path = write_spki(private_key, tmp_path / "WrappingKey.bin")
    args = ["aws", key_name, str(kek_path), "RSAES_OAEP_SHA_1", "--out-dir", str(tiny_fs),
            *softhsm.cli_args(pin_file)]
    code, report = cli.json(args, token=softhsm)
    assert code == 0, report
    finals = sorted([f"{key_name}-wrapped", f"{key_name}-manifest.json"])
    previous = {name: (tiny_fs / name).read_bytes() for name in finals}
    filler = tiny_fs / "filler"
    filler.write_bytes(b"\0" * ((PAGES - len(finals) - free_pages) * PAGE))
    probe_is_full(tiny_fs, free_pages)

    code, report = cli.json(args + ["--force"], token=softhsm)
    assert (code, report["error"]["code"]) == (7, "DISK_FULL"), report
    assert sorted(p.name for p in tiny_fs.iterdir()) == sorted(finals + ["filler"])
    assert {name: (tiny_fs / name).read_bytes() for name in finals} == previous, "--force replaced a file and failed"
    result = cli.run(["verify-manifest", str(tiny_fs / f"{key_name}-manifest.json")])
    assert result.returncode == 0, (result.stdout, result.stderr)

    filler.unlink()
    code, report = cli.json(args + ["--force"], token=softhsm)
    assert code == 0, report
    blob = (tiny_fs / f"{key_name}-wrapped").read_bytes()
    assert blob != previous[f"{key_name}-wrapped"]
    assert hashlib.sha256(private_key.decrypt(blob, OAEP_SHA1)).digest() == softhsm.digest(key_name)
