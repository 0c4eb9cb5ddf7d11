"""The LTC kernel table: every fast implementation of the semi-implicit LTC recurrence,
chosen by name in one place (as torchdiffeq picks solvers by name).

The update rule itself is defined once, readably, in :mod:`liquid_rl.kernels.reference`;
each entry below computes the same numbers (the tests compare them, values and gradients):

- "native": the whole sequence in one C++ call (``csrc/ltc_cpu.cpp``); CPU only.
- "eager": plain PyTorch ops per time step, one autograd node per sequence; any device.
- "compiled": the eager step through torch.compile.
- "triton": one Triton launch per sequence each way (``kernels/triton_ltc.py``, imported
  on first use); CUDA tensors, or CPU tensors under ``TRITON_INTERPRET=1``.
- "auto": "triton" on CUDA tensors where Triton runs, "native" on the CPU where it
  builds and beat "eager" in a short timing at first build (``kernels/auto_choice.py``),
  else "eager".

Each entry is an :class:`~liquid_rl.kernels.base.LTCKernel`. To add one: subclass it,
implement ``sequence`` (and ``infer`` if it has a faster no-grad path), add it to
``KERNELS`` and, if "auto" should pick it, to :func:`resolve`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from liquid_rl.kernels import auto_choice
from liquid_rl.kernels.base import InferenceTables, LTCKernel
from liquid_rl.kernels.eager_ltc import CompiledKernel, EagerKernel
from liquid_rl.kernels.native_ltc import NativeKernel


class TritonKernel(LTCKernel):
    """"triton": ``liquid_rl.kernels.triton_ltc.TritonSemiImplicitLTC``, imported lazily
    (Triton is an optional extra)."""

    name = "triton"

    def available(self) -> bool:
        """Whether Triton is importable and runs here (CUDA, or its CPU interpreter)."""
        try:
            from liquid_rl.kernels import triton_ltc
        except ImportError:
            return False
        return triton_ltc.available()

    def supports(self, device: torch.device, dtype: torch.dtype) -> bool:
        return device.type == "cuda" and dtype in (torch.float32, torch.float64) and self.available()

    def sequence(self, v0: Tensor, keep: Tensor | None, num0: Tensor, den0: Tensor, h: Tensor, cm: Tensor,
                 sig: Tensor, nsmu: Tensor, M2: Tensor, src_flat: Tensor, unfolds: int, flush: bool,
                 fanin: Tensor | None) -> Tensor:
        from liquid_rl.kernels.triton_ltc import TritonSemiImplicitLTC

        return TritonSemiImplicitLTC.apply(v0, keep, num0, den0, h, cm, sig, nsmu, M2, src_flat, unfolds,
                                           self.name, flush, fanin)


KERNELS: dict[str, LTCKernel] = {k.name: k for k in (NativeKernel(), EagerKernel(), CompiledKernel(),
                                                      TritonKernel())}
KERNEL_NAMES = ("auto", *KERNELS)


def check(name: str) -> None:
    """Raise one ValueError for an unknown kernel name, or for "native" where it cannot be built."""
    if name not in KERNEL_NAMES:
        raise ValueError(f"Unknown LTC kernel {name!r}; choose one of {KERNEL_NAMES}")
    if name == "native" and not KERNELS["native"].supports(torch.device("cpu"), torch.float32):
        raise ValueError("LTC kernel 'native' needs a C++ compiler (g++ or $CXX) to build it; "
                         "use kernel='auto' to fall back to the PyTorch kernel")


def resolve(name: str, device: torch.device, dtype: torch.dtype) -> LTCKernel:
    """The kernel that runs ``name`` on tensors of this device and dtype: "auto" picks the
    fastest that supports them; "native" falls back to "eager" off the CPU (or in another
    dtype); the others run as named (and raise there if they cannot)."""
    if name == "auto":
        if device.type == "cuda" and KERNELS["triton"].supports(device, dtype):
            return KERNELS["triton"]
        native = KERNELS["native"]
        return native if native.supports(device, dtype) and auto_choice.native_is_faster() else KERNELS["eager"]
    if name == "native" and not KERNELS["native"].supports(device, dtype):
        return KERNELS["eager"]
    return KERNELS[name]


__all__ = ["KERNELS", "KERNEL_NAMES", "InferenceTables", "LTCKernel", "check", "resolve"]
