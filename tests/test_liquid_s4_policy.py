"""Liquid-S4 as a policy: in the history extractor, and in RecurrentPPO where its state
(SSM state plus the last inputs of the liquid terms) is zeroed at episode starts."""

from __future__ import annotations

import numpy as np
import torch
from sb3_contrib import RecurrentPPO
from stable_baselines3 import SAC
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecFrameStack

import liquid_rl.envs  # noqa: F401
from liquid_rl.extractors import LiquidHistoryExtractor
from liquid_rl.policies import LiquidRecurrentPolicy

PENDULUM = "liquid_rl/PendulumNoVel-v1"


def test_history_extractor_with_liquid_s4_trains_in_sac():
    env = VecFrameStack(make_vec_env(PENDULUM, n_envs=1, seed=0), n_stack=4)
    model = SAC("MlpPolicy", env, learning_starts=32, batch_size=16, seed=0, policy_kwargs=dict(
        features_extractor_class=LiquidHistoryExtractor,
        features_extractor_kwargs=dict(history=4, cell="liquid_s4", units=8, d_state=4, n_layers=1)))
    ext = model.policy.actor.features_extractor
    before = {n: p.detach().clone() for n, p in ext.named_parameters()}
    model.learn(64)
    changed = [n for n, p in ext.named_parameters() if not torch.equal(p, before[n])]
    assert len(changed) == len(before)


def test_recurrent_ppo_state_resets_at_episode_start():
    env = make_vec_env(PENDULUM, n_envs=1, seed=0)
    model = RecurrentPPO(LiquidRecurrentPolicy, env, n_steps=16, batch_size=16, n_epochs=1, seed=0,
                         policy_kwargs=dict(cell="liquid_s4", units=8, d_state=4, n_layers=1))
    obs = np.random.default_rng(0).normal(size=(6, 1, 3)).astype(np.float32)
    start = np.ones(1, dtype=bool)
    go_on = np.zeros(1, dtype=bool)
    state = None
    for t in range(5):  # build up a nonzero state
        _, state = model.predict(obs[t], state=state, episode_start=start if t == 0 else go_on, deterministic=True)
    assert np.abs(state[0]).sum() > 0
    after_reset, _ = model.predict(obs[5], state=state, episode_start=start, deterministic=True)
    fresh, _ = model.predict(obs[5], state=None, episode_start=start, deterministic=True)
    carried, _ = model.predict(obs[5], state=state, episode_start=go_on, deterministic=True)
    np.testing.assert_allclose(after_reset, fresh, atol=1e-6)
    assert not np.allclose(carried, fresh, atol=1e-6)
