"""HighwayLaneKeeping-v0: highway-env's lane keeping with a flat observation."""

from __future__ import annotations

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import gymnasium as gym
import numpy as np
import pytest

import liquid_rl.envs  # noqa: F401  (registers the ids)


def test_flat_observation_is_the_state_after_the_step():
    env = gym.make("liquid_rl/HighwayLaneKeeping-v0", state_noise=0.0, derivative_noise=0.0)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (12,) and obs.dtype == np.float32
    inner = env.unwrapped.highway_env
    for a in (0.3, -0.2, 0.0, 0.5):
        obs, r, term, trunc, info = env.step(np.array([a], np.float32))
        state = inner.vehicle.state[[1, 2, 4, 5]].ravel()
        np.testing.assert_allclose(obs[:4], state, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(obs[4:8], inner.vehicle.derivative[[1, 2, 4, 5]].ravel(),
                                   rtol=1e-5, atol=1e-6)
        lat = info["lateral_offset"]
        assert r == pytest.approx(1 - (lat / inner.lane.width) ** 2)
        assert not term and not trunc


def test_episode_is_truncated_and_can_end_off_the_lane():
    env = gym.make("liquid_rl/HighwayLaneKeeping-v0", max_steps=20)
    env.reset(seed=0)
    flags = [env.step(np.zeros(1, np.float32))[3] for _ in range(20)]
    assert flags[-1] and not any(flags[:-1])

    env = gym.make("liquid_rl/HighwayLaneKeeping-v0", offroad_termination=True)
    env.reset(seed=0)
    for _ in range(200):
        _, _, term, trunc, info = env.step(np.full(1, 0.1, np.float32))  # constant turn
        if term:
            break
    assert term and info["off_lane"] and not trunc


def test_highway_config_passes_through():
    env = gym.make("liquid_rl/HighwayLaneKeeping-v0",
                   highway_config={"policy_frequency": 5, "simulation_frequency": 10})
    assert env.unwrapped.dt == pytest.approx(0.2)
    assert env.unwrapped.highway_env.config["policy_frequency"] == 5
    with pytest.raises(ValueError, match="offroad_termination"):
        gym.make("liquid_rl/HighwayLaneKeeping-v0", offroad_termination="yes")
