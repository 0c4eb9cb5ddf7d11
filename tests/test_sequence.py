"""The sequence API every liquid model shares (liquid_rl.sequence): shapes, elapsed-time
and reset forms, dtypes, devices, the one-step cells, the no-grad path, argument errors."""

import pytest
import torch

from liquid_rl import CfC, CfCCell, LTC, LTCCell, WiredCfCCell, wirings


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


EAGER_MODELS = {   # what CUDA runs: the PyTorch LTC kernel, no CPU denormal switch (it reads a CPU tensor)
    "ltc": lambda: LTC(5, 8, kernel="eager", flush_denormal=False),
    "ltc_ncp": lambda: LTC(5, wirings.AutoNCP(12, 2), kernel="eager", flush_denormal=False),
    "cfc": lambda: CfC(5, 8), "cfc_ncp": lambda: CfC(5, wirings.AutoNCP(12, 2)),
}


@pytest.mark.parametrize("name", list(EAGER_MODELS))
def test_solver_loop_reads_no_tensor_value_on_the_host(name, host_reads):
    """CPU stand-in for the CUDA synchronisation test above (which needs a GPU): after a
    warm-up, a training step and a no-grad rollout of the GPU kernels call none of the
    Tensor methods that copy a value to the host (each would stall a CUDA stream)."""
    m = EAGER_MODELS[name]()
    x, ts = torch.randn(4, 16, 5), torch.rand(4, 16)
    resets = torch.rand(4, 16) < 0.1
    m(x, timespans=ts, resets=resets)[0].sum().backward()   # warm-up (lazy initialisation)
    host_reads.start()
    y, _ = m(x, timespans=ts, resets=resets)
    y.square().sum().backward()
    with torch.no_grad():
        m(x, timespans=ts, resets=resets)
    calls = host_reads.stop()
    assert calls == [], f"host reads in the solver loop: {sorted(set(calls))}"
