"""The fused semi-implicit LTC under its earlier name: the whole sequence as one autograd
node, on a kernel of the table in :mod:`liquid_rl.kernels` (where the kernels now live)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from liquid_rl import kernels
from liquid_rl.kernels import KERNEL_NAMES as KERNELS
from liquid_rl.kernels import check as check_kernel
from liquid_rl.kernels.eager_ltc import backward_step, forward_step
from liquid_rl.kernels.eager_ltc import step_functions as get_kernel


def resolve_kernel(name: str, device: torch.device, dtype: torch.dtype) -> str:
    """The name of the kernel that runs ``name`` here (see :func:`liquid_rl.kernels.resolve`)."""
    return kernels.resolve(name, device, dtype).name


class FusedSemiImplicitLTC:
    """``apply(v0, keep, num0, den0, h, cm, sig, nsmu, M2, src, unfolds, kernel, flush, fanin) -> V``:
    :meth:`liquid_rl.kernels.LTCKernel.sequence` of the kernel named ``kernel``."""

    @staticmethod
    def apply(v0: Tensor, keep: Tensor | None, num0: Tensor, den0: Tensor, h: Tensor, cm: Tensor, sig: Tensor,
              nsmu: Tensor, M2: Tensor, src: Tensor, unfolds: int, kernel: str = "eager", flush: bool = False,
              fanin: Tensor | None = None) -> Any:
        return kernels.KERNELS[kernel].sequence(v0, keep, num0, den0, h, cm, sig, nsmu, M2, src, unfolds, flush,
                                                fanin)


__all__ = ["FusedSemiImplicitLTC", "KERNELS", "backward_step", "check_kernel", "forward_step", "get_kernel",
           "resolve_kernel"]
