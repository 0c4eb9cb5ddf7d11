"""Small inference batches on the calling thread alone.

Torch splits an op over its intra-op threads once the op is large enough for torch, but a
rollout's tensors (a few hundred rows of 16-64 units) are too small to gain from that: on a
busy machine the threads' hand-offs cost more than the arithmetic (``CfC(2, 16)`` on a
(256, 4, 2) batch once took 2.2 ms on one thread and 42 ms on two). Training batches keep
every thread.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

SMALL_WORK = 1 << 16   # elements per op below which one thread is faster than several


@contextmanager
def one_thread_if_small(elements: int) -> Iterator[None]:
    """Run the block on one torch thread when ``elements`` (the largest op's size) is below
    :data:`SMALL_WORK`, restoring the thread count after; otherwise leave it alone."""
    threads = torch.get_num_threads()
    if threads == 1 or elements >= SMALL_WORK:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
