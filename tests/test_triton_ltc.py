"""The Triton LTC kernel under Triton's interpreter on CPU tensors: values and gradients
against the PyTorch ("eager") and C++ ("native") kernels, one launch per sequence, and
the errors where it cannot run. Cases are tiny: the interpreter runs each op in numpy."""

from __future__ import annotations

from typing import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from liquid_rl import LTC, native, wirings
from liquid_rl.ltc_fused import FusedSemiImplicitLTC

pytest.importorskip("triton")
from liquid_rl.kernels import triton_ltc  # noqa: E402
from liquid_rl.kernels.triton_ltc import TritonSemiImplicitLTC  # noqa: E402

WIRINGS: dict[str, Callable[[], wirings.Wiring]] = {
    "full": lambda: wirings.FullyConnected(7),
    "ncp": lambda: wirings.AutoNCP(9, 2),
    "random": lambda: wirings.Random(10, sparsity_level=0.6, random_seed=3),
}
# The differentiable arguments of apply: v0, num0, den0, cm, sig, nsmu, M2.
GRAD_ARGS = (0, 2, 3, 5, 6, 7, 8)
NAMES = ("v0", "num0", "den0", "cm", "sig", "nsmu", "M2")


@pytest.fixture(autouse=True)
def interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "1")


def _case(wiring: str, B: int, T: int, dtype: torch.dtype = torch.float64, resets: bool = True,
          per_sample_dt: bool = True, seed: int = 0) -> tuple[list, torch.Tensor]:
    """The arguments of ``apply`` (without unfolds, kernel, flush, fanin) from a real LTC cell,
    and the cell's fanin; inputs drawn like a run of the model would give them."""
    torch.manual_seed(seed)
    cell = LTC(3, WIRINGS[wiring](), kernel="eager").rnn_cell.to(dtype)
    with torch.no_grad():
        cell.w.uniform_(0.2, 1.5)                                 # synapses that matter
    N = cell.cm.shape[0]
    g = torch.Generator().manual_seed(seed + 1)
    sig, nsmu, M2 = (t.detach() for t in cell._synapse_tables())
    h = (torch.rand((T, B if per_sample_dt else 1, 1), generator=g, dtype=dtype) + 0.2) / 2
    num0 = torch.randn((T, B, N), generator=g, dtype=dtype) * h
    den0 = 0.5 + torch.rand((T, B, N), generator=g, dtype=dtype)
    keep = (torch.rand((T, B, 1), generator=g) > 0.4).to(dtype) if resets else None
    v0 = torch.randn((B, N), generator=g, dtype=dtype)
    cm = 0.5 + torch.rand(N, generator=g, dtype=dtype)
    return [v0, keep, num0, den0, h, cm, sig, nsmu, M2, cell._src_flat], cell._fanin


def _run(fn: type, kernel: str, args: list, fanin: torch.Tensor, unfolds: int, seed: int = 5) -> tuple:
    """V and the gradients of a random linear function of V, through ``fn.apply``."""
    args = [a.clone().requires_grad_(True) if i in GRAD_ARGS else a for i, a in enumerate(args)]
    V = fn.apply(*args, unfolds, kernel, False, fanin)
    w = torch.randn(V.shape, dtype=V.dtype, generator=torch.Generator().manual_seed(seed))
    grads = torch.autograd.grad((V * w).sum(), [args[i] for i in GRAD_ARGS])
    return V.detach(), grads


def _valid(args: list, fanin: torch.Tensor) -> torch.Tensor:
    """(N, K) 1 on real synapses, 0 on padding."""
    return (torch.arange(args[6].shape[1])[None, :] < fanin[:, None]).to(args[0].dtype)


def _assert_close(got: tuple, want: tuple, valid: torch.Tensor, tol: float) -> None:
    """Values and gradients equal to ``tol`` relative to each tensor's scale; M2's gradient
    on real synapses only (the reference kernels compute it on padding too, which the cell
    masks; the Triton kernel gives 0 there)."""
    (V, g), (V_ref, g_ref) = got, want
    torch.testing.assert_close(V, V_ref, rtol=tol, atol=tol)
    for name, a, b in zip(NAMES, g, g_ref):
        if name == "M2":
            a, b = a * valid[:, None, :], b * valid[:, None, :]
        scale = b.abs().max().item() + 1e-12
        assert (a - b).abs().max().item() <= tol * scale, (name, (a - b).abs().max().item(), scale)


@pytest.mark.parametrize("wiring", list(WIRINGS))
@pytest.mark.parametrize("unfolds", [1, 2])
def test_float64_values_and_gradients_match_eager(wiring, unfolds):
    """B = 5 (not a multiple of 8 rows per program), N = 7, 9, 10 (not powers of two),
    resets inside the sequence and a per-sample elapsed time."""
    args, fanin = _case(wiring, B=5, T=3)
    _assert_close(_run(TritonSemiImplicitLTC, "triton", args, fanin, unfolds),
                  _run(FusedSemiImplicitLTC, "eager", args, fanin, unfolds), _valid(args, fanin), 1e-10)


@pytest.mark.skipif(not native.available(), reason="no C++ compiler")
@pytest.mark.parametrize("wiring", list(WIRINGS))
def test_float32_values_and_gradients_match_native(wiring):
    """Against the C++ kernel in float32, batch-major (B = 4) and neuron-major (B = 17) paths."""
    for B in (4, 17):
        args, fanin = _case(wiring, B=B, T=3, dtype=torch.float32, per_sample_dt=B > 4)
        _assert_close(_run(TritonSemiImplicitLTC, "triton", args, fanin, 2),
                      _run(FusedSemiImplicitLTC, "native", args, fanin, 2), _valid(args, fanin), 2e-5)


@pytest.mark.parametrize("wiring", ["full", "random"])
def test_several_programs_and_synapse_chunks_with_partial_tails(wiring):
    """Two rows per program: B = 5 runs three programs, the last with one real row, whose
    weight gradients are summed over programs; synapses in chunks of 4, so the last chunk
    of K = 7 (full) or of the random fan-ins is partly padding."""
    args, fanin = _case(wiring, B=5, T=2)
    v0, keep, num0, den0, h, cm, sig, nsmu, M2, src = args
    tiles = triton_ltc.blocks(5, *sig.shape, block_b=2, block_k=4)
    assert tiles.programs == 3 and sig.shape[1] % tiles.k != 0
    V, states, dens = triton_ltc.ltc_forward(v0, keep, num0, den0, h, cm, sig, nsmu, M2, src, fanin, 2,
                                             save=True, tiles=tiles)
    go = torch.randn(V.shape, dtype=V.dtype, generator=torch.Generator().manual_seed(2))
    got = triton_ltc.ltc_backward(go, keep, h, cm, sig, nsmu, M2, src, fanin, V, states, dens, tiles=tiles)
    ref_args = [a.clone().requires_grad_(True) if i in GRAD_ARGS else a for i, a in enumerate(args)]
    V_ref = FusedSemiImplicitLTC.apply(*ref_args, 2, "eager", False, fanin)
    want = torch.autograd.grad((V_ref * go).sum(), [ref_args[i] for i in GRAD_ARGS])
    torch.testing.assert_close(V, V_ref.detach(), rtol=1e-10, atol=1e-10)
    valid = _valid(args, fanin)
    for name, a, b in zip(NAMES, got, want):
        if name == "M2":
            a, b = a * valid[:, None, :], b * valid[:, None, :]
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10, msg=name)


def test_one_launch_per_sequence_forward_and_backward(monkeypatch):
    """T = 1 (a rollout step) and T = 4 alike: one forward launch, one backward launch."""
    launches: list[str] = []
    real = triton_ltc._kernel

    def counting(fn, device):
        launches.append(fn.__name__)
        return real(fn, device)

    monkeypatch.setattr(triton_ltc, "_kernel", counting)
    for T in (1, 4):
        launches.clear()
        args, fanin = _case("ncp", B=3, T=T)
        _run(TritonSemiImplicitLTC, "triton", args, fanin, 2)
        assert launches == ["_ltc_forward_kernel", "_ltc_backward_kernel"], (T, launches)


def test_one_step_and_no_grad_path_match_eager():
    """T = 1 with an initial state and no resets; under no_grad no state is saved and the
    values are those of the grad path."""
    args, fanin = _case("random", B=1, T=1, resets=False)
    with torch.no_grad():
        V = TritonSemiImplicitLTC.apply(*args, 3, "triton", False, fanin)
        V_ref = FusedSemiImplicitLTC.apply(*args, 3, "eager", False, fanin)
    assert V.grad_fn is None
    torch.testing.assert_close(V, V_ref, rtol=1e-12, atol=1e-12)
    V_grad, _ = _run(TritonSemiImplicitLTC, "triton", args, fanin, 3)
    torch.testing.assert_close(V, V_grad, rtol=0, atol=0)


@settings(max_examples=8, deadline=None)
@given(B=st.integers(1, 5), T=st.integers(1, 3), wiring=st.sampled_from(list(WIRINGS)), unfolds=st.integers(1, 2),
       resets=st.booleans(), per_sample_dt=st.booleans(), seed=st.integers(0, 1000))
def test_any_shape_matches_eager(B, T, wiring, unfolds, resets, per_sample_dt, seed):
    with pytest.MonkeyPatch.context() as mp:   # hypothesis runs outside the function-scoped fixture
        mp.setenv("TRITON_INTERPRET", "1")
        args, fanin = _case(wiring, B=B, T=T, resets=resets, per_sample_dt=per_sample_dt, seed=seed)
        _assert_close(_run(TritonSemiImplicitLTC, "triton", args, fanin, unfolds),
                      _run(FusedSemiImplicitLTC, "eager", args, fanin, unfolds), _valid(args, fanin), 1e-10)


def test_errors_name_what_to_install_or_set(monkeypatch):
    x = torch.zeros(2, 3)
    triton_ltc.check(x)                                            # interpreted: fine
    with pytest.raises(ValueError, match="float32 and float64"):
        triton_ltc.check(x.half())
    monkeypatch.delenv("TRITON_INTERPRET")
    assert triton_ltc.available() == torch.cuda.is_available()
    with pytest.raises(ValueError, match="set TRITON_INTERPRET=1"):
        triton_ltc.check(x)
    args, fanin = _case("full", B=2, T=1)
    with pytest.raises(ValueError, match="needs a CUDA tensor"):
        TritonSemiImplicitLTC.apply(*args, 1, "triton", False, fanin)
    monkeypatch.setattr(triton_ltc, "triton", None)
    assert not triton_ltc.available()
    with pytest.raises(ValueError, match=r"pip install 'liquid-rl\[gpu\]'"):
        triton_ltc.check(x)


@pytest.mark.parametrize("dtype", ["fp32", "fp64"])
def test_kernels_compile_for_sm90_without_a_gpu(dtype, monkeypatch, tmp_path):
    """The interpreter checks the numbers, not the code generation: compile both kernels for
    an H100/H200 (sm_90) to a cubin with Triton's bundled ptxas, at the tile sizes of batch
    1024 (8 warps) and batch 1; the unfolds synchronise the program with a barrier."""
    import inspect

    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path))
    ints = ("T", "B", "N", "K", "U", "Bh", "h_sb")
    for B in (1024, 1):
        tiles = triton_ltc.blocks(B, 64, 64)
        for fn, extra in ((triton_ltc._ltc_forward_kernel, {"SAVE": B > 1}), (triton_ltc._ltc_backward_kernel, {})):
            consts = dict(HAS_KEEP=True, HAS_FANIN=True, BLOCK_B=tiles.b, BLOCK_N=tiles.n, BLOCK_K=tiles.k, **extra)
            signature = {name: "constexpr" if name in consts else "i32" if name in ints
                         else "*i64" if name in ("src", "fanin") else f"*{dtype}"
                         for name in inspect.signature(fn).parameters}
            compiled = triton.compile(ASTSource(triton_ltc._COMPILED[fn], signature, consts),
                                      target=GPUTarget("cuda", 90, 32), options={"num_warps": tiles.warps})
            assert compiled.asm["cubin"] and "bar.sync" in compiled.asm["ptx"], (fn.__name__, B)


def test_model_with_the_triton_kernel_on_cpu_tensors():
    """With TRITON_INTERPRET=1 anyone can run LTC(..., kernel="triton") on the CPU."""
    try:
        ours = LTC(3, wirings.AutoNCP(9, 2), ode_unfolds=2, kernel="triton").double()
    except ValueError as e:
        pytest.skip(f"the kernel table has no 'triton' entry yet: {e}")
    ref = LTC(3, wirings.AutoNCP(9, 2), ode_unfolds=2, kernel="eager").double()
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(3, 4, 3, dtype=torch.float64)
    ts = torch.rand(3, 4, dtype=torch.float64) + 0.5
    resets = torch.tensor([[False, True, False, False]] * 3)
    outs = []
    for m in (ours, ref):
        y, h = m(x, timespans=ts, resets=resets)
        y.square().sum().backward()
        with torch.no_grad():
            y_ng, _ = m(x, timespans=ts, resets=resets)
        outs.append((y.detach(), h.detach(), y_ng, [p.grad.clone() for p in m.parameters()]))
    for a, b in zip(outs[0][:3], outs[1][:3]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    for a, b in zip(outs[0][3], outs[1][3]):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


def test_model_errors_name_what_to_set_or_install(monkeypatch):
    """kernel="triton" on a CPU tensor without the interpreter, and without Triton at all:
    one ValueError each, at the first call (the device is known only then)."""
    import subprocess
    import sys

    monkeypatch.delenv("TRITON_INTERPRET")
    m = LTC(3, 6, kernel="triton")
    with pytest.raises(ValueError, match="set TRITON_INTERPRET=1"):
        m(torch.randn(2, 3, 3))
    code = ("import sys; sys.modules['triton'] = None\n"
            "import torch\nfrom liquid_rl import LTC\n"
            "try:\n    LTC(3, 6, kernel='triton')(torch.randn(2, 3, 3))\n"
            "except ValueError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "needs Triton: pip install 'liquid-rl[gpu]'" in out.stdout, out.stdout + out.stderr


def test_training_pass_and_rollout_read_no_tensor_value_on_the_host(monkeypatch, host_reads):
    """CPU stand-in for the CUDA synchronisation test (test_triton_cuda.py): with
    kernel="triton", a training pass and a no-grad rollout step call none of the Tensor
    methods that copy a value to the host, outside the kernel launches themselves (which
    the interpreter runs in numpy; compiled, they are asynchronous launches)."""
    m = LTC(5, wirings.AutoNCP(12, 2), ode_unfolds=2, kernel="triton", flush_denormal=False)
    x, ts = torch.randn(2, 3, 5), torch.rand(2, 3)
    resets = torch.rand(2, 3) < 0.3
    m(x, timespans=ts, resets=resets)[0].sum().backward()      # warm-up (lazy initialisation)
    inside = [False]
    real = triton_ltc._kernel

    def launcher(fn, device):
        grid_fn = real(fn, device)

        def launch(grid):
            def run(*args, **kwargs):
                inside[0] = True
                try:
                    return grid_fn[grid](*args, **kwargs)
                finally:
                    inside[0] = False
            return run
        return type("Launch", (), {"__getitem__": lambda self, grid: launch(grid)})()

    monkeypatch.setattr(triton_ltc, "_kernel", launcher)
    host_reads.start(skip=lambda: inside[0])
    y, _ = m(x, timespans=ts, resets=resets)
    y.square().sum().backward()
    with torch.no_grad():
        m(x[:, :1], timespans=ts[:, :1])
    calls = host_reads.stop()
    assert calls == [], f"host reads around the Triton kernel: {sorted(set(calls))}"
