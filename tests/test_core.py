"""liquid_rl.core: the Core base class, CoreSpec's checks and its one builder."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from gymnasium import spaces
from hypothesis import given, settings
from hypothesis import strategies as st

from liquid_rl.agents.diagnostics import find_cores
from liquid_rl.core import CELLS, Core, CoreSpec, LSTMCore, action_output_size
from liquid_rl.extractors import LiquidHistoryExtractor
from liquid_rl.wirings import AutoNCP

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_every_cell_builds_a_core_with_its_spec_sizes(cell):
    spec = CoreSpec.create(cell, 8, options={"d_state": 4} if cell == "liquid_s4" else None)
    core = spec.build(5)
    assert isinstance(core, Core)
    y, state = core(torch.randn(3, 2, 5), core.initial_state(2))
    assert y.shape == (3, 2, spec.output_size) and state.shape == (2, core.state_size)


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(cell="gru", units=8), "Unknown cell 'gru'; choose one of"),
    (dict(cell="ltc", units=0), "units must be a positive integer, got 0"),
    (dict(cell="ltc", units=True), "units must be a positive integer"),
    (dict(cell="ltc", units=8, wiring="star"), "Unknown wiring 'star'"),
    (dict(cell="lstm", units=8, output_size=3), "cell 'lstm' outputs its 8 units"),
    (dict(cell="cfc", units=8, output_size=0), "output_size must be a positive integer"),
    (dict(cell="cfc", units=8, step_time=0.0), "step_time must be a finite number > 0"),
])
def test_bad_specs_fail_with_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message) as e:
        CoreSpec.create(**kwargs)
    assert "\n" not in str(e.value)


def test_unknown_names_are_written_once():
    """Each unknown-name message lives in liquid_rl/core.py only."""
    for path in [*(ROOT / "liquid_rl").rglob("*.py"), *(ROOT / "agents").glob("*.py")]:
        if path.name == "core.py":
            continue
        text = path.read_text()
        for phrase in ("Unknown cell {", "Unknown wiring {"):
            assert phrase not in text, f"{path.relative_to(ROOT)} writes {phrase!r} again"


@pytest.mark.parametrize("path", ["liquid_rl/extractors.py", "agents/recurrent_sac_policy.py"])
def test_extractor_and_sac_policy_do_not_import_the_ppo_policy(path):
    tree = ast.parse((ROOT / path).read_text())
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "liquid_rl.policies" not in modules


def test_output_size_defaults():
    assert CoreSpec.create("ltc", 16).output_size == 16                       # full: all units
    assert CoreSpec.create("ltc", 16, "ncp", default_wired=2).output_size == 2  # wired: the action size
    assert CoreSpec.create("ltc", 6, "ncp", default_wired=5).output_size == 3   # below units - 2
    assert CoreSpec.create("cfc", 16, AutoNCP(16, 4)).output_size == 4        # a Wiring's motors
    assert CoreSpec.create("lstm", 7).output_size == 7
    assert action_output_size(spaces.Discrete(3)) == 3
    assert action_output_size(spaces.Box(-1, 1, (2, 2))) == 4


def test_each_core_owns_a_copy_of_a_wiring():
    wiring = AutoNCP(12, 2)
    spec = CoreSpec.create("ltc", 12, wiring)
    a, b = spec.build(3), spec.build(3)
    assert a.rnn.wiring is not b.rnn.wiring and a.rnn.wiring is not wiring
    rebuilt = CoreSpec.create("ltc", 12, wiring.to_config())
    assert rebuilt.build(3).output_size == 2


@settings(max_examples=15, deadline=None)
@given(step_time=st.floats(min_value=1e-3, max_value=10.0), cell=st.sampled_from(["ltc", "cfc"]))
def test_timespan_is_none_only_for_the_unit_step(step_time, cell):
    spec = CoreSpec.create(cell, 4, step_time=step_time)
    assert (spec.timespan is None) == (step_time == 1.0)
    assert spec.timespan in (None, step_time)


def test_diagnostics_find_cores_by_type():
    extractor = LiquidHistoryExtractor(spaces.Box(-1, 1, (12,)), history=4, cell="cfc", units=8)
    found = find_cores(extractor)
    assert list(found) == ["core"] and isinstance(found["core"], Core)
    assert isinstance(LSTMCore(3, 4), Core)
    assert find_cores(torch.nn.Linear(3, 4)) == {}
