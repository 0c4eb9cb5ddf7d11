"""Every registered environment: registration, Gymnasium API, seeding, rendering, config."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # frames must not be blank even so

import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import liquid_rl.envs as lenvs

ALL_IDS = list(lenvs.ENV_IDS)
MUJOCO_IDS = [i for i in ALL_IDS if i.endswith("-v5")]
FAST_IDS = [i for i in ALL_IDS if i not in MUJOCO_IDS and "Highway" not in i]

EXPECTED_IDS = {
    "liquid_rl/LaneKeeping-v0",
    "liquid_rl/LaneKeepingPixels-v0",
    "liquid_rl/HighwayLaneKeeping-v0",
    "liquid_rl/CartPoleNoVel-v1",
    "liquid_rl/PendulumNoVel-v1",
    "liquid_rl/MountainCarContinuousNoVel-v0",
    "liquid_rl/HiddenTarget-v0",
    *(f"liquid_rl/{r}-{p}-v5" for r in ("HalfCheetah", "Hopper", "Walker2d", "Ant") for p in "PV"),
}


@pytest.fixture(autouse=True)
def _mujoco_log_elsewhere(tmp_path, monkeypatch):
    # MuJoCo writes MUJOCO_LOG.TXT into the working directory on model warnings.
    monkeypatch.chdir(tmp_path)


def _make(env_id: str, **kwargs):
    if env_id in MUJOCO_IDS:  # small frames: check_env renders every listed mode
        kwargs.setdefault("width", 64)
        kwargs.setdefault("height", 64)
    return gym.make(env_id, **kwargs)


def test_all_ids_registered():
    assert set(ALL_IDS) == EXPECTED_IDS
    for env_id in EXPECTED_IDS:
        assert env_id in gym.registry


def test_import_is_cheap_and_idempotent():
    code = (
        "import sys, warnings\n"
        "warnings.simplefilter('error')\n"
        "import liquid_rl.envs, importlib\n"
        "importlib.reload(liquid_rl.envs)\n"
        "import liquid_rl.envs\n"
        "heavy = {m.split('.')[0] for m in sys.modules} & {'highway_env', 'mujoco', 'pygame'}\n"
        "assert not heavy, heavy\n"
        "print(len(liquid_rl.envs.ENV_IDS))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(len(EXPECTED_IDS))


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_check_env(env_id):
    env = _make(env_id)
    with warnings.catch_warnings():
        # check_env warns that a made env is wrapped (it is, by gym.make) and about
        # infinite Box bounds (MuJoCo's own spaces): neither is a failure.
        warnings.simplefilter("ignore")
        check_env(env)
    env.close()


def _rollout(env_id: str, seed: int, steps: int, **kwargs):
    env = _make(env_id, **kwargs)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    traj = [np.array(obs, copy=True)]
    rewards = []
    for _ in range(steps):
        obs, r, term, trunc, _ = env.step(env.action_space.sample())
        traj.append(np.array(obs, copy=True))
        rewards.append(r)
        if term or trunc:
            obs, _ = env.reset()
            traj.append(np.array(obs, copy=True))
    env.close()
    return traj, rewards


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_seeded_reproducibility(env_id):
    steps = 15 if env_id in MUJOCO_IDS or "Highway" in env_id else 60
    a, ra = _rollout(env_id, 7, steps)
    b, rb = _rollout(env_id, 7, steps)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert ra == rb
    c, rc = _rollout(env_id, 8, steps)
    # another seed changes the episode (HiddenTarget's observation is only the time: its reward changes)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c)) or ra != rc


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_rgb_array_rendering(env_id):
    env = _make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    env.step(env.action_space.sample())
    frame = env.render()
    assert isinstance(frame, np.ndarray)
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    assert frame.shape[0] >= 32 and frame.shape[1] >= 32
    assert frame.std() > 0  # not a blank image
    env.close()


@pytest.mark.parametrize(
    "env_id", ["liquid_rl/LaneKeeping-v0", "liquid_rl/LaneKeepingPixels-v0",
               "liquid_rl/HighwayLaneKeeping-v0"]
)
def test_own_envs_default_config_and_overrides(env_id):
    env = gym.make(env_id, max_steps=3)
    cls = type(env.unwrapped)
    defaults = cls.default_config()
    assert isinstance(defaults, dict) and "max_steps" in defaults
    assert env.unwrapped.config["max_steps"] == 3
    env.reset(seed=0)
    done = [env.step(np.zeros(1, np.float32))[3] for _ in range(3)]
    assert done == [False, False, True]
    # a config dict works too, kwargs win over it
    env2 = gym.make(env_id, config={"max_steps": 5}, **({} if "Highway" in env_id else {"dt": 0.05}))
    assert env2.unwrapped.config["max_steps"] == 5
    env.close()
    env2.close()


@pytest.mark.parametrize(
    "env_id", ["liquid_rl/LaneKeeping-v0", "liquid_rl/LaneKeepingPixels-v0",
               "liquid_rl/HighwayLaneKeeping-v0"]
)
def test_unknown_config_key_is_named(env_id):
    with pytest.raises(ValueError, match="max_stepz") as info:
        gym.make(env_id, max_stepz=10)
    assert "max_steps" in str(info.value)  # the valid keys are listed


@pytest.mark.parametrize(
    ("env_id", "key", "value"),
    [
        ("liquid_rl/LaneKeeping-v0", "max_steps", -5),
        ("liquid_rl/LaneKeeping-v0", "max_steps", 2.5),
        ("liquid_rl/LaneKeeping-v0", "dt", 0.0),
        ("liquid_rl/LaneKeeping-v0", "speed", float("nan")),
        ("liquid_rl/LaneKeeping-v0", "road_width", -4.0),
        ("liquid_rl/LaneKeeping-v0", "preview_points", 0),
        ("liquid_rl/LaneKeeping-v0", "segment_probs", [0.5, 0.5, 0.5]),
        ("liquid_rl/LaneKeeping-v0", "sharp_radius", [30.0, 20.0]),
        ("liquid_rl/LaneKeeping-v0", "sharp_radius", [1.0, 20.0]),
        ("liquid_rl/LaneKeeping-v0", "initial_offset", 3.0),
        ("liquid_rl/LaneKeeping-v0", "road_profile", [[-10.0, 0.0]]),
        ("liquid_rl/LaneKeeping-v0", "road_profile", [[10.0, 1.0]]),
        ("liquid_rl/LaneKeeping-v0", "max_steer", True),
        ("liquid_rl/LaneKeepingPixels-v0", "view", "sideways"),
        ("liquid_rl/LaneKeepingPixels-v0", "image_height", 0),
        ("liquid_rl/LaneKeepingPixels-v0", "camera_pitch", -1.0),
        ("liquid_rl/HighwayLaneKeeping-v0", "max_steps", 0),
        ("liquid_rl/HighwayLaneKeeping-v0", "state_noise", -0.1),
        ("liquid_rl/HighwayLaneKeeping-v0", "highway_config", {"no_such_key": 1}),
    ],
)
def test_invalid_config_value_is_named(env_id, key, value):
    with pytest.raises(ValueError, match=key if key != "highway_config" else "no_such_key"):
        gym.make(env_id, **{key: value})


def test_sb3_accepts_the_observations():
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    for env_id in ("liquid_rl/LaneKeeping-v0", "liquid_rl/LaneKeepingPixels-v0",
                   "liquid_rl/HighwayLaneKeeping-v0", "liquid_rl/CartPoleNoVel-v1"):
        env = gym.make(env_id)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sb3_check_env(env.unwrapped if "NoVel" not in env_id else env, warn=False)
        env.close()


@pytest.mark.parametrize("env_id", FAST_IDS)
def test_random_episode_observations_in_space(env_id):
    env = gym.make(env_id)
    env.action_space.seed(3)
    obs, _ = env.reset(seed=3)
    for _ in range(300):
        assert env.observation_space.contains(obs)
        obs, r, term, trunc, _ = env.step(env.action_space.sample())
        assert np.isfinite(r)
        if term or trunc:
            obs, _ = env.reset()
    env.close()


def test_sb3_policies_train_on_the_envs():
    """A few PPO updates: CnnPolicy on the camera task, MultiInputPolicy with dt."""
    from stable_baselines3 import PPO

    from liquid_rl.envs.wrappers import IrregularTime

    pixels = gym.make("liquid_rl/LaneKeepingPixels-v0", image_height=40, image_width=40)
    model = PPO("CnnPolicy", pixels, n_steps=32, batch_size=16, n_epochs=1, seed=0,
                policy_kwargs={"features_extractor_kwargs": {"features_dim": 16}})
    model.learn(32)
    action, _ = model.predict(pixels.reset(seed=0)[0], deterministic=True)
    assert pixels.action_space.contains(action)

    timed = IrregularTime(gym.make("liquid_rl/LaneKeeping-v0"), mode="dt", low=0.05, high=0.2)
    model = PPO("MultiInputPolicy", timed, n_steps=32, batch_size=16, n_epochs=1, seed=0)
    model.learn(32)
