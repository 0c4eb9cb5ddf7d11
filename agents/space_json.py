"""Gymnasium spaces as plain JSON (Box, Discrete, MultiDiscrete, MultiBinary, Dict), so a
model file describes its spaces without pickles."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces

__all__ = ["space_to_json", "space_from_json"]


def _array_or_scalar(a: np.ndarray) -> Any:
    a = np.asarray(a)
    if a.size and np.all(a == a.flat[0]):
        return a.flat[0].item()
    return a.tolist()


def space_to_json(space: spaces.Space) -> dict[str, Any]:
    """A Gymnasium space as plain JSON data (Box, Discrete, MultiDiscrete, MultiBinary, Dict)."""
    if isinstance(space, spaces.Box):
        return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype),
                "low": _array_or_scalar(space.low), "high": _array_or_scalar(space.high)}
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": np.asarray(space.nvec).tolist(),
                "start": np.asarray(space.start).tolist()}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {k: space_to_json(s) for k, s in space.spaces.items()}}
    raise ValueError(f"cannot describe the space {space} as JSON")


_DTYPES = {"float16", "float32", "float64", "uint8", "int8", "int16", "int32", "int64", "uint16", "uint32",
           "uint64", "bool"}


def space_from_json(data: Mapping[str, Any]) -> spaces.Space:
    """Inverse of :func:`space_to_json`."""
    kind = data["type"]
    if kind == "Box":
        if data["dtype"] not in _DTYPES:
            raise ValueError(f"unsupported dtype {data['dtype']!r}")
        shape = tuple(int(n) for n in data["shape"])
        dtype = np.dtype(data["dtype"])
        low = np.broadcast_to(np.asarray(data["low"], dtype=np.float64), shape).astype(dtype)
        high = np.broadcast_to(np.asarray(data["high"], dtype=np.float64), shape).astype(dtype)
        return spaces.Box(low, high, shape=shape, dtype=dtype)
    if kind == "Discrete":
        return spaces.Discrete(int(data["n"]), start=int(data.get("start", 0)))
    if kind == "MultiDiscrete":
        return spaces.MultiDiscrete(np.asarray(data["nvec"], dtype=np.int64),
                                    start=np.asarray(data.get("start", 0), dtype=np.int64))
    if kind == "MultiBinary":
        return spaces.MultiBinary(data["n"])
    if kind == "Dict":
        return spaces.Dict({str(k): space_from_json(v) for k, v in data["spaces"].items()})
    raise ValueError(f"unsupported space type {kind!r}")
