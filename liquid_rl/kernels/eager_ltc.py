"""The PyTorch LTC kernels: "eager" (plain ops per time step) and "compiled" (the same step
through torch.compile), with a hand-written backward.

The generic path (``solvers.semi_implicit`` + autograd) records ~15 autograd nodes per ODE
unfold; these record one node for the whole sequence and recompute the synapse
activations in the backward pass instead of storing (B, N, N) tensors. Inside,
everything is neuron-major: the state is v (N, B) and synapse tensors are (N, K, B), so
that the sums over synapses and their gradients are batched matrix products over the
neurons. The update is the one of :mod:`liquid_rl.kernels.reference`.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from liquid_rl.kernels.base import InferenceTables, LTCKernel
from liquid_rl.kernels.denormals import flushed_denormals


def forward_step(v: Tensor, num0: Tensor, den0: Tensor, h: Tensor, cm: Tensor, sig: Tensor, nsmu: Tensor,
                 M2: Tensor, src: Tensor, unfolds: int) -> tuple[Tensor, Tensor, Tensor]:
    """One step of ``unfolds`` semi-implicit updates.

    v, num0, den0: (N, B); h: (1, B) or (1, 1); cm: (N, 1); sig, nsmu: (N, K, 1);
    M2: (N, 2, K); src: (N*K,). Returns (v_next (N, B), states (U, N, B) the input state
    of every unfold, dens (U, N, B) the denominators), what the backward needs.
    """
    N, K = sig.shape[0], sig.shape[1]
    B = v.shape[1]
    states = []
    dens = []
    for _ in range(unfolds):
        states.append(v)
        s = torch.sigmoid(torch.addcmul(nsmu, v.index_select(0, src).view(N, K, B), sig))
        ag = torch.bmm(M2, s)                                        # (N, 2, B)
        num = torch.addcmul(num0, cm, v) + h * ag[:, 0]
        den = den0 + h * ag[:, 1]
        dens.append(den)
        v = num / den
    return v, torch.stack(states), torch.stack(dens)


def backward_step(gv: Tensor, v_out: Tensor, states: Tensor, dens: Tensor, h: Tensor, cm: Tensor, sig: Tensor,
                  nsmu: Tensor, M2: Tensor, src: Tensor) -> tuple[Tensor, ...]:
    """Gradients of one step, given gv = dL/dv_next (N, B).

    Returns (gv = dL/dv_in (N, B), g_num0 (N, B), g_den0 (N, B), g_cm (N, 1),
    g_sig (N, K, 1), g_nsmu (N, K, 1), g_M2 (N, 2, K)), the parameter terms summed over
    the batch and the unfolds of this step.
    """
    N, K = sig.shape[0], sig.shape[1]
    B = gv.shape[1]
    unfolds = states.shape[0]
    g_num0 = torch.zeros_like(gv)
    g_den0 = torch.zeros_like(gv)
    g_cm = torch.zeros_like(gv)
    g_M2 = torch.zeros_like(M2)
    g_sig = torch.zeros((N, K, B), dtype=gv.dtype, device=gv.device)
    g_nsmu = torch.zeros_like(g_sig)
    v_next = v_out
    for k in range(unfolds - 1, -1, -1):
        v = states[k]
        vs = v.index_select(0, src).view(N, K, B)
        s = torch.sigmoid(torch.addcmul(nsmu, vs, sig))
        g_num = gv / dens[k]
        g_den = -g_num * v_next
        g_num0 = g_num0 + g_num
        g_den0 = g_den0 + g_den
        g_cm = torch.addcmul(g_cm, g_num, v)
        G = torch.stack([g_num, g_den], 1) * h.unsqueeze(1)           # (N, 2, B)
        g_M2 = torch.baddbmm(g_M2, G, s.transpose(1, 2))
        g_z = torch.bmm(M2.transpose(1, 2), G) * (s * (1.0 - s))      # (N, K, B)
        g_sig = torch.addcmul(g_sig, g_z, vs)
        g_nsmu = g_nsmu + g_z
        gv = (g_num * cm).index_add(0, src, (g_z * sig).view(N * K, B))
        v_next = v
    return (gv, g_num0, g_den0, g_cm.sum(1, keepdim=True), g_sig.sum(2, keepdim=True),
            g_nsmu.sum(2, keepdim=True), g_M2)


_STEPS: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {"eager": (forward_step, backward_step)}


def step_functions(name: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """(forward_step, backward_step) for "eager" or "compiled" (compiled on first use)."""
    if name not in ("eager", "compiled"):
        raise ValueError(f"Unknown LTC step kernel {name!r}; choose 'eager' or 'compiled'")
    if name not in _STEPS:
        _STEPS[name] = (torch.compile(forward_step, dynamic=True), torch.compile(backward_step, dynamic=True))
    return _STEPS[name]


class StepwiseSemiImplicitLTC(torch.autograd.Function):
    """``apply(v0, keep, num0, den0, h, cm, sig, nsmu, M2, src, unfolds, steps, flush) -> V``:
    the arguments and result of :meth:`LTCKernel.sequence`, run one time step at a time by
    ``steps`` ("eager" or "compiled", see :func:`step_functions`)."""

    @staticmethod
    def forward(ctx: Any, v0: Tensor, keep: Tensor | None, num0: Tensor, den0: Tensor, h: Tensor,
                cm: Tensor, sig: Tensor, nsmu: Tensor, M2: Tensor, src: Tensor, unfolds: int,
                steps: str = "eager", flush: bool = False) -> Tensor:
        ctx.steps = steps
        ctx.flush = flush
        fwd, _ = step_functions(steps)
        T = num0.shape[0]
        num0_t = num0.permute(0, 2, 1).contiguous()                      # (T, N, B)
        den0_t = den0.permute(0, 2, 1).contiguous()
        h_t = h.permute(0, 2, 1)                                         # (T, 1, B|1)
        keep_t = None if keep is None else keep.permute(0, 2, 1)
        cm_c, sig_c, nsmu_c = cm.unsqueeze(1), sig.unsqueeze(2), nsmu.unsqueeze(2)
        v = v0.t()
        outs, all_states, all_dens = [], [], []
        for t in range(T):
            if keep_t is not None:
                v = v * keep_t[t]
            v, states, dens = fwd(v, num0_t[t], den0_t[t], h_t[t], cm_c, sig_c, nsmu_c, M2, src, unfolds)
            outs.append(v)
            all_states.append(states)
            all_dens.append(dens)
        V = torch.stack(outs)                                            # (T, N, B)
        ctx.save_for_backward(keep_t, h_t, cm_c, sig_c, nsmu_c, M2, src, V,
                              torch.stack(all_states), torch.stack(all_dens))
        return V.transpose(1, 2)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        if ctx.flush:
            with flushed_denormals(grad_out.device):
                return StepwiseSemiImplicitLTC._backward(ctx, grad_out)
        return StepwiseSemiImplicitLTC._backward(ctx, grad_out)

    @staticmethod
    def _backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        keep_t, h_t, cm_c, sig_c, nsmu_c, M2, src, V, states, dens = ctx.saved_tensors
        _, bwd = step_functions(ctx.steps)
        T = V.shape[0]
        g_out = grad_out.transpose(1, 2)                                 # (T, N, B)
        g_num0 = torch.empty_like(V)
        g_den0 = torch.empty_like(V)
        g_cm = torch.zeros_like(cm_c)
        g_sig = torch.zeros_like(sig_c)
        g_nsmu = torch.zeros_like(nsmu_c)
        g_M2 = torch.zeros_like(M2)
        gv = torch.zeros_like(V[0])
        for t in range(T - 1, -1, -1):
            gv = gv + g_out[t]
            gv, g_num0[t], g_den0[t], d_cm, d_sig, d_nsmu, d_M2 = bwd(
                gv, V[t], states[t], dens[t], h_t[t], cm_c, sig_c, nsmu_c, M2, src)
            g_cm += d_cm
            g_sig += d_sig
            g_nsmu += d_nsmu
            g_M2 += d_M2
            if keep_t is not None:
                gv = gv * keep_t[t]
        return (gv.t(), None, g_num0.permute(0, 2, 1), g_den0.permute(0, 2, 1), None, g_cm[:, 0],
                g_sig[:, :, 0], g_nsmu[:, :, 0], g_M2, None, None, None, None)


def infer_neuron_major(x: Tensor, v0: Tensor, h: Tensor, keep: Tensor | None, p: InferenceTables,
                       unfolds: int) -> Tensor:
    """:meth:`LTCKernel.infer` in PyTorch ops without autograd bookkeeping: fewer and
    cheaper operations per unfold than the autograd kernels, same numbers."""
    T, B, I = x.shape
    N, K, U = p.sig.shape[0], p.sig.shape[1], unfolds
    ssig, nssmu = p.ssig.unsqueeze(-1), p.nssmu.unsqueeze(-1)                    # (N, I, 1)
    sig, nsmu = p.sig.unsqueeze(-1), p.nsmu.unsqueeze(-1)                        # (N, K, 1)
    cm, glvl, gl_eps = p.cm.unsqueeze(-1), p.glvl.unsqueeze(-1), p.gl_eps.unsqueeze(-1)   # (N, 1)
    xT = x.reshape(T * B, I).t()                                                 # (I, T*B)
    s = torch.addcmul(nssmu, xT, ssig).sigmoid_()                                # (N, I, T*B)
    sens = torch.bmm(p.M2s, s).view(N, 2, T, B)
    # M2x = [w*erev, cm-slot; w, 0] (N, 2, K+1): the extra column carries cm*v, so one
    # batched product gives [cm v + h a; h g] and an unfold is five tensor operations.
    M2x = torch.cat([p.M2, torch.cat([cm, torch.zeros_like(cm)], 1).unsqueeze(-1)], 2)
    z = x.new_empty((N, K + 1, B))
    v = v0.t()
    outs = []
    for t in range(T):
        if keep is not None:
            v = v * keep[t]
        h_t = h[t].unsqueeze(0)                                                  # (1, B|1)
        nd0 = torch.stack([(glvl + sens[:, 0, t]) * h_t, torch.addcmul(cm, gl_eps + sens[:, 1, t], h_t)], 1)
        h_col = h_t.unsqueeze(1)
        M = M2x * torch.cat([h_col.expand(1, 1, K), torch.ones_like(h_col)], 2) if B == 1 or h_t.shape[-1] == 1 \
            else None
        for _ in range(U):
            pre = v.unsqueeze(0) if p.dense else v.index_select(0, p.src_flat).view(N, K, B)
            torch.sigmoid(torch.addcmul(nsmu, pre, sig), out=z[:, :K])
            z[:, K] = v
            if M is not None:
                nd = torch.baddbmm(nd0, M, z)
            else:  # per-sample elapsed times: scale the synapse sums by h per sample
                nd = nd0 + torch.bmm(M2x[:, :, :K], z[:, :K]) * h_t
                nd[:, 0] += cm * v
            v = nd[:, 0] / nd[:, 1]
        outs.append(v)
    return torch.stack(outs).transpose(1, 2)                                     # (T, B, N)


class EagerKernel(LTCKernel):
    """"eager": plain PyTorch ops, one autograd node per sequence; any device and dtype."""

    name = "eager"

    def sequence(self, v0: Tensor, keep: Tensor | None, num0: Tensor, den0: Tensor, h: Tensor, cm: Tensor,
                 sig: Tensor, nsmu: Tensor, M2: Tensor, src_flat: Tensor, unfolds: int, flush: bool,
                 fanin: Tensor | None) -> Tensor:
        return StepwiseSemiImplicitLTC.apply(v0, keep, num0, den0, h, cm, sig, nsmu, M2, src_flat, unfolds,
                                             self.name, flush)

    def infer(self, x: Tensor, v0: Tensor, h: Tensor, keep: Tensor | None, p: InferenceTables,
              unfolds: int) -> Tensor:
        return infer_neuron_major(x, v0, h, keep, p, unfolds)


class CompiledKernel(EagerKernel):
    """"compiled": the eager step through torch.compile (a few fused kernels a step,
    compiled at first use); inference runs the eager no-grad loop."""

    name = "compiled"
