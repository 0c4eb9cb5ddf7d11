"""Liquid recurrent policies inside sb3-contrib's RecurrentPPO: state handling, training,
actor/critic sharing, elapsed time, saving and loading, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from hypothesis import given, settings
from hypothesis import strategies as st
from sb3_contrib import RecurrentPPO
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

import liquid_rl.envs  # noqa: F401
from liquid_rl.envs.wrappers import IrregularTime
from liquid_rl.policies import (
    CnnLiquidRecurrentPolicy,
    CoreAsLSTM,
    LiquidRecurrentPolicy,
    MultiInputLiquidRecurrentPolicy,
    extract_zero_rows_once,
)
from liquid_rl.wirings import NCP

CARTPOLE = "liquid_rl/CartPoleNoVel-v1"
PENDULUM = "liquid_rl/PendulumNoVel-v1"


pytestmark = pytest.mark.usefixtures("one_thread")   # tests/conftest.py


def _model(env_id: str = CARTPOLE, n_envs: int = 2, policy=LiquidRecurrentPolicy, seed: int = 0,
           n_steps: int = 32, **policy_kwargs) -> RecurrentPPO:
    env = make_vec_env(env_id, n_envs=n_envs, seed=seed)
    return RecurrentPPO(policy, env, n_steps=n_steps, batch_size=32, n_epochs=2, seed=seed,
                        policy_kwargs=policy_kwargs)


def _rollout(model: RecurrentPPO) -> None:
    model._setup_learn(model.n_steps * model.n_envs, None)
    callback = CallbackList([])
    callback.init_callback(model)
    model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)


SHARING = [
    dict(cell="ltc", wiring="ncp", units=12),
    dict(cell="cfc", units=8),
    dict(cell="ltc", units=6, shared_lstm=True, enable_critic_lstm=False),
    dict(cell="cfc", units=6, enable_critic_lstm=False),
    dict(cell="ltc", units=5, mixed_memory=True),
    dict(cell="ltc", wiring="ncp", units=12, critic_core={"wiring": "full"}),
    dict(cell="ltc", wiring="ncp", units=12, critic_core={"cell": "lstm", "units": 16}),
]


@pytest.mark.parametrize("kwargs", SHARING, ids=lambda k: "-".join(f"{v}" for v in k.values()))
def test_training_sequences_replay_the_rollout(kwargs):
    # The state stored in the buffer, the resets at episode starts inside the padded
    # sequences and the packing into (h, c) must reproduce the rollout's log-probs and values.
    model = _model(n_envs=3, n_steps=48, **kwargs)
    _rollout(model)
    assert model.rollout_buffer.episode_starts[1:].sum() >= 3  # episodes ended inside the rollout
    for data in model.rollout_buffer.get(32):
        mask = data.mask > 1e-8
        values, log_prob, _ = model.policy.evaluate_actions(
            data.observations, data.actions.long().flatten(), data.lstm_states, data.episode_starts)
        np.testing.assert_allclose(log_prob[mask].detach(), data.old_log_prob[mask], atol=1e-5)
        np.testing.assert_allclose(values.flatten()[mask].detach(), data.old_values[mask], atol=1e-5)


def test_sharing_options_build_the_right_modules():
    separate = _model(cell="ltc", units=6).policy
    assert isinstance(separate.lstm_critic, CoreAsLSTM) and separate.lstm_critic is not separate.lstm_actor
    assert separate.critic is None
    shared = _model(cell="ltc", units=6, shared_lstm=True, enable_critic_lstm=False).policy
    assert shared.lstm_critic is None and shared.critic is None
    feedforward = _model(cell="ltc", units=6, enable_critic_lstm=False).policy
    assert feedforward.lstm_critic is None and isinstance(feedforward.critic, torch.nn.Linear)


def test_critic_core_reads_out_its_own_size_and_shares_the_state_buffer_shape():
    # An NCP actor reads out its motor neurons (2 for CartPole's two actions); by default the
    # critic is the same circuit, its value read off those 2; its own core reads out all 12.
    same = _model(cell="ltc", wiring="ncp", units=12).policy
    assert same.lstm_critic.output_size == 2 and same.mlp_extractor.latent_dim_vf == 2
    full = _model(cell="ltc", wiring="ncp", units=12, critic_core={"wiring": "full"}).policy
    assert (full.lstm_actor.output_size, full.lstm_critic.output_size, full.mlp_extractor.latent_dim_vf) == (2, 12, 12)
    assert full.critic_spec.cell == "ltc" and full.critic_spec.options == full.core_spec.options
    lstm = _model(cell="ltc", wiring="ncp", units=12, critic_core={"cell": "lstm", "units": 16}).policy
    # RecurrentPPO sizes both state buffers from the actor: both pairs take the larger size.
    assert lstm.lstm_actor.hidden_size == lstm.lstm_critic.hidden_size == 16
    assert (lstm.lstm_actor.state_size, lstm.lstm_critic.state_size) == (12, 32)
    assert lstm.value_net.in_features == 16 and lstm.action_net.in_features == 2
    wide = _model(cell="ltc", wiring="ncp", units=12, net_arch=dict(pi=[], vf=[8]),
                  critic_core={"wiring": "full"}).policy
    assert wide.mlp_extractor.value_net[0].in_features == 12 and wide.value_net.in_features == 8


def test_critic_core_survives_save_and_load(tmp_path):
    model = _pendulum_model(cell="ltc", wiring="ncp", units=10, critic_core={"cell": "cfc", "units": 8})
    model.learn(64)
    model.save(tmp_path / "agent.zip")
    loaded = RecurrentPPO.load(tmp_path / "agent.zip", device="cpu")
    assert loaded.policy.critic_core == {"cell": "cfc", "units": 8}
    assert loaded.policy.lstm_critic.output_size == 8
    for a, b in zip(model.policy.state_dict().values(), loaded.policy.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_shared_cell_gets_no_critic_gradient():
    policy = _model(cell="ltc", units=6, shared_lstm=True, enable_critic_lstm=False).policy
    obs = torch.randn(4, 4)
    states = policy.lstm_actor.pack(torch.zeros(4, policy.lstm_actor.state_size))
    values = policy.predict_values(obs, states, torch.zeros(4))
    values.sum().backward()
    assert all(p.grad is None or not p.grad.any() for p in policy.lstm_actor.parameters())
    assert policy.value_net.weight.grad is not None


@pytest.mark.parametrize("kwargs", [dict(cell="ltc", wiring="ncp", units=10), dict(cell="cfc", units=6),
                                    dict(cell="ltc", units=6, shared_lstm=True, enable_critic_lstm=False)])
def test_every_cell_parameter_is_optimised_and_changes(kwargs):
    model = _model(**kwargs)
    policy = model.policy
    cells = [m for m in (policy.lstm_actor, policy.lstm_critic) if m is not None]
    in_optimizer = {id(p) for group in policy.optimizer.param_groups for p in group["params"]}
    params = {f"{i}.{n}": p for i, c in enumerate(cells) for n, p in c.named_parameters()}
    assert params and all(id(p) in in_optimizer for p in params.values())
    assert {id(p) for p in policy.parameters()} == in_optimizer
    before = {n: p.detach().clone() for n, p in params.items()}
    model.learn(128)
    unchanged = [n for n, p in params.items() if torch.equal(p, before[n])]
    assert unchanged == []


def _pendulum_model(**kwargs) -> RecurrentPPO:
    return _model(PENDULUM, n_envs=1, cell=kwargs.pop("cell", "ltc"), units=kwargs.pop("units", 6), **kwargs)


def test_predict_carries_the_state_and_resets_at_episode_starts():
    model = _pendulum_model()
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1, 1, size=(8, 1, 3)).astype(np.float32)
    starts = np.zeros(8, dtype=bool)
    starts[[0, 5]] = True
    state, actions = None, []
    for t in range(8):
        action, state = model.predict(obs[t], state=state, episode_start=starts[t:t + 1], deterministic=True)
        actions.append(action)
    # The same steps as one sequence through the core, with resets: the same actions.
    policy = model.policy
    with torch.no_grad():
        zeros = policy.lstm_actor.pack(torch.zeros(1, policy.lstm_actor.state_size))
        dist, final = policy.get_distribution(torch.as_tensor(obs[:, 0]), zeros, torch.as_tensor(starts, dtype=torch.float32))
        seq_actions = np.clip(dist.get_actions(deterministic=True).numpy(), -2, 2)
    np.testing.assert_allclose(np.concatenate(actions), seq_actions, atol=1e-5)
    np.testing.assert_allclose(policy.flat_state(state), policy.lstm_actor.unpack(final), atol=1e-6)
    # The state matters (without the reset at t=5 the action differs) ...
    no_reset, state2 = None, None
    for t in range(6):
        no_reset, state2 = model.predict(obs[t], state=state2, episode_start=np.array([t == 0]), deterministic=True)
    assert not np.allclose(no_reset, actions[5])
    # ... and an episode start is the same as a fresh zero state.
    fresh, _ = model.predict(obs[5], state=None, deterministic=True)
    np.testing.assert_allclose(fresh, actions[5], atol=1e-6)


def test_state_dependent_exploration_with_a_liquid_latent():
    env = make_vec_env(PENDULUM, n_envs=2, seed=0)
    model = RecurrentPPO(LiquidRecurrentPolicy, env, n_steps=16, batch_size=32, n_epochs=1, seed=0, use_sde=True,
                         sde_sample_freq=4, policy_kwargs=dict(cell="cfc", units=6, wiring="ncp", output_size=2))
    model.learn(64)
    assert model.policy.action_dist.exploration_mat.shape == (2, 1)  # gSDE noise on the 2 motor neurons
    action, state = model.predict(np.zeros((2, 3), dtype=np.float32))
    assert action.shape == (2, 1) and state[0].shape == (1, 2, model.policy.lstm_actor.hidden_size)


def test_evaluate_policy_runs_the_recurrent_loop():
    model = _model(cell="cfc", units=6, n_envs=1)
    model.learn(64)
    env = make_vec_env(CARTPOLE, n_envs=1, seed=3)
    rewards, lengths = evaluate_policy(model, env, n_eval_episodes=3, deterministic=True, return_episode_rewards=True)
    # The same episodes by hand with predict(obs, state, episode_start).
    env = make_vec_env(CARTPOLE, n_envs=1, seed=3)
    obs, state, start, manual = env.reset(), None, np.ones(1, dtype=bool), []
    total = 0.0
    while len(manual) < 3:
        action, state = model.predict(obs, state=state, episode_start=start, deterministic=True)
        obs, reward, done, _ = env.step(action)
        total += float(reward[0])
        start = done
        if done[0]:
            manual.append(total)
            total = 0.0
    assert rewards == pytest.approx(manual)


# --- elapsed time ------------------------------------------------------------------------

def _dict_space(with_dt: bool) -> spaces.Dict:
    entries = {"obs": spaces.Box(-1, 1, (3,), np.float32)}
    if with_dt:
        entries["dt"] = spaces.Box(0, np.inf, (1,), np.float32)
    return spaces.Dict(entries)


def _timed_policies(cell: str, T: int, **plain_kwargs):
    """A policy with a "dt" entry and one without (same weights, ``plain_kwargs`` added),
    and ``mean_action(policy, dt=None)`` on one fixed sequence of T observations."""
    torch.manual_seed(0)
    kw = dict(cell=cell, units=6, dt_unit=0.05)
    act = spaces.Box(-1, 1, (1,), np.float32)
    timed = MultiInputLiquidRecurrentPolicy(_dict_space(True), act, lambda _: 1e-3, **kw)
    plain = MultiInputLiquidRecurrentPolicy(_dict_space(False), act, lambda _: 1e-3, **kw, **plain_kwargs)
    plain.load_state_dict(timed.state_dict())
    x = torch.rand(T, 3) * 2 - 1
    zeros = timed.lstm_actor.pack(torch.zeros(1, timed.lstm_actor.state_size))
    starts = torch.zeros(T)

    def mean_action(policy, dt=None):
        obs = {"obs": x} if dt is None else {"obs": x, "dt": dt.reshape(T, 1)}
        with torch.no_grad():
            return policy.get_distribution(obs, zeros, starts)[0].distribution.mean

    return timed, plain, mean_action


@pytest.mark.parametrize("cell", ["ltc", "cfc"])
def test_dt_is_integrated_and_dt_unit_is_the_default_step(cell):
    T = 6
    timed, plain, mean_action = _timed_policies(cell, T)
    reference = mean_action(plain)
    torch.testing.assert_close(mean_action(timed, torch.full((T,), 0.05)), reference)
    # dt <= 0 (the reset observation of IrregularTime, padding) counts as step_time (default 1).
    torch.testing.assert_close(mean_action(timed, torch.tensor([0.0, 0.05, 0.05, 0.05, 0.05, 0.05])), reference)
    # The action head starts near zero (orthogonal init, gain 0.01): compare relative to it.
    scale = reference.abs().max()
    longer = mean_action(timed, torch.full((T,), 0.2))
    assert (longer - reference).abs().max() > 1e-3 * scale
    # Only the dt of each step matters: changing a later dt leaves earlier outputs alone.
    late = mean_action(timed, torch.tensor([0.05] * 4 + [0.3, 0.3]))
    torch.testing.assert_close(late[:4], reference[:4])
    assert (late[4:] - reference[4:]).abs().max() > 1e-3 * scale


@pytest.mark.parametrize("cell", ["ltc", "cfc"])
def test_step_time_is_the_elapsed_time_of_steps_without_dt(cell):
    """step_time=s without a dt entry runs the cells as a constant dt == s * dt_unit would;
    1.0 is the plain one-unit step; it is kept by save/load and checked."""
    T = 5
    timed, slow, mean_action = _timed_policies(cell, T, step_time=0.3)
    _, plain, _ = _timed_policies(cell, T)
    plain.load_state_dict(timed.state_dict())
    torch.testing.assert_close(mean_action(slow), mean_action(timed, torch.full((T,), 0.3 * 0.05)))
    assert (mean_action(slow) - mean_action(plain)).abs().max() > 1e-3 * mean_action(plain).abs().max()
    assert slow._get_constructor_parameters()["step_time"] == 0.3
    with pytest.raises(ValueError, match="step_time must be a finite number > 0"):
        _timed_policies(cell, T, step_time=0.0)


def test_recurrent_ppo_trains_with_irregular_time():
    env = make_vec_env(PENDULUM, n_envs=2, seed=0, wrapper_class=IrregularTime, wrapper_kwargs=dict(low=1, high=3))
    model = RecurrentPPO(MultiInputLiquidRecurrentPolicy, env, n_steps=16, batch_size=32, n_epochs=1, seed=0,
                         policy_kwargs=dict(cell="ltc", units=6, dt_unit=0.05))
    assert model.policy.features_dim == 3  # "dt" is not a feature
    model.learn(64)
    assert model.rollout_buffer.observations["dt"].max() >= 0.1  # repeated steps were observed


# --- images and other cells --------------------------------------------------------------

def test_cnn_policy_with_a_19_neuron_ncp_on_camera_images():
    wiring = NCP(12, 6, 1, sensory_fanout=6, inter_fanout=4, recurrent_command_synapses=6, motor_fanin=6)
    model = RecurrentPPO(CnnLiquidRecurrentPolicy, make_vec_env("liquid_rl/LaneKeepingPixels-v0", n_envs=2, seed=0),
                         n_steps=8, batch_size=16, n_epochs=1, seed=0, policy_kwargs=dict(cell="ltc", wiring=wiring))
    policy = model.policy
    assert policy.lstm_actor.core.rnn.wiring.units == 19 and policy.output_size == 1
    assert policy.features_dim == 32
    head = dict(policy.features_extractor.named_parameters())
    before = {n: p.detach().clone() for n, p in head.items()}
    model.learn(16)
    assert all(not torch.equal(p, before[n]) for n, p in head.items())


def _float_camera(seed: int = 0) -> gym.Env:
    """LaneKeepingPixels as float32 images (C, H, W) in [-1, 1], as users scale them."""
    env = gym.make("liquid_rl/LaneKeepingPixels-v0")
    space = spaces.Box(-1.0, 1.0, (3, 64, 64), np.float32)
    return gym.wrappers.TransformObservation(
        env, lambda o: (np.transpose(o, (2, 0, 1)).astype(np.float32) / 127.5 - 1.0), space)


def test_cnn_policy_trains_on_float_images_with_normalize_images_false():
    """As sb3-contrib's CnnLstmPolicy: float images with normalize_images=False (19.12)."""
    env = make_vec_env(_float_camera, n_envs=2, seed=0)
    model = RecurrentPPO(CnnLiquidRecurrentPolicy, env, n_steps=8, batch_size=16, n_epochs=1, seed=0,
                         policy_kwargs=dict(cell="cfc", units=8, normalize_images=False))
    assert model.policy.features_extractor.head is not None
    assert not model.policy.normalize_images
    before = {n: p.detach().clone() for n, p in model.policy.features_extractor.named_parameters()}
    model.learn(16)
    assert all(not torch.equal(p, before[n]) for n, p in model.policy.features_extractor.named_parameters())
    obs = model.env.reset()
    action, state = model.predict(obs, deterministic=True)
    assert action.shape == (2, 1) and state[0].shape[1] == 2


def test_cnn_policy_refuses_float_images_it_would_divide_by_255():
    space = spaces.Box(-1.0, 1.0, (3, 64, 64), np.float32)
    with pytest.raises(ValueError, match="with normalize_images=False"):
        CnnLiquidRecurrentPolicy(space, ACT, lambda _: 1e-3)


def test_liquid_s4_cell_in_recurrent_ppo():
    model = _model(cell="liquid_s4", units=8, d_state=4, n_layers=1)
    _rollout(model)
    data = next(iter(model.rollout_buffer.get(32)))
    mask = data.mask > 1e-8
    _, log_prob, _ = model.policy.evaluate_actions(data.observations, data.actions.long().flatten(),
                                                   data.lstm_states, data.episode_starts)
    np.testing.assert_allclose(log_prob[mask].detach(), data.old_log_prob[mask], atol=1e-5)


def test_policy_save_and_load_keep_the_constructor(tmp_path):
    policy = _model(cell="cfc", units=7, wiring="ncp", mode="no_gate", output_size=2).policy
    policy.save(tmp_path / "policy.pt")
    loaded = LiquidRecurrentPolicy.load(tmp_path / "policy.pt")
    assert (loaded.cell, loaded.units, loaded.output_size, loaded.cell_options) == ("cfc", 7, 2, {"mode": "no_gate"})
    for a, b in zip(policy.state_dict().values(), loaded.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_ltc_input_mapping_start_reaches_both_cells():
    """Cell options such as the LTC's input_scale/input_shift build the actor and critic cells."""
    policy = _model(cell="ltc", units=6, input_scale=0.2, input_shift=0.55).policy
    for core in (policy.lstm_actor, policy.lstm_critic):
        cell = core.core.rnn.rnn_cell
        assert torch.equal(cell.input_w, torch.full_like(cell.input_w, 0.2))
        assert torch.equal(cell.input_b, torch.full_like(cell.input_b, 0.55))
    assert policy.cell_options == {"input_scale": 0.2, "input_shift": 0.55}


# --- saving and loading in a fresh process ------------------------------------------------

_LOAD_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from sb3_contrib import RecurrentPPO
    model = RecurrentPPO.load(sys.argv[1], device="cpu")
    obs = np.load(sys.argv[2])
    state, starts, actions = None, np.zeros(len(obs), dtype=bool), []
    starts[[0, 4]] = True
    for t in range(len(obs)):
        a, state = model.predict(obs[t], state=state, episode_start=starts[t:t + 1], deterministic=True)
        actions.append(a.tolist())
    print(json.dumps(dict(actions=actions, h=state[0].tolist())))
""")


@pytest.mark.parametrize("kwargs", [dict(cell="ltc", wiring="ncp", units=10), dict(cell="cfc", units=6)])
def test_saved_agent_acts_the_same_in_a_fresh_process(tmp_path, kwargs):
    model = _pendulum_model(**kwargs)
    model.learn(64)
    model.save(tmp_path / "agent.zip")
    obs = np.random.default_rng(1).uniform(-1, 1, size=(7, 1, 3)).astype(np.float32)
    np.save(tmp_path / "obs.npy", obs)
    state, starts, expected = None, np.zeros(7, dtype=bool), []
    starts[[0, 4]] = True
    for t in range(7):
        a, state = model.predict(obs[t], state=state, episode_start=starts[t:t + 1], deterministic=True)
        expected.append(a)
    out = subprocess.run([sys.executable, "-c", _LOAD_SCRIPT, str(tmp_path / "agent.zip"), str(tmp_path / "obs.npy")],
                         capture_output=True, text=True, check=True, cwd=Path(__file__).parent)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(np.array(got["actions"]), np.stack(expected), atol=1e-6)
    np.testing.assert_allclose(np.array(got["h"]), state[0], atol=1e-6)


# --- bad input -------------------------------------------------------------------------

BOX = spaces.Box(-1, 1, (3,), np.float32)
ACT = spaces.Discrete(2)


@pytest.mark.parametrize("policy, space, kwargs, match", [
    (LiquidRecurrentPolicy, BOX, dict(cell="gru"), "Unknown cell 'gru'"),
    (LiquidRecurrentPolicy, BOX, dict(wiring="sparse"), "Unknown wiring 'sparse'"),
    (LiquidRecurrentPolicy, BOX, dict(units=0), "units must be a positive integer"),
    (LiquidRecurrentPolicy, BOX, dict(lstm_hidden_size=64), "use units"),
    (LiquidRecurrentPolicy, BOX, dict(ode_unfold=3), "Bad option for cell 'ltc'"),
    (LiquidRecurrentPolicy, BOX, dict(shared_lstm=True), "shared_lstm=True needs enable_critic_lstm=False"),
    (LiquidRecurrentPolicy, BOX, dict(dt_unit=0.0), "dt_unit must be > 0"),
    (LiquidRecurrentPolicy, BOX, dict(critic_core={"wiring": "full"}, enable_critic_lstm=False),
     "critic_core needs enable_critic_lstm=True"),
    (LiquidRecurrentPolicy, BOX, dict(critic_core={"cell": "gru"}), "critic_core: Unknown cell 'gru'"),
    (LiquidRecurrentPolicy, BOX, dict(critic_core={"units": 0}), "critic_core: units must be a positive integer"),
    (LiquidRecurrentPolicy, _dict_space(True), {}, "use MultiInputLiquidRecurrentPolicy"),
    (LiquidRecurrentPolicy, spaces.Tuple([BOX, BOX]), {}, "cannot take the observation space Tuple"),
    (CnnLiquidRecurrentPolicy, BOX, {}, "needs an image observation space"),
    (MultiInputLiquidRecurrentPolicy, BOX, {}, "needs a Dict observation space"),
    (MultiInputLiquidRecurrentPolicy, spaces.Dict({"dt": spaces.Box(0, 1, (1,))}), {}, "nothing but the elapsed time"),
    (MultiInputLiquidRecurrentPolicy, spaces.Dict({"obs": BOX, "dt": spaces.Box(0, 1, (2,))}), {}, "shape \\(1,\\)"),
])
def test_bad_input_raises_a_clear_value_error(policy, space, kwargs, match):
    with pytest.raises(ValueError, match=match):
        policy(space, ACT, lambda _: 1e-3, **kwargs)


def test_bad_policy_kwargs_through_recurrent_ppo():
    env = gym.make(CARTPOLE)
    with pytest.raises(ValueError, match="Unknown cell 'gru'"):
        RecurrentPPO(LiquidRecurrentPolicy, env, policy_kwargs=dict(cell="gru"))


def test_rnn_states_are_the_packed_core_state():
    policy = _model(cell="ltc", units=7).policy  # odd state size: c is zero-padded
    core = policy.lstm_actor
    assert (core.num_layers, core.hidden_size, core.state_size) == (1, 4, 7)
    state = torch.randn(3, 7)
    h, c = core.pack(state)
    assert h.shape == c.shape == (1, 3, 4) and torch.all(c[..., -1] == 0)
    torch.testing.assert_close(core.unpack((h, c)), state)
    states = RNNStates((h, c), (h, c))
    _, values, _, new = policy(torch.randn(3, 4), states, torch.zeros(3))
    assert new.pi[0].shape == (1, 3, 4) and values.shape == (3, 1)


def _conv_extract() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(27, 4))


@settings(max_examples=40, deadline=None)
@given(zero=st.lists(st.booleans(), min_size=1, max_size=12), seed=st.integers(0, 2**16),
       images=st.booleans())
def test_zero_rows_go_through_the_extractor_once_and_change_nothing(zero, seed, images):
    net = _conv_extract()
    obs = torch.randn(len(zero), 2, 5, 5, generator=torch.Generator().manual_seed(seed))
    if images:  # uint8 as image envs give them; a real frame may hold zero pixels
        obs = (obs.clamp(-2, 2) * 60 + 128).to(torch.uint8)
        obs[:, 0, 0, 0] = 0
    obs[torch.tensor(zero)] = 0
    seen: list[int] = []

    def extract(x):
        seen.append(x.shape[0])
        return net(x.float())

    out = extract_zero_rows_once(extract, obs)
    grads = torch.autograd.grad((out * torch.arange(out.numel()).reshape(out.shape)).sum(), list(net.parameters()))
    expected = net(obs.float())
    expected_grads = torch.autograd.grad((expected * torch.arange(out.numel()).reshape(out.shape)).sum(),
                                         list(net.parameters()))
    n_zero = sum(zero)
    assert seen == [len(zero) - n_zero + 1 if n_zero >= 2 else len(zero)]
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    for g, e in zip(grads, expected_grads):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-5)


def test_image_minibatches_skip_padding_and_share_one_extractor_pass(monkeypatch):
    # Short pixel episodes under a random policy: most rows of a training minibatch are padding.
    model = RecurrentPPO(CnnLiquidRecurrentPolicy, make_vec_env("liquid_rl/LaneKeepingPixels-v0", n_envs=4, seed=0),
                         n_steps=48, batch_size=96, n_epochs=1, seed=0,
                         policy_kwargs=dict(cell="cfc", units=8, critic_core={"units": 6}))
    _rollout(model)
    policy = model.policy
    assert policy.pi_features_extractor is policy.vf_features_extractor
    rows: list[int] = []
    policy.features_extractor.register_forward_hook(lambda m, i, o: rows.append(i[0].shape[0]))
    padded = real = 0
    for data in model.rollout_buffer.get(96):
        mask = data.mask > 1e-8
        rows.clear()
        values, log_prob, entropy = policy.evaluate_actions(
            data.observations, data.actions, data.lstm_states, data.episode_starts)
        assert rows == [int(mask.sum()) + (len(mask) - int(mask.sum()) >= 2)]  # real rows + one zero row, one pass
        np.testing.assert_allclose(log_prob[mask].detach(), data.old_log_prob[mask], atol=1e-5)
        np.testing.assert_allclose(values.flatten()[mask].detach(), data.old_values[mask], atol=1e-5)
        loss = (values.flatten()[mask].sum() + log_prob[mask].sum())
        grads = torch.autograd.grad(loss, list(policy.parameters()), allow_unused=True)
        with monkeypatch.context() as m:  # the same minibatch, every row through the extractor
            m.setattr("liquid_rl.policies.extract_zero_rows_once", lambda extract, obs: extract(obs))
            v2, lp2, _ = policy.evaluate_actions(data.observations, data.actions, data.lstm_states, data.episode_starts)
            grads2 = torch.autograd.grad(v2.flatten()[mask].sum() + lp2[mask].sum(), list(policy.parameters()),
                                         allow_unused=True)
        torch.testing.assert_close(values, v2, rtol=1e-5, atol=1e-6)
        for g, e in zip(grads, grads2):
            if e is not None:
                torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-5)
        padded, real = padded + len(mask), real + int(mask.sum())
    assert padded > 1.5 * real  # the case this is for
