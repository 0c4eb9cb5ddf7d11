"""Liquid time-constant (LTC) cell and RNN, parameterised as ncps 1.0.1.

Neuron j with state v_j (B, N) receives synapses from inputs and neurons:
    s_ij = w_ij * sigmoid(sigma_ij * (v_i - mu_ij)) * mask_ij
    cm_j dv_j/dt = gleak_j (vleak_j - v_j) + sum_i s_ij (erev_ij - v_j)
Sensory synapses have the same form with the (affinely mapped) input x in place of v
and are computed once per step. The outputs are the first ``motor`` neurons, mapped
by a per-feature affine map.

Parameter names, shapes and initial ranges equal ncps' (``from_ncps`` copies a
state_dict as is). The default solver is ncps' fused semi-implicit Euler, run by a kernel
of the table in ``liquid_rl.kernels`` (picked with ``kernel=``); ``solver="explicit" | "rk4"``
and ``fused=False`` use the generic solvers of ``liquid_rl.solvers`` with autograd.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from liquid_rl import kernels
from liquid_rl.inference_cache import cached
from liquid_rl.kernels import InferenceTables
from liquid_rl.kernels.base import sensory_conductances
from liquid_rl.kernels.denormals import denormals_flushed, flushed_denormals
from liquid_rl.sequence import LiquidSequence, LSTMCell, check_timespans
from liquid_rl.solvers import get_solver
from liquid_rl.wirings import FullyConnected, WiredSizes, Wiring, as_wiring

_INIT_RANGES = {
    "gleak": (0.001, 1.0), "vleak": (-0.2, 0.2), "cm": (0.4, 0.6),
    "w": (0.001, 1.0), "sigma": (3.0, 8.0), "mu": (0.3, 0.8),
    "sensory_w": (0.001, 1.0), "sensory_sigma": (3.0, 8.0), "sensory_mu": (0.3, 0.8),
}
_MAPPINGS = ("affine", "linear", None)


def _uniform(shape: tuple[int, ...], name: str) -> Tensor:
    lo, hi = _INIT_RANGES[name]
    return torch.rand(*shape) * (hi - lo) + lo


class LTCCell(WiredSizes, nn.Module):
    """One LTC step: ``forward(input (B, I), hx (B, N), elapsed_time=1.0) -> (output (B, O), hx (B, N))``.

    Args:
        wiring: the synapses (``liquid_rl.wirings``); built with ``in_features`` if given.
        in_features: number of inputs I.
        input_mapping, output_mapping: "affine" (scale and shift), "linear" (scale) or None.
        input_scale, input_shift: initial scale and shift of the input mapping (ncps: 1 and
            0, for inputs of order [0, 1]). The sensory synapses start with thresholds mu in
            [0.3, 0.8] and slopes sigma in [3, 8], so standardised inputs (zero mean, unit
            variance, e.g. behind ``VecNormalize``) saturate them at the ncps start: every
            negative value reads as the same. A scale near 1 / mean(sigma) ~ 0.2 and a shift
            near mean(mu) ~ 0.55 spread such inputs over the thresholds.
        ode_unfolds: solver sub-steps per step.
        epsilon: added to the semi-implicit denominator.
        implicit_param_constraints: keep w, sensory_w, cm, gleak positive with a softplus at
            run time (True) or by clipping in :meth:`apply_weight_constraints` (False).
        solver: "semi_implicit" (default, ncps'), "explicit" or "rk4".
        fused: use the fused semi-implicit kernel (same numbers, faster); ignored by other solvers.
        kernel: "auto" (default: "triton" on CUDA where Triton runs, "native" on the CPU
            when a C++ compiler is there, else "eager"), "native" (a C++ kernel for the
            whole sequence, built once in ~1 s; CPU only, elsewhere "eager" runs),
            "eager" (plain PyTorch ops per step), "compiled" (torch.compile of the eager
            step) or "triton". Same numbers; see ``liquid_rl.kernels``.
        flush_denormal: on CPU, flush denormal floats to zero while the cell runs
            (see :func:`flushed_denormals`); the native kernel always does so inside its call.
    """

    def __init__(self, wiring: Wiring, in_features: int | None = None, input_mapping: str | None = "affine",
                 output_mapping: str | None = "affine", ode_unfolds: int = 6, epsilon: float = 1e-8,
                 implicit_param_constraints: bool = False, solver: str = "semi_implicit",
                 fused: bool = True, kernel: str = "auto", flush_denormal: bool = True,
                 input_scale: float = 1.0, input_shift: float = 0.0) -> None:
        super().__init__()
        kernels.check(kernel)
        self.kernel = kernel
        wiring = as_wiring(wiring)
        if in_features is not None:
            wiring.build(in_features)
        if not wiring.is_built():
            raise ValueError("The wiring has no input size: pass in_features or call wiring.build(input_dim)")
        if input_mapping not in _MAPPINGS or output_mapping not in _MAPPINGS:
            raise ValueError(f"input_mapping and output_mapping must be one of {_MAPPINGS}; "
                             f"got {input_mapping!r}, {output_mapping!r}")
        if int(ode_unfolds) < 1:
            raise ValueError(f"ode_unfolds must be at least 1, got {ode_unfolds}")
        if not (math.isfinite(input_scale) and math.isfinite(input_shift)):
            raise ValueError(f"input_scale and input_shift must be finite, got {input_scale!r}, {input_shift!r}")
        if input_scale != 1.0 and input_mapping is None:
            raise ValueError(f"input_scale={input_scale!r} needs input_mapping 'affine' or 'linear' (it is None)")
        if input_shift != 0.0 and input_mapping != "affine":
            raise ValueError(f"input_shift={input_shift!r} needs input_mapping 'affine' (it is {input_mapping!r})")
        self._solve = get_solver(solver)
        self.solver = solver
        self._wiring = wiring
        self._input_mapping = input_mapping
        self._output_mapping = output_mapping
        self._ode_unfolds = int(ode_unfolds)
        self._epsilon = float(epsilon)
        self._implicit_param_constraints = implicit_param_constraints
        self.fused = fused
        self.flush_denormal = flush_denormal
        N, I, O = wiring.units, wiring.input_dim, wiring.output_dim

        self.gleak = nn.Parameter(_uniform((N,), "gleak"))
        self.vleak = nn.Parameter(_uniform((N,), "vleak"))
        self.cm = nn.Parameter(_uniform((N,), "cm"))
        self.sigma = nn.Parameter(_uniform((N, N), "sigma"))
        self.mu = nn.Parameter(_uniform((N, N), "mu"))
        self.w = nn.Parameter(_uniform((N, N), "w"))
        self.erev = nn.Parameter(torch.tensor(wiring.erev_initializer(), dtype=torch.float32))
        self.sensory_sigma = nn.Parameter(_uniform((I, N), "sensory_sigma"))
        self.sensory_mu = nn.Parameter(_uniform((I, N), "sensory_mu"))
        self.sensory_w = nn.Parameter(_uniform((I, N), "sensory_w"))
        self.sensory_erev = nn.Parameter(torch.tensor(wiring.sensory_erev_initializer(), dtype=torch.float32))
        self.register_buffer("sparsity_mask", wiring.adjacency.clone())
        self.register_buffer("sensory_sparsity_mask", wiring.sensory_adjacency.clone())
        if input_mapping in ("affine", "linear"):
            self.input_w = nn.Parameter(torch.full((I,), float(input_scale)))
        if input_mapping == "affine":
            self.input_b = nn.Parameter(torch.full((I,), float(input_shift)))
        if output_mapping in ("affine", "linear"):
            self.output_w = nn.Parameter(torch.ones(O))
        if output_mapping == "affine":
            self.output_b = nn.Parameter(torch.zeros(O))
        self._build_synapse_index()

    def _build_synapse_index(self) -> None:
        """Group synapses by destination: ``_src`` (N, K) presynaptic neuron of the k-th
        synapse into neuron j, ``_valid`` (N, K) 1 for real synapses, 0 for padding."""
        mask = self.sparsity_mask.detach().cpu().numpy() != 0      # (src, dst)
        N = mask.shape[0]
        fanin = [np.flatnonzero(mask[:, j]) for j in range(N)]
        K = max(1, max(len(f) for f in fanin))
        src = np.zeros((N, K), dtype=np.int64)
        valid = np.zeros((N, K), dtype=np.float32)
        for j, f in enumerate(fanin):
            src[j, :len(f)] = f
            valid[j, :len(f)] = 1.0
        device = self.sparsity_mask.device
        self.register_buffer("_src", torch.from_numpy(src).to(device), persistent=False)
        self.register_buffer("_src_flat", torch.from_numpy(src.reshape(-1)).to(device), persistent=False)
        self.register_buffer("_valid", torch.from_numpy(valid).to(device, self.sparsity_mask.dtype), persistent=False)
        fanin_counts = np.array([len(f) for f in fanin], dtype=np.int64)
        self.register_buffer("_fanin", torch.from_numpy(fanin_counts).to(device), persistent=False)
        self._dense_src = bool(valid.all()) and bool((src == np.arange(K)).all())

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._build_synapse_index()

    def _positive(self, p: Tensor) -> Tensor:
        return F.softplus(p) if self._implicit_param_constraints else p

    def apply_weight_constraints(self) -> None:
        """Clip w, sensory_w, cm and gleak at zero (only without implicit constraints);
        call after each optimiser step, as with ncps."""
        if not self._implicit_param_constraints:
            with torch.no_grad():
                for p in (self.w, self.sensory_w, self.cm, self.gleak):
                    p.clamp_(min=0.0)

    def time_constants(self, hx: Tensor, inputs: Tensor | None = None) -> Tensor:
        """Effective time constant of each neuron, ``cm / g(v)`` (B, N), at state hx (B, N)
        and, if given, input (B, I): the "liquid" time constant the network runs at."""
        x = self._map_inputs(inputs) if inputs is not None else None
        sa, sg = self._sensory(x) if x is not None else (0.0, 0.0)
        _, g = self._recurrent_conductances(hx)
        return self._positive(self.cm) / (self._positive(self.gleak) + sg + g)

    # --- dynamics --------------------------------------------------------------------
    def _map_inputs(self, x: Tensor) -> Tensor:
        if self._input_mapping in ("affine", "linear"):
            x = x * self.input_w
        if self._input_mapping == "affine":
            x = x + self.input_b
        return x

    def _map_outputs(self, v: Tensor) -> Tensor:
        y = v[..., : self.motor_size] if self.motor_size < self.state_size else v
        if self._output_mapping in ("affine", "linear"):
            y = y * self.output_w
        if self._output_mapping == "affine":
            y = y + self.output_b
        return y

    def _sensory(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Sensory conductances for mapped inputs x (..., I) -> (a, g), each (..., N)."""
        return sensory_conductances(x, self.sensory_sigma, self.sensory_mu, self._sensory_weights(),
                                    self.sensory_erev)

    def _sensory_weights(self) -> Tensor:
        """Sensory w (I, N), positive, with the sparsity mask applied."""
        return self._positive(self.sensory_w) * self.sensory_sparsity_mask

    def _sensory_tables(self) -> tuple[Tensor, Tensor, Tensor]:
        """Sensory synapses by destination: sigma (N, I), -sigma*mu (N, I) and
        M2s = [w*erev; w] (N, 2, I) with the sparsity mask applied."""
        w = self._sensory_weights().t()
        return (self.sensory_sigma.t(), (-self.sensory_sigma * self.sensory_mu).t(),
                torch.stack([w * self.sensory_erev.t(), w], 1))

    def _recurrent_conductances(self, v: Tensor) -> tuple[Tensor, Tensor]:
        """Dense recurrent conductances (the reference form) for v (B, N) -> (a, g)."""
        w = self._positive(self.w) * self.sparsity_mask
        s = torch.sigmoid(self.sigma * (v.unsqueeze(-1) - self.mu))
        return (s * (w * self.erev)).sum(-2), (s * w).sum(-2)

    def _synapse_tables(self) -> tuple[Tensor, Tensor, Tensor]:
        """Recurrent synapses by destination: sig (N, K), -sigma*mu (N, K) and
        M2 = [w*erev; w] (N, 2, K), zero on padding entries."""
        src = self._src
        sig = torch.gather(self.sigma.t(), 1, src)
        mu = torch.gather(self.mu.t(), 1, src)
        w = torch.gather(self._positive(self.w).t(), 1, src) * self._valid
        erev = torch.gather(self.erev.t(), 1, src)
        return sig, -sig * mu, torch.stack([w * erev, w], 1)

    # --- running ---------------------------------------------------------------------
    def sequence(self, x: Tensor, h0: Tensor, elapsed: Tensor | None, keep: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Run over a time-major sequence.

        Args:
            x: (T, B, I) raw inputs; h0: (B, N); elapsed: (T, B, 1) or None (1.0 per step);
            keep: (T, B, 1) factors applied to the state before each step (0 = reset) or None.
        Returns:
            (outputs (T, B, O), final state (B, N)).
        """
        kernel = kernels.resolve(self.kernel, x.device, x.dtype)
        fused = self.solver == "semi_implicit" and self.fused
        grad = torch.is_grad_enabled()
        if fused and not grad and kernel.flushes_denormals:
            return self._infer(kernel, x, h0, elapsed, keep)
        if self.flush_denormal and x.device.type == "cpu":
            with flushed_denormals(x.device):
                return self._run(kernel, fused, grad, x, h0, elapsed, keep)
        return self._run(kernel, fused, grad, x, h0, elapsed, keep)

    def _run(self, kernel: kernels.LTCKernel, fused: bool, grad: bool, x: Tensor, h0: Tensor,
             elapsed: Tensor | None, keep: Tensor | None) -> tuple[Tensor, Tensor]:
        if fused and not grad:
            return self._infer(kernel, x, h0, elapsed, keep)
        T = x.shape[0]
        U = self._ode_unfolds
        if elapsed is None:
            elapsed = x.new_ones((T, 1, 1))
        xm = self._map_inputs(x)
        cm = self._positive(self.cm)
        gleak = self._positive(self.gleak)
        if fused:
            sa, sg = kernel.sensory(xm, self.sensory_sigma, self.sensory_mu, self._sensory_weights(),
                                    self.sensory_erev)                  # (T, B, N)
            h = elapsed / U
            num0 = h * (gleak * self.vleak + sa)
            den0 = cm + h * (gleak + sg + self._epsilon)
            sig, nsmu, M2 = self._synapse_tables()
            states = kernel.sequence(h0, keep, num0, den0, h, cm, sig, nsmu, M2, self._src_flat, U,
                                     self.flush_denormal, self._fanin)
            return self._map_outputs(states), states[-1]
        return self._run_solver(xm, h0, elapsed, keep, cm, gleak)

    def _run_solver(self, xm: Tensor, h0: Tensor, elapsed: Tensor, keep: Tensor | None, cm: Tensor,
                    gleak: Tensor) -> tuple[Tensor, Tensor]:
        """Any solver of ``liquid_rl.solvers`` on the dense conductances, with autograd."""
        sa, sg = self._sensory(xm)                                         # (T, B, N)
        v = h0
        outs = []
        glvl = gleak * self.vleak
        for t, (sa_t, sg_t) in enumerate(zip(sa.unbind(0), sg.unbind(0))):
            if keep is not None:
                v = v * keep[t]

            def conductances(state: Tensor, sa_t: Tensor = sa_t, sg_t: Tensor = sg_t) -> tuple[Tensor, Tensor]:
                a, g = self._recurrent_conductances(state)
                return a + glvl + sa_t, g + gleak + sg_t

            v = self._solve(v, conductances, cm, elapsed[t], self._ode_unfolds, self._epsilon)
            outs.append(v)
        states = torch.stack(outs)
        return self._map_outputs(states), v

    def inference_tables(self) -> InferenceTables:
        """The kernels' no-grad tensors (see :class:`~liquid_rl.kernels.InferenceTables`),
        cached until a parameter changes or moves."""
        return cached(self, self._parameters.values(), self._build_inference_tables)   # no submodules

    def _build_inference_tables(self) -> InferenceTables:
        ssig, nssmu, M2s = self._sensory_tables()
        sig, nsmu, M2 = self._synapse_tables()
        gleak = self._positive(self.gleak)
        return InferenceTables(
            ssig=ssig.contiguous(), nssmu=nssmu.contiguous(), M2s=M2s.contiguous(),
            glvl=(gleak * self.vleak).contiguous(), gl_eps=(gleak + self._epsilon).contiguous(),
            cm=self._positive(self.cm).contiguous(), sig=sig.contiguous(), nsmu=nsmu.contiguous(),
            M2=M2.contiguous(), src=self._src, src_flat=self._src_flat, fanin=self._fanin, dense=self._dense_src)

    def _infer(self, kernel: kernels.LTCKernel, x: Tensor, h0: Tensor, elapsed: Tensor | None,
               keep: Tensor | None) -> tuple[Tensor, Tensor]:
        """The no-grad path (rollouts, evaluation): ``kernel.infer`` on the cached tables."""
        T = x.shape[0]
        h = (x.new_ones((T, 1)) if elapsed is None else elapsed[..., 0]) / self._ode_unfolds   # (T, 1|B)
        V = kernel.infer(self._map_inputs(x), h0, h, None if keep is None else keep[..., 0],
                         self.inference_tables(), self._ode_unfolds)
        return self._map_outputs(V), V[-1]

    def forward(self, inputs: Tensor, states: Tensor, elapsed_time: Tensor | float = 1.0) -> tuple[Tensor, Tensor]:
        """One step. inputs (B, I), states (B, N), elapsed_time scalar, (B,) or (B, 1)
        -> (outputs (B, O), new state (B, N))."""
        if inputs.dim() != 2 or inputs.shape[1] != self.sensory_size:
            raise ValueError(f"LTCCell input must have shape (B, {self.sensory_size}); got {tuple(inputs.shape)}")
        if states.shape != (inputs.shape[0], self.state_size):
            raise ValueError(f"LTCCell state must have shape ({inputs.shape[0]}, {self.state_size}); "
                             f"got {tuple(states.shape)}")
        B = inputs.shape[0]
        e = torch.as_tensor(elapsed_time, dtype=inputs.dtype, device=inputs.device)
        check_timespans(e)
        e = e.reshape(1, 1, 1) if e.numel() == 1 else e.reshape(1, B, 1)
        y, h = self.sequence(inputs.unsqueeze(0), states, e)
        return y[0], h


class LTC(WiredSizes, LiquidSequence):
    """Liquid time-constant RNN over sequences; a drop-in for ``ncps.torch.LTC``.

    Args:
        input_size: number of input features I.
        units: number of neurons (fully connected) or a :class:`~liquid_rl.wirings.Wiring`.
        return_sequences: return outputs for every step (B, T, O) or the last (B, O).
        batch_first: (B, T, I) input if True, (T, B, I) if False.
        mixed_memory: add an LSTM memory cell in front of the LTC (state is (h, c)).
        input_mapping, output_mapping, input_scale, input_shift, ode_unfolds, epsilon,
            implicit_param_constraints: as :class:`LTCCell` (implicit constraints default to
            True, as in ncps' LTC).
        solver: "semi_implicit" | "explicit" | "rk4".
        fused: use the fused semi-implicit kernel.
        kernel: "auto", "native", "eager" or "compiled" (see :class:`LTCCell`).
        flush_denormal: on CPU, flush denormal floats while the PyTorch kernels run (see
            :class:`LTCCell`; the native kernel always flushes inside its call).

    ``forward(input, hx=None, timespans=None, resets=None) -> (output, hx)``; see
    :meth:`liquid_rl.sequence.LiquidSequence.forward` for the accepted shapes.
    """

    def __init__(self, input_size: int, units: int | Wiring, return_sequences: bool = True,
                 batch_first: bool = True, mixed_memory: bool = False, input_mapping: str | None = "affine",
                 output_mapping: str | None = "affine", ode_unfolds: int = 6, epsilon: float = 1e-8,
                 implicit_param_constraints: bool = True, solver: str = "semi_implicit",
                 fused: bool = True, kernel: str = "auto", flush_denormal: bool = True,
                 input_scale: float = 1.0, input_shift: float = 0.0) -> None:
        super().__init__()
        units = as_wiring(units)  # an ncps wiring is converted
        wiring = units if isinstance(units, Wiring) else FullyConnected(units)
        self.input_size = int(input_size)
        self.wiring_or_units = units
        self.batch_first = batch_first
        self.return_sequences = return_sequences
        self.rnn_cell = LTCCell(wiring, in_features=self.input_size, input_mapping=input_mapping,
                                output_mapping=output_mapping, ode_unfolds=ode_unfolds, epsilon=epsilon,
                                implicit_param_constraints=implicit_param_constraints, solver=solver,
                                fused=fused, kernel=kernel, flush_denormal=flush_denormal,
                                input_scale=input_scale, input_shift=input_shift)
        self._wiring = wiring
        self.use_mixed = mixed_memory
        if mixed_memory:
            self.lstm = LSTMCell(self.input_size, self.state_size)

    def _run(self, x: Tensor, h0: Tensor, elapsed: Tensor | None, keep: Tensor | None) -> tuple[Tensor, Tensor]:
        return self.rnn_cell.sequence(x, h0, elapsed, keep)

    def _step(self, x: Tensor, h: Tensor, elapsed: Tensor | float) -> tuple[Tensor, Tensor]:
        return self.rnn_cell(x, h, elapsed)
