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


def explicit_euler(v: Tensor, conductances: Conductances, cm: Tensor, elapsed: Tensor | float,
                   unfolds: int, epsilon: float) -> Tensor:
    """Explicit Euler: ``v <- v + h (a - g v) / cm``. Unstable for large h * g / cm."""
    h = elapsed / unfolds
    for _ in range(unfolds):
        a, g = conductances(v)
        v = v + h * (a - g * v) / cm
    return v


def rk4(v: Tensor, conductances: Conductances, cm: Tensor, elapsed: Tensor | float,
        unfolds: int, epsilon: float) -> Tensor:
    """Classical fourth-order Runge-Kutta on ``dv/dt = (a - g v) / cm``."""
    h = elapsed / unfolds

    def f(state: Tensor) -> Tensor:
        a, g = conductances(state)
        return (a - g * state) / cm

    for _ in range(unfolds):
        k1 = f(v)
        k2 = f(v + 0.5 * h * k1)
        k3 = f(v + 0.5 * h * k2)
        k4 = f(v + h * k3)
        v = v + h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
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
