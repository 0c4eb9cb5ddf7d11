"""Flushing denormal floats to zero on the CPU while an LTC kernel runs.

Saturated sigmoids in LTC synapses produce denormals that slow CPU arithmetic by 10-100x
and carry no signal. The setting is process state, so it is switched on only inside the
block (other code, e.g. hypothesis' float strategies, needs it off).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


def denormals_flushed() -> bool:
    """Whether this thread's CPU currently flushes denormal floats to zero."""
    return torch.tensor(1e-40, dtype=torch.float32).mul(1.0).item() == 0.0


@contextmanager
def flushed_denormals(device: torch.device) -> Iterator[None]:
    """Flush denormal floats to zero on the CPU inside the block, and restore after.
    A setting the user made (already flushing) is left alone; other devices are untouched."""
    if device.type != "cpu" or denormals_flushed():
        yield
        return
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)
