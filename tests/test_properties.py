"""Invariants of the liquid models, checked over random inputs (hypothesis)."""

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liquid_rl import CfC, LTC, wirings

FAST = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _ltc(seed: int, wiring: str, solver: str = "semi_implicit", unfolds: int = 6) -> LTC:
    torch.manual_seed(seed)
    w = wirings.FullyConnected(6) if wiring == "full" else wirings.AutoNCP(10, 2)
    return LTC(3, w, solver=solver, ode_unfolds=unfolds).double()


def _bounds(m: LTC, h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-neuron range spanned by the initial state, vleak and the reversal potentials
    of the neuron's incoming synapses: the semi-implicit update is a convex combination
    of exactly these, so the state can never leave it (LTC paper, Theorem 2)."""
    c = m.rnn_cell
    rev = torch.cat([torch.where(c.sparsity_mask > 0, c.erev, torch.nan),
                     torch.where(c.sensory_sparsity_mask > 0, c.sensory_erev, torch.nan)])
    lo = torch.minimum(torch.minimum(h0, c.vleak), rev.nan_to_num(torch.inf).min(0).values)
    hi = torch.maximum(torch.maximum(h0, c.vleak), rev.nan_to_num(-torch.inf).max(0).values)
    return lo.detach(), hi.detach()


@FAST
@given(seed=st.integers(0, 10_000), scale=st.floats(1e-3, 1e4), elapsed=st.floats(1e-4, 1e3),
       wiring=st.sampled_from(["full", "ncp"]))
def test_semi_implicit_state_stays_bounded(seed, scale, elapsed, wiring):
    m = _ltc(seed, wiring)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(4, 20, 3, generator=g, dtype=torch.float64) * scale
    h0 = torch.randn(4, m.state_size, generator=g, dtype=torch.float64) * 2
    lo, hi = _bounds(m, h0)
    states = []
    h = h0
    for t in range(20):
        _, h = m(x[:, t: t + 1], h, timespans=elapsed)
        states.append(h)
    states = torch.stack(states, 1)
    # epsilon in the denominator shrinks v towards 0 by at most ~h*eps/cm per unfold.
    tol = 1e-7 * max(1.0, elapsed)
    assert torch.isfinite(states).all()
    assert (states >= lo[:, None] - tol).all() and (states <= hi[:, None] + tol).all()


@FAST
@given(seed=st.integers(0, 10_000), solver=st.sampled_from(["semi_implicit", "explicit", "rk4"]),
       wiring=st.sampled_from(["full", "ncp"]))
def test_zero_elapsed_time_leaves_state_unchanged(seed, solver, wiring):
    m = _ltc(seed, wiring, solver)
    g = torch.Generator().manual_seed(seed)
    h0 = torch.randn(3, m.state_size, generator=g, dtype=torch.float64)
    _, h = m(torch.randn(3, 5, 3, generator=g, dtype=torch.float64), h0, timespans=0.0)
    torch.testing.assert_close(h, h0, atol=0, rtol=1e-15)  # (cm v)/cm: one rounding


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), solver=st.sampled_from(["explicit", "rk4"]))
def test_explicit_solvers_converge_to_high_unfold_reference(seed, solver):
    ref = _ltc(seed, "full", "rk4", unfolds=512)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, 3, generator=g, dtype=torch.float64)
    h0 = torch.randn(2, 6, generator=g, dtype=torch.float64) * 0.5
    _, target = ref(x, h0, timespans=0.5)
    errors = []
    for unfolds in (4, 16, 64):
        m = _ltc(seed, "full", solver, unfolds)
        _, h = m(x, h0, timespans=0.5)
        errors.append((h - target).abs().max().item())
    # Each 4x more unfolds: explicit Euler (order 1) gains >2x, RK4 (order 4) >16x.
    gain = 2.0 if solver == "explicit" else 16.0
    assert errors[0] > gain * errors[1] > gain * gain * errors[2] or errors[2] < 1e-12


MODELS = {
    "ltc": lambda: LTC(3, 6).double(),
    "ltc_ncp": lambda: LTC(3, wirings.AutoNCP(10, 2)).double(),
    "ltc_rk4": lambda: LTC(3, 6, solver="rk4").double(),
    "cfc": lambda: CfC(3, 6, backbone_units=16).double(),
    "cfc_ncp": lambda: CfC(3, wirings.AutoNCP(10, 2)).double(),
    "cfc_mixed": lambda: CfC(3, 6, mixed_memory=True, backbone_units=16).double(),
}


@FAST
@given(seed=st.integers(0, 10_000), name=st.sampled_from(sorted(MODELS)), T=st.integers(1, 12),
       timed=st.booleans())
def test_sequence_equals_steps(seed, name, T, timed):
    torch.manual_seed(seed)
    m = MODELS[name]()
    x = torch.randn(2, T, 3, dtype=torch.float64)
    ts = torch.rand(2, T, dtype=torch.float64) * 2 if timed else None
    y, h_seq = m(x, timespans=ts)
    h = None
    for t in range(T):
        y_t, h = m(x[:, t: t + 1], h, timespans=None if ts is None else ts[:, t: t + 1])
        torch.testing.assert_close(y_t[:, 0], y[:, t])
    for a, b in zip(h if isinstance(h, tuple) else (h,), h_seq if isinstance(h_seq, tuple) else (h_seq,)):
        torch.testing.assert_close(a, b)


@FAST
@given(seed=st.integers(0, 10_000), name=st.sampled_from(sorted(MODELS)), T=st.integers(2, 12), data=st.data())
def test_reset_inside_equals_new_sequence(seed, name, T, data):
    torch.manual_seed(seed)
    m = MODELS[name]()
    start = data.draw(st.integers(1, T - 1))
    x = torch.randn(3, T, 3, dtype=torch.float64)
    resets = torch.zeros(3, T, dtype=torch.bool)
    resets[:, start] = True
    y, h = m(x, resets=resets)
    y_new, h_new = m(x[:, start:])
    torch.testing.assert_close(y[:, start:], y_new)
    torch.testing.assert_close(y[:, :start], m(x[:, :start])[0])
