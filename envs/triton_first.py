"""Load Triton before MuJoCo opens an OpenGL context.

MuJoCo's offscreen rendering (``MUJOCO_GL=egl`` or ``osmesa``) on Mesa loads Mesa's own
LLVM; a ``libtriton`` (which carries another LLVM) loaded after it crashes the process
with a segmentation fault. Triton loads late and unasked: ``torch._dynamo``, which
torch's optimizers import when a model is built, imports it. So rendering a MuJoCo env
(gymnasium's ``check_env`` renders every mode) and then building an agent crashed.
Loaded first, both work. Importing Triton takes about 0.3 s, paid only where Triton and
MuJoCo are both installed.
"""

from __future__ import annotations

import importlib.util
import os
import sys


def load_triton_first() -> bool:
    """Import Triton now if it and MuJoCo are installed; returns whether Triton is loaded.

    ``LIQUID_RL_NO_TRITON_PRELOAD=1`` skips it (for a process that never renders MuJoCo).
    """
    if "triton" in sys.modules:
        return True
    if os.environ.get("LIQUID_RL_NO_TRITON_PRELOAD") == "1":
        return False
    if importlib.util.find_spec("triton") is None or importlib.util.find_spec("mujoco") is None:
        return False
    try:
        import triton  # noqa: F401
    except Exception:  # a broken Triton install must not break the envs
        return False
    return True
