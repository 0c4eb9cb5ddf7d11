"""Fused CfC recurrence ("default" and "no_gate" modes) with a hand-written backward.

Autograd records ~10 nodes per CfC step; this records one node for the whole sequence,
and moves the weight gradients out of the time loop: they are single matrix products
over all steps at the end. Tests check values and gradients against the autograd path.

Per step, with the input part of the first map precomputed for all steps (``pre``):
    z      = pre_t + h @ w_h                     (B, Z)
    a      = tanh(z)   (backbone; lecun_tanh's scales are folded into the weights)
    heads  = a @ W^T + b   (backbone)  or  heads = z   (no backbone: wired layers)
    f1, f2 = tanh(heads[:, :2H]).chunk(2)
    g      = sigmoid(t_a * ts + t_b)
    h'     = f1 + g (f2 - f1)   ("default")   or   f1 + g f2   ("no_gate")
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable


def recurrence(pre: Tensor, h0: Tensor, keep: Tensor | None, ts: Tensor | None, w_h: Tensor, W: Tensor | None,
               b: Tensor | None, no_gate: bool, record: bool = False) -> tuple[Tensor, tuple[list[Tensor], ...]]:
    """The forward loop (arguments as :class:`FusedCfC`). Returns hs (T, B, H) and, with
    ``record``, the per-step tensors the backward needs (inputs h, activations, f, g)."""
    H = h0.shape[1]
    h = h0
    hs: list[Tensor] = []
    h_prev: list[Tensor] = []
    acts: list[Tensor] = []
    fs: list[Tensor] = []
    gs: list[Tensor] = []
    for t in range(pre.shape[0]):
        if keep is not None:
            h = h * keep[t]
        z = torch.addmm(pre[t], h, w_h)
        if W is not None:
            a = torch.tanh(z)
            heads = torch.addmm(b, a, W.t())
        else:
            heads = z
        f = torch.tanh(heads[:, : 2 * H])
        t_a, t_b = heads[:, 2 * H: 3 * H], heads[:, 3 * H:]
        g = torch.sigmoid(t_b + t_a if ts is None else torch.addcmul(t_b, t_a, ts[t]))
        f1, f2 = f[:, :H], f[:, H:]
        if record:
            h_prev.append(h)
            if W is not None:
                acts.append(a)
            fs.append(f)
            gs.append(g)
        h = torch.addcmul(f1, g, f2) if no_gate else torch.addcmul(f1, g, f2 - f1)
        hs.append(h)
    return torch.stack(hs), (h_prev, acts, fs, gs)


class FusedCfC(torch.autograd.Function):
    """``apply(pre, h0, keep, ts, w_h, W, b, no_gate) -> hs (T, B, H)``.

    pre (T, B, Z); h0 (B, H); keep (T, B, 1) or None; ts (T, B|1, 1) or None (1.0);
    w_h (H, Z); W (4H, Z) and b (4H,) the heads, or None when there is no backbone
    (then Z = 4H and z are the heads). No gradient to keep or ts.
    """

    @staticmethod
    def forward(ctx: Any, pre: Tensor, h0: Tensor, keep: Tensor | None, ts: Tensor | None, w_h: Tensor,
                W: Tensor | None, b: Tensor | None, no_gate: bool) -> Tensor:
        out, (h_prev, acts, fs, gs) = recurrence(pre, h0, keep, ts, w_h, W, b, no_gate, record=True)
        ctx.save_for_backward(keep, ts, w_h, W, torch.stack(h_prev), torch.stack(acts) if acts else None,
                              torch.stack(fs), torch.stack(gs))
        ctx.no_gate = no_gate
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        keep, ts, w_h, W, h_prev, acts, fs, gs = ctx.saved_tensors
        T, B, H = grad_out.shape
        g_heads = grad_out.new_empty((T, B, 4 * H))
        g_z = g_heads if W is None else grad_out.new_empty((T, B, w_h.shape[1]))
        gh = torch.zeros_like(grad_out[0])
        for t in range(T - 1, -1, -1):
            gh = gh + grad_out[t]
            f, g = fs[t], gs[t]
            f1, f2 = f[:, :H], f[:, H:]
            gh_heads = g_heads[t]
            if ctx.no_gate:
                g_f1, g_f2, g_g = gh, gh * g, gh * f2
            else:
                g_f2 = gh * g
                g_f1 = gh - g_f2
                g_g = gh * (f2 - f1)
            g_pre_gate = g_g * g * (1.0 - g)
            torch.mul(torch.cat([g_f1, g_f2], 1), 1.0 - f * f, out=gh_heads[:, : 2 * H])
            gh_heads[:, 3 * H:] = g_pre_gate
            if ts is None:
                gh_heads[:, 2 * H: 3 * H] = g_pre_gate
            else:
                torch.mul(g_pre_gate, ts[t], out=gh_heads[:, 2 * H: 3 * H])
            if W is not None:
                a = acts[t]
                torch.mul(gh_heads @ W, 1.0 - a * a, out=g_z[t])
            gh = g_z[t] @ w_h.t()
            if keep is not None:
                gh = gh * keep[t]
        Z = g_z.shape[-1]
        g_w_h = h_prev.reshape(T * B, H).t() @ g_z.reshape(T * B, Z)
        g_W = g_b = None
        if W is not None:
            g_W = g_heads.reshape(T * B, 4 * H).t() @ acts.reshape(T * B, -1)
            g_b = g_heads.sum((0, 1))
        return g_z, gh, None, None, g_w_h, g_W, g_b, None
