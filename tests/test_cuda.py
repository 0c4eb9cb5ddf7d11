"""The agents on a CUDA device: each trains there, and a policy moved there gives the
same actions, values and gradients as on the CPU. Skipped where torch sees no GPU."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch as th
from sb3_contrib import RecurrentPPO
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3 import SAC
from stable_baselines3.common.env_util import make_vec_env

import liquid_rl.envs  # noqa: F401  (registers the environments)
from liquid_rl import CfC, LTC, wirings
from liquid_rl.agents.recurrent_sac import RecurrentSAC
from liquid_rl.extractors import LiquidHistoryExtractor
from liquid_rl.policies import LiquidRecurrentPolicy

pytestmark = pytest.mark.skipif(not th.cuda.is_available(), reason="needs CUDA")

ENV_ID = "liquid_rl/PendulumNoVel-v1"
POLICY_KWARGS = {
    "ltc": dict(cell="ltc", units=8, step_time=0.5),
    "ncp": dict(cell="ltc", wiring="ncp", units=12),
    "cfc": dict(cell="cfc", units=8),
    "cfc_ncp": dict(cell="cfc", wiring="ncp", units=12),
    "lstm": dict(cell="lstm", units=8),
}


@pytest.mark.parametrize("name", ["ltc", "ltc_ncp", "cfc", "cfc_ncp"])
def test_gradients_on_cuda_match_cpu(name):
    """Forward on CUDA equals the CPU's (test_models); here the backward too, with resets
    and per-sample timespans (the paths PPO's sequence replay takes)."""
    th.manual_seed(0)
    make = {"ltc": lambda: LTC(5, 8), "ltc_ncp": lambda: LTC(5, wirings.AutoNCP(12, 2)),
            "cfc": lambda: CfC(5, 8), "cfc_ncp": lambda: CfC(5, wirings.AutoNCP(12, 2))}[name]
    cpu = make()
    gpu = copy.deepcopy(cpu).cuda()
    x, ts = th.randn(4, 12, 5), th.rand(4, 12) + 0.1
    resets = th.zeros(4, 12, dtype=th.bool)
    resets[1, 5] = resets[3, 2] = True
    for m, dev in ((cpu, "cpu"), (gpu, "cuda")):
        y, _ = m(x.to(dev), timespans=ts.to(dev), resets=resets.to(dev))
        y.square().sum().backward()
    for (n, p), q in zip(cpu.named_parameters(), gpu.parameters()):
        if p.grad is None:   # a parameter the wiring leaves unused
            assert q.grad is None, n
        else:
            th.testing.assert_close(q.grad.cpu(), p.grad, atol=1e-4, rtol=1e-3, msg=n)


@pytest.mark.parametrize("name", list(POLICY_KWARGS))
def test_recurrent_ppo_trains_on_cuda_and_matches_cpu(name, tmp_path):
    env = make_vec_env(ENV_ID, n_envs=2, seed=0)
    model = RecurrentPPO(LiquidRecurrentPolicy, env, n_steps=32, batch_size=32, n_epochs=1, seed=0,
                         device="cuda", policy_kwargs=POLICY_KWARGS[name])
    model.learn(64)
    assert model.num_timesteps == 64 and all(p.is_cuda for p in model.policy.parameters())

    # Same weights on both devices (saved on one, loaded on the other): the same
    # log-probabilities and values for a batch of sequences with an episode start inside.
    model.save(tmp_path / "agent.zip")
    gpu_policy = model.policy
    cpu_policy = RecurrentPPO.load(tmp_path / "agent.zip", device="cpu").policy
    obs = th.randn(2 * 8, *env.observation_space.shape)
    actions = th.randn(2 * 8, *env.action_space.shape)
    starts = th.zeros(2 * 8)
    starts[0] = starts[8] = starts[11] = 1.0
    n_seq = 2
    for policy, dev in ((cpu_policy, "cpu"), (gpu_policy, "cuda")):
        zeros = th.zeros(policy.lstm_hidden_state_shape[0], n_seq, policy.lstm_hidden_state_shape[2], device=dev)
        states = RNNStates((zeros, zeros.clone()), (zeros.clone(), zeros.clone()))
        values, logp, _ = policy.evaluate_actions(obs.to(dev), actions.to(dev), states, starts.to(dev))
        if dev == "cpu":
            ref = (values, logp)
    th.testing.assert_close(values.cpu(), ref[0], atol=1e-4, rtol=1e-4)
    th.testing.assert_close(logp.cpu(), ref[1], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("cell", ["ltc", "cfc", "lstm"])
def test_recurrent_sac_trains_on_cuda_saves_and_acts_like_on_cpu(cell, tmp_path):
    env = make_vec_env(ENV_ID, n_envs=2, seed=0)
    model = RecurrentSAC("RecurrentSACPolicy", env, learning_starts=40, sequence_length=6, burn_in=3,
                         batch_size=4, buffer_size=2000, seed=0, device="cuda",
                         policy_kwargs=dict(cell=cell, units=8, net_arch=[16]))
    model.learn(200)
    assert model._n_updates > 50 and all(p.is_cuda for p in model.policy.parameters())
    model.save(tmp_path / "agent.zip")
    on_cpu = RecurrentSAC.load(tmp_path / "agent.zip", device="cpu")
    rng = np.random.default_rng(0)
    state_gpu = state_cpu = None
    starts = np.ones(2, dtype=bool)
    for _ in range(10):   # the carried state must agree too
        obs = rng.standard_normal((2, *env.observation_space.shape)).astype(np.float32)
        a_gpu, state_gpu = model.predict(obs, state_gpu, starts, deterministic=True)
        a_cpu, state_cpu = on_cpu.predict(obs, state_cpu, starts, deterministic=True)
        np.testing.assert_allclose(a_gpu, a_cpu, atol=1e-4)
        starts = np.zeros(2, dtype=bool)


def test_sac_with_history_extractor_trains_on_cuda():
    from stable_baselines3.common.vec_env import VecFrameStack

    env = VecFrameStack(make_vec_env(ENV_ID, n_envs=1, seed=0), n_stack=4)
    kwargs = dict(features_extractor_class=LiquidHistoryExtractor,
                  features_extractor_kwargs=dict(history=4, cell="cfc", units=8))
    model = SAC("MlpPolicy", env, learning_starts=20, batch_size=16, seed=0, device="cuda", policy_kwargs=kwargs)
    before = {k: v.detach().clone() for k, v in model.actor.features_extractor.named_parameters()}
    model.learn(60)
    after = dict(model.actor.features_extractor.named_parameters())
    assert any(not th.equal(before[k], after[k].detach()) for k in before)
