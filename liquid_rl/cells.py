"""The old import path of the core registry: everything here lives in ``liquid_rl.core``."""

from liquid_rl.core import (
    CELLS,
    WIRINGS,
    Core,
    LiquidCore,
    LiquidS4Core,
    LSTMCore,
    build_core,
    make_wiring,
)

__all__ = ["CELLS", "WIRINGS", "Core", "LiquidCore", "LiquidS4Core", "LSTMCore", "build_core", "make_wiring"]
