"""The "native" LTC kernel: the whole sequence, forward and backward, in one call of the C++
kernel ``csrc/ltc_cpu.cpp`` (built at first use by :mod:`liquid_rl.native`); CPU only,
float32 and float64. The C++ code flushes denormals inside its own calls."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from liquid_rl import native
from liquid_rl.kernels.base import InferenceTables, LTCKernel


def _native_args(keep: Tensor | None, h: Tensor, cm: Tensor, sig: Tensor, nsmu: Tensor, M2: Tensor,
                 src: Tensor, fanin: Tensor | None) -> tuple[Tensor | None, ...]:
    """The C++ kernel's layouts: keep (T, B), h (T, 1|B), src (N, K); all contiguous."""
    N, K = sig.shape
    return (None if keep is None else keep[..., 0].contiguous(), h[..., 0].contiguous(), cm.contiguous(),
            sig.contiguous(), nsmu.contiguous(), M2.contiguous(), src.reshape(N, K).contiguous(),
            None if fanin is None else fanin.contiguous())


class NativeSemiImplicitLTC(torch.autograd.Function):
    """``apply(v0, keep, num0, den0, h, cm, sig, nsmu, M2, src, unfolds, fanin) -> V``: the
    arguments and result of :meth:`LTCKernel.sequence` on the C++ kernel."""

    @staticmethod
    def forward(ctx: Any, v0: Tensor, keep: Tensor | None, num0: Tensor, den0: Tensor, h: Tensor, cm: Tensor,
                sig: Tensor, nsmu: Tensor, M2: Tensor, src: Tensor, unfolds: int,
                fanin: Tensor | None = None) -> Tensor:
        args = _native_args(keep, h, cm, sig, nsmu, M2, src, fanin)
        ctx.n_threads = native.threads()
        V, states, dens = native.ltc_forward(v0.contiguous(), args[0], num0.contiguous(), den0.contiguous(),
                                             *args[1:], unfolds, save=True, n_threads=ctx.n_threads)
        ctx.save_for_backward(*args, V, states, dens)
        return V

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        g_v0, g_num0, g_den0, g_cm, g_sig, g_nsmu, g_M2 = native.ltc_backward(
            grad_out.contiguous(), *ctx.saved_tensors, n_threads=ctx.n_threads)
        return (g_v0, None, g_num0, g_den0, None, g_cm, g_sig, g_nsmu, g_M2, None, None, None)


class NativeKernel(LTCKernel):
    """"native": the C++ kernel (see the module docstring)."""

    name = "native"
    flushes_denormals = True

    def supports(self, device: torch.device, dtype: torch.dtype) -> bool:
        return device.type == "cpu" and dtype in (torch.float32, torch.float64) and native.available()

    def sequence(self, v0: Tensor, keep: Tensor | None, num0: Tensor, den0: Tensor, h: Tensor, cm: Tensor,
                 sig: Tensor, nsmu: Tensor, M2: Tensor, src_flat: Tensor, unfolds: int, flush: bool,
                 fanin: Tensor | None) -> Tensor:
        return NativeSemiImplicitLTC.apply(v0, keep, num0, den0, h, cm, sig, nsmu, M2, src_flat, unfolds, fanin)

    def sensory(self, x: Tensor, sigma: Tensor, mu: Tensor, w: Tensor, erev: Tensor) -> tuple[Tensor, Tensor]:
        # One C++ call each way instead of ~10 autograd nodes on (T, B, I, N) tensors.
        T, B, I = x.shape
        tables = (sigma.t(), (-sigma * mu).t(), torch.stack([(w * erev).t(), w.t()], 1))
        a, g = native.SensorySynapses.apply(x.reshape(T * B, I), *tables)
        return a.view(T, B, -1), g.view(T, B, -1)

    def infer(self, x: Tensor, v0: Tensor, h: Tensor, keep: Tensor | None, p: InferenceTables,
              unfolds: int) -> Tensor:
        return native.ltc_infer(v0.contiguous(), None if keep is None else keep.contiguous(), x.contiguous(),
                                h.contiguous(), p.ssig, p.nssmu, p.M2s, p.glvl, p.gl_eps, p.cm, p.sig, p.nsmu,
                                p.M2, p.src, p.fanin, unfolds, native.threads())
