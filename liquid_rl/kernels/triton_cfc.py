"""The CfC recurrence of ``liquid_rl/cfc_fused.py`` in one Triton launch forward and one
backward: the loop over time steps, with the state of a block of batch rows on chip.

Only the recurrence is in the kernels; what does not depend on the step order stays in
PyTorch as in :class:`liquid_rl.cfc_fused.FusedCfC`: the head-gradient coefficients ``C``
for all steps after the forward, and the weight gradients as matrix products over all
steps after the backward (a fixed number of operations per sequence). Per step, as there:
    z = pre_t + h @ w_h;  a = tanh(z);  heads = a @ W^T + b  (or heads = z without a backbone)
    f1, f2 = tanh(heads[:2H]);  g = sigmoid(t_a * ts + t_b);  h' = f1 + g (f2 - f1)  (or f1 + g f2)
The four head blocks are four matrix products against row blocks of W (or column blocks of
w_h), so no register tile is ever sliced. Products run in IEEE float32 (no TF32) so the
numbers match the PyTorch kernel's.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from liquid_rl.cfc_fused import backward_tensors
from liquid_rl.kernels import triton_ltc
from liquid_rl.kernels.triton_ltc import check

if triton_ltc.triton is not None:
    import triton
    import triton.language as tl
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction

    def _cfc_forward_kernel(pre, h0, keep, ts, w_h, W, b, hs, h_prev, acts, fs, gs,
                            T, B, H, Z,
                            HAS_KEEP: tl.constexpr, HAS_TS: tl.constexpr, HAS_W: tl.constexpr,
                            NO_GATE: tl.constexpr, RECORD: tl.constexpr,
                            BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_ZC: tl.constexpr):
        pid = tl.program_id(0)
        rb = pid * BLOCK_B + tl.arange(0, BLOCK_B)
        rh = tl.arange(0, BLOCK_H)
        mb = rb < B
        mh = rh < H
        m_bh = mb[:, None] & mh[None, :]
        h = tl.load(h0 + rb[:, None] * H + rh[None, :], mask=m_bh, other=0.0)
        BH = B * H
        for t in range(T):
            if HAS_KEEP:
                h = h * tl.load(keep + t * B + rb, mask=mb, other=0.0)[:, None]
            if RECORD:
                tl.store(h_prev + t * BH + rb[:, None] * H + rh[None, :], h, mask=m_bh)
            pre_t = pre + t * B * Z + rb[:, None] * Z
            if HAS_W:
                # Z in chunks of BLOCK_ZC columns (a runtime loop: the weights are re-read from cache
                # each step rather than all held in shared memory, which they would overflow)
                x1 = tl.full((BLOCK_B, BLOCK_H), 0.0, h.dtype) + tl.load(b + rh, mask=mh, other=0.0)[None, :]
                x2 = tl.full((BLOCK_B, BLOCK_H), 0.0, h.dtype) + tl.load(b + H + rh, mask=mh, other=0.0)[None, :]
                xa = tl.full((BLOCK_B, BLOCK_H), 0.0, h.dtype) + tl.load(b + 2 * H + rh, mask=mh, other=0.0)[None, :]
                xb = tl.full((BLOCK_B, BLOCK_H), 0.0, h.dtype) + tl.load(b + 3 * H + rh, mask=mh, other=0.0)[None, :]
                rc = tl.arange(0, BLOCK_ZC)
                for z0 in range(0, Z, BLOCK_ZC):
                    cz = z0 + rc
                    mc = cz < Z
                    m_hc = mh[:, None] & mc[None, :]
                    m_ch = mc[:, None] & mh[None, :]
                    m_bc = mb[:, None] & mc[None, :]
                    wh = tl.load(w_h + rh[:, None] * Z + cz[None, :], mask=m_hc, other=0.0)        # (H, ZC)
                    z = tl.load(pre_t + cz[None, :], mask=m_bc, other=0.0)
                    z += tl.dot(h, wh, input_precision="ieee")
                    a = 2.0 / (1.0 + tl.exp(-2.0 * z)) - 1.0                                        # tanh
                    tl.store(acts + t * B * Z + rb[:, None] * Z + cz[None, :], a, mask=m_bc)
                    # heads block k += a @ W[kH:(k+1)H, chunk]^T; W is (4H, Z), read as (ZC, H) tiles
                    x1 += tl.dot(a, tl.load(W + (0 * H + rh[None, :]) * Z + cz[:, None], mask=m_ch, other=0.0),
                                 input_precision="ieee")
                    x2 += tl.dot(a, tl.load(W + (1 * H + rh[None, :]) * Z + cz[:, None], mask=m_ch, other=0.0),
                                 input_precision="ieee")
                    xa += tl.dot(a, tl.load(W + (2 * H + rh[None, :]) * Z + cz[:, None], mask=m_ch, other=0.0),
                                 input_precision="ieee")
                    xb += tl.dot(a, tl.load(W + (3 * H + rh[None, :]) * Z + cz[:, None], mask=m_ch, other=0.0),
                                 input_precision="ieee")
            else:
                # no backbone: Z = 4H and the heads are z's four column blocks
                m_hh = mh[:, None] & mh[None, :]
                col = rh[:, None] * Z + rh[None, :]
                x1 = tl.load(pre_t + rh[None, :], mask=m_bh, other=0.0)
                x1 += tl.dot(h, tl.load(w_h + col, mask=m_hh, other=0.0), input_precision="ieee")
                x2 = tl.load(pre_t + H + rh[None, :], mask=m_bh, other=0.0)
                x2 += tl.dot(h, tl.load(w_h + H + col, mask=m_hh, other=0.0), input_precision="ieee")
                xa = tl.load(pre_t + 2 * H + rh[None, :], mask=m_bh, other=0.0)
                xa += tl.dot(h, tl.load(w_h + 2 * H + col, mask=m_hh, other=0.0), input_precision="ieee")
                xb = tl.load(pre_t + 3 * H + rh[None, :], mask=m_bh, other=0.0)
                xb += tl.dot(h, tl.load(w_h + 3 * H + col, mask=m_hh, other=0.0), input_precision="ieee")
            f1 = 2.0 / (1.0 + tl.exp(-2.0 * x1)) - 1.0
            f2 = 2.0 / (1.0 + tl.exp(-2.0 * x2)) - 1.0
            if HAS_TS:
                gate = xb + xa * tl.load(ts + t * B + rb, mask=mb, other=1.0)[:, None]
            else:
                gate = xb + xa
            g = 1.0 / (1.0 + tl.exp(-gate))
            if NO_GATE:
                h = f1 + g * f2
            else:
                h = f1 + g * (f2 - f1)
            tl.store(hs + t * BH + rb[:, None] * H + rh[None, :], h, mask=m_bh)
            if RECORD:
                f_t = fs + t * 2 * BH + rb[:, None] * 2 * H + rh[None, :]
                tl.store(f_t, f1, mask=m_bh)
                tl.store(f_t + H, f2, mask=m_bh)
                tl.store(gs + t * BH + rb[:, None] * H + rh[None, :], g, mask=m_bh)

    def _cfc_backward_kernel(grad_out, keep, w_h, W, C, D, g_heads, g_z, g_h0,
                             T, B, H, Z,
                             HAS_KEEP: tl.constexpr, HAS_W: tl.constexpr,
                             BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_ZC: tl.constexpr):
        pid = tl.program_id(0)
        rb = pid * BLOCK_B + tl.arange(0, BLOCK_B)
        rh = tl.arange(0, BLOCK_H)
        mb = rb < B
        mh = rh < H
        m_bh = mb[:, None] & mh[None, :]
        BH = B * H
        row_h = rb[:, None] * H + rh[None, :]
        gh = tl.load(grad_out + (T - 1) * BH + row_h, mask=m_bh, other=0.0)
        for tt in range(T):
            t = T - 1 - tt
            c_t = C + t * 4 * BH + rb[:, None] * 4 * H + rh[None, :]
            gh_t = g_heads + t * 4 * BH + rb[:, None] * 4 * H + rh[None, :]
            g0 = tl.load(c_t, mask=m_bh, other=0.0) * gh
            g1 = tl.load(c_t + H, mask=m_bh, other=0.0) * gh
            g2 = tl.load(c_t + 2 * H, mask=m_bh, other=0.0) * gh
            g3 = tl.load(c_t + 3 * H, mask=m_bh, other=0.0) * gh
            tl.store(gh_t, g0, mask=m_bh)
            tl.store(gh_t + H, g1, mask=m_bh)
            tl.store(gh_t + 2 * H, g2, mask=m_bh)
            tl.store(gh_t + 3 * H, g3, mask=m_bh)
            if t > 0:
                g_next = tl.load(grad_out + (t - 1) * BH + row_h, mask=m_bh, other=0.0)
            else:
                g_next = tl.full((BLOCK_B, BLOCK_H), 0.0, gh.dtype)
            if HAS_W:
                back = tl.full((BLOCK_B, BLOCK_H), 0.0, gh.dtype)
                rc = tl.arange(0, BLOCK_ZC)
                for z0 in range(0, Z, BLOCK_ZC):                  # Z in chunks, as in the forward
                    cz = z0 + rc
                    mc = cz < Z
                    m_hc = mh[:, None] & mc[None, :]
                    m_bc = mb[:, None] & mc[None, :]
                    gz = tl.dot(g0, tl.load(W + (0 * H + rh[:, None]) * Z + cz[None, :], mask=m_hc, other=0.0),
                                input_precision="ieee")
                    gz += tl.dot(g1, tl.load(W + (1 * H + rh[:, None]) * Z + cz[None, :], mask=m_hc, other=0.0),
                                 input_precision="ieee")
                    gz += tl.dot(g2, tl.load(W + (2 * H + rh[:, None]) * Z + cz[None, :], mask=m_hc, other=0.0),
                                 input_precision="ieee")
                    gz += tl.dot(g3, tl.load(W + (3 * H + rh[:, None]) * Z + cz[None, :], mask=m_hc, other=0.0),
                                 input_precision="ieee")
                    gz = gz * tl.load(D + t * B * Z + rb[:, None] * Z + cz[None, :], mask=m_bc, other=0.0)
                    tl.store(g_z + t * B * Z + rb[:, None] * Z + cz[None, :], gz, mask=m_bc)
                    # dL/dh from z = h @ w_h: gz @ w_h^T, the chunk of w_h (H, Z) read as (ZC, H)
                    wht = tl.load(w_h + rh[None, :] * Z + cz[:, None], mask=mc[:, None] & mh[None, :], other=0.0)
                    back += tl.dot(gz, wht, input_precision="ieee")
            else:
                m_hh = mh[:, None] & mh[None, :]
                colt = rh[None, :] * Z + rh[:, None]                                       # w_h block, transposed
                back = tl.dot(g0, tl.load(w_h + colt, mask=m_hh, other=0.0), input_precision="ieee")
                back += tl.dot(g1, tl.load(w_h + H + colt, mask=m_hh, other=0.0), input_precision="ieee")
                back += tl.dot(g2, tl.load(w_h + 2 * H + colt, mask=m_hh, other=0.0), input_precision="ieee")
                back += tl.dot(g3, tl.load(w_h + 3 * H + colt, mask=m_hh, other=0.0), input_precision="ieee")
            if HAS_KEEP:
                back = back * tl.load(keep + t * B + rb, mask=mb, other=0.0)[:, None]
            gh = g_next + back
        tl.store(g_h0 + row_h, gh, mask=m_bh)

    _FNS = (_cfc_forward_kernel, _cfc_backward_kernel)
    _COMPILED = {f: JITFunction(f) for f in _FNS}
    _INTERPRETED = {f: InterpretedFunction(f) for f in _FNS}


def _kernel(fn: Any, device: torch.device) -> Any:
    return (_COMPILED if device.type == "cuda" else _INTERPRETED)[fn]


BLOCK_ZC = 32   # backbone columns per chunk


def _tiles(B: int, H: int, Z: int) -> tuple[int, int, int, int]:
    """(BLOCK_B, BLOCK_H, BLOCK_ZC, programs): 16 rows per program (tl.dot's least), H padded
    to a power of two of at least 16, the backbone's Z columns in chunks of BLOCK_ZC."""
    bb = 16
    return bb, max(16, triton.next_power_of_2(H)), BLOCK_ZC, triton.cdiv(B, bb)


class TritonCfC(torch.autograd.Function):
    """``apply(pre, h0, keep, ts, w_h, W, b, no_gate) -> hs (T, B, H)``, the argument list
    and numbers of :class:`liquid_rl.cfc_fused.FusedCfC`: pre (T, B, Z); h0 (B, H); keep
    (T, B, 1) or None; ts (T, B|1, 1) or None (1.0); w_h (H, Z); W (4H, Z) and b (4H,), or
    None without a backbone (then Z = 4H). No gradient to keep or ts.
    """

    @staticmethod
    def forward(ctx: Any, pre: Tensor, h0: Tensor, keep: Tensor | None, ts: Tensor | None, w_h: Tensor,
                W: Tensor | None, b: Tensor | None, no_gate: bool) -> Tensor:
        check(pre)
        T, B, Z = pre.shape
        H = h0.shape[1]
        bb, bh, bz, P = _tiles(B, H, Z)
        record = any(ctx.needs_input_grad)
        hs = pre.new_empty((T, B, H))
        h_prev = pre.new_empty((T, B, H)) if record else hs
        acts = pre.new_empty((T, B, Z)) if W is not None else hs
        fs = pre.new_empty((T, B, 2 * H)) if record else hs
        gs = pre.new_empty((T, B, H)) if record else hs
        keep2 = keep.reshape(T, B).contiguous() if keep is not None else hs
        ts2 = ts.expand(T, B, 1).reshape(T, B).contiguous() if ts is not None else hs
        _kernel(_cfc_forward_kernel, pre.device)[(P,)](
            pre.contiguous(), h0.contiguous(), keep2, ts2, w_h.contiguous(), W.contiguous() if W is not None else hs,
            b.contiguous() if b is not None else hs, hs, h_prev, acts, fs, gs, T, B, H, Z,
            HAS_KEEP=keep is not None, HAS_TS=ts is not None, HAS_W=W is not None, NO_GATE=no_gate,
            RECORD=record, BLOCK_B=bb, BLOCK_H=bh, BLOCK_ZC=bz, num_warps=8)
        if not record:
            return hs
        A = acts if W is not None else None
        ctx.save_for_backward(*backward_tensors(keep, w_h, W, h_prev, A, fs, gs, ts, no_gate))
        return hs

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        keep, w_h, W, h_prev, A, C, D = ctx.saved_tensors
        T, B, H = grad_out.shape
        Z = w_h.shape[1]
        bb, bh, bz, P = _tiles(B, H, Z)
        g_heads = grad_out.new_empty((T, B, 4 * H))
        g_z = g_heads if W is None else grad_out.new_empty((T, B, Z))
        g_h0 = grad_out.new_empty((B, H))
        keep2 = keep.reshape(T, B).contiguous() if keep is not None else g_h0
        _kernel(_cfc_backward_kernel, grad_out.device)[(P,)](
            grad_out.contiguous(), keep2, w_h.contiguous(), W.contiguous() if W is not None else g_h0, C,
            D if D is not None else g_h0, g_heads, g_z, g_h0, T, B, H, Z,
            HAS_KEEP=keep is not None, HAS_W=W is not None, BLOCK_B=bb, BLOCK_H=bh, BLOCK_ZC=bz, num_warps=8)
        g_w_h = h_prev.reshape(T * B, H).t() @ g_z.reshape(T * B, Z)
        g_W = g_b = None
        if W is not None:
            g_W = g_heads.reshape(T * B, 4 * H).t() @ A.reshape(T * B, -1)
            g_b = g_heads.sum((0, 1))
        return g_z, g_h0, None, None, g_w_h, g_W, g_b, None

