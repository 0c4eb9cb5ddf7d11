"""Fused semi-implicit LTC over a whole sequence, with a hand-written backward.

The generic path (``solvers.semi_implicit`` + autograd) records ~15 autograd nodes per
ODE unfold; this one records a single node for the whole sequence and recomputes the
synapse activations in the backward pass instead of storing (B, N, N) tensors.
It is a pure speed-up: tests check it against the generic path, values and gradients.

Layout. Synapses are grouped by destination: neuron j has up to K presynaptic sources
``src[j, k]`` (padding entries have zero weight), so a sparse NCP costs O(N K B) and a
fully connected wiring is the dense case K = N. Inside the kernel everything is
neuron-major: the state is v (N, B) and synapse tensors are (N, K, B), so that the sums
over synapses and their gradients are batched matrix products over the neurons.

Per unfold, with h = elapsed/unfolds (1, B) or (1, 1):
    s          = sigmoid(sig * v[src] + nsmu)                      (N, K, B)
    [a; g]     = M2 @ s,  M2 = [w*erev; w]                         (N, 2, B)
    v_next     = (cm v + num0 + h a) / (den0 + h g)
where num0 = h (gleak vleak + sensory a) and den0 = cm + h (gleak + sensory g + eps)
are computed outside the kernel (their gradients flow through autograd).

Kernels, chosen with ``LTC(kernel=...)`` and all giving the same numbers:
- "native": the whole sequence, forward and backward, in one call of a small C++ kernel
  (``csrc/ltc_cpu.cpp``, built at first use by ``liquid_rl.native``); CPU only.
- "eager": one time step (U unfolds) forward and backward in plain PyTorch ops.
- "compiled": the eager step through torch.compile (a few fused C++/CUDA kernels a step).
- "auto" (default): "native" on the CPU when it builds here, "eager" otherwise.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from liquid_rl import native


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


KERNELS = ("auto", "native", "eager", "compiled")
_KERNELS: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {"eager": (forward_step, backward_step)}


def check_kernel(name: str) -> None:
    """Raise a ValueError for an unknown kernel name, or for "native" where it cannot be built."""
    if name not in KERNELS:
        raise ValueError(f"Unknown LTC kernel {name!r}; choose one of {KERNELS}")
    if name == "native" and not native.available():
        raise ValueError("LTC kernel 'native' needs a C++ compiler (g++ or $CXX) to build it; "
                         "use kernel='auto' to fall back to the PyTorch kernel")


def resolve_kernel(name: str, device: torch.device, dtype: torch.dtype) -> str:
    """The kernel that runs: "native" only on the CPU in float32/float64 (else "eager")."""
    if name in ("auto", "native"):
        usable = device.type == "cpu" and dtype in (torch.float32, torch.float64)
        return "native" if usable and native.available() else "eager"
    return name


def get_kernel(name: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """(forward_step, backward_step) for "eager" or "compiled" (compiled on first use)."""
    if name not in ("eager", "compiled"):
        raise ValueError(f"Unknown LTC step kernel {name!r}; choose 'eager' or 'compiled'")
    if name not in _KERNELS:
        _KERNELS[name] = (torch.compile(forward_step, dynamic=True),
                          torch.compile(backward_step, dynamic=True))
    return _KERNELS[name]


class FusedSemiImplicitLTC(torch.autograd.Function):
    """``apply(v0, keep, num0, den0, h, cm, sig, nsmu, M2, src, unfolds, kernel, flush, fanin) -> V``.

    Shapes (batch-major at the interface): v0 (B, N); keep (T, B, 1) multiplies the
    state before each step (0 = reset) or None; num0, den0 (T, B, N); h (T, B, 1) or
    (T, 1, 1); cm (N,); sig, nsmu (N, K); M2 (N, 2, K); src (N*K,) long. Returns
    V (T, B, N), the state after each step. No gradient flows to ``h`` or ``keep``
    (elapsed times and resets are data). ``kernel`` is "native", "eager" or "compiled"
    (already resolved: see :func:`resolve_kernel`); ``fanin`` (N,) long, the number of real
    synapses per neuron, lets the native kernel skip padding (None = all K).
    """

    @staticmethod
    def forward(ctx: Any, v0: Tensor, keep: Tensor | None, num0: Tensor, den0: Tensor, h: Tensor,
                cm: Tensor, sig: Tensor, nsmu: Tensor, M2: Tensor, src: Tensor, unfolds: int,
                kernel: str = "eager", flush: bool = False, fanin: Tensor | None = None) -> Tensor:
        ctx.kernel = kernel
        ctx.flush = flush
        if kernel == "native":
            args = _native_args(keep, h, cm, sig, nsmu, M2, src, fanin)
            ctx.n_threads = native.threads()
            V, states, dens = native.ltc_forward(v0.contiguous(), args[0], num0.contiguous(), den0.contiguous(),
                                                 *args[1:], unfolds, save=True, n_threads=ctx.n_threads)
            ctx.save_for_backward(*args, V, states, dens)
            return V
        fwd, _ = get_kernel(kernel)
        T = num0.shape[0]
        num0_t = num0.permute(0, 2, 1).contiguous()                      # (T, N, B)
        den0_t = den0.permute(0, 2, 1).contiguous()
        h_t = h.permute(0, 2, 1)                                         # (T, 1, B|1)
        keep_t = None if keep is None else keep.permute(0, 2, 1)
        cm_c, sig_c, nsmu_c = cm.unsqueeze(1), sig.unsqueeze(2), nsmu.unsqueeze(2)
        v = v0.t()
        outs, all_states, all_dens, inputs = [], [], [], []
        for t in range(T):
            if keep_t is not None:
                v = v * keep_t[t]
            inputs.append(v)
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
        if ctx.flush and ctx.kernel != "native":  # the native kernel flushes inside its call
            from liquid_rl.ltc import flushed_denormals

            with flushed_denormals(grad_out.device):
                return FusedSemiImplicitLTC._backward(ctx, grad_out)
        return FusedSemiImplicitLTC._backward(ctx, grad_out)

    @staticmethod
    def _backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        if ctx.kernel == "native":
            g_v0, g_num0, g_den0, g_cm, g_sig, g_nsmu, g_M2 = native.ltc_backward(
                grad_out.contiguous(), *ctx.saved_tensors, n_threads=ctx.n_threads)
            return (g_v0, None, g_num0, g_den0, None, g_cm, g_sig, g_nsmu, g_M2, None, None, None, None, None)
        keep_t, h_t, cm_c, sig_c, nsmu_c, M2, src, V, states, dens = ctx.saved_tensors
        _, bwd = get_kernel(ctx.kernel)
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
                g_sig[:, :, 0], g_nsmu[:, :, 0], g_M2, None, None, None, None, None)


def _native_args(keep: Tensor | None, h: Tensor, cm: Tensor, sig: Tensor, nsmu: Tensor, M2: Tensor,
                 src: Tensor, fanin: Tensor | None) -> tuple[Tensor | None, ...]:
    """The native kernel's layouts: keep (T, B), h (T, 1|B), src (N, K); all contiguous."""
    N, K = sig.shape
    return (None if keep is None else keep[..., 0].contiguous(), h[..., 0].contiguous(), cm.contiguous(),
            sig.contiguous(), nsmu.contiguous(), M2.contiguous(), src.reshape(N, K).contiguous(),
            None if fanin is None else fanin.contiguous())
