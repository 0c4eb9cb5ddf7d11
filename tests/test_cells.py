"""The core registry: every cell behind one time-major interface with a flat state."""

from __future__ import annotations

import pytest
import torch

from liquid_rl.cells import CELLS, build_core, make_wiring
from liquid_rl.wirings import NCP


pytestmark = pytest.mark.usefixtures("one_thread")   # tests/conftest.py

CASES = [
    ("ltc", dict()),
    ("ltc", dict(wiring="ncp", output_size=2)),
    ("ltc", dict(mixed_memory=True)),
    ("cfc", dict()),
    ("cfc", dict(wiring="random", output_size=3)),
    ("cfc", dict(output_size=3)),
    ("lstm", dict()),
    ("liquid_s4", dict(d_state=4, n_layers=2, output_size=3)),
]


def test_registry_has_the_documented_cells():
    assert {"ltc", "cfc", "lstm", "liquid_s4"} <= set(CELLS)


@pytest.mark.parametrize("cell, kwargs", CASES, ids=lambda c: str(c))
def test_core_interface_and_resets(cell, kwargs):
    torch.manual_seed(0)
    core = build_core(cell, 4, 10, **kwargs)
    T, B = 5, 3
    x = torch.randn(T, B, core.input_size)
    state0 = torch.randn(B, core.state_size) * 0.1
    y, state = core(x, state0)
    assert y.shape == (T, B, core.output_size) and state.shape == (B, core.state_size)
    assert core.output_size == kwargs.get("output_size", 10)
    # Splitting a sequence and carrying the state gives the same outputs.
    y1, s1 = core(x[:2], state0)
    y2, s2 = core(x[2:], s1)
    torch.testing.assert_close(torch.cat([y1, y2]), y, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s2, state, atol=1e-5, rtol=1e-5)
    # A reset before step 3 of sample 1 equals starting that sample afresh there.
    resets = torch.zeros(T, B, dtype=torch.bool)
    resets[3, 1] = True
    y_r, _ = core(x, state0, None, resets)
    fresh, _ = core(x[3:, 1:2], torch.zeros(1, core.state_size))
    torch.testing.assert_close(y_r[3:, 1:2], fresh, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(y_r[:, [0, 2]], y[:, [0, 2]])


@pytest.mark.parametrize("cell", ["ltc", "cfc", "liquid_s4"])
def test_unit_timespans_are_the_default(cell):
    options = dict(d_state=4, n_layers=1) if cell == "liquid_s4" else {}
    core = build_core(cell, 3, 6, **options)
    x = torch.randn(4, 2, 3)
    state = torch.zeros(2, core.state_size)
    torch.testing.assert_close(core(x, state, torch.ones(4, 2, 1))[0], core(x, state)[0])
    assert (core(x, state, torch.full((4, 2, 1), 3.0))[0] - core(x, state)[0]).abs().max() > 1e-4


def test_wirings_by_name_and_object():
    assert make_wiring("ncp", 19, 1).neuron_counts["motor"] == 1
    wiring = NCP(12, 6, 1, sensory_fanout=6, inter_fanout=4, recurrent_command_synapses=6, motor_fanin=6)
    core = build_core("ltc", 32, 19, wiring=wiring)
    assert core.state_size == 19 and core.output_size == 1


@pytest.mark.parametrize("args, match", [
    (dict(cell="gru"), "Unknown cell 'gru'"),
    (dict(cell="ltc", wiring="dense"), "Unknown wiring 'dense'"),
    (dict(cell="ltc", unfolds=3), "Bad option for cell 'ltc'"),
    (dict(cell="lstm", wiring="ncp"), "takes only wiring='full'"),
    (dict(cell="liquid_s4", wiring="ncp"), "takes only wiring='full'"),
])
def test_bad_names_raise_value_error(args, match):
    cell = args.pop("cell")
    with pytest.raises(ValueError, match=match):
        build_core(cell, 3, 8, **args)
