"""Replay buffers as ``.npz`` arrays (stable-baselines3 pickles the whole buffer object),
read back with ``allow_pickle=False``."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from liquid_rl.agents.atomic_files import atomic_write_bytes
from liquid_rl.agents.errors import UserError

__all__ = ["save_replay_buffer", "load_replay_buffer"]

_STRUCTURE = ("buffer_size", "n_envs")  # must match, never overwritten


def _filled(buffer: Any) -> int:
    return int(buffer.buffer_size) if getattr(buffer, "full", False) else int(getattr(buffer, "pos", 0))


def save_replay_buffer(buffer: Any, path: str | Path) -> Path:
    """Save a replay buffer's arrays (only the filled rows) and counters to ``.npz``, atomically.

    Works for any buffer that keeps its data as numpy arrays (or dicts of them) with the
    row index first, as stable-baselines3's ``ReplayBuffer`` and ``DictReplayBuffer`` do.
    """
    size, n = int(buffer.buffer_size), _filled(buffer)
    arrays: dict[str, np.ndarray] = {}
    scalars: dict[str, Any] = {}
    for name, value in vars(buffer).items():
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        if isinstance(value, np.ndarray):
            arrays[name] = value[:n] if value.ndim and value.shape[0] == size else value
        elif isinstance(value, dict) and value and all(isinstance(v, np.ndarray) for v in value.values()):
            for k, v in value.items():
                arrays[f"{name}/{k}"] = v[:n] if v.ndim and v.shape[0] == size else v
        elif isinstance(value, (bool, int, float, np.integer, np.floating, np.bool_)):
            scalars[name] = value.item() if hasattr(value, "item") else value
    arrays["__scalars__"] = np.frombuffer(json.dumps(scalars).encode(), dtype=np.uint8)
    out = io.BytesIO()
    np.savez(out, **arrays)
    return atomic_write_bytes(path, out.getvalue())


def load_replay_buffer(buffer: Any, path: str | Path) -> None:
    """Fill ``buffer`` (already allocated, same size) from :func:`save_replay_buffer` output.

    Raises:
        UserError: unreadable file or arrays that do not fit the buffer.
    """
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as data:
            scalars = json.loads(bytes(data["__scalars__"]).decode())
            for k in _STRUCTURE:
                if k in scalars and int(scalars[k]) != int(getattr(buffer, k)):
                    raise UserError(f"{p}: replay buffer {k} is {scalars[k]}, the algorithm has {getattr(buffer, k)}")
            size = int(buffer.buffer_size)
            for key in data.files:
                if key == "__scalars__":
                    continue
                name, _, sub = key.partition("/")
                target = getattr(buffer, name, None)
                if sub:
                    target = target.get(sub) if isinstance(target, dict) else None
                if isinstance(target, torch.Tensor):
                    target = target.numpy() if target.device.type == "cpu" else None
                if not isinstance(target, np.ndarray):
                    raise UserError(f"{p}: unexpected array {key!r} for this replay buffer")
                value = data[key]
                if target.ndim and target.shape[0] == size and value.shape[1:] == target.shape[1:] \
                        and value.shape[0] <= size:
                    target[: value.shape[0]] = value
                elif value.shape == target.shape:
                    target[...] = value
                else:
                    raise UserError(f"{p}: array {key!r} has shape {value.shape}, the buffer has {target.shape}")
            for k, v in scalars.items():
                if k not in _STRUCTURE and isinstance(getattr(buffer, k, None), (bool, int, float)):
                    setattr(buffer, k, type(getattr(buffer, k))(v))
    except UserError:
        raise
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as e:
        raise UserError(f"cannot read replay buffer {p}: {e}") from None
