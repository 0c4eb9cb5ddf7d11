"""LiquidHistoryExtractor: the VecFrameStack layout, use by PPO/A2C/SAC/TD3, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import A2C, PPO, SAC, TD3
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.common.vec_env import VecFrameStack, VecTransposeImage

import liquid_rl.envs  # noqa: F401
from liquid_rl.cells import build_core
from liquid_rl.extractors import LiquidHistoryExtractor

PENDULUM = "liquid_rl/PendulumNoVel-v1"


pytestmark = pytest.mark.usefixtures("one_thread")   # tests/conftest.py


def _stacked(env_id: str, k: int, n_envs: int = 2):
    return VecFrameStack(make_vec_env(env_id, n_envs=n_envs, seed=0), n_stack=k)


def test_vector_history_is_read_oldest_first_as_vecframestack_stacks():
    env = _stacked(PENDULUM, 3)
    frames = [env.reset()[:, -3:]]
    for _ in range(4):
        obs, *_ = env.step(np.zeros((2, 1), dtype=np.float32))
        frames.append(obs[:, -3:])
    ext = LiquidHistoryExtractor(env.observation_space, history=3, cell="ltc", units=6)
    # The features are the cell run over the last three raw observations, oldest first.
    seq = torch.as_tensor(np.stack(frames[-3:]))                                  # (3, B, 3)
    expected, _ = ext.core(seq, torch.zeros(2, ext.core.state_size), None, None)
    with torch.no_grad():
        got = ext(torch.as_tensor(obs))
    torch.testing.assert_close(got, expected[-1].detach())
    assert got.shape == (2, ext.features_dim) == (2, 6)
    # A different order of the same frames gives other features: the order is read.
    shuffled = torch.as_tensor(np.concatenate([frames[-1], frames[-2], frames[-3]], axis=1))
    assert (ext(shuffled) - got).abs().max() > 1e-4


def test_image_history_runs_the_conv_head_per_frame():
    env = VecTransposeImage(_stacked("liquid_rl/LaneKeepingPixels-v0", 2))
    assert env.observation_space.shape == (6, 64, 64)
    env.reset()
    obs, *_ = env.step(np.zeros((2, 1), dtype=np.float32))
    ext = LiquidHistoryExtractor(env.observation_space, history=2, cell="cfc", units=8, wiring="ncp",
                                 conv_features=16, features_dim=5)
    x = preprocess_obs(torch.as_tensor(obs), env.observation_space)
    with torch.no_grad():
        got = ext(x)
        per_frame = torch.stack([ext.head(x[:, 3 * i: 3 * i + 3]) for i in range(2)])   # (K, B, 16)
        y, _ = ext.core(per_frame, torch.zeros(2, ext.core.state_size), None, None)
        expected = ext.proj(y[-1])
    torch.testing.assert_close(got, expected)
    assert got.shape == (2, 5) and ext.core.output_size == 2  # ncp default: units // 4 motor neurons


@pytest.mark.parametrize("algo, shared", [(PPO, True), (PPO, False), (A2C, True), (SAC, False), (SAC, True),
                                          (TD3, False)])
def test_algorithms_train_the_extractor(algo, shared):
    env = _stacked(PENDULUM, 3, n_envs=1)
    kwargs = dict(features_extractor_class=LiquidHistoryExtractor,
                  features_extractor_kwargs=dict(history=3, cell="ltc", units=6),
                  share_features_extractor=shared)
    extra = dict(learning_starts=32, batch_size=32) if algo in (SAC, TD3) else dict(n_steps=32)
    if algo is PPO:
        extra["batch_size"] = 32
    model = algo("MlpPolicy", env, policy_kwargs=kwargs, seed=0, **extra)
    policy = model.policy
    if algo in (SAC, TD3):
        extractors = [policy.actor.features_extractor, policy.critic.features_extractor]
    else:
        extractors = [policy.pi_features_extractor, policy.vf_features_extractor]
    assert all(isinstance(e, LiquidHistoryExtractor) for e in extractors)
    assert (extractors[0] is extractors[1]) == shared
    before = [{n: p.detach().clone() for n, p in e.named_parameters()} for e in extractors]
    model.learn(64)
    for e, b in zip(extractors, before):
        assert [n for n, p in e.named_parameters() if torch.equal(p, b[n])] == []


def test_ppo_on_stacked_camera_frames():
    env = _stacked("liquid_rl/LaneKeepingPixels-v0", 2)
    model = PPO("CnnPolicy", env, n_steps=8, batch_size=16, n_epochs=1, seed=0, policy_kwargs=dict(
        features_extractor_class=LiquidHistoryExtractor,
        features_extractor_kwargs=dict(history=2, cell="ltc", units=19, wiring="ncp", output_size=1)))
    ext = model.policy.features_extractor
    assert ext.frame_shape == (3, 64, 64) and ext.features_dim == 1
    conv = ext.head.conv[0].weight.detach().clone()
    model.learn(16)
    assert not torch.equal(conv, ext.head.conv[0].weight)


@pytest.mark.parametrize("space, kwargs, match", [
    (spaces.Box(-1, 1, (9,)), dict(history=2), "history=2 does not divide the observation length 9"),
    (spaces.Box(0, 255, (6, 64, 64), np.uint8), dict(history=4), "does not divide the 6 image channels"),
    (spaces.Box(-1, 1, (8,)), dict(history=0), "history must be a positive integer"),
    (spaces.Box(-1, 1, (8,)), dict(history=2, features_dim=0), "features_dim must be a positive integer"),
    (spaces.Box(-1, 1, (8,)), dict(history=2, cell="rnn"), "Unknown cell 'rnn'"),
    (spaces.Box(-1, 1, (8,)), dict(history=2, wiring="dense"), "Unknown wiring 'dense'"),
    (spaces.Box(-1, 1, (4, 2, 2)), dict(history=2), "stacked vectors"),
    (spaces.Dict({"a": spaces.Box(-1, 1, (4,))}), dict(history=2), "takes a Box observation space"),
])
def test_bad_input_raises_a_clear_value_error(space, kwargs, match):
    with pytest.raises(ValueError, match=match):
        LiquidHistoryExtractor(space, **kwargs)


def test_cell_options_reach_the_cell():
    ext = LiquidHistoryExtractor(spaces.Box(-1, 1, (8,)), history=4, cell="ltc", units=5, ode_unfolds=2,
                                 solver="rk4")
    assert ext.core.rnn.rnn_cell._ode_unfolds == 2 and ext.core.rnn.rnn_cell.solver == "rk4"
    same = build_core("ltc", 2, 5, ode_unfolds=2, solver="rk4")
    assert ext.core.state_size == same.state_size


def test_step_time_is_the_cell_time_between_frames():
    """step_time=s runs the cell with s units per frame: the core called with timespans s."""
    space = spaces.Box(-1, 1, (4 * 3,))
    obs = torch.rand(5, 12, generator=torch.Generator().manual_seed(0)) * 2 - 1
    ext = LiquidHistoryExtractor(space, history=4, cell="ltc", units=6, step_time=0.2)
    unit = LiquidHistoryExtractor(space, history=4, cell="ltc", units=6)
    unit.load_state_dict(ext.state_dict())
    frames = obs.reshape(5, 4, 3).transpose(0, 1)
    with torch.no_grad():
        y, _ = ext.core(frames, torch.zeros(5, ext.core.state_size), torch.full((4, 5, 1), 0.2), None)
        torch.testing.assert_close(ext(obs), y[-1])
        assert (ext(obs) - unit(obs)).abs().max() > 1e-3
    for bad in (0.0, -1.0, float("nan"), True):
        with pytest.raises(ValueError, match="step_time must be a finite number > 0"):
            LiquidHistoryExtractor(space, history=4, step_time=bad)
