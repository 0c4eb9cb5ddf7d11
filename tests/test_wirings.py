"""Wirings: same synapses as ncps for the same seed, layer rules, errors, drawing."""

import json

import ncps.wirings as nw
import numpy as np
import pytest
import torch

from liquid_rl import wirings as w


@pytest.mark.parametrize("make", [
    lambda m: m.FullyConnected(8, 2),
    lambda m: m.FullyConnected(6, self_connections=False),
    lambda m: m.Random(10, 3, sparsity_level=0.5),
    lambda m: m.NCP(12, 6, 1, 4, 4, 6, 4),
    lambda m: m.AutoNCP(19, 1),
    lambda m: m.AutoNCP(32, 4, sparsity_level=0.3, seed=7),
])
def test_same_synapses_as_ncps(make):
    ours, ref = make(w), make(nw)
    ours.build(5)
    ref.build(5)
    np.testing.assert_array_equal(ours.adjacency_matrix, ref.adjacency_matrix)
    np.testing.assert_array_equal(ours.sensory_adjacency_matrix, ref.sensory_adjacency_matrix)
    assert ours.output_dim == ref.output_dim
    assert [ours.get_type_of_neuron(i) for i in range(ours.units)] == \
        [ref.get_type_of_neuron(i) for i in range(ref.units)]


def test_autoncp_layer_rule():
    wiring = w.AutoNCP(19, 1)
    # command = max(int(0.4 * (19 - 1)), 1) = 7, inter = 11
    assert wiring.layer_sizes == [11, 7, 1]
    wiring.build(4)
    assert wiring.neuron_counts == {"sensory": 4, "motor": 1, "command": 7, "inter": 11}


def test_ncp_paper_policy_size():
    wiring = w.NCP(12, 6, 1, sensory_fanout=6, inter_fanout=4, recurrent_command_synapses=6, motor_fanin=6)
    wiring.build(32)
    assert wiring.units == 19 and wiring.layer_sizes == [12, 6, 1]
    # Motor neuron is fed only by command neurons; inter neurons only by sensory inputs.
    adj = wiring.adjacency_matrix
    assert set(np.flatnonzero(adj[:, 0])) <= set(range(1, 7))
    assert not adj[:, 7:].any()
    assert wiring.sensory_adjacency_matrix[:, :7].sum() == 0


def test_tensors_and_counts():
    wiring = w.NCP(5, 4, 2, 3, 3, 4, 2)
    wiring.build(3)
    assert wiring.adjacency.shape == (11, 11) and wiring.adjacency.dtype == torch.float32
    assert set(wiring.polarity.unique().tolist()) <= {-1.0, 0.0, 1.0}
    assert torch.equal(wiring.polarity.abs(), wiring.adjacency)
    assert wiring.sensory_polarity.shape == (3, 11)
    assert wiring.synapse_count == int(wiring.adjacency.sum())
    assert wiring.sensory_synapse_count == int(wiring.sensory_adjacency.sum())


@pytest.mark.parametrize("call, match", [
    (lambda: w.AutoNCP(10, 8), "units - 2"),
    (lambda: w.AutoNCP(10, 2, sparsity_level=0.05), "sparsity_level"),
    (lambda: w.NCP(4, 3, 1, sensory_fanout=5, inter_fanout=2, recurrent_command_synapses=2, motor_fanin=2), "4 inter"),
    (lambda: w.NCP(4, 3, 1, sensory_fanout=2, inter_fanout=4, recurrent_command_synapses=2, motor_fanin=2), "3 command"),
    (lambda: w.NCP(4, 3, 1, sensory_fanout=2, inter_fanout=2, recurrent_command_synapses=2, motor_fanin=5), "3 command"),
    (lambda: w.NCP(0, 3, 1, 1, 1, 1, 1), "at least 1"),
    (lambda: w.Random(5, sparsity_level=1.0), r"\[0, 1\)"),
    (lambda: w.FullyConnected(4, output_dim=5), "output_dim"),
    (lambda: w.FullyConnected(0), "at least 1"),
])
def test_impossible_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_build_conflict_and_unbuilt():
    wiring = w.FullyConnected(4)
    with pytest.raises(ValueError, match="build"):
        _ = wiring.sensory_adjacency
    wiring.build(3)
    wiring.build(3)  # same size again is fine
    with pytest.raises(ValueError, match="Conflicting"):
        wiring.build(4)


def test_config_round_trip_keeps_structure():
    wiring = w.AutoNCP(16, 3)
    wiring.build(5)
    cfg = json.loads(json.dumps(wiring.to_config()))
    back = w.Wiring.from_config(cfg)
    np.testing.assert_array_equal(back.adjacency_matrix, wiring.adjacency_matrix)
    np.testing.assert_array_equal(back.sensory_adjacency_matrix, wiring.sensory_adjacency_matrix)
    assert back.layer_sizes == wiring.layer_sizes
    assert back.neuron_counts == wiring.neuron_counts


def test_draw_writes_png(tmp_path):
    wiring = w.AutoNCP(12, 2)
    wiring.build(4)
    path = wiring.draw(tmp_path / "sub" / "wiring.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


# --- ncps' graph API and ncps wiring objects ----------------

@pytest.mark.parametrize("make", [lambda m: m.AutoNCP(19, 2), lambda m: m.Random(9, 3, sparsity_level=0.4)])
def test_get_graph_equals_ncps(make):
    ours, ref = make(w), make(nw)
    ours.build(6)
    ref.build(6)
    a, b = ours.get_graph(), ref.get_graph()
    assert dict(a.nodes(data="neuron_type")) == dict(b.nodes(data="neuron_type"))
    assert {(s, d, p) for s, d, p in a.edges(data="polarity")} == {(s, d, p) for s, d, p in b.edges(data="polarity")}
    inner = ours.get_graph(include_sensory_neurons=False)
    assert inner.number_of_nodes() == 19 or inner.number_of_nodes() == 9
    assert inner.number_of_edges() == ours.synapse_count


def test_draw_graph_returns_legend_and_rejects_unknown_layout():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wiring = w.AutoNCP(12, 2)
    wiring.build(3)
    fig = plt.figure()
    handles = wiring.draw_graph(layout="spiral", draw_labels=True, synapse_colors="black")
    assert [h.get_label() for h in handles] == ["Sensory neurons", "Inter neurons", "Command neurons", "Motor neurons"]
    assert len(fig.axes[0].collections) >= wiring.units + 3  # one per node, plus the edges
    with pytest.raises(ValueError, match="Unknown layout 'grid'"):
        wiring.draw_graph(layout="grid")
    plt.close(fig)
    with pytest.raises(ValueError, match="not built"):
        w.AutoNCP(12, 2).get_graph()


def test_draw_labels_nodes_with_their_index_and_says_what_the_counts_are(tmp_path, monkeypatch):
    import matplotlib.axes

    texts = []
    original = matplotlib.axes.Axes.text
    monkeypatch.setattr(matplotlib.axes.Axes, "text",
                        lambda self, x, y, s, *a, **k: texts.append(s) or original(self, x, y, s, *a, **k))
    wiring = w.AutoNCP(19, 1)
    wiring.build(8)
    wiring.draw(tmp_path / "wiring.png")
    assert sorted(texts) == sorted([str(i) for i in range(19)] + [f"s{i}" for i in range(8)])
    assert wiring.summary() == (f"AutoNCP: 19 neurons (11 inter, 7 command, 1 motor), {wiring.synapse_count} "
                                f"synapses between neurons, {wiring.sensory_synapse_count} from 8 inputs")


@pytest.mark.parametrize("make", [lambda m: m.FullyConnected(32, 1), lambda m: m.AutoNCP(19, 2),
                                  lambda m: m.Random(10, 2, sparsity_level=0.5)])
def test_an_ncps_wiring_object_is_converted(make):
    from liquid_rl import CfC, LTC

    ref = make(nw)
    ltc = LTC(8, ref)
    assert ref.is_built() and ref.input_dim == 8  # built in place, as ncps' own models do
    np.testing.assert_array_equal(ltc.wiring.adjacency_matrix, ref.adjacency_matrix)
    np.testing.assert_array_equal(ltc.wiring.sensory_adjacency_matrix, ref.sensory_adjacency_matrix)
    assert [ltc.wiring.get_type_of_neuron(i) for i in range(ref.units)] == \
        [ref.get_type_of_neuron(i) for i in range(ref.units)]
    y, h = ltc(torch.randn(2, 5, 8))
    assert y.shape == (2, 5, ref.output_dim) and h.shape == (2, ref.units)
    y, h = CfC(8, make(nw))(torch.randn(2, 5, 8))
    assert h.shape == (2, ref.units)


def test_an_ncps_wiring_gives_the_same_model_as_ours():
    from liquid_rl import LTC

    torch.manual_seed(0)
    a = LTC(4, nw.AutoNCP(12, 2))
    torch.manual_seed(0)
    b = LTC(4, w.AutoNCP(12, 2))
    x = torch.randn(3, 6, 4)
    torch.testing.assert_close(a(x)[0], b(x)[0])


def test_units_of_another_type_say_what_is_accepted():
    from liquid_rl import LTC

    with pytest.raises(TypeError, match=r"units must be a number of neurons \(int\) or a liquid_rl.wirings.Wiring"):
        LTC(8, "32")
