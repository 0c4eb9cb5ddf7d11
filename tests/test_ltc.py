"""The LTC (liquid_rl.ltc): its kernels against the generic solver path and the reference
form (values and gradients), the kernel table, input mapping, time constants, errors,
denormal flushing."""

import pytest
import torch

from liquid_rl import LTC, native, wirings


def test_ncps_per_sample_timespan_bug_is_fixed():
    """ncps squeezes (B, T) timespans to (B,) per step and broadcasts them against the
    neurons, which fails or mixes samples; ours matches per-sample runs (above)."""
    import ncps.torch as nt

    torch.manual_seed(0)
    ref = nt.LTC(5, 8)
    x = torch.randn(4, 6, 5)
    with pytest.raises(RuntimeError):
        ref(x, timespans=torch.rand(4, 6))


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


@pytest.mark.parametrize("call, match", [
    (lambda: LTC(5, 8, solver="dopri5"), "Unknown solver"),
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


# --- the kernel table against the reference form ---------------------------------------
from liquid_rl import kernels  # noqa: E402
from liquid_rl.kernels import reference  # noqa: E402

KERNEL_WIRINGS = {"full": lambda: wirings.FullyConnected(7), "ncp": lambda: wirings.AutoNCP(9, 2)}
GRAD_NAMES = ("v0", "num0", "den0", "cm", "sig", "nsmu", "M2")


def _kernel_or_skip(name: str, monkeypatch: pytest.MonkeyPatch) -> kernels.LTCKernel:
    if name == "native" and not native.available():
        pytest.skip("no C++ compiler")
    if name == "triton":
        pytest.importorskip("triton")
        monkeypatch.setenv("TRITON_INTERPRET", "1")   # CPU tensors through Triton's interpreter
    return kernels.KERNELS[name]


def _kernel_case(wiring: str, B: int = 3, T: int = 4, seed: int = 0) -> tuple[dict, LTC]:
    """Arguments of ``LTCKernel.sequence`` from a real float64 cell: per-sample step sizes,
    resets, synapses strong enough to matter."""
    torch.manual_seed(seed)
    model = LTC(3, KERNEL_WIRINGS[wiring](), kernel="eager").double()
    cell = model.rnn_cell
    with torch.no_grad():
        cell.w.uniform_(0.2, 1.5)
    N = cell.state_size
    sig, nsmu, M2 = (t.detach() for t in cell._synapse_tables())
    g = torch.Generator().manual_seed(seed + 1)
    h = (torch.rand((T, B, 1), generator=g, dtype=torch.float64) + 0.2) / 2
    keep = torch.ones((T, B, 1), dtype=torch.float64)
    keep[2, 1] = 0.0
    args = dict(v0=torch.randn((B, N), generator=g, dtype=torch.float64), keep=keep,
                num0=torch.randn((T, B, N), generator=g, dtype=torch.float64) * h,
                den0=0.5 + torch.rand((T, B, N), generator=g, dtype=torch.float64), h=h,
                cm=0.5 + torch.rand(N, generator=g, dtype=torch.float64), sig=sig, nsmu=nsmu, M2=M2)
    return args, model


def _values_and_grads(run, args: dict) -> tuple[torch.Tensor, list[torch.Tensor]]:
    leaves = {k: (v.clone().requires_grad_(True) if k in GRAD_NAMES else v) for k, v in args.items()}
    V = run(leaves)
    weights = torch.randn(V.shape, dtype=V.dtype, generator=torch.Generator().manual_seed(7))
    (V * weights).sum().backward()
    return V.detach(), [leaves[k].grad for k in GRAD_NAMES]


@pytest.mark.parametrize("wiring", list(KERNEL_WIRINGS))
@pytest.mark.parametrize("name", ["native", "eager", "compiled", "triton"])
def test_each_kernel_matches_the_reference_values_and_gradients(name, wiring, monkeypatch):
    if name == "compiled" and wiring == "ncp":
        pytest.skip("one compiled case is enough (compilation takes a while)")
    kernel = _kernel_or_skip(name, monkeypatch)
    args, model = _kernel_case(wiring)
    cell, U = model.rnn_cell, 3
    src, fanin = cell._src_flat, cell._fanin

    def run_kernel(a: dict) -> torch.Tensor:
        return kernel.sequence(a["v0"], a["keep"], a["num0"], a["den0"], a["h"], a["cm"], a["sig"], a["nsmu"],
                               a["M2"], src, U, False, fanin)

    def run_reference(a: dict) -> torch.Tensor:
        return reference.sequence(a["v0"], a["keep"], a["num0"], a["den0"], a["h"], a["cm"], a["sig"], a["nsmu"],
                                  a["M2"], src, U)

    V, grads = _values_and_grads(run_kernel, args)
    V_ref, grads_ref = _values_and_grads(run_reference, args)
    torch.testing.assert_close(V, V_ref)
    real = cell._valid.bool()          # (N, K): padding synapses carry no gradient by contract
    for gname, g, g_ref in zip(GRAD_NAMES, grads, grads_ref):
        if gname in ("sig", "nsmu", "M2"):
            mask = real if gname != "M2" else real.unsqueeze(1).expand_as(g)
            g, g_ref = g[mask], g_ref[mask]
        torch.testing.assert_close(g, g_ref, msg=gname)
    # One step is the sequence of length one.
    a = {k: v.detach() for k, v in args.items()}
    v1 = kernel.step(a["v0"], a["num0"][0], a["den0"][0], a["h"][0], a["cm"], a["sig"], a["nsmu"], a["M2"], src, U,
                     False, fanin)
    torch.testing.assert_close(v1, reference.sequence(a["v0"], None, a["num0"][:1], a["den0"][:1], a["h"][:1],
                                                      a["cm"], a["sig"], a["nsmu"], a["M2"], src, U)[0])


@pytest.mark.parametrize("wiring", list(KERNEL_WIRINGS))
@pytest.mark.parametrize("name", ["native", "eager", "triton"])
def test_each_kernel_infers_what_the_reference_computes(name, wiring, monkeypatch):
    """The no-grad path (sensory synapses included) against the reference built from the
    cell's parameters, with per-sample elapsed times and a reset."""
    kernel = _kernel_or_skip(name, monkeypatch)
    _, model = _kernel_case(wiring)
    cell = model.rnn_cell
    T, B, U = 4, 3, cell._ode_unfolds
    x = torch.randn(T, B, 3, dtype=torch.float64)
    h = torch.rand(T, B, dtype=torch.float64) + 0.1
    keep = torch.ones(T, B, dtype=torch.float64)
    keep[2, 0] = 0.0
    v0 = torch.randn(B, cell.state_size, dtype=torch.float64)
    p = cell.inference_tables()
    with torch.no_grad():
        V = kernel.infer(x, v0, h, keep, p, U)
        s = torch.sigmoid(p.ssig * x.unsqueeze(-2) + p.nssmu)
        a, g = (s * p.M2s[:, 0]).sum(-1), (s * p.M2s[:, 1]).sum(-1)
        h3 = h.unsqueeze(-1)
        V_ref = reference.sequence(v0, keep.unsqueeze(-1), h3 * (p.glvl + a), p.cm + h3 * (p.gl_eps + g), h3, p.cm,
                                   p.sig, p.nsmu, p.M2, p.src_flat, U)
    torch.testing.assert_close(V, V_ref)


def test_kernel_table_names_and_auto():
    assert kernels.KERNEL_NAMES == ("auto", "native", "eager", "compiled", "triton")
    assert all(kernels.KERNELS[n].name == n for n in kernels.KERNELS)
    cpu = torch.device("cpu")
    assert kernels.resolve("auto", cpu, torch.float32).name == ("native" if native.available() else "eager")
    assert kernels.resolve("eager", cpu, torch.float32).name == "eager"
    assert LTC(3, 4, kernel="triton").rnn_cell.kernel == "triton"   # accepted; runs where Triton does
    with pytest.raises(ValueError, match=r"Unknown LTC kernel 'fast'; choose one of \('auto', 'native'"):
        LTC(3, 4, kernel="fast")


def test_the_public_names_of_earlier_releases_still_import():
    from liquid_rl.ltc import LTCCell as Cell, denormals_flushed, flushed_denormals  # noqa: F401
    from liquid_rl.ltc_fused import FusedSemiImplicitLTC, resolve_kernel

    assert Cell is not None and callable(FusedSemiImplicitLTC.apply)
    assert resolve_kernel("eager", torch.device("cpu"), torch.float32) == "eager"
