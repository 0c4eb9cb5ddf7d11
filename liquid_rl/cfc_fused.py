"""Fused CfC recurrence ("default" and "no_gate" modes) with a hand-written backward.

Autograd records ~10 nodes per CfC step; this records one node for the whole sequence,
and moves the weight gradients out of the time loop: they are single matrix products
over all steps at the end. The gradient of the heads is linear in dL/dh, so its
coefficients (tanh' and sigmoid' terms, ``C``) are computed for all steps at once after
the forward loop, leaving ~5 operations per step in the backward loop.
Tests check values and gradients against the autograd path.

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
               b: Tensor | None, no_gate: bool, record: bool = False) -> tuple[Tensor, tuple[Tensor | None, ...]]:
    """The forward loop (arguments as :class:`FusedCfC`). Returns hs (T, B, H) and, with
    ``record``, what the backward needs: the state entering each step (after resets)
    (T, B, H), backbone activations (T, B, Z) or None, f (T, B, 2H) and g (T, B, H).
    Every step writes into preallocated (T, ...) buffers (no per-step stacking)."""
    T, B = pre.shape[0], h0.shape[0]
    H = h0.shape[1]
    hs = pre.new_empty((T, B, H))
    h_prev = pre.new_empty((T, B, H)) if record and keep is not None else None
    acts = pre.new_empty((T, B, w_h.shape[1])) if W is not None else None
    fs = pre.new_empty((T, B, 2 * H)) if record else None
    gs = pre.new_empty((T, B, H)) if record else None
    h = h0
    for t in range(T):
        if keep is not None:
            h = torch.mul(h, keep[t], out=h_prev[t]) if h_prev is not None else h * keep[t]
        z = torch.addmm(pre[t], h, w_h)
        if W is not None:
            a = torch.tanh(z, out=acts[t])
            heads = torch.addmm(b, a, W.t())
        else:
            heads = z
        f = torch.tanh(heads[:, : 2 * H], out=fs[t]) if fs is not None else torch.tanh(heads[:, : 2 * H])
        t_a, t_b = heads[:, 2 * H: 3 * H], heads[:, 3 * H:]
        gate = t_b + t_a if ts is None else torch.addcmul(t_b, t_a, ts[t])
        g = torch.sigmoid(gate, out=gs[t]) if gs is not None else torch.sigmoid(gate)
        f1, f2 = f[:, :H], f[:, H:]
        h = torch.addcmul(f1, g, f2, out=hs[t]) if no_gate else torch.lerp(f1, f2, g, out=hs[t])
    if record and h_prev is None:      # no resets: the state entering step t is h_{t-1}
        h_prev = torch.cat([h0.unsqueeze(0), hs[:-1]])
    return hs, (h_prev, acts if record else None, fs, gs)



def head_coefficients(F_: Tensor, G: Tensor, ts: Tensor | None, no_gate: bool) -> Tensor:
    """dL/dheads = C * [gh, gh, gh, gh] per step, blocks [f1, f2, t_a, t_b]: C (T, B, 4H)
    from the recorded f (T, B, 2H) and g (T, B, H) (few passes over (T, B, .) tensors:
    this runs once per sequence)."""
    T, B, H = G.shape
    C = G.new_empty((T, B, 4, H))
    dtanh = torch.addcmul(torch.ones_like(F_), F_, F_, value=-1.0).view(T, B, 2, H)    # 1 - f^2
    one_minus_g = 1.0 - G
    f1, f2 = F_[..., :H], F_[..., H:]
    if no_gate:
        C[:, :, 0] = dtanh[:, :, 0]
        torch.mul(G, dtanh[:, :, 1], out=C[:, :, 1])
        torch.mul(f2 * G, one_minus_g, out=C[:, :, 3])
    else:
        torch.mul(torch.stack([one_minus_g, G], 2), dtanh, out=C[:, :, :2])
        torch.mul((f2 - f1) * G, one_minus_g, out=C[:, :, 3])
    if ts is None:
        C[:, :, 2] = C[:, :, 3]
    else:
        torch.mul(C[:, :, 3], ts, out=C[:, :, 2])
    return C.view(T, B, 4 * H)


def backward_tensors(keep: Tensor | None, w_h: Tensor, W: Tensor | None, h_prev: Tensor, A: Tensor | None,
                     F_: Tensor, G: Tensor, ts: Tensor | None, no_gate: bool) -> tuple[Tensor | None, ...]:
    """What a CfC backward reads, from what its forward recorded: (keep, w_h, W, h_prev, A,
    C, D), C the head coefficients (:func:`head_coefficients`) and D = 1 - A^2, the tanh'
    of the backbone (None without one)."""
    C = head_coefficients(F_, G, ts, no_gate)
    D = None if A is None else torch.addcmul(torch.ones_like(A), A, A, value=-1.0)
    return keep, w_h, W, h_prev, A, C, D


class FusedCfC(torch.autograd.Function):
    """``apply(pre, h0, keep, ts, w_h, W, b, no_gate) -> hs (T, B, H)``.

    pre (T, B, Z); h0 (B, H); keep (T, B, 1) or None; ts (T, B|1, 1) or None (1.0);
    w_h (H, Z); W (4H, Z) and b (4H,) the heads, or None when there is no backbone
    (then Z = 4H and z are the heads). No gradient to keep or ts.
    """

    @staticmethod
    def forward(ctx: Any, pre: Tensor, h0: Tensor, keep: Tensor | None, ts: Tensor | None, w_h: Tensor,
                W: Tensor | None, b: Tensor | None, no_gate: bool) -> Tensor:
        out, (h_prev, A, F_, G) = recurrence(pre, h0, keep, ts, w_h, W, b, no_gate, record=True)
        ctx.save_for_backward(*backward_tensors(keep, w_h, W, h_prev, A, F_, G, ts, no_gate))
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        keep, w_h, W, h_prev, A, C, D = ctx.saved_tensors
        T, B, H = grad_out.shape
        g_heads = grad_out.new_empty((T, B, 4 * H))
        g_z = g_heads if W is None else grad_out.new_empty((T, B, w_h.shape[1]))
        w_h_t = w_h.t().contiguous()
        gh = grad_out[T - 1]                                             # dL/dh_t, all paths
        for t in range(T - 1, -1, -1):
            torch.mul(C[t].view(B, 4, H), gh.unsqueeze(1), out=g_heads[t].view(B, 4, H))
            if W is not None:
                torch.mm(g_heads[t], W, out=g_z[t])
                g_z[t].mul_(D[t])
            g_next = grad_out[t - 1] if t > 0 else torch.zeros_like(gh)  # + the output gradient of h_{t-1}
            if keep is None:
                gh = torch.addmm(g_next, g_z[t], w_h_t)
            else:
                gh = torch.addcmul(g_next, torch.mm(g_z[t], w_h_t), keep[t])
        Z = g_z.shape[-1]
        g_w_h = h_prev.reshape(T * B, H).t() @ g_z.reshape(T * B, Z)
        g_W = g_b = None
        if W is not None:
            g_W = g_heads.reshape(T * B, 4 * H).t() @ A.reshape(T * B, -1)
            g_b = g_heads.sum((0, 1))
        return g_z, gh, None, None, g_w_h, g_W, g_b, None
