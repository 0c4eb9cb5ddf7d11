"""Previous action and reward as core inputs: the wrapper, the embeddings, RecurrentSAC
and RecurrentPPO with them, and the reward-only HiddenTarget task. Short runs only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from hypothesis import given, settings
from hypothesis import strategies as st
from sb3_contrib import RecurrentPPO
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.env_util import make_vec_env

import liquid_rl.envs  # noqa: F401  (registers the environments)
from liquid_rl.agents import load_agent
from liquid_rl.agents.recurrent_sac import RecurrentSAC
from liquid_rl.core_inputs import CoreInputs, PreviousActionReward, check_core_inputs, split_observation
from liquid_rl.envs.hidden_target import HiddenTargetEnv
from liquid_rl.policies import LiquidRecurrentPolicy

ALL = ("obs", "prev_action", "prev_reward")
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


pytestmark = pytest.mark.usefixtures("one_thread")   # short trainings: one thread, reproducible


def short_pendulum(n_envs: int = 3, steps: int = 7, seed: int = 0) -> PreviousActionReward:
    """PendulumNoVel cut to ``steps``-step episodes, several envs, previous action and reward appended."""
    venv = make_vec_env("liquid_rl/PendulumNoVel-v1", n_envs=n_envs, seed=seed, wrapper_class=gym.wrappers.TimeLimit,
                        wrapper_kwargs=dict(max_episode_steps=steps))
    return PreviousActionReward(venv)


def test_wrapper_appends_previous_action_and_reward_zero_at_episode_starts():
    venv = short_pendulum(n_envs=2, steps=3)
    obs = venv.reset()
    assert obs.shape == (2, 3 + 1 + 1) and np.all(obs[:, 3:] == 0)
    for t in range(7):
        actions = np.full((2, 1), 2.0 * (t % 2) - 1.0, dtype=np.float32) * np.array([[2.0], [1.0]])  # bounds +-2
        obs, rewards, dones, infos = venv.step(actions)
        if dones.any():
            assert np.all(obs[dones, 3:] == 0)  # a new episode starts with zeros
            term = infos[int(np.argmax(dones))]["terminal_observation"]
            np.testing.assert_allclose(term[3:], [actions[int(np.argmax(dones)), 0] / 2.0, rewards[int(np.argmax(dones))]])
        live = ~dones
        np.testing.assert_allclose(obs[live, 3], actions[live, 0] / 2.0, atol=1e-6)  # scaled to [-1, 1]
        np.testing.assert_allclose(obs[live, 4], rewards[live], atol=1e-6)


def test_wrapper_one_hot_discrete_actions_and_only_the_reward():
    venv = PreviousActionReward(make_vec_env("liquid_rl/CartPoleNoVel-v1", n_envs=2, seed=0), ["prev_action"])
    assert venv.observation_space.shape == (4 + 2,)
    venv.reset()
    obs, *_ = venv.step(np.array([1, 0]))
    np.testing.assert_array_equal(obs[:, 4:], [[0, 1], [1, 0]])
    only_reward = PreviousActionReward(make_vec_env("liquid_rl/CartPoleNoVel-v1", n_envs=1), ["prev_reward"])
    assert only_reward.observation_space.shape == (5,)


@pytest.mark.parametrize(("value", "message"), [
    ("obs", "must be a list"),
    (["prev_action"], "including 'obs'"),
    (["obs", "obs"], "distinct names"),
    (["obs", "action"], "distinct names"),
])
def test_bad_core_inputs(value, message):
    with pytest.raises(ValueError, match=message):
        check_core_inputs(value)


def test_embeddings_sizes_and_bad_embeddings():
    inputs = CoreInputs(ALL, 5, 2, {"obs": 32, "prev_action": 16, "prev_reward": 16}, layer_norm=True)
    assert inputs.output_size == 64 and inputs.n_extra == 3
    x = th.randn(4, 7, 5 + 3)
    obs, extra = split_observation(x, inputs.n_extra)
    assert inputs(obs, extra).shape == (4, 7, 64)
    assert CoreInputs(ALL, 5, 2).output_size == 8  # no embeddings: the raw parts side by side
    with pytest.raises(ValueError, match="not in core_inputs"):
        CoreInputs(("obs",), 5, 0, {"prev_reward": 4})
    with pytest.raises(ValueError, match="must be a positive integer"):
        CoreInputs(ALL, 5, 2, {"obs": 0})


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 5), d=st.integers(1, 6), e=st.integers(0, 4))
def test_split_observation_is_the_inverse_of_appending(n, d, e):
    x = th.randn(n, d + e)
    obs, extra = split_observation(x, e)
    assert obs.shape == (n, d) and extra.shape == (n, e)
    th.testing.assert_close(th.cat([obs, extra], -1), x)


def _sac(venv, **kwargs) -> RecurrentSAC:
    policy_kwargs = dict(cell="cfc", units=8, net_arch=[16], core_inputs=ALL,
                         input_embeddings={"obs": 8, "prev_action": 4, "prev_reward": 4})
    policy_kwargs.update(kwargs.pop("policy_kwargs", {}))
    return RecurrentSAC("MlpPolicy", venv, policy_kwargs=policy_kwargs, seed=0, device="cpu",
                        **{**dict(learning_starts=30, sequence_length=6, burn_in=3, batch_size=4, buffer_size=600),
                           **kwargs})


def test_recurrent_sac_windows_see_what_acting_saw_across_episodes_and_envs():
    """Unrolling the actor over stored windows from the stored state gives, step by step,
    the states the actor had while acting (episode boundaries and three env columns)."""
    venv = short_pendulum(n_envs=3, steps=7)
    model = _sac(venv, burn_in_state="stored", learning_starts=1000)  # act only: weights stay fixed
    model.learn(90)
    buf = model.replay_buffer
    rows = buf.pos
    assert buf.episode_starts[:rows].sum() >= 3 * 4  # several episodes per column
    # the stored observations carry the previous stored action (scaled) and reward, zero at starts
    obs = buf.observations[:rows]
    for t in range(1, rows):
        start = buf.episode_starts[t]
        np.testing.assert_allclose(obs[t, :, 3], np.where(start, 0.0, buf.actions[t - 1, :, 0]), atol=1e-6)
        np.testing.assert_allclose(obs[t, :, 4], np.where(start, 0.0, buf.rewards[t - 1]), atol=1e-5)
    # every stored step, replayed in windows, rebuilds the acting states exactly
    T = rows - 1
    offsets, cols = np.zeros(3, dtype=int), np.arange(3)
    buf.burn_in, buf.sequence_length = 0, T  # one window per column over all stored rows
    data = buf._get_windows(0, offsets, cols)
    with th.no_grad():
        y = model.actor.unroll(data.observations, data.start_states, data.resets)  # (T, 3, O) = states (CfC)
    stored_next = th.as_tensor(buf.states[1:rows]).float()  # state before step t+1 = after step t
    keep = ~th.as_tensor(buf.episode_starts[1:rows])  # at episode starts acting zeroed it
    th.testing.assert_close(y[keep], stored_next[keep], atol=1e-5, rtol=1e-5)


def test_recurrent_sac_with_previous_inputs_trains_saves_and_predicts(tmp_path):
    venv = short_pendulum(n_envs=2, steps=9)
    model = _sac(venv, policy_kwargs=dict(embedding_layer_norm=True))
    before = {k: v.clone() for k, v in model.actor.inputs.state_dict().items()}
    model.learn(80)
    assert all(not th.equal(v, before[k]) for k, v in model.actor.inputs.state_dict().items())
    model.save(tmp_path / "m.zip")
    loaded = RecurrentSAC.load(tmp_path / "m.zip", env=venv, device="cpu")
    assert loaded.policy.core_inputs == ALL and loaded.policy.embedding_layer_norm
    obs = venv.reset()
    a1, s1 = model.predict(obs, None, np.ones(2, bool), deterministic=True)
    a2, s2 = loaded.predict(obs, None, np.ones(2, bool), deterministic=True)
    np.testing.assert_allclose(a1, a2, atol=1e-6)
    np.testing.assert_allclose(s1, s2, atol=1e-6)


def test_recurrent_sac_refuses_to_collect_with_an_env_without_the_wrapper():
    short = make_vec_env(lambda: HiddenTargetEnv(), n_envs=1)  # 1 number: shorter than what would be appended
    with pytest.raises(ValueError, match="core_inputs with a previous action or reward need a flat Box"):
        RecurrentSAC("MlpPolicy", short, policy_kwargs=dict(core_inputs=ALL), device="cpu")
    wrong = make_vec_env("liquid_rl/HalfCheetah-P-v5", n_envs=1)  # long enough, but nothing appended
    model = RecurrentSAC("MlpPolicy", wrong, policy_kwargs=dict(core_inputs=ALL, units=4), buffer_size=100,
                         device="cpu")
    with pytest.raises(ValueError, match="need the env wrapped in"):
        model.learn(10)


def test_recurrent_ppo_with_previous_inputs_rolls_out_and_replays_the_same_log_probs():
    """RecurrentPPO stores the wrapped observations, so training minibatches replay the
    inputs of the rollout: evaluate_actions gives back the rollout's log-probabilities
    (3 episode boundaries per env in 16 steps)."""
    venv = short_pendulum(n_envs=2, steps=5)
    model = RecurrentPPO(LiquidRecurrentPolicy, venv, n_steps=16, batch_size=32, n_epochs=1, seed=0, device="cpu",
                         policy_kwargs=dict(cell="cfc", units=6, core_inputs=ALL,
                                            input_embeddings={"prev_reward": 4}, embedding_layer_norm=True))
    policy = model.policy
    assert policy.lstm_actor.input_size == 3 + 1 + 4 and policy.features_extractor.features_dim == 3
    model._setup_learn(32, None)
    callback = CallbackList([])
    callback.init_callback(model)
    model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)
    data = next(iter(model.rollout_buffer.get(32)))
    mask = data.mask > 1e-8
    _, log_prob, _ = policy.evaluate_actions(data.observations, data.actions, data.lstm_states, data.episode_starts)
    th.testing.assert_close(log_prob[mask].detach(), data.old_log_prob[mask], atol=1e-5, rtol=1e-5)
    obs = data.observations.reshape(-1, 5)
    starts = data.episode_starts.reshape(-1) > 0.5
    assert th.all(obs[starts & mask.reshape(-1), 3:] == 0)  # zeros at episode starts reach the policy


def test_recurrent_ppo_policy_save_and_load_keep_core_inputs(tmp_path):
    venv = short_pendulum(n_envs=1, steps=5)
    model = RecurrentPPO(LiquidRecurrentPolicy, venv, n_steps=8, batch_size=8, seed=0, device="cpu",
                         policy_kwargs=dict(cell="ltc", units=5, core_inputs=["obs", "prev_reward"],
                                            input_embeddings={"obs": 4}))
    model.save(tmp_path / "ppo.zip")
    loaded = RecurrentPPO.load(tmp_path / "ppo.zip", device="cpu")
    assert loaded.policy.core_inputs == ("obs", "prev_reward") and loaded.policy.n_extra == 1
    for a, b in zip(model.policy.state_dict().values(), loaded.policy.state_dict().values()):
        th.testing.assert_close(a, b)


def test_hidden_target_env():
    env = HiddenTargetEnv(dims=2, episode_steps=4)
    obs, _ = env.reset(seed=3)
    target = env._target.copy()
    assert obs.tolist() == [0.0] and np.all(np.abs(target) <= 1)
    _, r, terminated, truncated, info = env.step(target)
    assert r == 0.0 and not terminated and not truncated
    for _ in range(3):
        obs, r, terminated, truncated, _ = env.step(np.zeros(2))
    assert truncated and obs.tolist() == [1.0] and r == pytest.approx(-np.mean(np.abs(target)))
    assert gym.spec("liquid_rl/HiddenTarget-v0") is not None
    with pytest.raises(ValueError, match="dims must be a positive integer"):
        HiddenTargetEnv(dims=0)


def _cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "liquid_rl.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_cli_trains_hidden_target_with_core_inputs_from_the_config(tmp_path):
    out = tmp_path / "run"
    proc = _cli("train", "--config", str(CONFIGS / "hidden_target_recurrent_sac_reward.yaml"), "--out", str(out),
                "--no-progress", "--set", "train.total_timesteps=120", "--set", "algo.hyperparams.learning_starts=100",
                "--set", "algo.hyperparams.batch_size=4", "--set", "train.eval_every=0",
                "--set", "train.checkpoint_every=1000", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    agent = load_agent(out)  # the safe loader rebuilds the policy from the config
    model = agent.model
    assert model.policy.core_inputs == ALL and model.observation_space.shape == (1 + 1 + 1,)
    proc = _cli("eval", str(out), "--episodes", "2", "--deterministic", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr  # evaluation envs get the wrapper from the config too


def test_cli_refuses_bad_core_inputs_with_exit_2(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text((CONFIGS / "hidden_target_recurrent_sac_reward.yaml").read_text()
                   .replace("[obs, prev_action, prev_reward]", "[obs, prev_obs]"))
    proc = _cli("check", str(cfg), cwd=tmp_path)
    assert proc.returncode == 2 and "core_inputs" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
