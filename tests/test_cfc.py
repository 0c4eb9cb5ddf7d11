"""The CfC (liquid_rl.cfc): the fused recurrence against the autograd path (values and
gradients) and argument errors."""

import pytest
import torch

from liquid_rl import CfC, CfCCell, wirings


@pytest.mark.parametrize("call, match", [
    (lambda: CfC(5, 8, mode="fast"), "Unknown CfC mode"),
    (lambda: CfC(5, 8, activation="swish"), "Unknown backbone activation"),
    (lambda: CfC(5, wirings.AutoNCP(12, 2), backbone_units=64), "wiring"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


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


def test_small_no_grad_batches_run_on_one_thread_and_the_count_is_restored(monkeypatch):
    """A rollout-sized batch is not split over torch's threads (on a busy machine the
    hand-offs cost more than the arithmetic); a training-sized one keeps every thread."""
    import liquid_rl.cfc as cfc_module

    seen: list[int] = []
    original = cfc_module.recurrence

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(cfc_module, "recurrence", spy)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        m = CfC(2, 16)
        with torch.no_grad():
            m(torch.randn(256, 4, 2))              # 256 x 64 elements per op: small
            m(torch.randn(4096, 2, 2))             # 4096 x 64: large
        assert seen == [1, 2] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
