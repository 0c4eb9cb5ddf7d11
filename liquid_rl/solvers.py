"""ODE solvers for conductance-based neuron dynamics, chosen by name from a table.

The dynamics (an LTC, for instance) give, for a state v (B, N), two tensors
``(a, g)`` of shape (B, N) such that

    cm * dv/dt = a(v) - g(v) * v

with ``a = gleak*vleak + sum_i s_ij erev_ij`` and ``g = gleak + sum_i s_ij`` for an LTC.
A solver advances v over an elapsed time ``elapsed`` (scalar or (B, 1)) in ``unfolds``
equal sub-steps. Solvers know nothing about synapses; dynamics know nothing about
time stepping (the torchdiffeq split).
"""

from __future__ import annotations

import math
from typing import Callable, Protocol

import torch
from torch import Tensor

Conductances = Callable[[Tensor], "tuple[Tensor, Tensor]"]


class Solver(Protocol):
    def __call__(self, v: Tensor, conductances: Conductances, cm: Tensor, elapsed: Tensor | float,
                 unfolds: int, epsilon: float) -> Tensor: ...


def semi_implicit(v: Tensor, conductances: Conductances, cm: Tensor, elapsed: Tensor | float,
                  unfolds: int, epsilon: float) -> Tensor:
    """Fused semi-implicit Euler of the LTC paper (ncps' solver).

    ``v <- (cm/h v + a) / (cm/h + g + eps)`` with ``h = elapsed/unfolds``, written as
    ``(cm v + h a) / (cm + h (g + eps))`` so that a zero elapsed time leaves v unchanged
    instead of dividing by zero.
    """
    h = elapsed / unfolds
    for _ in range(unfolds):
        a, g = conductances(v)
        v = (cm * v + h * a) / (cm + h * (g + epsilon))
    return v


# Stability limits of h * g / cm on the real axis, where the decay -g/cm of the dynamics
# lies: explicit Euler |1 - x| <= 1, classical RK4 x <= 2.785. A step beyond SAFETY times
# the limit (the conductances also change with v) is cut into sub-steps; one needing more
# than MAX_SUBSTEPS raises.
EULER_LIMIT = 2.0
RK4_LIMIT = 2.785
SAFETY = 0.5
MAX_SUBSTEPS = 1000


def _substeps(name: str, h: Tensor | float, g: Tensor, cm: Tensor, limit: float) -> int:
    """How many equal sub-steps keep ``h * g / cm`` within ``SAFETY * limit`` (1 in the usual case)."""
    with torch.no_grad():
        rate = float((h * g / cm).max()) if g.numel() else 0.0
    if not rate <= SAFETY * limit:
        n = rate / (SAFETY * limit)
        if not n <= MAX_SUBSTEPS:  # also NaN
            raise ValueError(f"{name} solver: a step of h*g/cm = {rate:.3g} exceeds its stability limit {limit} "
                             f"more than {MAX_SUBSTEPS}-fold; use solver 'semi_implicit' (stable for any step), "
                             "more ode_unfolds or shorter timespans")
        return int(math.ceil(n))
    return 1


def explicit_euler(v: Tensor, conductances: Conductances, cm: Tensor, elapsed: Tensor | float,
                   unfolds: int, epsilon: float) -> Tensor:
    """Explicit Euler: ``v <- v + h (a - g v) / cm``, with sub-steps where ``h g / cm``
    exceeds its stability limit 2 (see :data:`EULER_LIMIT`)."""
    h = elapsed / unfolds
    for _ in range(unfolds):
        a, g = conductances(v)
        n = _substeps("explicit", h, g, cm, EULER_LIMIT)
        for k in range(n):
            if k:
                a, g = conductances(v)
            v = v + (h / n) * (a - g * v) / cm
    return v


def rk4(v: Tensor, conductances: Conductances, cm: Tensor, elapsed: Tensor | float,
        unfolds: int, epsilon: float) -> Tensor:
    """Classical fourth-order Runge-Kutta on ``dv/dt = (a - g v) / cm``, with sub-steps
    where ``h g / cm`` exceeds its stability limit 2.785 (see :data:`RK4_LIMIT`)."""
    h = elapsed / unfolds

    def f(state: Tensor) -> tuple[Tensor, Tensor]:
        a, g = conductances(state)
        return (a - g * state) / cm, g

    for _ in range(unfolds):
        k1, g = f(v)
        n = _substeps("rk4", h, g, cm, RK4_LIMIT)
        step = h / n
        for k in range(n):
            if k:
                k1, _ = f(v)
            k2, _ = f(v + 0.5 * step * k1)
            k3, _ = f(v + 0.5 * step * k2)
            k4, _ = f(v + step * k3)
            v = v + step / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    return v


SOLVERS: dict[str, Solver] = {
    "semi_implicit": semi_implicit,
    "explicit": explicit_euler,
    "rk4": rk4,
}


def get_solver(name: str) -> Solver:
    """Look a solver up by name; raises ValueError listing the known names."""
    try:
        return SOLVERS[name]
    except KeyError:
        raise ValueError(f"Unknown solver {name!r}; choose one of {sorted(SOLVERS)}") from None
