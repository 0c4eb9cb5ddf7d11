"""Semi-implicit LTC over a whole sequence in one Triton launch forward and one backward.

The same recurrence, layouts and hand-written backward as ``liquid_rl/ltc_fused.py`` and
its C++ kernel ``csrc/ltc_cpu.cpp`` (synapses grouped by destination, padding after the
first ``fanin[j]`` synapses of neuron j skipped). One program owns a block of BLOCK_B
batch rows and all N units: its state tile (BLOCK_B, N) stays in registers for every step
and unfold. Synapses read their presynaptic values through the synapse index, so the state
of each unfold is written once to memory (the ``states`` the backward needs, or a small
scratch plane when nothing needs a gradient) and gathered from there, BLOCK_K synapses of
every neuron at a time ((BLOCK_B, N, BLOCK_K) tiles); the backward's scatter onto
presynaptic neurons goes through atomic adds on the program's own rows (for the fully
connected layout, found on the device, a row sum instead).

Weight gradients are summed per program into private buffers and reduced over programs
by one ``sum`` afterwards (deterministic, no contention between programs).

With ``TRITON_INTERPRET=1``, Triton's interpreter runs the same kernels on CPU tensors
(CUDA tensors always run compiled), which is how the tests check them without a GPU.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

try:
    import triton
    import triton.language as tl
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction
except ImportError:  # Triton is an optional extra ("gpu")
    triton = None

DTYPES = (torch.float32, torch.float64)


def interpreted() -> bool:
    """True when TRITON_INTERPRET asks for Triton's interpreter (read at each call)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def available() -> bool:
    """True when Triton is importable and can run here (CUDA, or its CPU interpreter)."""
    return triton is not None and (torch.cuda.is_available() or interpreted())


def check(tensor: Tensor) -> None:
    """Raise one ValueError when the Triton kernel cannot run on ``tensor``."""
    if triton is None:
        raise ValueError("LTC kernel 'triton' needs Triton: pip install 'liquid-rl[gpu]' (or pip install triton)")
    if tensor.device.type != "cuda" and not interpreted():
        raise ValueError(f"LTC kernel 'triton' needs a CUDA tensor (got a {tensor.device.type} tensor); "
                         "set TRITON_INTERPRET=1 to run it on the CPU with Triton's interpreter")
    if tensor.dtype not in DTYPES:
        raise ValueError(f"LTC kernel 'triton' supports float32 and float64 (got {tensor.dtype})")


if triton is not None:
    # Plain functions, compiled (CUDA) or interpreted (CPU tensors) by the launchers below. They
    # call builtins only: tl.zeros and tl.sum are themselves jit functions, which run under the
    # interpreter only when TRITON_INTERPRET was set before triton was imported; the reduction
    # with tl.sum's own combine function is the same sum (numpy's, when interpreted).
    _SUM = tl.standard._sum_combine

    def _ltc_forward_kernel(v0, keep, num0, den0, h, cm, sig, nsmu, M2, src, fanin, V, states, dens,
                            T, B, N, K, U, Bh, h_sb,
                            HAS_KEEP: tl.constexpr, HAS_FANIN: tl.constexpr, SAVE: tl.constexpr,
                            BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
        pid = tl.program_id(0)
        rb = pid * BLOCK_B + tl.arange(0, BLOCK_B)
        rn = tl.arange(0, BLOCK_N)
        rk = tl.arange(0, BLOCK_K)
        mb = rb < B
        mn = rn < N
        m = mb[:, None] & mn[None, :]
        off = rb[:, None] * N + rn[None, :]                       # (BLOCK_B, BLOCK_N) in a (B, N) plane
        BN = B * N
        v = tl.load(v0 + off, mask=m, other=0.0)
        cmv = tl.load(cm + rn, mask=mn, other=0.0)
        if HAS_FANIN:
            fan = tl.load(fanin + rn, mask=mn, other=0)
        else:
            fan = tl.full((BLOCK_N,), 0, tl.int32) + K
        for t in range(T):
            if HAS_KEEP:
                f = tl.load(keep + t * B + rb, mask=mb, other=0.0)
                v = v * f[:, None]
            ht = tl.load(h + t * Bh + rb * h_sb, mask=mb, other=1.0)[:, None]
            n0 = tl.load(num0 + t * BN + off, mask=m, other=0.0)
            d0 = tl.load(den0 + t * BN + off, mask=m, other=1.0)
            for u in range(U):
                base = (t * U + u) * BN if SAVE else 0
                tl.debug_barrier()                                # the last unfold's gathers are done
                tl.store(states + base + off, v, mask=m)
                tl.debug_barrier()                                # the state is visible to the program
                a = tl.full((BLOCK_B, BLOCK_N), 0.0, v.dtype)
                g = tl.full((BLOCK_B, BLOCK_N), 0.0, v.dtype)
                for k0 in range(0, K, BLOCK_K):                   # BLOCK_K synapses of every neuron at once
                    kk = k0 + rk
                    valid = mn[:, None] & (kk[None, :] < fan[:, None])           # (BLOCK_N, BLOCK_K)
                    pk = rn[:, None] * K + kk[None, :]
                    pw = rn[:, None] * 2 * K + kk[None, :]
                    sk = tl.load(src + pk, mask=valid, other=0)
                    sg = tl.load(sig + pk, mask=valid, other=0.0)
                    mu = tl.load(nsmu + pk, mask=valid, other=0.0)
                    w0 = tl.load(M2 + pw, mask=valid, other=0.0)
                    w1 = tl.load(M2 + pw + K, mask=valid, other=0.0)
                    x = tl.load(states + base + rb[:, None, None] * N + sk[None, :, :],
                                mask=mb[:, None, None] & valid[None, :, :], other=0.0)  # (BLOCK_B, BLOCK_N, BLOCK_K)
                    s = 1.0 / (1.0 + tl.exp(-(sg[None, :, :] * x + mu[None, :, :])))
                    a += tl.reduce(w0[None, :, :] * s, 2, _SUM)
                    g += tl.reduce(w1[None, :, :] * s, 2, _SUM)
                d = d0 + ht * g
                if SAVE:
                    tl.store(dens + base + off, d, mask=m)
                v = (cmv[None, :] * v + n0 + ht * a) / d
            tl.store(V + t * BN + off, v, mask=m)

    def _ltc_backward_kernel(grad_out, keep, h, cm, sig, nsmu, M2, src, fanin, V, states, dens, scratch,
                             g_v0, g_num0, g_den0, p_cm, p_sig, p_nsmu, p_M2,
                             T, B, N, K, U, Bh, h_sb,
                             HAS_KEEP: tl.constexpr, HAS_FANIN: tl.constexpr,
                             BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
        pid = tl.program_id(0)
        rb = pid * BLOCK_B + tl.arange(0, BLOCK_B)
        rn = tl.arange(0, BLOCK_N)
        rk = tl.arange(0, BLOCK_K)
        mb = rb < B
        mn = rn < N
        m = mb[:, None] & mn[None, :]
        off = rb[:, None] * N + rn[None, :]
        BN = B * N
        NK = N * K
        cmv = tl.load(cm + rn, mask=mn, other=0.0)
        if HAS_FANIN:
            fan = tl.load(fanin + rn, mask=mn, other=0)
        else:
            fan = tl.full((BLOCK_N,), 0, tl.int32) + K
        # Dense layout (the k-th source of every neuron is neuron k): the scatter onto sources is a row sum.
        mismatch = 0
        for k0 in range(0, K, BLOCK_K):
            kk = k0 + rk
            valid = mn[:, None] & (kk[None, :] < fan[:, None])
            sk = tl.load(src + rn[:, None] * K + kk[None, :], mask=valid, other=0)
            mismatch += tl.reduce(tl.reduce(tl.where(valid & (sk != kk[None, :]), 1, 0), 1, _SUM), 0, _SUM)
        dense = mismatch == 0
        gv = tl.full((BLOCK_B, BLOCK_N), 0.0, cmv.dtype)
        gcm = tl.full((BLOCK_N,), 0.0, cmv.dtype)
        for tt in range(T):
            t = T - 1 - tt
            gv += tl.load(grad_out + t * BN + off, mask=m, other=0.0)
            ht = tl.load(h + t * Bh + rb * h_sb, mask=mb, other=1.0)[:, None]
            gn0 = tl.full((BLOCK_B, BLOCK_N), 0.0, cmv.dtype)
            gd0 = tl.full((BLOCK_B, BLOCK_N), 0.0, cmv.dtype)
            for uu in range(U):
                u = U - 1 - uu
                base = (t * U + u) * BN
                v = tl.load(states + base + off, mask=m, other=0.0)
                den = tl.load(dens + base + off, mask=m, other=1.0)
                if u == U - 1:
                    v_next = tl.load(V + t * BN + off, mask=m, other=0.0)
                else:
                    v_next = tl.load(states + base + BN + off, mask=m, other=0.0)
                g_num = gv / den
                g_den = -g_num * v_next
                gn0 += g_num
                gd0 += g_den
                gcm += tl.reduce(g_num * v, 0, _SUM)
                G0 = (g_num * ht)[:, :, None]
                G1 = (g_den * ht)[:, :, None]
                tl.debug_barrier()                                # the last unfold's reads of scratch are done
                tl.store(scratch + off, g_num * cmv[None, :], mask=m)
                tl.debug_barrier()
                for k0 in range(0, K, BLOCK_K):
                    kk = k0 + rk
                    valid = mn[:, None] & (kk[None, :] < fan[:, None])
                    mk = mb[:, None, None] & valid[None, :, :]
                    pk = rn[:, None] * K + kk[None, :]
                    pw = rn[:, None] * 2 * K + kk[None, :]
                    sk = tl.load(src + pk, mask=valid, other=0)
                    sg = tl.load(sig + pk, mask=valid, other=0.0)
                    mu = tl.load(nsmu + pk, mask=valid, other=0.0)
                    w0 = tl.load(M2 + pw, mask=valid, other=0.0)
                    w1 = tl.load(M2 + pw + K, mask=valid, other=0.0)
                    x = tl.load(states + base + rb[:, None, None] * N + sk[None, :, :], mask=mk, other=0.0)
                    s = tl.where(mk, 1.0 / (1.0 + tl.exp(-(sg[None, :, :] * x + mu[None, :, :]))), 0.0)
                    z = (w0[None, :, :] * G0 + w1[None, :, :] * G1) * s * (1.0 - s)
                    # Relaxed atomics: the barrier below orders the scatter before scratch is read back,
                    # and the per-program weight gradients are read only after the launch.
                    tl.atomic_add(p_M2 + pid * 2 * NK + pw, tl.reduce(G0 * s, 0, _SUM), mask=valid, sem="relaxed")
                    tl.atomic_add(p_M2 + pid * 2 * NK + pw + K, tl.reduce(G1 * s, 0, _SUM), mask=valid, sem="relaxed")
                    tl.atomic_add(p_sig + pid * NK + pk, tl.reduce(z * x, 0, _SUM), mask=valid, sem="relaxed")
                    tl.atomic_add(p_nsmu + pid * NK + pk, tl.reduce(z, 0, _SUM), mask=valid, sem="relaxed")
                    zs = z * sg[None, :, :]
                    if dense:
                        tl.atomic_add(scratch + rb[:, None] * N + kk[None, :], tl.reduce(zs, 1, _SUM),
                                      mask=mb[:, None] & (kk < N)[None, :] & (kk < K)[None, :], sem="relaxed")
                    else:
                        tl.atomic_add(scratch + rb[:, None, None] * N + sk[None, :, :], zs, mask=mk, sem="relaxed")
                tl.debug_barrier()                                # every scatter into scratch has landed
                gv = tl.load(scratch + off, mask=m, other=0.0, cache_modifier=".cg")
            tl.store(g_num0 + t * BN + off, gn0, mask=m)
            tl.store(g_den0 + t * BN + off, gd0, mask=m)
            if HAS_KEEP:
                f = tl.load(keep + t * B + rb, mask=mb, other=0.0)
                gv = gv * f[:, None]
        tl.store(g_v0 + off, gv, mask=m)
        tl.store(p_cm + pid * N + rn, gcm, mask=mn)

    _COMPILED = {f: JITFunction(f) for f in (_ltc_forward_kernel, _ltc_backward_kernel)}
    _INTERPRETED = {f: InterpretedFunction(f) for f in (_ltc_forward_kernel, _ltc_backward_kernel)}


def _kernel(fn: Any, device: torch.device) -> Any:
    """``fn`` compiled for CUDA, or under Triton's interpreter for tensors elsewhere."""
    return (_COMPILED if device.type == "cuda" else _INTERPRETED)[fn]


class Blocks(NamedTuple):
    """Tile sizes of a launch: batch rows per program, units (N padded to a power of two),
    synapses per neuron handled at once, the number of programs and warps per program."""

    b: int
    n: int
    k: int
    programs: int
    warps: int


def blocks(B: int, N: int, K: int, block_b: int | None = None, block_k: int | None = None) -> Blocks:
    """Batch rows per program: 8 (about one program per SM at batch 1024), fewer for tiny
    batches; synapses per chunk: as many as keep a (rows, N, chunk) tile at 2048 values.
    Tiles of 1024 values and more get 8 warps: with 4, ptxas spills the backward's
    registers at (8, 64, 2) (sm_90, 168 registers) and 8 warps need at most 158 up to 2048."""
    bb = block_b or min(8, triton.next_power_of_2(max(B, 1)))
    bn = triton.next_power_of_2(N)
    bk = block_k or max(1, min(triton.next_power_of_2(K), 2048 // (bb * bn)))
    return Blocks(bb, bn, bk, triton.cdiv(B, bb), 8 if bb * bn * bk >= 1024 else 4)


def _h_layout(h: Tensor, B: int) -> tuple[Tensor, int, int]:
    """h (T, B|1, 1) as a (T, Bh) table, Bh, and its batch stride (0 when shared)."""
    Bh = h.shape[1]
    return h.reshape(h.shape[0], Bh).contiguous(), Bh, (1 if Bh == B and B > 1 else 0)


def ltc_forward(v0: Tensor, keep: Tensor | None, num0: Tensor, den0: Tensor, h: Tensor, cm: Tensor, sig: Tensor,
                nsmu: Tensor, M2: Tensor, src: Tensor, fanin: Tensor | None, unfolds: int, save: bool,
                tiles: Blocks | None = None) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """One launch for the whole sequence.

    Shapes as :class:`TritonSemiImplicitLTC` (src (N*K,) and fanin (N,) of any integer
    dtype). Returns V (T, B, N) and, when ``save``, states and dens (T, U, B, N): the
    input state and the denominator of every unfold.
    """
    T, B, N = num0.shape
    K = sig.shape[1]
    if T * unfolds * B * N >= 2**31:
        raise ValueError(f"LTC kernel 'triton' indexes with 32-bit offsets: T*unfolds*B*N must be < 2**31 "
                         f"(got {T}*{unfolds}*{B}*{N})")
    tb = tiles or blocks(B, N, K)
    V = num0.new_empty((T, B, N))
    states = num0.new_empty((T, unfolds, B, N) if save else (B, N))
    dens = num0.new_empty((T, unfolds, B, N)) if save else V      # V: an unused placeholder
    h2, Bh, h_sb = _h_layout(h, B)
    keep2 = keep.reshape(T, B).contiguous() if keep is not None else V
    _kernel(_ltc_forward_kernel, num0.device)[(tb.programs,)](
        v0.contiguous(), keep2, num0.contiguous(), den0.contiguous(), h2, cm.contiguous(), sig.contiguous(),
        nsmu.contiguous(), M2.contiguous(), src.contiguous(), src if fanin is None else fanin.contiguous(),
        V, states, dens, T, B, N, K, unfolds, Bh, h_sb,
        HAS_KEEP=keep is not None, HAS_FANIN=fanin is not None, SAVE=save, BLOCK_B=tb.b, BLOCK_N=tb.n,
        BLOCK_K=tb.k, num_warps=tb.warps)
    return V, (states if save else None), (dens if save else None)


def ltc_backward(grad_out: Tensor, keep: Tensor | None, h: Tensor, cm: Tensor, sig: Tensor, nsmu: Tensor,
                 M2: Tensor, src: Tensor, fanin: Tensor | None, V: Tensor, states: Tensor, dens: Tensor,
                 tiles: Blocks | None = None) -> tuple[Tensor, ...]:
    """One launch (plus a sum over programs) for the gradients given dL/dV (T, B, N).

    Returns (g_v0 (B, N), g_num0, g_den0 (T, B, N), g_cm (N,), g_sig, g_nsmu (N, K), g_M2 (N, 2, K)).
    """
    T, U, B, N = states.shape
    K = sig.shape[1]
    tb = tiles or blocks(B, N, K)
    P = tb.programs
    g_v0 = V.new_empty((B, N))
    g_num0 = torch.empty_like(V)
    g_den0 = torch.empty_like(V)
    scratch = V.new_empty((B, N))
    p_cm = V.new_empty((P, N))
    p_sig = V.new_zeros((P, N, K))                               # per-program weight gradients
    p_nsmu = V.new_zeros((P, N, K))
    p_M2 = V.new_zeros((P, N, 2, K))
    h2, Bh, h_sb = _h_layout(h, B)
    keep2 = keep.reshape(T, B).contiguous() if keep is not None else V
    _kernel(_ltc_backward_kernel, V.device)[(P,)](
        grad_out.contiguous(), keep2, h2, cm.contiguous(), sig.contiguous(), nsmu.contiguous(), M2.contiguous(),
        src.contiguous(), src if fanin is None else fanin.contiguous(), V, states, dens, scratch,
        g_v0, g_num0, g_den0, p_cm, p_sig, p_nsmu, p_M2, T, B, N, K, U, Bh, h_sb,
        HAS_KEEP=keep is not None, HAS_FANIN=fanin is not None, BLOCK_B=tb.b, BLOCK_N=tb.n, BLOCK_K=tb.k,
        num_warps=tb.warps)
    return g_v0, g_num0, g_den0, p_cm.sum(0), p_sig.sum(0), p_nsmu.sum(0), p_M2.sum(0)


class TritonSemiImplicitLTC(torch.autograd.Function):
    """``apply(v0, keep, num0, den0, h, cm, sig, nsmu, M2, src, unfolds, kernel, flush, fanin) -> V``.

    The argument list of :class:`liquid_rl.ltc_fused.FusedSemiImplicitLTC`: v0 (B, N);
    keep (T, B, 1) or None; num0, den0 (T, B, N); h (T, B, 1) or (T, 1, 1); cm (N,);
    sig, nsmu (N, K); M2 (N, 2, K); src (N*K,) long; fanin (N,) long or None. Returns
    V (T, B, N). ``kernel`` and ``flush`` are accepted for that signature and ignored
    (GPUs have no denormal slow path). No gradient flows to ``h``, ``keep`` or padding
    synapses (k >= fanin[j]).
    """

    @staticmethod
    def forward(ctx: Any, v0: Tensor, keep: Tensor | None, num0: Tensor, den0: Tensor, h: Tensor, cm: Tensor,
                sig: Tensor, nsmu: Tensor, M2: Tensor, src: Tensor, unfolds: int, kernel: str = "triton",
                flush: bool = False, fanin: Tensor | None = None) -> Tensor:
        check(num0)
        save = any(ctx.needs_input_grad)
        V, states, dens = ltc_forward(v0, keep, num0, den0, h, cm, sig, nsmu, M2, src, fanin, unfolds, save)
        if save:
            ctx.save_for_backward(keep, h, cm, sig, nsmu, M2, src, fanin, V, states, dens)
        return V

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        keep, h, cm, sig, nsmu, M2, src, fanin, V, states, dens = ctx.saved_tensors
        g_v0, g_num0, g_den0, g_cm, g_sig, g_nsmu, g_M2 = ltc_backward(
            grad_out, keep, h, cm, sig, nsmu, M2, src, fanin, V, states, dens)
        return (g_v0, None, g_num0, g_den0, None, g_cm, g_sig, g_nsmu, g_M2, None, None, None, None, None)
