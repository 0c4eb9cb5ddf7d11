"""Whether "auto" should run the native kernel on this machine: timed once, cached.

A C++ build is not fast everywhere (an ISA the code does not vectorise for, an old
compiler), and "auto" must never pick a kernel slower than the PyTorch one. So at the
first "auto" call after a build, both run a short forward+backward (batch 16, 16 steps,
32 fully connected units, one thread, CPU time, best of 3) and the result is written
beside the built library (``<library>.auto.json``); later processes read it.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import torch

from liquid_rl import native
from liquid_rl.kernels.base import LTCKernel
from liquid_rl.kernels.eager_ltc import EagerKernel
from liquid_rl.kernels.native_ltc import NativeKernel

_decision: bool | None = None


def _time_fwd_bwd(kernel: LTCKernel, repeats: int = 3) -> float:
    """Best CPU seconds of one forward+backward of a small sequence on ``kernel``."""
    g = torch.Generator().manual_seed(0)
    T, B, N, U = 16, 16, 32, 6
    h = torch.full((T, 1, 1), 1.0 / U)
    leaves = [torch.randn(B, N, generator=g) * 0.3, torch.randn(T, B, N, generator=g) * 0.1,
              1.0 + torch.rand(T, B, N, generator=g), 0.5 + torch.rand(N, generator=g),
              3.0 + 5.0 * torch.rand(N, N, generator=g), -2.0 * torch.rand(N, N, generator=g),
              torch.rand(N, 2, N, generator=g)]
    leaves = [t.requires_grad_(True) for t in leaves]
    src = torch.arange(N).repeat(N)
    fanin = torch.full((N,), N, dtype=torch.int64)
    best = float("inf")
    for _ in range(repeats + 1):        # the first call warms up
        t0 = time.process_time()
        v0, num0, den0, cm, sig, nsmu, M2 = leaves
        kernel.sequence(v0, None, num0, den0, h, cm, sig, nsmu, M2, src, U, True, fanin).sum().backward()
        best = min(best, time.process_time() - t0)
    return best


def _measure() -> dict[str, float | bool]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.enable_grad():   # the first "auto" call may come from a no-grad rollout
            native_s, eager_s = _time_fwd_bwd(NativeKernel()), _time_fwd_bwd(EagerKernel())
    finally:
        torch.set_num_threads(threads)
    return {"native_s": native_s, "eager_s": eager_s, "native": native_s < eager_s}


def native_is_faster() -> bool:
    """True when the native kernel beat the eager one on this machine (measured once per
    build and cached beside the library; False when there is no build)."""
    global _decision
    if _decision is not None:
        return _decision
    library = native.library_path()
    if library is None:
        _decision = False
        return False
    path = Path(f"{library}.auto.json")
    try:
        _decision = bool(json.loads(path.read_text())["native"])
        return _decision
    except (OSError, ValueError, KeyError, TypeError):
        pass
    result = _measure()
    fd, tmp = tempfile.mkstemp(suffix=".json", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(result, f)
    os.replace(tmp, path)   # atomic: parallel first runs each write a whole file
    _decision = bool(result["native"])
    return _decision
