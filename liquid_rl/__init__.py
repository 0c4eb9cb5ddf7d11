"""liquid-rl: liquid neural networks (LTC, CfC, NCP, Liquid-S4) as control policies.

The models are PyTorch modules with the constructor and ``forward`` of ncps.torch, so
moving from ncps is a changed import::

    from liquid_rl import LTC, CfC, wirings
    rnn = LTC(20, wirings.AutoNCP(28, 4))
    y, h = rnn(torch.randn(8, 50, 20))            # (B, T, I) -> (B, T, 4), (B, 28)

Importing ``liquid_rl`` registers its Gymnasium environments (``liquid_rl.envs.ENV_IDS``),
so ``gym.make("liquid_rl/LaneKeeping-v0")`` works after it.
"""

from liquid_rl import envs, wirings  # envs: registering the environments is cheap (no simulator loads)
from liquid_rl.cfc import CfC, CfCCell, WiredCfCCell
from liquid_rl.liquid_s4 import LiquidS4
from liquid_rl.ltc import LTC, LTCCell, flushed_denormals
from liquid_rl.solvers import SOLVERS

__all__ = ["LTC", "LTCCell", "LiquidS4", "CfC", "CfCCell", "WiredCfCCell", "wirings", "envs", "SOLVERS", "flushed_denormals"]
__version__ = "0.1.0"
