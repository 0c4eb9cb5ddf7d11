"""The native CPU LTC kernel: same numbers as the PyTorch kernel, the no-grad path, the
fallback without a compiler, and the build cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from liquid_rl import LTC, kernels, native, wirings

pytestmark = pytest.mark.skipif(not native.available(), reason="no C++ compiler")


def _pair(wiring: wirings.Wiring, dtype: torch.dtype = torch.float32, unfolds: int = 6) -> tuple[LTC, LTC]:
    torch.manual_seed(0)
    ours = LTC(4, wiring, ode_unfolds=unfolds, kernel="native").to(dtype)
    ref = LTC(4, wiring, ode_unfolds=unfolds, kernel="eager").to(dtype)
    ref.load_state_dict(ours.state_dict())
    return ours, ref


@pytest.mark.parametrize("wiring", [lambda: wirings.FullyConnected(16), lambda: wirings.AutoNCP(19, 1),
                                    lambda: wirings.Random(10, sparsity_level=0.6, random_seed=3)])
@pytest.mark.parametrize("per_sample_time", [False, True])
@pytest.mark.parametrize("batch", [5, 19])    # batch-major and neuron-major kernel paths
def test_float32_values_and_gradients_match_eager(wiring, per_sample_time, batch):
    """Both float32 kernels against a float64 run of the same weights: the native kernel's
    error is of float32 size, like the eager kernel's (summation order differs, so the two
    float32 results are compared through the reference, not to each other)."""
    ours, ref = _pair(wiring())
    exact = LTC(4, ours.rnn_cell._wiring, kernel="eager").double()
    exact.load_state_dict(ours.state_dict())
    x = torch.randn(batch, 9, 4)
    ts = torch.rand(batch, 9) + 0.2 if per_sample_time else None
    resets = torch.zeros(batch, 9, dtype=torch.bool)
    resets[2, 4] = True
    h0 = torch.randn(batch, ours.state_size) * 0.2
    outs = []
    for m in (ours, ref, exact):
        dtype = next(m.parameters()).dtype
        y, h = m(x.to(dtype), h0.to(dtype), timespans=None if ts is None else ts.to(dtype), resets=resets)
        (y.square().sum() + h.sum()).backward()
        outs.append({"y": y.detach(), "h": h.detach(), **{n: p.grad for n, p in m.named_parameters()}})
    for name, want in outs[2].items():
        scale = want.abs().max().item() + 1e-12
        err_native = (outs[0][name].double() - want).abs().max().item() / scale
        err_eager = (outs[1][name].double() - want).abs().max().item() / scale
        assert err_native < max(1e-4, 10 * err_eager), (name, err_native, err_eager)


@pytest.mark.parametrize("batch", [3, 11])
def test_no_grad_path_matches_grad_path_and_eager_inference(batch):
    ours, ref = _pair(wirings.AutoNCP(12, 2))
    x = torch.randn(batch, 7, 4)
    ts = torch.rand(batch, 7) + 0.5
    y_grad, h_grad = ours(x, timespans=ts)
    with torch.no_grad():
        y_ng, h_ng = ours(x, timespans=ts)
        y_ref, h_ref = ref(x, timespans=ts)
    torch.testing.assert_close(y_ng, y_grad.detach())
    torch.testing.assert_close(h_ng, h_grad.detach())
    torch.testing.assert_close(y_ng, y_ref, atol=2e-6, rtol=1e-5)


def test_step_by_step_equals_sequence():
    ours, _ = _pair(wirings.FullyConnected(8))
    x = torch.randn(2, 5, 4)
    y_seq, h_seq = ours(x)
    h = torch.zeros(2, 8)
    with torch.no_grad():
        for t in range(5):
            y_t, h = ours.rnn_cell(x[:, t], h)
            torch.testing.assert_close(y_t, y_seq[:, t].detach(), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(h, h_seq.detach(), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("batch", [2, 8])
def test_saturated_synapses_stay_finite(batch):
    ours, _ = _pair(wirings.FullyConnected(6))
    with torch.no_grad():
        ours.rnn_cell.sigma.mul_(1e4)     # sigmoid arguments far beyond the +-80 clamp
    y, h = ours(torch.randn(batch, 4, 4) * 100)
    (y.sum() + h.sum()).backward()
    assert torch.isfinite(y).all() and all(torch.isfinite(p.grad).all() for p in ours.parameters())


def test_auto_resolves_to_native_on_cpu_and_eager_elsewhere():
    def resolve(name: str, device: str, dtype: torch.dtype) -> str:
        return kernels.resolve(name, torch.device(device), dtype).name

    assert resolve("auto", "cpu", torch.float32) == "native"
    assert resolve("auto", "cpu", torch.bfloat16) == "eager"
    assert resolve("native", "cuda", torch.float32) == "eager"
    assert resolve("compiled", "cpu", torch.float32) == "compiled"
    assert resolve("triton", "cpu", torch.float32) == "triton"   # as named; it raises there if it cannot run
    with pytest.raises(ValueError, match="Unknown LTC kernel 'fast'"):
        LTC(3, 4, kernel="fast")


def test_without_compiler_auto_falls_back_and_native_is_refused(tmp_path):
    code = (
        "import warnings, torch\n"
        "from liquid_rl import LTC\n"
        "from liquid_rl import kernels\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    m = LTC(3, 4)\n"
        "    y, _ = m(torch.randn(2, 5, 3))\n"
        "assert kernels.resolve('auto', torch.device('cpu'), torch.float32).name == 'eager'\n"
        "assert any('no C++ compiler' in str(x.message) for x in w), [str(x.message) for x in w]\n"
        "try:\n"
        "    LTC(3, 4, kernel='native')\n"
        "except ValueError as e:\n"
        "    assert 'needs a C++ compiler' in str(e)\n"
        "else:\n"
        "    raise SystemExit('native accepted without a compiler')\n"
    )
    env = dict(os.environ, CXX="", PATH=str(tmp_path), LIQUID_RL_CACHE=str(tmp_path / "cache"))
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300)


def test_build_cache_is_reused_and_written_atomically(tmp_path):
    env = dict(os.environ, LIQUID_RL_CACHE=str(tmp_path))
    code = "from liquid_rl import native; assert native.available()"
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env) for _ in range(2)]   # concurrent builds
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    built = sorted(p.name for p in tmp_path.iterdir())
    assert len(built) == 1 and built[0].startswith("ltc_cpu_") and built[0].endswith(".so"), built
    mtime = (tmp_path / built[0]).stat().st_mtime_ns
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300)
    assert (tmp_path / built[0]).stat().st_mtime_ns == mtime      # loaded, not rebuilt


def test_kernel_restores_the_callers_denormal_setting():
    from liquid_rl.ltc import denormals_flushed

    ours, _ = _pair(wirings.FullyConnected(6))
    assert not denormals_flushed()
    with torch.no_grad():
        ours(torch.randn(2, 3, 4))
    ours(torch.randn(2, 3, 4))[0].sum().backward()
    assert not denormals_flushed()


def test_dense_grouped_backward_passes_gradcheck():
    """Fully connected, batch 6: one group of 4 samples in the grouped backward, 2 alone;
    with resets and per-sample elapsed times."""
    torch.manual_seed(0)
    m = LTC(3, 5, ode_unfolds=2, kernel="native").double()
    x = torch.randn(6, 3, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    ts = torch.rand(6, 3, dtype=torch.float64) + 0.5
    resets = torch.zeros(6, 3, dtype=torch.bool)
    resets[1, 2] = resets[5, 1] = True
    assert torch.autograd.gradcheck(lambda x, h: m(x, h, timespans=ts, resets=resets)[0], (x, h0))
    m.zero_grad()
    m(x, h0, timespans=ts, resets=resets)[0].square().sum().backward()
    grads = {n: p.grad.clone() for n, p in m.named_parameters()}
    eager = LTC(3, 5, ode_unfolds=2, kernel="eager").double()
    eager.load_state_dict(m.state_dict())
    eager(x, h0, timespans=ts, resets=resets)[0].square().sum().backward()
    for n, p in eager.named_parameters():
        torch.testing.assert_close(grads[n], p.grad, msg=n)


def test_neuron_major_path_passes_gradcheck():
    torch.manual_seed(0)
    m = LTC(3, wirings.AutoNCP(6, 1), ode_unfolds=2, kernel="native").double()
    x = torch.randn(9, 3, 3, dtype=torch.float64, requires_grad=True)      # batch 9: neuron-major
    h0 = torch.randn(9, 6, dtype=torch.float64, requires_grad=True)
    ts = torch.rand(9, 3, dtype=torch.float64) + 0.5
    assert torch.autograd.gradcheck(lambda x, h: m(x, h, timespans=ts)[0], (x, h0))


@pytest.fixture
def threads():
    """Set torch's thread count (which the kernel's batch chunks follow) and restore it."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def _run_grads(m: LTC, x: torch.Tensor, ts: torch.Tensor, resets: torch.Tensor) -> dict[str, torch.Tensor]:
    m.zero_grad()
    y, h = m(x, timespans=ts, resets=resets)
    (y.square().sum() + h.sum()).backward()
    with torch.no_grad():
        y_infer, _ = m(x, timespans=ts, resets=resets)
    return {"y": y.detach(), "y_infer": y_infer, **{n: p.grad.clone() for n, p in m.named_parameters()}}


@pytest.mark.parametrize("wiring", [lambda: wirings.FullyConnected(16), lambda: wirings.AutoNCP(19, 1)])
def test_batch_chunks_on_several_threads_match_one_thread(wiring, threads):
    """A batch of 70 splits into chunks (at least 16 samples and ~2.6e5 synapse evaluations
    each) that run in parallel; values and the no-grad path equal the one-thread run, and
    the weight gradients (summed per chunk, then over chunks) up to float32 summation order."""
    ours, _ = _pair(wiring())
    x = torch.randn(70, 9, 4)
    ts = torch.rand(70, 9) + 0.2
    resets = torch.zeros(70, 9, dtype=torch.bool)
    resets[40, 3] = resets[5, 6] = True
    threads(1)
    one = _run_grads(ours, x, ts, resets)
    threads(3)
    many = _run_grads(ours, x, ts, resets)
    for name, want in one.items():     # gradients sum ~4e3 terms each, in another order
        torch.testing.assert_close(many[name], want, rtol=1e-4, atol=1e-4 * want.abs().max().item(), msg=name)


def test_sensory_synapses_split_over_threads(threads):
    torch.manual_seed(1)
    x = torch.randn(20000, 4, requires_grad=True)          # 20000 rows x 8 x 4: two chunks
    params = [torch.rand(8, 4) * 5 + 1, torch.randn(8, 4), torch.randn(8, 2, 4)]
    for p in params:
        p.requires_grad_(True)
    results = []
    for n in (1, 2):
        threads(n)
        a, g = native.SensorySynapses.apply(x, *params)
        grads = torch.autograd.grad((a * g).sum(), [x, *params])
        results.append((a.detach(), g.detach(), *grads))
    for got, want in zip(results[1], results[0]):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6 * want.abs().max().item())


def test_build_without_openmp_runs_chunks_on_its_own_threads(tmp_path, threads):
    """A compiler without OpenMP gets the std::thread build: same numbers as this one."""
    torch.manual_seed(0)
    m = LTC(4, 16, kernel="native")
    torch.save(m.state_dict(), tmp_path / "m.pt")
    x, ts = torch.randn(70, 9, 4), torch.rand(70, 9) + 0.2
    torch.save({"x": x, "ts": ts}, tmp_path / "in.pt")
    code = (
        "import torch\n"
        "from liquid_rl import LTC, native\n"
        "native._PARALLEL_FLAGS = (['-fopenmp-simd'],)\n"
        "torch.set_num_threads(3)\n"
        "m = LTC(4, 16, kernel='native')\n"
        f"m.load_state_dict(torch.load(r'{tmp_path / 'm.pt'}'))\n"
        f"d = torch.load(r'{tmp_path / 'in.pt'}')\n"
        "y, _ = m(d['x'], timespans=d['ts'])\n"
        "y.sum().backward()\n"
        f"torch.save({{'y': y.detach(), 'g': m.rnn_cell.sigma.grad}}, r'{tmp_path / 'out.pt'}')\n"
        "assert 'GOMP' not in open(native._lib._name, 'rb').read().decode('latin-1')\n"
    )
    env = dict(os.environ, LIQUID_RL_CACHE=str(tmp_path / "cache"))
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300)
    other = torch.load(tmp_path / "out.pt")
    threads(3)
    y, _ = m(x, timespans=ts)
    y.sum().backward()
    torch.testing.assert_close(other["y"], y.detach(), rtol=1e-5, atol=1e-6)
    g = m.rnn_cell.sigma.grad
    torch.testing.assert_close(other["g"], g, rtol=1e-5, atol=1e-6 * g.abs().max().item())


_ISA_CHECK = """
import torch
from liquid_rl import LTC, native, wirings
assert native.isa() == {isa!r} and native.available()
torch.manual_seed(0)
# float64 to eager's precision; float32 (the explicit-SIMD path) to float32 rounding.
for dtype, tol, gtol in ((torch.float64, {{}}, None), (torch.float32, dict(rtol=1e-5, atol=2e-6), 1e-4)):
    for wiring in (wirings.FullyConnected(16), wirings.AutoNCP(19, 1)):    # dense and sparse
        for batch in (5, 19):                                              # batch- and neuron-major paths
            ours = LTC(4, wiring, kernel="native").to(dtype)
            ref = LTC(4, wiring, kernel="eager").to(dtype)
            ref.load_state_dict(ours.state_dict())
            x = torch.randn(batch, 6, 4, dtype=dtype)
            ts = torch.rand(batch, 6, dtype=dtype) + 0.1                   # per-sample elapsed times
            resets = torch.rand(batch, 6) < 0.2
            outs = [m(x, timespans=ts, resets=resets) for m in (ours, ref)]
            for y, h in outs:
                (y.square().sum() + h.sum()).backward()
            torch.testing.assert_close(outs[0][0], outs[1][0], **tol)
            for (name, p), q in zip(ours.named_parameters(), ref.parameters()):
                g_tol = {{}} if gtol is None else dict(rtol=gtol, atol=gtol * q.grad.abs().max().item())
                torch.testing.assert_close(p.grad, q.grad, msg=name, **g_tol)
            with torch.no_grad():
                torch.testing.assert_close(ours(x, timespans=ts, resets=resets)[0], outs[1][0].detach(), **tol)
for batch in (2, 19):                       # sigmoid arguments far beyond the exp's +-80 clamp
    ours = LTC(4, 16, kernel="native")
    with torch.no_grad():
        ours.rnn_cell.sigma.mul_(1e4)
    y, h = ours(torch.randn(batch, 4, 4) * 100)
    (y.sum() + h.sum()).backward()
    assert torch.isfinite(y).all() and all(torch.isfinite(p.grad).all() for p in ours.parameters())
print("ok")
"""


@pytest.mark.parametrize("isa", [name for name in native.ISA_FLAGS if name != "native"])
def test_every_isa_build_this_cpu_runs_matches_the_eager_kernel(isa, tmp_path):
    """The AVX2, AVX-512 and generic builds (those this CPU can execute) give the eager
    kernel's values and gradients in float64 and float32 (the explicit-SIMD path): dense and
    sparse, both batch layouts, per-sample elapsed times, resets, the no-grad path, and
    saturated synapses stay finite."""
    if not native.cpu_runs(isa):
        pytest.skip(f"this CPU cannot run a {isa} build")
    env = dict(os.environ, LIQUID_RL_NATIVE_ISA=isa)
    out = subprocess.run([sys.executable, "-c", _ISA_CHECK.format(isa=isa)], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_unknown_isa_is_refused_with_the_allowed_names(monkeypatch):
    monkeypatch.setenv("LIQUID_RL_NATIVE_ISA", "sse9")
    with pytest.raises(ValueError, match=r"LIQUID_RL_NATIVE_ISA='sse9' is not one of \['avx2', 'avx512'"):
        native.isa()
    assert native.cpu_runs("generic") and native.cpu_runs("native")


def test_auto_runs_native_only_where_it_timed_faster_than_eager(tmp_path):
    """At the first "auto" after a build, native and eager are timed and the choice is
    cached beside the library; a machine where native was slower gets eager."""
    code = ("import json, sys, torch\n"
            "from liquid_rl import kernels, native\n"
            "with torch.no_grad():  # a rollout may be the first call\n"
            "    print(kernels.resolve('auto', torch.device('cpu'), torch.float32).name, native.library_path())\n")
    env = dict(os.environ, LIQUID_RL_CACHE=str(tmp_path))

    def run() -> list[str]:
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout.split()

    name, library = run()
    choice = tmp_path / (os.path.basename(library) + ".auto.json")
    measured = json.loads(choice.read_text())
    assert measured["native_s"] > 0 and measured["eager_s"] > 0
    assert name == ("native" if measured["native"] else "eager")
    choice.write_text(json.dumps({"native_s": 2.0, "eager_s": 1.0, "native": False}))
    assert run()[0] == "eager"
    choice.write_text(json.dumps({"native_s": 1.0, "eager_s": 2.0, "native": True}))
    assert run()[0] == "native"
