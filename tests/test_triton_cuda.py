"""The Triton LTC kernel compiled on a CUDA device: values and gradients against the eager
kernel at training sizes, no host synchronisation, and the model with kernel="triton".
Skipped where torch sees no GPU (the interpreter tests in test_triton_ltc.py run anywhere)."""

from __future__ import annotations

import pytest
import torch

from liquid_rl import LTC, wirings
from liquid_rl.ltc_fused import FusedSemiImplicitLTC

pytest.importorskip("triton")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

from liquid_rl.kernels.triton_ltc import TritonSemiImplicitLTC  # noqa: E402

GRAD_ARGS = (0, 2, 3, 5, 6, 7, 8)
WIRINGS = {"full": lambda: wirings.FullyConnected(64), "ncp": lambda: wirings.AutoNCP(19, 2),
           "random": lambda: wirings.Random(24, sparsity_level=0.7, random_seed=1)}


@pytest.fixture(autouse=True)
def compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)


def _case(wiring: str, B: int, T: int, dtype: torch.dtype) -> tuple[list, torch.Tensor]:
    torch.manual_seed(0)
    cell = LTC(3, WIRINGS[wiring](), kernel="eager").rnn_cell.to("cuda", dtype)
    N = cell.cm.shape[0]
    g = torch.Generator(device="cuda").manual_seed(1)
    sig, nsmu, M2 = (t.detach() for t in cell._synapse_tables())
    h = (torch.rand((T, B, 1), generator=g, device="cuda", dtype=dtype) + 0.2) / 6
    num0 = torch.randn((T, B, N), generator=g, device="cuda", dtype=dtype) * h
    den0 = 0.5 + torch.rand((T, B, N), generator=g, device="cuda", dtype=dtype)
    keep = (torch.rand((T, B, 1), generator=g, device="cuda") > 0.1).to(dtype)
    v0 = torch.randn((B, N), generator=g, device="cuda", dtype=dtype)
    cm = 0.5 + torch.rand(N, generator=g, device="cuda", dtype=dtype)
    return [v0, keep, num0, den0, h, cm, sig, nsmu, M2, cell._src_flat], cell._fanin


def _run(fn: type, kernel: str, args: list, fanin: torch.Tensor, unfolds: int) -> tuple:
    args = [a.clone().requires_grad_(True) if i in GRAD_ARGS else a for i, a in enumerate(args)]
    V = fn.apply(*args, unfolds, kernel, False, fanin)
    w = torch.randn(V.shape, dtype=V.dtype, device=V.device, generator=torch.Generator("cuda").manual_seed(5))
    return V.detach(), torch.autograd.grad((V * w).sum(), [args[i] for i in GRAD_ARGS])


@pytest.mark.parametrize("wiring", list(WIRINGS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_values_and_gradients_match_eager(wiring, dtype):
    """B = 37 (five programs, the last partial), T = 16, 6 unfolds, resets, per-sample dt;
    float32 against a float64 eager run, float64 against float64."""
    args, fanin = _case(wiring, 37, 16, dtype)
    got = _run(TritonSemiImplicitLTC, "triton", args, fanin, 6)
    want = _run(FusedSemiImplicitLTC, "eager", [a.double() if a.is_floating_point() else a for a in args], fanin, 6)
    valid = (torch.arange(args[6].shape[1], device="cuda")[None, :] < fanin[:, None]).double()
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    for i, (a, b) in enumerate(zip((got[0], *got[1]), (want[0], *want[1]))):
        a, b = a.double(), b
        if i == 7:                                                 # M2: real synapses only
            a, b = a * valid[:, None, :], b * valid[:, None, :]
        assert (a - b).abs().max().item() <= tol * (b.abs().max().item() + 1e-12), i


def test_no_host_synchronisation_for_a_step_and_a_training_pass():
    args, fanin = _case("ncp", 8, 1, torch.float32)
    _run(TritonSemiImplicitLTC, "triton", args, fanin, 6)          # warm-up: compiles both kernels
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.no_grad():
            TritonSemiImplicitLTC.apply(*args, 6, "triton", False, fanin)
        _run(TritonSemiImplicitLTC, "triton", args, fanin, 6)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_model_with_the_triton_kernel_matches_eager():
    try:
        ours = LTC(4, wirings.AutoNCP(16, 2), kernel="triton").cuda()
    except ValueError as e:
        pytest.skip(f"the kernel table has no 'triton' entry yet: {e}")
    ref = LTC(4, wirings.AutoNCP(16, 2), kernel="eager").cuda()
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(5, 12, 4, device="cuda")
    ts = torch.rand(5, 12, device="cuda") + 0.5
    outs = []
    for m in (ours, ref):
        y, h = m(x, timespans=ts)
        y.square().sum().backward()
        outs.append((y.detach(), h.detach(), [p.grad.clone() for p in m.parameters()]))
    torch.testing.assert_close(outs[0][0], outs[1][0], rtol=1e-4, atol=1e-5)
    for a, b in zip(outs[0][2], outs[1][2]):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("backbone", [True, False])
def test_cfc_recurrence_matches_fused_cfc(backbone):
    """The Triton CfC at CfC-64 sizes (backbone 128, or wired Z = 4H) against FusedCfC."""
    from liquid_rl.cfc_fused import FusedCfC
    from liquid_rl.kernels.triton_cfc import TritonCfC

    g = torch.Generator(device="cuda").manual_seed(0)
    T, B, H = 16, 37, 64
    Z = 128 if backbone else 4 * H

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, device="cuda")

    keep = (torch.rand(T, B, 1, generator=g, device="cuda") > 0.1).float()
    ts = torch.rand(T, B, 1, generator=g, device="cuda") + 0.5
    args = [r(T, B, Z), r(B, H), keep, ts, r(H, Z) * 0.1, r(4 * H, Z) * 0.1 if backbone else None,
            r(4 * H) if backbone else None, False]
    outs = []
    for fn in (TritonCfC, FusedCfC):
        grad_at = [i for i in (0, 1, 4, 5, 6) if args[i] is not None]
        a = [x.clone().requires_grad_(True) if i in grad_at else x for i, x in enumerate(args)]
        hs = fn.apply(*a)
        grads = torch.autograd.grad(hs.square().sum(), [a[i] for i in grad_at])
        outs.append((hs.detach(), grads))
    torch.testing.assert_close(outs[0][0], outs[1][0], rtol=1e-4, atol=1e-5)
    for a, b in zip(outs[0][1], outs[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)
