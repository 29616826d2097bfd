"""The export's state machine: one way into each state, in order, and nothing skipped."""
from __future__ import annotations

import pytest

from cssadmin.custody.software import SoftwareKeystore
from cssadmin.errors import WrappingKeyError
from cssadmin.export import Export, IllegalTransition, Request, State
from cssadmin.providers import get_provider
from cssadmin.providers.base import Options
from keks import rsa_key, write_spki


@pytest.fixture
def export(tmp_path):
    kek = write_spki(rsa_key(4096), tmp_path / "WrappingKey.bin")
    out = tmp_path / "out"
    out.mkdir()
    opened = []

    def open_custody():
        opened.append(SoftwareKeystore(str(tmp_path / "ks"), lambda confirm=False: "passphrase", scrypt_n=2 ** 10))
        return opened[-1]

    request = Request(provider=get_provider("aws"), key_name="state-test", wrap_key_path=str(kek),
                      options=Options(wrap_alg="RSAES_OAEP_SHA_1"), out_dir=str(out))
    return Export(request, open_custody), opened, out


STEPS = ["load_wrapping_key", "trust_wrapping_key", "apply_policy", "ready_key", "verify_mechanism", "wrap",
         "write", "verify"]


def test_the_steps_walk_the_states_in_order(export):
    machine, _, out = export
    assert machine.state is State.PARSED
    for step, state in zip(STEPS, list(State)[1:]):
        getattr(machine, step)()
        assert machine.state is state
    assert sorted(p.name for p in out.iterdir()) == ["state-test-manifest.json", "state-test-wrapped"]


@pytest.mark.parametrize("skipped", range(len(STEPS) - 1))
def test_skipping_a_step_raises_and_changes_nothing(export, skipped):
    machine, opened, out = export
    for step in STEPS[:skipped]:
        getattr(machine, step)()
    before = machine.state
    with pytest.raises(IllegalTransition):
        getattr(machine, STEPS[skipped + 1])()
    assert machine.state is before
    if skipped < STEPS.index("ready_key"):
        assert opened == [], "nothing touches custody before POLICY_OK"
    assert list(out.iterdir()) == [], "nothing touches the output directory before WRAPPED"


def test_a_step_cannot_run_twice(export):
    machine, _, _ = export
    machine.load_wrapping_key()
    with pytest.raises(IllegalTransition):
        machine.load_wrapping_key()


def test_a_failed_step_leaves_the_state(export, tmp_path):
    machine, _, _ = export
    (tmp_path / "WrappingKey.bin").write_bytes(b"garbage")
    with pytest.raises(WrappingKeyError):
        machine.load_wrapping_key()
    assert machine.state is State.PARSED
