"""liquid-rl: liquid neural networks (LTC, CfC, NCP, Liquid-S4) as control policies.

The models are PyTorch modules with the constructor and ``forward`` of ncps.torch, so
moving from ncps is a changed import::

    from liquid_rl import LTC, CfC, wirings
    rnn = LTC(20, wirings.AutoNCP(28, 4))
    y, h = rnn(torch.randn(8, 50, 20))            # (B, T, I) -> (B, T, 4), (B, 28)

Importing ``liquid_rl`` registers its Gymnasium environments (``liquid_rl.envs.ENV_IDS``),
so ``gym.make("liquid_rl/LaneKeeping-v0")`` works after it.
"""

from __future__ import annotations

import importlib
from typing import Any

from liquid_rl import envs  # registering the environments is cheap (no simulator loads)

# The models load on first use, so that ``liquid_rl.deploy`` (numpy + onnxruntime) and the
# envs import on a machine without PyTorch.
_LAZY = {"LTC": "ltc", "LTCCell": "ltc", "flushed_denormals": "ltc", "LiquidS4": "liquid_s4", "CfC": "cfc",
         "CfCCell": "cfc", "WiredCfCCell": "cfc", "SOLVERS": "solvers"}


def __getattr__(name: str) -> Any:
    if name == "wirings":
        return importlib.import_module("liquid_rl.wirings")
    if name in _LAZY:
        return getattr(importlib.import_module(f"liquid_rl.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'liquid_rl' has no attribute {name!r}")


__all__ = ["LTC", "LTCCell", "LiquidS4", "CfC", "CfCCell", "WiredCfCCell", "wirings", "envs", "SOLVERS", "flushed_denormals"]
__version__ = "0.1.0"
