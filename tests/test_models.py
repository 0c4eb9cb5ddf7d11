"""LTC and CfC: shapes, elapsed times, resets, dtypes, step API, errors, fused kernel."""

import pytest
import torch

from liquid_rl import CfC, CfCCell, LTC, LTCCell, WiredCfCCell, native, wirings

MODELS = {
    "ltc": lambda: LTC(5, 8),
    "ltc_ncp": lambda: LTC(5, wirings.AutoNCP(12, 2)),
    "ltc_mixed": lambda: LTC(5, 8, mixed_memory=True),
    "cfc": lambda: CfC(5, 8),
    "cfc_ncp": lambda: CfC(5, wirings.AutoNCP(12, 2)),
    "cfc_pure": lambda: CfC(5, 8, mode="pure"),
}


def _state(h):
    return h[0] if isinstance(h, tuple) else h


@pytest.mark.parametrize("name", list(MODELS))
def test_output_shapes(name):
    torch.manual_seed(0)
    m = MODELS[name]()
    y, h = m(torch.randn(3, 7, 5))
    assert y.shape == (3, 7, m.output_size)
    assert _state(h).shape == (3, m.state_size)
    m.batch_first = False
    y2, _ = m(torch.randn(7, 3, 5))
    assert y2.shape == (7, 3, m.output_size)
    m.return_sequences = False
    y3, _ = m(torch.randn(7, 3, 5))
    assert y3.shape == (3, m.output_size)


@pytest.mark.parametrize("name", list(MODELS))
def test_timespan_forms_agree(name):
    """scalar, (B,), (B, T) and (B, T, 1) describe the same elapsed times."""
    torch.manual_seed(0)
    m = MODELS[name]()
    x = torch.randn(4, 6, 5)
    per_sample = torch.tensor([0.5, 1.0, 2.0, 0.1])
    y_b, _ = m(x, timespans=per_sample)
    y_bt, _ = m(x, timespans=per_sample[:, None].expand(4, 6))
    y_bt1, _ = m(x, timespans=per_sample[:, None, None].expand(4, 6, 1))
    torch.testing.assert_close(y_b, y_bt)
    torch.testing.assert_close(y_b, y_bt1)
    # Each sample alone with its scalar elapsed time gives the same rows.
    for i in range(4):
        y_i, _ = m(x[i: i + 1], timespans=float(per_sample[i]))
        torch.testing.assert_close(y_b[i: i + 1], y_i, atol=1e-6, rtol=1e-5)
    # Unit timespans equal the default.
    torch.testing.assert_close(m(x, timespans=1.0)[0], m(x)[0])
    # Elapsed time matters.
    assert (y_b[0] - m(x[:1], timespans=3.0)[0][0]).abs().max() > 1e-4


def test_ncps_per_sample_timespan_bug_is_fixed():
    """ncps squeezes (B, T) timespans to (B,) per step and broadcasts them against the
    neurons, which fails or mixes samples; ours matches per-sample runs (above)."""
    import ncps.torch as nt

    torch.manual_seed(0)
    ref = nt.LTC(5, 8)
    x = torch.randn(4, 6, 5)
    with pytest.raises(RuntimeError):
        ref(x, timespans=torch.rand(4, 6))


@pytest.mark.parametrize("name", list(MODELS))
def test_resets_equal_new_sequence(name):
    torch.manual_seed(0)
    m = MODELS[name]()
    x = torch.randn(2, 9, 5)
    resets = torch.zeros(2, 9, dtype=torch.bool)
    resets[0, 4] = True
    y, _ = m(x, resets=resets)
    y_tail, _ = m(x[:1, 4:])
    torch.testing.assert_close(y[0, 4:], y_tail[0], atol=1e-6, rtol=1e-5)
    y_plain, _ = m(x)
    torch.testing.assert_close(y[1], y_plain[1])
    assert (y[0, 4:] - y_plain[0, 4:]).abs().max() > 1e-5


@pytest.mark.parametrize("name", list(MODELS))
def test_float64(name):
    torch.manual_seed(0)
    m = MODELS[name]().double()
    y, h = m(torch.randn(2, 5, 5, dtype=torch.float64), timespans=torch.rand(2, 5, dtype=torch.float64))
    assert y.dtype == torch.float64 and _state(h).dtype == torch.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", list(MODELS))
def test_cuda_matches_cpu(name):
    torch.manual_seed(0)
    m = MODELS[name]()
    x = torch.randn(3, 7, 5)
    y_cpu, _ = m(x)
    y_gpu, _ = m.cuda()(x.cuda())
    torch.testing.assert_close(y_gpu.cpu(), y_cpu, atol=1e-5, rtol=1e-4)


def test_cells_one_step_with_state():
    torch.manual_seed(0)
    wiring = wirings.AutoNCP(12, 2)
    wiring.build(5)
    for cell in (LTCCell(wirings.FullyConnected(8), in_features=5), CfCCell(5, 8), WiredCfCCell(5, wiring)):
        h = torch.zeros(3, cell.state_size)
        x = torch.randn(3, 5)
        y, h1 = cell(x, h, 1.0)
        assert h1.shape == (3, cell.state_size) and y.shape[0] == 3
        y2, _ = cell(x, h1, torch.full((3, 1), 0.5))
        assert not torch.allclose(y, y2)


@pytest.mark.parametrize("kernel", ["native", "eager"])
@pytest.mark.parametrize("unfolds", [1, 6])
@pytest.mark.parametrize("wiring", ["full", "ncp"])
def test_fused_kernel_matches_generic_with_gradients(unfolds, wiring, kernel):
    if kernel == "native" and not native.available():
        pytest.skip("no C++ compiler")
    torch.manual_seed(0)
    w = wirings.FullyConnected(8) if wiring == "full" else wirings.AutoNCP(12, 2)
    fused = LTC(5, w, ode_unfolds=unfolds, kernel=kernel).double()
    generic = LTC(5, w, ode_unfolds=unfolds, fused=False).double()
    generic.load_state_dict(fused.state_dict())
    x = torch.randn(3, 6, 5, dtype=torch.float64)
    ts = torch.rand(3, 6, dtype=torch.float64) + 0.1
    resets = torch.zeros(3, 6, dtype=torch.bool)
    resets[1, 2] = True
    h0 = torch.randn(3, w.units, dtype=torch.float64) * 0.3
    y1, h1 = fused(x, h0, timespans=ts, resets=resets)
    y2, h2 = generic(x, h0, timespans=ts, resets=resets)
    torch.testing.assert_close(y1, y2)
    torch.testing.assert_close(h1, h2)
    (y1.square().sum() + h1.sum()).backward()
    (y2.square().sum() + h2.sum()).backward()
    for (name, p1), p2 in zip(fused.named_parameters(), generic.parameters()):
        torch.testing.assert_close(p1.grad, p2.grad, msg=name)


@pytest.mark.parametrize("kernel", ["native", "eager"])
def test_fused_kernel_gradcheck(kernel):
    if kernel == "native" and not native.available():
        pytest.skip("no C++ compiler")
    torch.manual_seed(0)
    m = LTC(3, wirings.AutoNCP(6, 1), ode_unfolds=2, kernel=kernel).double()
    x = torch.randn(2, 3, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, h: m(x, h)[0], (x, h0))


def test_every_parameter_gets_gradient():
    torch.manual_seed(0)
    for m in (LTC(5, wirings.AutoNCP(12, 2)), CfC(5, 8), CfC(5, wirings.AutoNCP(12, 2)), LTC(5, 6, mixed_memory=True)):
        y, _ = m(torch.randn(2, 4, 5))
        y.square().sum().backward()
        for name, p in m.named_parameters():
            if p.requires_grad:
                assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("call, match", [
    (lambda m: m(torch.randn(2, 4, 6)), r"input_size=5"),
    (lambda m: m(torch.randn(4)), r"\(B, T, 5\)"),
    (lambda m: m(torch.randn(2, 4, 5), torch.zeros(3, 8)), r"hx must have shape \(2, 8\)"),
    (lambda m: m(torch.randn(2, 4, 5), timespans=torch.ones(3, 4)), r"timespans must be"),
    (lambda m: m(torch.randn(2, 4, 5), resets=torch.zeros(4, 2, dtype=torch.bool)), r"resets must be"),
])
@pytest.mark.parametrize("make", [lambda: LTC(5, 8), lambda: CfC(5, 8)])
def test_bad_shapes_raise_value_error(make, call, match):
    with pytest.raises(ValueError, match=match):
        call(make())


@pytest.mark.parametrize("call, match", [
    (lambda: LTC(5, 8, solver="dopri5"), "Unknown solver"),
    (lambda: CfC(5, 8, mode="fast"), "Unknown CfC mode"),
    (lambda: CfC(5, 8, activation="swish"), "Unknown backbone activation"),
    (lambda: CfC(5, wirings.AutoNCP(12, 2), backbone_units=64), "wiring"),
    (lambda: LTC(5, 8, ode_unfolds=0), "ode_unfolds"),
    (lambda: LTC(5, 8, input_mapping=None, input_scale=0.2), "input_scale=0.2 needs input_mapping"),
    (lambda: LTC(5, 8, input_mapping="linear", input_shift=0.5), "input_shift=0.5 needs input_mapping 'affine'"),
    (lambda: LTC(5, 8, input_scale=float("nan")), "must be finite"),
    (lambda: LTC(5, 8, mixed_memory=True)(torch.randn(2, 3, 5), torch.zeros(2, 8)), r"tuple \(h, c\)"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_input_scale_and_shift_set_the_initial_input_mapping():
    """Defaults are ncps' (w 1, b 0); scale/shift only move the starting point, the mapping
    stays trainable, and the state_dict keys stay ncps'."""
    torch.manual_seed(0)
    default, scaled = LTC(5, 8).rnn_cell, LTC(5, 8, input_scale=0.2, input_shift=0.55).rnn_cell
    assert torch.equal(default.input_w, torch.ones(5)) and torch.equal(default.input_b, torch.zeros(5))
    assert torch.equal(scaled.input_w, torch.full((5,), 0.2)) and torch.equal(scaled.input_b, torch.full((5,), 0.55))
    assert scaled.input_w.requires_grad and scaled.input_b.requires_grad
    assert default.state_dict().keys() == scaled.state_dict().keys()
    assert torch.equal(LTC(5, 8, input_mapping="linear", input_scale=0.5).rnn_cell.input_w, torch.full((5,), 0.5))


def test_scaled_input_mapping_keeps_standardised_inputs_apart():
    """With ncps' start (w 1, b 0) the sensory sigmoids (mu in [0.3, 0.8], sigma in [3, 8])
    read all negative standardised inputs as nearly the same; scale 0.2, shift 0.55 keeps
    them apart: the sensory conductances of z = -2 and z = -0.5 differ over 10x more."""
    torch.manual_seed(0)
    z = torch.tensor([[-2.0] * 5, [-0.5] * 5])
    gaps = []
    for kwargs in ({}, dict(input_scale=0.2, input_shift=0.55)):
        torch.manual_seed(0)
        cell = LTC(5, 16, **kwargs).rnn_cell
        with torch.no_grad():
            _, g = cell._sensory(cell._map_inputs(z))
        gaps.append((g[0] - g[1]).abs().mean().item())
    assert gaps[1] > 10 * gaps[0]


def test_time_constants_are_positive_and_input_dependent():
    torch.manual_seed(0)
    cell = LTC(5, 8).rnn_cell
    h = torch.zeros(4, 8)
    tau_a = cell.time_constants(h, torch.zeros(4, 5))
    tau_b = cell.time_constants(h, torch.full((4, 5), 3.0))
    assert tau_a.shape == (4, 8) and (tau_a > 0).all()
    assert not torch.allclose(tau_a, tau_b)


def test_fully_connected_ltc_starts_with_time_constants_of_a_tenth_of_a_step():
    """What ``step_time`` in the policies is for: at ncps' initialisation a 32-neuron LTC
    settles in ~0.1 time unit, so with one unit per env step little state carries over."""
    torch.manual_seed(0)
    cell = LTC(4, 32).rnn_cell
    tau = cell.time_constants(torch.rand(256, 32) * 2 - 1, torch.randn(256, 4))
    assert 0.05 < tau.median().item() < 0.2 and tau.max().item() < 0.5


NO_GRAD_MODELS = {
    "ltc": lambda: LTC(5, 8), "ltc_ncp": lambda: LTC(5, wirings.AutoNCP(12, 2)),
    "cfc": lambda: CfC(5, 8), "cfc_ncp": lambda: CfC(5, wirings.AutoNCP(12, 2)),
}


@pytest.mark.parametrize("name", list(NO_GRAD_MODELS))
def test_no_grad_path_matches_and_follows_parameter_changes(name):
    """Rollouts run under no_grad on a cached path without autograd bookkeeping: same
    numbers as the training path, and the cache follows optimiser steps and load_state_dict."""
    torch.manual_seed(0)
    m = NO_GRAD_MODELS[name]()
    x, h0 = torch.randn(3, 7, 5), torch.randn(3, m.state_size) * 0.3
    resets = torch.zeros(3, 7, dtype=torch.bool)
    resets[1, 3] = True
    for kwargs in ({}, {"timespans": torch.rand(3, 7) + 0.1}, {"resets": resets}, {"timespans": 2.0}):
        y1, h1 = m(x, h0, **kwargs)
        with torch.no_grad():
            y2, h2 = m(x, h0, **kwargs)
        torch.testing.assert_close(y2, y1.detach())
        torch.testing.assert_close(h2, h1.detach())
    with torch.no_grad():
        before = m(x)[0]
    optimiser = torch.optim.SGD(m.parameters(), lr=0.1)
    m(x)[0].square().sum().backward()
    optimiser.step()
    with torch.no_grad():
        after = m(x)[0]
    assert (after - before).abs().max() > 1e-4
    torch.testing.assert_close(after, m(x)[0].detach())
    other = NO_GRAD_MODELS[name]()
    other.load_state_dict(m.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(other(x)[0], after)


@pytest.mark.parametrize("make", [
    lambda: CfC(5, 8), lambda: CfC(5, 8, mode="no_gate"), lambda: CfC(5, 8, activation="tanh"),
    lambda: CfC(5, wirings.AutoNCP(12, 2)), lambda: CfC(5, wirings.AutoNCP(12, 2), mode="no_gate"),
])
def test_fused_cfc_matches_autograd_path(make):
    torch.manual_seed(0)
    fused, plain = make().double(), make().double()
    plain.load_state_dict(fused.state_dict())
    for module in plain.modules():
        if isinstance(module, CfCCell):
            module.fused = False
    x = torch.randn(3, 7, 5, dtype=torch.float64)
    h0 = torch.randn(3, fused.state_size, dtype=torch.float64)
    resets = torch.zeros(3, 7, dtype=torch.bool)
    resets[1, 3] = True
    ts = torch.rand(3, 7, dtype=torch.float64)
    inputs = [(x.clone().requires_grad_(), h0.clone().requires_grad_()) for _ in range(2)]
    outs = [m(xi, hi, timespans=ts, resets=resets) for m, (xi, hi) in zip((fused, plain), inputs)]
    for y, h in outs:
        (y.square().sum() + h.sum()).backward()
    torch.testing.assert_close(outs[0][0], outs[1][0])
    for a, b in zip(inputs[0], inputs[1]):
        torch.testing.assert_close(a.grad, b.grad)
    for (name, p), q in zip(fused.named_parameters(), plain.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


def test_fused_cfc_gradcheck():
    torch.manual_seed(0)
    m = CfC(3, 4, backbone_units=6).double()
    x = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, h: m(x, h, timespans=0.7)[0], (x, h0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["ltc", "ltc_ncp", "cfc", "cfc_ncp"])
def test_solver_loop_has_no_host_synchronisation(name):
    m = NO_GRAD_MODELS[name]().cuda()
    x = torch.randn(4, 16, 5, device="cuda")
    ts = torch.rand(4, 16, device="cuda")
    resets = torch.rand(4, 16, device="cuda") < 0.1
    m(x, timespans=ts, resets=resets)  # warm-up (lazy initialisation may synchronise)
    torch.cuda.set_sync_debug_mode("error")
    try:
        y, _ = m(x, timespans=ts, resets=resets)
        y.square().sum().backward()
        with torch.no_grad():
            m(x, timespans=ts, resets=resets)
    finally:
        torch.cuda.set_sync_debug_mode("default")


SYNC_POINTS = ("item", "tolist", "numpy", "cpu", "nonzero", "__bool__", "__float__", "__int__", "__index__")
EAGER_MODELS = {   # what CUDA runs: the PyTorch LTC kernel, no CPU denormal switch (it reads a CPU tensor)
    "ltc": lambda: LTC(5, 8, kernel="eager", flush_denormal=False),
    "ltc_ncp": lambda: LTC(5, wirings.AutoNCP(12, 2), kernel="eager", flush_denormal=False),
    "cfc": lambda: CfC(5, 8), "cfc_ncp": lambda: CfC(5, wirings.AutoNCP(12, 2)),
}


@pytest.mark.parametrize("name", list(EAGER_MODELS))
def test_solver_loop_reads_no_tensor_value_on_the_host(name, monkeypatch):
    """CPU stand-in for the CUDA synchronisation test above (which needs a GPU): after a
    warm-up, a training step and a no-grad rollout of the GPU kernels call none of the
    Tensor methods that copy a value to the host (each would stall a CUDA stream)."""
    m = EAGER_MODELS[name]()
    x, ts = torch.randn(4, 16, 5), torch.rand(4, 16)
    resets = torch.rand(4, 16) < 0.1
    m(x, timespans=ts, resets=resets)[0].sum().backward()   # warm-up (lazy initialisation)
    calls: list[str] = []
    for method in SYNC_POINTS:
        original = getattr(torch.Tensor, method)

        def spy(self, *args, _name=method, _original=original, **kwargs):
            calls.append(_name)
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(torch.Tensor, method, spy)
    y, _ = m(x, timespans=ts, resets=resets)
    y.square().sum().backward()
    with torch.no_grad():
        m(x, timespans=ts, resets=resets)
    monkeypatch.undo()
    assert calls == [], f"host reads in the solver loop: {sorted(set(calls))}"


def test_denormal_flushing_is_scoped_to_the_ltc():
    """The CPU flushes denormals while an LTC runs and the setting is restored after, so
    code running beside it (numpy, hypothesis' float strategies) keeps IEEE semantics."""
    from liquid_rl.ltc import denormals_flushed

    assert not denormals_flushed()
    m = LTC(3, 5)
    y, _ = m(torch.randn(2, 4, 3))
    y.sum().backward()
    with torch.no_grad():
        m(torch.randn(2, 4, 3))
    assert not denormals_flushed()
    torch.set_flush_denormal(True)
    try:
        m(torch.randn(2, 4, 3))
        assert denormals_flushed()  # a setting made by the user is left alone
    finally:
        torch.set_flush_denormal(False)
