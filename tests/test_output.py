"""The output protocol's cleanup when the run is interrupted between placing one file and the next."""
from __future__ import annotations

import os

import pytest

from cssadmin import output


def test_an_interrupt_while_placing_files_removes_what_this_run_created(monkeypatch, tmp_path):
    real_replace = os.replace
    calls = []

    def interrupted_on_the_second(source, target):
        calls.append(target)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_replace(source, target)
    monkeypatch.setattr(output.os, "replace", interrupted_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        output.write_all(tmp_path, [("k-wrapped", b"blob"), ("k-manifest.json", b"{}")], force=False)
    assert list(tmp_path.iterdir()) == []
