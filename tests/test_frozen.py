"""The frozen binary hands the vendor module the operator's library path, not the bundle's."""
from __future__ import annotations

import sys

import pytest

from cssadmin._frozen import restore_library_path

BUNDLE = "/tmp/_MEI123456"


@pytest.fixture
def frozen(monkeypatch):
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", BUNDLE, raising=False)
    for name in ("LD_LIBRARY_PATH", "LD_LIBRARY_PATH_ORIG", "LIBPATH", "LIBPATH_ORIG"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_callers_value_comes_back(frozen):
    frozen.setenv("LD_LIBRARY_PATH", f"{BUNDLE}:/opt/vendor/lib")
    frozen.setenv("LD_LIBRARY_PATH_ORIG", "/opt/vendor/lib")
    restore_library_path()
    import os
    assert os.environ["LD_LIBRARY_PATH"] == "/opt/vendor/lib"


def test_the_bundle_alone_is_removed(frozen):
    import os
    frozen.setenv("LD_LIBRARY_PATH", BUNDLE)
    restore_library_path()
    assert "LD_LIBRARY_PATH" not in os.environ


def test_a_path_not_into_the_bundle_stays(frozen):
    import os
    frozen.setenv("LD_LIBRARY_PATH", "/opt/vendor/lib")
    restore_library_path()
    assert os.environ["LD_LIBRARY_PATH"] == "/opt/vendor/lib"


def test_nothing_changes_outside_a_frozen_binary(monkeypatch):
    import os
    monkeypatch.delattr(sys, "frozen", raising=False)
    monkeypatch.setenv("LD_LIBRARY_PATH", BUNDLE)
    restore_library_path()
    assert os.environ["LD_LIBRARY_PATH"] == BUNDLE
