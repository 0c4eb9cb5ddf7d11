"""The Triton CfC recurrence under Triton's interpreter on CPU tensors against the PyTorch
fused CfC (values and gradients), and its code generation for sm_90."""

from __future__ import annotations

import inspect

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from liquid_rl.cfc_fused import FusedCfC

pytest.importorskip("triton")
from liquid_rl.kernels import triton_cfc  # noqa: E402
from liquid_rl.kernels.triton_cfc import TritonCfC  # noqa: E402


@pytest.fixture(autouse=True)
def interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "1")


def _case(T: int, B: int, H: int, Z: int, backbone: bool, resets: bool, ts_mode: str | None, no_gate: bool,
          seed: int = 0, dtype: torch.dtype = torch.float64) -> list:
    """FusedCfC's arguments: Z = 4H without a backbone; ts per sample ("b"), shared ("1") or None."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=dtype)

    Z = Z if backbone else 4 * H
    keep = (torch.rand(T, B, 1, generator=g) > 0.3).to(dtype) if resets else None
    ts = None if ts_mode is None else torch.rand(T, B if ts_mode == "b" else 1, 1, generator=g, dtype=dtype) + 0.5
    return [r(T, B, Z), r(B, H), keep, ts, r(H, Z) * 0.3, r(4 * H, Z) * 0.3 if backbone else None,
            r(4 * H) if backbone else None, no_gate]


def _run(fn: type, args: list) -> tuple:
    grad_at = [i for i in (0, 1, 4, 5, 6) if args[i] is not None]
    args = [a.clone().requires_grad_(True) if i in grad_at else a for i, a in enumerate(args)]
    hs = fn.apply(*args)
    w = torch.randn(hs.shape, dtype=hs.dtype, generator=torch.Generator().manual_seed(3))
    return hs.detach(), torch.autograd.grad((hs * w).sum(), [args[i] for i in grad_at])


def _assert_close(got: tuple, want: tuple, tol: float) -> None:
    torch.testing.assert_close(got[0], want[0], rtol=tol, atol=tol)
    for a, b in zip(got[1], want[1]):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("backbone", [True, False])
@pytest.mark.parametrize("resets, ts_mode, no_gate", [(True, "b", False), (False, None, True), (True, "1", True)])
def test_values_and_gradients_match_fused_cfc(backbone, resets, ts_mode, no_gate):
    """B = 5 (one program of 16 rows, mostly padding), H = 6 (padded to 16)."""
    args = _case(3, 5, 6, 10, backbone, resets, ts_mode, no_gate)
    _assert_close(_run(TritonCfC, args), _run(FusedCfC, args), 1e-12)


def test_backbone_in_chunks_and_several_programs(monkeypatch):
    """Z = 40 in chunks of 16 (the last one partial), B = 19 over two programs."""
    monkeypatch.setattr(triton_cfc, "BLOCK_ZC", 16)
    args = _case(2, 19, 5, 40, True, True, "b", False, seed=4)
    _assert_close(_run(TritonCfC, args), _run(FusedCfC, args), 1e-12)


def test_no_grad_path_and_float32():
    args = _case(2, 3, 4, 8, True, True, "b", False, dtype=torch.float32)
    with torch.no_grad():
        hs = TritonCfC.apply(*args)
        want = FusedCfC.apply(*args)
    assert hs.grad_fn is None
    torch.testing.assert_close(hs, want, rtol=1e-5, atol=1e-6)


@settings(max_examples=6, deadline=None)
@given(T=st.integers(1, 3), B=st.integers(1, 4), H=st.integers(1, 5), backbone=st.booleans(), resets=st.booleans(),
       ts_mode=st.sampled_from([None, "1", "b"]), no_gate=st.booleans(), seed=st.integers(0, 1000))
def test_any_shape_matches_fused_cfc(T, B, H, backbone, resets, ts_mode, no_gate, seed):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRITON_INTERPRET", "1")
        args = _case(T, B, H, 7, backbone, resets, ts_mode, no_gate, seed=seed)
        _assert_close(_run(TritonCfC, args), _run(FusedCfC, args), 1e-12)


@pytest.mark.parametrize("backbone", [True, False])
def test_kernels_compile_for_sm90_within_shared_memory(backbone, monkeypatch, tmp_path):
    """At the default CfC-64 (backbone 128 units, or a wired Z = 4H = 256), both kernels
    compile for sm_90 and fit an H100/H200's 227 KB of shared memory per block (held whole,
    the backbone's weights would need 336 KB: hence the chunks)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path))
    Z = 128 if backbone else 256
    bb, bh, bz, _ = triton_cfc._tiles(1024, 64, Z)
    for fn, consts in ((triton_cfc._cfc_forward_kernel, dict(HAS_TS=True, NO_GATE=False, RECORD=True)),
                       (triton_cfc._cfc_backward_kernel, {})):
        consts = dict(HAS_KEEP=True, HAS_W=backbone, BLOCK_B=bb, BLOCK_H=bh, BLOCK_ZC=bz, **consts)
        signature = {name: "constexpr" if name in consts else "i32" if name in ("T", "B", "H", "Z") else "*fp32"
                     for name in inspect.signature(fn).parameters}
        compiled = triton.compile(ASTSource(triton_cfc._COMPILED[fn], signature, consts),
                                  target=GPUTarget("cuda", 90, 32), options={"num_warps": 8})
        assert compiled.asm["cubin"] and compiled.metadata.shared <= 227 * 1024, (fn.__name__, compiled.metadata.shared)


@pytest.mark.parametrize("mode", ["default", "no_gate"])
def test_cfc_routes_through_the_triton_recurrence_where_it_runs(mode, monkeypatch):
    """``CfC`` on a device where Triton runs (CUDA; here the interpreter stands in for it)
    gives the numbers and gradients of the PyTorch path, with resets and per-sample dt."""
    import liquid_rl.cfc as cfc_module
    from liquid_rl import CfC

    torch.manual_seed(0)
    model = CfC(3, 6, mode=mode, batch_first=True).double()
    x = torch.randn(2, 4, 3, dtype=torch.float64)
    ts = torch.rand(2, 4, dtype=torch.float64) + 0.5
    resets = torch.tensor([[False, False, True, False], [False, True, False, False]])

    def outputs():
        model.zero_grad()
        y, h = model(x, timespans=ts, resets=resets)
        (y.square().sum() + h.sum()).backward()
        with torch.no_grad():
            y_ng, _ = model(x, timespans=ts, resets=resets)
        return y.detach(), y_ng, [p.grad.clone() for p in model.parameters() if p.grad is not None]

    want = outputs()
    monkeypatch.setattr(cfc_module, "triton_recurrence", lambda device: TritonCfC)
    got = outputs()
    torch.testing.assert_close(got[0], want[0], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(got[1], want[1], rtol=1e-10, atol=1e-10)
    assert len(got[2]) == len(want[2])
    for a, b in zip(got[2], want[2]):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    monkeypatch.undo()
    assert cfc_module.triton_recurrence(torch.device("cpu")) is None   # the CPU keeps the PyTorch path
