"""Parameter-derived tensors of a model's no-grad path, built once and reused until a
parameter changes.

Rollouts call a cell thousands of times between optimiser steps; rebuilding its
kernel-layout tensors on every call would cost more than the recurrence at batch 1. An
in-place update (optimiser step, ``load_state_dict``) bumps a tensor's version and
``.to()`` replaces the tensors, so (id, version) of every parameter, plus device and
dtype, identifies the current values.
"""

from __future__ import annotations

from typing import Callable, Iterable, TypeVar

import torch
from torch import nn

T = TypeVar("T")


def cached(module: nn.Module, params: Iterable[nn.Parameter], build: Callable[[], T]) -> T:
    """``build()`` under no_grad, cached on ``module`` until one of ``params`` changes or moves."""
    params = tuple(params)
    key = tuple((id(p), p._version) for p in params) + (params[0].device, params[0].dtype)
    entry = module.__dict__.get("_inference_cache")
    if entry is not None and entry[0] == key:
        return entry[1]
    with torch.no_grad():
        value = build()
    module.__dict__["_inference_cache"] = (key, value)
    return value
