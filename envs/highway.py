"""``liquid_rl/HighwayLaneKeeping-v0``: highway-env's ``lane-keeping-v0`` for SB3.

highway-env's lane-keeping task (a bicycle-model car at 8.3 m/s, steering only, a
straight lane joining a 500 m sine-shaped lane) returns a ``Dict`` of (4, 1) float64
arrays, which stable-baselines3's MLP policies do not take. This class wraps it and
returns a flat float32 vector of shape (12,):

====  =====================  ==================================================
idx   highway-env attribute   entries
====  =====================  ==================================================
0-3   ``state``               y [m], heading [rad], lateral speed, yaw rate
4-7   ``derivative``          their time derivatives
8-11  ``reference_state``     lane y at the car, lane heading, 0, 0
====  =====================  ==================================================

(each with highway-env's uniform sensor noise, ``state_noise`` / ``derivative_noise``).
Reward is highway-env's ``1 - (lateral offset / lane width)^2``.

Differences from calling ``gymnasium.make("lane-keeping-v0")`` directly, and why:

- highway-env's ``LaneKeepingEnv.step`` observes *before* it simulates, so each
  observation lags one step behind the reward; we observe again after the simulation.
- The task never ends by itself: episodes are truncated after ``max_steps`` steps (the
  sine lane lasts about 45 s at 10 Hz). ``offroad_termination=True`` also ends an
  episode once the car is more than half a lane width off the lane centre.
- ``LaneKeepingEnv.__init__`` does not accept ``render_mode``; we set it afterwards.
  Rendering draws offscreen with pygame (``SDL_VIDEODRIVER=dummy`` unless set; highway-env
  would draw nothing under the dummy driver, we switch its drawing back on).
- highway-env is imported when the environment is created, not when
  ``liquid_rl.envs`` is imported.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ._config import check_number, fail, merge_config

ATTRIBUTES = ("state", "derivative", "reference_state")


class HighwayLaneKeepingEnv(gym.Env):
    """highway-env ``lane-keeping-v0`` with a flat (12,) float32 observation."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        """Default configuration; ``gym.make`` keyword arguments override it."""
        return {
            "max_steps": 400,
            "state_noise": 0.05,
            "derivative_noise": 0.05,
            "offroad_termination": False,
            # Further highway-env configuration keys, passed through (checked by name).
            "highway_config": {},
        }

    def __init__(
        self,
        render_mode: str | None = None,
        config: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.config = merge_config(name, self.default_config(), config, kwargs)
        cfg = self.config
        check_number(name, cfg, "max_steps", low=1, integer=True)
        check_number(name, cfg, "state_noise", low=0.0)
        check_number(name, cfg, "derivative_noise", low=0.0)
        if not isinstance(cfg["offroad_termination"], bool):
            raise fail(name, "offroad_termination", cfg["offroad_termination"], "expected a bool")
        if not isinstance(cfg["highway_config"], dict):
            raise fail(name, "highway_config", cfg["highway_config"], "expected a dict")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"{name}: unsupported render_mode {render_mode!r}; "
                f"supported: {self.metadata['render_modes']}"
            )
        self.render_mode = render_mode

        # Headless pygame; set before highway-env imports pygame.
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from highway_env.envs.lane_keeping_env import LaneKeepingEnv

        valid = LaneKeepingEnv.default_config()
        unknown = sorted(k for k in cfg["highway_config"] if k not in valid)
        if unknown:
            raise ValueError(
                f"{name}: unknown highway_config key(s) {', '.join(map(repr, unknown))}; "
                f"valid keys are: {', '.join(sorted(valid))}"
            )
        hw_config = {
            "state_noise": float(cfg["state_noise"]),
            "derivative_noise": float(cfg["derivative_noise"]),
            **cfg["highway_config"],
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._env = LaneKeepingEnv(config=hw_config)
        self._env.render_mode = render_mode
        self.metadata = {
            **self.metadata,
            "render_fps": int(self._env.config["policy_frequency"]),
        }
        #: base time step [s], read by ``wrappers.IrregularTime``
        self.dt = 1.0 / float(self._env.config["policy_frequency"])
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(12,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self._steps = 0

    @property
    def highway_env(self) -> gym.Env:
        """The wrapped highway-env ``LaneKeepingEnv``."""
        return self._env

    def _flat_observation(self) -> np.ndarray:
        obs = self._env.observation_type.observe()
        return np.concatenate([np.asarray(obs[k], dtype=np.float32).ravel() for k in ATTRIBUTES])

    def _lateral_offset(self) -> float:
        env = self._env
        _, lat = env.lane.local_coordinates(env.vehicle.position)
        return float(lat)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        # The inner env is seeded from ours so that our np_random controls everything.
        inner_seed = int(self.np_random.integers(2**31 - 1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._env.reset(seed=inner_seed)
        self._steps = 0
        return self._flat_observation(), {"lateral_offset": self._lateral_offset()}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = np.clip(np.asarray(action, dtype=np.float32).reshape(1), -1.0, 1.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, reward, terminated, truncated, info = self._env.step(a)
        self._steps += 1
        obs = self._flat_observation()  # after the simulation, see the module doc
        lat = self._lateral_offset()
        off = abs(lat) > 0.5 * float(self._env.lane.width)
        terminated = bool(terminated) or (self.config["offroad_termination"] and off)
        truncated = (bool(truncated) or self._steps >= self.config["max_steps"]) and not terminated
        out_info = {"lateral_offset": lat, "off_lane": off, "speed": float(self._env.vehicle.speed)}
        return obs, float(reward), terminated, truncated, out_info

    def render(self) -> np.ndarray | None:
        """(screen_height, screen_width, 3) uint8 frame (600 x 250 by default)."""
        if self.render_mode is None:
            gym.logger.warn(
                "HighwayLaneKeeping: render() called without a render_mode; "
                'use gymnasium.make(..., render_mode="rgb_array")'
            )
            return None
        env = self._env
        if env.viewer is None:
            from highway_env.envs.common.graphics import EnvViewer

            env.viewer = EnvViewer(env)
        # highway-env skips all drawing when SDL_VIDEODRIVER is "dummy", although its
        # offscreen rendering draws on plain surfaces and needs no video device.
        env.viewer.enabled = True
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return env.render()

    def close(self) -> None:
        self._env.close()
        super().close()
