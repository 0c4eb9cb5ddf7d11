"""Plots a user reads: the learning curve says why training and evaluation differ, the
activity plots name neurons as the wiring does."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.axes
import matplotlib.figure
import numpy as np
import pytest

from liquid_rl import wirings
from liquid_rl.agents.inspect import neuron_labels
from liquid_rl.agents.plots import CURVE_NOTE, plot_activity, plot_learning_curve


@pytest.fixture
def texts(monkeypatch):
    """Every string matplotlib is asked to draw through Figure.text, set_title and set_ylabel."""
    seen: list[str] = []
    for cls, name in ((matplotlib.figure.Figure, "text"), (matplotlib.axes.Axes, "set_title"),
                      (matplotlib.axes.Axes, "set_ylabel")):
        original = getattr(cls, name)

        def record(self, *args, _original=original, **kwargs):
            seen.append(next(a for a in args if isinstance(a, str)))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, record)
    return seen


def _run(tmp_path, evaluations: bool):
    (tmp_path / "episodes.csv").write_text("step,return,length\n" + "\n".join(
        f"{100 * i},{i % 50},{20}" for i in range(1, 60)))
    if evaluations:
        (tmp_path / "evaluations.json").write_text(json.dumps(
            [{"step": 1000 * i, "mean_return": 985.0, "std_return": 3.0} for i in range(1, 6)]))
    return tmp_path


def test_learning_curve_says_why_training_returns_are_lower(tmp_path, texts):
    out = plot_learning_curve(_run(tmp_path, evaluations=True))
    assert out.is_file() and CURVE_NOTE in texts
    assert "end early when the agent fails" in CURVE_NOTE and "exploratory actions" in CURVE_NOTE


def test_learning_curve_without_evaluations_has_no_caption(tmp_path, texts):
    plot_learning_curve(_run(tmp_path, evaluations=False))
    assert CURVE_NOTE not in texts


def test_a_fully_connected_cell_labels_its_neurons_neuron_and_says_how_many_are_shown(tmp_path, texts):
    full = wirings.FullyConnected(32)
    full.build(3)
    labels = neuron_labels(None, full, 32)
    assert labels == ["neuron"] * 32
    plot_activity(np.random.default_rng(0).normal(size=(20, 32)), labels, tmp_path, title="run")
    assert "run · neurons (12 of 32 shown)" in texts
    assert "neuron\n0" in texts and not any(t.startswith("motor") for t in texts)


def test_an_ncp_keeps_its_types_and_indices(tmp_path, texts):
    ncp = wirings.AutoNCP(19, 1)
    ncp.build(4)
    labels = neuron_labels(None, ncp, 19)
    assert labels[:1] == ["motor"] and labels.count("command") == 7 and labels.count("inter") == 11
    plot_activity(np.random.default_rng(0).normal(size=(20, 19)), labels, tmp_path, title="run")
    assert "run · motor and command neurons" in texts  # 8 neurons: all shown, no count
    assert "command\n7" in texts


def test_labels_without_a_wiring_come_from_the_output_size():
    class Core:
        output_size = 2

    assert neuron_labels(Core(), None, 4) == ["motor", "motor", "inter", "inter"]
    Core.output_size = 4
    assert neuron_labels(Core(), None, 4) == ["neuron"] * 4
