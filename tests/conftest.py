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
