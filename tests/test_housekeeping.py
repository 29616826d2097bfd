"""Issue 13 item 12: a source install names its OpenSSL, `pip install .` leaves the tree clean,
the demo keeps its audit record to itself."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_version_of_a_source_install_names_the_openssl_cryptography_links(cli):
    if cli.frozen:
        pytest.skip("the frozen build records its OpenSSL at build time (test_frozen)")
    from cryptography.hazmat.bindings._rust import openssl
    result = cli.run(["--version"])
    assert f"openssl: {openssl.openssl_version_text()}\n" in result.stdout


def test_version_does_not_load_the_token_stack(cli):
    if cli.frozen:
        pytest.skip("a frozen binary's imports are not visible this way")
    probe = ("import sys; from cssadmin.cli import main; main(['--version']); "
             "print(sorted(m for m in sys.modules if m.startswith(('pkcs11', 'argparse', 'cryptography.x509', "
             "'cryptography.hazmat.primitives'))))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.stdout.strip().splitlines()[-1] == "[]"


def tracked_copy(destination: Path) -> Path:
    """A fresh repository holding the tracked and new (not ignored) files of this work tree."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, listed):
        source = ROOT / os.fsdecode(name)
        if source.is_file():
            target = destination / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    git = ["git", "-c", "user.email=t@example.invalid", "-c", "user.name=t"]
    subprocess.run(git + ["init", "-q"], cwd=destination, check=True)
    subprocess.run(git + ["add", "-A"], cwd=destination, check=True)
    subprocess.run(git + ["commit", "-qm", "snapshot"], cwd=destination, check=True)
    return destination


def test_pip_install_leaves_the_tree_clean_and_build_untouched(tmp_path):
    pytest.importorskip("setuptools", reason="the offline build needs setuptools in this environment")
    if shutil.which("git") is None:
        pytest.skip("needs git (the Windows leg has none)")
    clone = tracked_copy(tmp_path / "clone")
    build_before = sorted(p.name for p in (clone / "build").iterdir())
    result = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-build-isolation", "--no-deps",
                             "--no-index", "--target", str(tmp_path / "site"), "."],
                            cwd=clone, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "cssadmin" / "cli.py").is_file()
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True).stdout
    assert status == ""
    assert sorted(p.name for p in (clone / "build").iterdir()) == build_before   # no build/lib, build/bdist.*


def test_the_demo_writes_its_audit_record_in_its_own_directory(tmp_path):
    for tool in ("softhsm2-util", "openssl"):
        if shutil.which(tool) is None:
            pytest.skip(f"the demo needs {tool} (a Linux shell script; not on Windows)")
    if not Path("/usr/lib/softhsm/libsofthsm2.so").exists():
        pytest.skip("the demo needs SoftHSM2's module at /usr/lib/softhsm/libsofthsm2.so (not on Windows)")
    home = tmp_path / "home"
    home.mkdir()
    wrapper = tmp_path / "cssadmin"
    wrapper.write_text(f"#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m cssadmin \"$@\"\n")
    wrapper.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CSSADMIN_", "XDG_"))}
    env.update({"HOME": str(home), "TMPDIR": str(tmp_path), "CSSADMIN_DEMO_CSSADMIN": str(wrapper),
                "CSSADMIN_DEMO_PYTHON": sys.executable, "PYTHONPATH": str(ROOT)})
    result = subprocess.run(["bash", str(ROOT / "demo/aws-softhsm.sh")], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: out/demo-key-wrapped unwraps" in result.stdout
    assert list(home.iterdir()) == []                              # nothing in the user's home
    (work,) = tmp_path.glob("cssadmin-demo.*")
    assert (work / "audit.jsonl").is_file()
