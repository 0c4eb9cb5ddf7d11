"""Fixtures shared by the test modules."""

from __future__ import annotations

import os

import pytest
import torch


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray for the whole test session (2 CPUs, no dashboard, nothing sent out);
    sweeps run in this process use it instead of starting their own."""
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def one_thread():
    """Torch on one thread for the test, restored after: small tensors run fastest on one
    thread, and the test machine's cores are shared. Modules use it for every test with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


#: Tensor methods that copy a value to the host: each stalls a CUDA stream.
SYNC_POINTS = ("item", "tolist", "numpy", "cpu", "nonzero", "__bool__", "__float__", "__int__", "__index__")


@pytest.fixture
def host_reads(monkeypatch):
    """CPU stand-in for ``torch.cuda.set_sync_debug_mode("error")``: ``start(skip=None)``
    records from then on every call of a :data:`SYNC_POINTS` method (except while
    ``skip()`` is true); ``stop()`` ends recording and returns the names called."""
    calls: list[str] = []

    class Recorder:
        def start(self, skip=lambda: False) -> None:
            for method in SYNC_POINTS:
                original = getattr(torch.Tensor, method)

                def spy(self, *args, _name=method, _original=original, **kwargs):
                    if not skip():
                        calls.append(_name)
                    return _original(self, *args, **kwargs)
                monkeypatch.setattr(torch.Tensor, method, spy)

        def stop(self) -> list[str]:
            monkeypatch.undo()
            return calls

    return Recorder()
