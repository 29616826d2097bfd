"""The output protocol's cleanup when the run is interrupted between placing one file and the next."""
from __future__ import annotations

import os

import pytest

from cssadmin import output
from cssadmin.errors import OutputError


# Without --force a file is placed by link() (which never replaces), with it by os.replace.
@pytest.mark.parametrize(("force", "placer"), [(False, "link"), (True, "replace")])
def test_an_interrupt_while_placing_files_removes_what_this_run_created(monkeypatch, tmp_path, force, placer):
    real_placer = getattr(os, placer)
    calls = []

    def interrupted_on_the_second(source, target, **kwargs):
        calls.append(target)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_placer(source, target, **kwargs)
    monkeypatch.setattr(os, placer, interrupted_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        output.write_all(tmp_path, [("k-wrapped", b"blob"), ("k-manifest.json", b"{}")], force=force)
    assert len(calls) == 2
    assert list(tmp_path.iterdir()) == []


def test_a_file_planted_at_an_output_name_after_the_preflight_survives(monkeypatch, tmp_path):
    """No replace without --force, even under a race: the name is taken between check and placement."""
    planted = tmp_path / "k-wrapped"
    real_checkpoint = output.checkpoint

    def plant_after_staging(step):
        if step == "staged":
            planted.write_bytes(b"another program's file")
        real_checkpoint(step)
    monkeypatch.setattr(output, "checkpoint", plant_after_staging)
    monkeypatch.setattr(output, "_check_final", lambda final, force: None)   # the check already passed
    with pytest.raises(OutputError) as caught:
        output.write_all(tmp_path, [("k-wrapped", b"blob"), ("k-manifest.json", b"{}")], force=False)
    assert (caught.value.code, caught.value.exit_code) == ("OUTPUT_EXISTS", 7)
    assert planted.read_bytes() == b"another program's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k-wrapped"], "nothing of this run is left"
