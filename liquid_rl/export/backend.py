"""Evaluation through an exported file: ``liquid-rl eval RUN --backend onnx``.

The exported actor folds in VecNormalize and VecFrameStack, so it is driven by the raw
env (the run's env without those two wrappers) through :class:`OnnxPredictor`, which
speaks ``model.predict``'s language for ``liquid_rl.agents.evaluate.run_episodes``.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv

__all__ = ["OnnxPredictor", "raw_env", "onnx_predictor"]

BACKENDS = ("torch", "onnx")


class OnnxPredictor:
    """``predict(obs, state, episode_start, deterministic)`` over an ``OnnxPolicy``; the
    recurrent state stays inside the policy (``state`` is only a marker: None restarts)."""

    def __init__(self, policy: Any, num_timesteps: int = 0) -> None:
        self.policy = policy
        self.num_timesteps = num_timesteps

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: np.ndarray | None = None,
                deterministic: bool = True) -> tuple[np.ndarray, str]:
        if not deterministic:
            raise ValueError("the exported actor is deterministic; evaluate it with deterministic=True")
        if state is None:
            self.policy.reset()
        return self.policy.act(observation, episode_start=episode_start), "onnx-state"


def raw_env(agent: Any, **kwargs: Any) -> VecEnv:
    """The run's env without VecNormalize and VecFrameStack (what the exported file takes);
    ``kwargs`` as for ``make_vec_env`` (n_envs, seed, noise, render_mode, perturb)."""
    from liquid_rl.agents.build import make_vec_env

    cfg = copy.deepcopy(agent.config)
    cfg["env"]["normalize"] = {**cfg["env"]["normalize"], "obs": False, "reward": False}
    cfg["env"]["frame_stack"] = 1
    return make_vec_env(cfg, training=False, normalization=None, subprocess=False, **kwargs)


def onnx_predictor(agent: Any) -> OnnxPredictor:
    """Export ``agent`` to a temporary ONNX file and load it in onnxruntime."""
    from liquid_rl.deploy import OnnxPolicy
    from liquid_rl.export.files import export_agent

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "actor.onnx"
        export_agent(agent, path, "onnx")
        policy = OnnxPolicy(path)  # the session holds the model; the file may go
    return OnnxPredictor(policy, int(agent.model.num_timesteps))
