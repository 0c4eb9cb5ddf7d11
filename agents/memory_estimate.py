"""Memory the buffers of an algorithm will take, estimated from the config and the env's
spaces before anything is allocated, so that ``buffer_size: 1e13`` is a one-line error
with the estimate instead of an allocation failure (or a swapping machine) mid-run."""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces

from liquid_rl.agents.errors import ConfigError

__all__ = ["buffer_bytes", "machine_memory", "check_memory", "human_bytes"]

MEMORY_FRACTION = 0.8  # of the machine's physical memory that buffers may take


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.3g} PB"


def _space_bytes(space: spaces.Space) -> int:
    if isinstance(space, spaces.Dict):
        return sum(_space_bytes(s) for s in space.spaces.values())
    shape = space.shape or (1,)
    dtype = np.dtype(space.dtype) if space.dtype is not None else np.dtype(np.float32)
    if isinstance(space, (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)):
        dtype = np.dtype(np.float32)  # SB3 stores actions as float32
    return int(np.prod(shape)) * max(dtype.itemsize, 1)


def machine_memory() -> int:
    """Physical memory of this machine in bytes (0 if the OS does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


def _default(cls: type, name: str, fallback: int) -> int:
    p = inspect.signature(cls.__init__).parameters.get(name)
    return int(p.default) if p is not None and isinstance(p.default, int) else fallback


def buffer_bytes(cls: type, hyper: Mapping[str, Any], n_envs: int, observation_space: spaces.Space,
                 action_space: spaces.Space, off_policy: bool) -> tuple[str, int, int]:
    """``(key, rows, bytes)``: the hyperparameter that sizes the buffer, its row count and
    an estimate of the buffer's bytes (observations, next observations, actions, rewards,
    flags: what stable-baselines3's buffers keep per row)."""
    obs, act = _space_bytes(observation_space), _space_bytes(action_space)
    if off_policy:
        rows = int(hyper.get("buffer_size", _default(cls, "buffer_size", 1_000_000)))
        return "buffer_size", rows, rows * (2 * obs + act + 4 * 4)
    n_steps = int(hyper.get("n_steps", _default(cls, "n_steps", 2048)))
    rows = n_steps * n_envs
    return "n_steps", rows, rows * (obs + act + 4 * 6)


def check_memory(cls: type, hyper: Mapping[str, Any], n_envs: int, observation_space: spaces.Space,
                 action_space: spaces.Space, off_policy: bool) -> None:
    """Raise :class:`ConfigError` when the buffer would not fit in this machine's memory."""
    key, rows, need = buffer_bytes(cls, hyper, n_envs, observation_space, action_space, off_policy)
    have = machine_memory()
    if have and need > MEMORY_FRACTION * have:
        per_row = need / max(rows, 1)
        most = int(MEMORY_FRACTION * have / per_row / (1 if off_policy else n_envs))
        raise ConfigError(f"'algo.hyperparams.{key}' {rows if off_policy else rows // n_envs} needs about "
                          f"{human_bytes(need)} of buffer memory; this machine has {human_bytes(have)}: "
                          f"use at most {most}")
