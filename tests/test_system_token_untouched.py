"""A test run leaves the machine's own openCryptoki (token files, daemon, shared memory) exactly as it was.

The state before is recorded by tests/run.sh (or conftest) before any token is provisioned; this test
runs an export through the openCryptoki 3.27 token and then compares. The recorder is itself shown
to notice a changed byte, a new file and another daemon, so the comparison can fail.
"""
from __future__ import annotations

import os
import subprocess
import time

import pytest

pytestmark = pytest.mark.skipif(os.name == "nt", reason="Windows: no system openCryptoki to leave untouched")

from keks import rsa_key, write_spki
from tokens import system_state


def test_the_recorder_notices_changes(tmp_path):
    tree = tmp_path / "swtok"
    (tree / "TOK_OBJ").mkdir(parents=True)
    nvtok = tree / "NVTOK.DAT"
    nvtok.write_bytes(b"a" * 232)
    before = system_state.snapshot(trees=[str(tree)], shm=str(tmp_path / "shm"))
    assert system_state.differences(before, system_state.snapshot(trees=[str(tree)], shm=str(tmp_path / "shm"))) == []
    stat = nvtok.stat()
    nvtok.write_bytes(b"b" * 232)
    os.utime(nvtok, ns=(stat.st_atime_ns, stat.st_mtime_ns))     # same size and mtime: only the bytes differ
    after = system_state.snapshot(trees=[str(tree)], shm=str(tmp_path / "shm"))
    assert [change.split(":")[0] for change in system_state.differences(before, after)] == [str(nvtok)]
    (tree / "TOK_OBJ" / "00000000.TOK").write_bytes(b"x")
    assert len(system_state.differences(before, system_state.snapshot(trees=[str(tree)]))) >= 2
    moved = dict(before, daemons=before["daemons"] + [[1, "/usr/sbin/pkcsslotd"]])
    assert any(change.startswith("daemons:") for change in system_state.differences(before, moved))


@pytest.mark.token
def test_a_run_leaves_the_system_opencryptoki_alone(cli, opencryptoki327, token_specs, pin_file, tmp_path, key_name):
    before = token_specs["system_before"]
    if before is None:
        pytest.fail("no record of the system openCryptoki from before provisioning (CSSADMIN_SYSTEM_STATE)")
    kek = write_spki(rsa_key(4096), tmp_path / "kek.pem", pem=True)
    code, report = cli.json(["aws", key_name, str(kek), "RSA_AES_KEY_WRAP_SHA_256", "-k", "EC-NISTP256",
                             "--out-dir", str(tmp_path), *opencryptoki327.cli_args(pin_file)], token=opencryptoki327)
    assert code == 0, report
    # Our own token is a different one: its module lives in the test prefix, and so does its daemon.
    assert opencryptoki327.module.startswith(system_state.TEST_PREFIX)
    time.sleep(0.2)
    assert system_state.differences(before, system_state.snapshot()) == []


@pytest.mark.token
def test_the_test_daemon_is_this_prefix_s_own(opencryptoki327):
    prefix = opencryptoki327.module.split("/lib/opencryptoki/")[0]
    pid = int((open(f"{prefix}/run/opencryptoki/pkcsslotd.pid").read()).strip())
    assert os.readlink(f"/proc/{pid}/exe") == f"{prefix}/sbin/pkcsslotd"
    owner = subprocess.run(["ps", "-o", "user=", "-p", str(pid)], capture_output=True, text=True).stdout.strip()
    assert owner.startswith("pkcsslo"), owner
