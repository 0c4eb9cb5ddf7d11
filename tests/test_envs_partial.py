"""Partially observable variants: NoVel classic control and MuJoCo -P / -V."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym
import numpy as np
import pytest

import liquid_rl.envs  # noqa: F401  (registers the ids)
from liquid_rl.envs.partial import mujoco_observation_layout

ROBOTS = ("HalfCheetah", "Hopper", "Walker2d", "Ant")
#: Hopper and Walker2d clip the velocities in their observation to [-10, 10].
CLIPPED_VELOCITY = {"Hopper", "Walker2d"}


@pytest.fixture(autouse=True)
def _mujoco_log_elsewhere(tmp_path, monkeypatch):
    # MuJoCo writes MUJOCO_LOG.TXT into the working directory on model warnings.
    monkeypatch.chdir(tmp_path)


# ----------------------------------------------------------------------------- NoVel
def _steps(env, n, seed=0):
    env.action_space.seed(seed)
    for _ in range(n):
        obs, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            obs, _ = env.reset()
        yield obs


def test_cartpole_no_vel_zeroes_the_velocities():
    env = gym.make("liquid_rl/CartPoleNoVel-v1")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4,) and obs.dtype == np.float32
    assert env.spec.max_episode_steps == 500
    for obs in _steps(env, 50):
        state = env.unwrapped.state  # x, x_dot, theta, theta_dot
        assert obs[1] == 0.0 and obs[3] == 0.0
        np.testing.assert_allclose(obs[[0, 2]], np.asarray(state)[[0, 2]], rtol=1e-6)
        assert state[1] != 0.0 or state[3] != 0.0  # the hidden values are not zero


def test_pendulum_no_vel_zeroes_the_angular_velocity():
    env = gym.make("liquid_rl/PendulumNoVel-v1")
    obs, _ = env.reset(seed=0)
    assert env.spec.max_episode_steps == 200
    for obs in _steps(env, 30):
        theta, theta_dot = env.unwrapped.state
        assert obs[2] == 0.0 and theta_dot != 0.0
        np.testing.assert_allclose(obs[:2], [np.cos(theta), np.sin(theta)], rtol=1e-6, atol=1e-7)


def test_mountain_car_continuous_no_vel_zeroes_the_velocity():
    env = gym.make("liquid_rl/MountainCarContinuousNoVel-v0")
    obs, _ = env.reset(seed=0)
    assert env.spec.max_episode_steps == 999
    for obs in _steps(env, 30):
        position, velocity = env.unwrapped.state
        assert obs[1] == 0.0 and velocity != 0.0
        assert obs[0] == pytest.approx(position, rel=1e-6)


def test_no_vel_episode_length_follows_max_episode_steps():
    env = gym.make("liquid_rl/PendulumNoVel-v1", max_episode_steps=7)
    env.reset(seed=0)
    flags = [env.step(env.action_space.sample())[3] for _ in range(7)]
    assert flags == [False] * 6 + [True]


# ----------------------------------------------------------------------------- MuJoCo
def _kept_matches_simulator(env_id: str, part: str, robot: str, steps: int = 25, **kwargs):
    env = gym.make(env_id, **kwargs)
    base = gym.make(f"{robot}-v5", **kwargs)
    obs, _ = env.reset(seed=1)
    full, _ = base.reset(seed=1)
    layout = mujoco_observation_layout(base)
    data = env.unwrapped.data
    env.action_space.seed(1)
    for _ in range(steps):
        a = env.action_space.sample()
        obs, _, term, trunc, _ = env.step(a)
        full, *_ = base.step(a)
        if part == "P":
            expected = data.qpos[layout["qpos_source"]]
        else:
            expected = data.qvel[layout["qvel_source"]]
            if robot in CLIPPED_VELOCITY:
                expected = np.clip(expected, -10.0, 10.0)
        np.testing.assert_allclose(obs, expected, rtol=1e-12, atol=1e-12)
        # and they are exactly the matching entries of the full observation
        np.testing.assert_array_equal(obs, full[layout["qpos" if part == "P" else "qvel"]])
        if term or trunc:
            break
    env.close()
    base.close()
    return obs


@pytest.mark.parametrize("robot", ROBOTS)
@pytest.mark.parametrize("part", ["P", "V"])
def test_mujoco_variant_keeps_positions_or_velocities(robot, part):
    env_id = f"liquid_rl/{robot}-{part}-v5"
    env = gym.make(env_id)
    model = env.unwrapped.model
    skipped = 2 if robot == "Ant" else 1  # x (and y for Ant) of the root are hidden
    expected_dim = model.nq - skipped if part == "P" else model.nv
    assert env.observation_space.shape == (expected_dim,)
    assert env.spec.max_episode_steps == 1000
    env.close()
    _kept_matches_simulator(env_id, part, robot)


@pytest.mark.parametrize("robot", ["Hopper", "Ant"])
def test_mujoco_split_follows_the_exclude_positions_option(robot):
    env = gym.make(f"liquid_rl/{robot}-P-v5", exclude_current_positions_from_observation=False)
    assert env.observation_space.shape == (env.unwrapped.model.nq,)
    env.close()
    _kept_matches_simulator(f"liquid_rl/{robot}-P-v5", "P", robot, steps=10,
                            exclude_current_positions_from_observation=False)
    _kept_matches_simulator(f"liquid_rl/{robot}-V-v5", "V", robot, steps=10,
                            exclude_current_positions_from_observation=False)


def test_ant_split_without_contact_forces():
    base = gym.make("Ant-v5", include_cfrc_ext_in_observation=False)
    layout = mujoco_observation_layout(base)
    assert layout["extra"] == 0
    assert base.observation_space.shape == (len(layout["qpos"]) + len(layout["qvel"]),)
    base.close()
    _kept_matches_simulator("liquid_rl/Ant-V-v5", "V", "Ant", steps=10,
                            include_cfrc_ext_in_observation=False)


def test_ant_layout_counts_the_contact_forces():
    base = gym.make("Ant-v5")
    layout = mujoco_observation_layout(base)
    assert layout["extra"] == base.observation_space.shape[0] - 13 - 14
    base.close()


def test_layout_refuses_a_non_mujoco_env():
    with pytest.raises(ValueError, match="not a MuJoCo env"):
        mujoco_observation_layout(gym.make("CartPole-v1"))
