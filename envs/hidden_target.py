"""A task whose goal is seen only through the reward: find a hidden target.

Each episode draws a target ``g`` uniformly in [-1, 1]^k. The agent outputs a point
``a`` in [-1, 1]^k each step and is rewarded ``-mean(|a - g|)``; the observation is only
the elapsed fraction of the episode, so nothing but the reward says where ``g`` is.
A memoryless or reward-blind policy can do no better than aiming at the centre
(mean reward -0.5 per step for k = 1); an agent that reads its previous action and
reward can locate ``g`` within two or three steps and then stay on it (reward near 0).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["HiddenTargetEnv"]


class HiddenTargetEnv(gym.Env[np.ndarray, np.ndarray]):
    """Find a hidden point from the rewards alone.

    Args:
        dims: k, the target's dimensions.
        episode_steps: steps per episode (the episode then ends as a truncation).

    Observation: ``Box(0, 1, (1,))``, the elapsed fraction ``t / episode_steps``.
    Action: ``Box(-1, 1, (k,))``. Reward: ``-mean(|a - g|)`` in [-2, 0].
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, dims: int = 1, episode_steps: int = 20, render_mode: str | None = None) -> None:
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        if isinstance(dims, bool) or not isinstance(dims, int) or dims < 1:
            raise ValueError(f"dims must be a positive integer, got {dims!r}")
        if isinstance(episode_steps, bool) or not isinstance(episode_steps, int) or episode_steps < 1:
            raise ValueError(f"episode_steps must be a positive integer, got {episode_steps!r}")
        self.dims, self.episode_steps = dims, episode_steps
        self.observation_space = spaces.Box(0.0, 1.0, (1,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (dims,), np.float32)
        self._target = np.zeros(dims, dtype=np.float32)
        self._action = np.zeros(dims, dtype=np.float32)
        self._t = 0

    def _obs(self) -> np.ndarray:
        return np.array([self._t / self.episode_steps], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._target = self.np_random.uniform(-1.0, 1.0, self.dims).astype(np.float32)
        self._t = 0
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        a = np.clip(np.asarray(action, dtype=np.float32).reshape(self.dims), -1.0, 1.0)
        self._action = a
        reward = -float(np.mean(np.abs(a - self._target)))
        self._t += 1
        return self._obs(), reward, False, self._t >= self.episode_steps, {"distance": -reward}

    def render(self) -> np.ndarray | None:
        """A (64, 64 * k, 3) frame per target dimension: the target as a green bar, the last
        action as a red one, on a grey scale from -1 (left) to 1 (right)."""
        if self.render_mode != "rgb_array":
            return None
        size = 64
        frame = np.full((size, size * self.dims, 3), 96, dtype=np.uint8)
        for k in range(self.dims):
            for value, colour, rows in ((self._target[k], (40, 200, 60), slice(0, size // 2)),
                                        (self._action[k], (220, 50, 40), slice(size // 2, size))):
                col = k * size + int(round((float(value) + 1.0) / 2.0 * (size - 1)))
                frame[rows, max(col - 1, k * size):col + 2] = colour
        return frame
