"""RecurrentSAC mechanics: acting with state, training every core, Polyak targets,
save/load, replay buffer round trip, loss masks, bad input. Short runs only."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecNormalize

import liquid_rl.envs  # noqa: F401  (registers the environments)
from liquid_rl.agents.recurrent_sac import RecurrentSAC, loss_masks
from liquid_rl.agents.sequence_replay import SequenceReplayBuffer, SequenceReplayBufferSamples
from liquid_rl.cells import CELLS

ENV_ID = "liquid_rl/PendulumNoVel-v1"
pytestmark = pytest.mark.usefixtures("one_thread")   # short trainings: one thread, reproducible


SMALL = dict(learning_starts=40, sequence_length=6, burn_in=3, batch_size=4, buffer_size=2000)


def make(cell: str = "cfc", n_envs: int = 2, seed: int = 0, **kwargs) -> RecurrentSAC:
    policy_kwargs = dict(cell=cell, units=8, net_arch=[16])
    policy_kwargs.update(kwargs.pop("policy_kwargs", {}))
    env = make_vec_env(ENV_ID, n_envs=n_envs, seed=seed)
    return RecurrentSAC("RecurrentSACPolicy", env, policy_kwargs=policy_kwargs, seed=seed, device="cpu",
                        **{**SMALL, **kwargs})


def snapshot(module: th.nn.Module) -> dict[str, th.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


CELL_NAMES = ["ltc", "cfc", "lstm"] + (["liquid_s4"] if "liquid_s4" in CELLS else [])


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_learn_with_two_envs_trains_every_core_parameter(cell):
    shared = cell != "cfc"  # cfc: one core per Q head; the others: one core for both heads
    model = make(cell, policy_kwargs=dict(share_critic_core=shared))
    actor0, critic0 = snapshot(model.actor), snapshot(model.critic)
    model.learn(200)
    assert model.num_timesteps == 200 and model._n_updates > 50
    assert model.replay_buffer.size() == 100  # 100 rows x 2 env columns
    for prefix, module, before in [("actor.", model.actor, actor0), ("critic.", model.critic, critic0)]:
        after = dict(module.named_parameters())
        for key, value in before.items():
            assert not th.equal(value, after[key]), f"{prefix}{key} did not change"
    assert any(k.startswith("core.") for k in actor0)
    assert len(model.critic.cores) == (1 if shared else 2)
    assert all(any(k.startswith(f"cores.{i}.") for k in critic0) for i in range(len(model.critic.cores)))


def test_actor_and_critic_cores_are_separate_and_options_reach_them():
    model = make("cfc", n_envs=1, policy_kwargs=dict(wiring="ncp", units=12, critic_cell="lstm", critic_units=6,
                                                     share_critic_core=False))
    cores = [model.actor.core, *model.critic.cores, *model.critic_target.cores]
    assert len({id(c) for c in cores}) == 5
    params = [set(map(id, c.parameters())) for c in cores]
    assert all(params[i].isdisjoint(params[j]) for i in range(5) for j in range(i + 1, 5))
    assert type(model.critic.cores[0]).__name__ == "LSTMCore" and model.critic.cores[0].hidden_size == 6
    assert model.actor.core.output_size == 1  # a wired core defaults to one motor neuron per action
    assert model.critic.cores[0].output_size == 6  # the LSTM critic does not inherit the NCP wiring
    model = make("cfc", n_envs=1, policy_kwargs=dict(mode="no_gate", backbone_units=24))
    assert len(model.critic.cores) == 1 and model.critic.cores[0] is not model.actor.core
    assert all(c.rnn.rnn_cell.mode == "no_gate" for c in [model.actor.core, *model.critic.cores])


def test_target_critics_follow_by_polyak_averaging():
    model = make("cfc", learning_starts=10_000, tau=0.1)
    model.learn(60)  # fills the buffer, no update yet
    target0 = snapshot(model.critic_target)
    model.train(gradient_steps=1, batch_size=4)
    critic1, target1 = snapshot(model.critic), snapshot(model.critic_target)
    for k in target0:
        th.testing.assert_close(target1[k], 0.9 * target0[k] + 0.1 * critic1[k])
    assert any(k.startswith("cores.") for k in target0)


def test_training_mode_reaches_every_module_and_a_submodule_switched_by_hand():
    model = make("cfc", n_envs=1)
    nets = [model.actor, model.critic]
    for mode in (True, False, False, True):
        model.policy.set_training_mode(mode)
        assert all(m.training == mode for net in nets for m in net.modules())
    model.actor.core.train(False)  # toggled directly, outside set_training_mode
    model.policy.set_training_mode(True)
    assert all(m.training for net in nets for m in net.modules())
    assert not any(m.training for m in model.critic_target.modules())


def test_predict_carries_and_resets_the_state():
    model = make("cfc", n_envs=1)
    obs = np.array([[0.3, -0.9, 0.0]], np.float32)
    a0, s1 = model.predict(obs, deterministic=True)
    assert s1.shape == (1, model.policy.state_size) and np.abs(s1).sum() > 0
    a1, s2 = model.predict(obs, s1, np.array([False]), deterministic=True)
    assert not np.allclose(a1, a0) and not np.allclose(s2, s1)
    a_reset, s_reset = model.predict(obs, s2, np.array([True]), deterministic=True)
    np.testing.assert_array_equal(a_reset, a0)
    np.testing.assert_array_equal(s_reset, s1)
    a_single, _ = model.predict(obs[0], deterministic=True)
    assert a_single.shape == (1,) and np.allclose(a_single, a0[0])
    with pytest.raises(ValueError, match="state must have shape"):
        model.predict(obs, np.zeros((1, 3)))
    with pytest.raises(ValueError, match="episode_start must have shape"):
        model.predict(obs, s1, np.array([True, False]))


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_training_unroll_matches_acting_step_by_step(cell):
    """The actor replays a window (one core call, resets inside) exactly as it acted."""
    model = make(cell, n_envs=1)
    g = th.Generator().manual_seed(0)
    obs = th.rand(7, 2, 3, generator=g) * 2 - 1
    resets = th.zeros(7, 2, dtype=th.bool)
    resets[0, 1], resets[3, 0], resets[5, 1] = True, True, True  # env 0 starts from the given state
    start = th.rand(2, model.policy.state_size, generator=g)
    with th.no_grad():
        mean, _ = model.actor.dist_params(model.actor.unroll(obs, start, resets, burn_in=2))
        state, stepped = start, []
        for t in range(7):
            action, state = model.actor.act(obs[t], state, resets[t], deterministic=True)
            stepped.append(action)
    th.testing.assert_close(th.tanh(mean), th.stack(stepped)[2:], atol=1e-5, rtol=1e-4)


def test_step_time_reaches_actor_critic_and_target_cores(tmp_path):
    """step_time=s: every core runs s cell units per env step, in acting and in replay,
    and a saved agent keeps it."""
    model = make("ltc", n_envs=1, policy_kwargs=dict(step_time=0.25))
    unit = make("ltc", n_envs=1)
    unit.policy.load_state_dict(model.policy.state_dict())
    g = th.Generator().manual_seed(1)
    obs = th.rand(5, 2, 3, generator=g) * 2 - 1
    resets = th.zeros(5, 2, dtype=th.bool)
    with th.no_grad():
        timed = model.actor.core(model.actor._features(obs), model.actor.initial_state(2), th.full((5, 2, 1), 0.25),
                                 resets)[0]
        th.testing.assert_close(model.actor.unroll(obs, model.actor.initial_state(2), resets), timed)
        assert (unit.actor.unroll(obs, unit.actor.initial_state(2), resets) - timed).abs().max() > 1e-3
        _, state = model.actor.act(obs[0], model.actor.initial_state(2), resets[0])
        th.testing.assert_close(state, model.actor.core(model.actor._features(obs[:1]), model.actor.initial_state(2),
                                                        0.25, resets[:1])[1])
        for critic in (model.critic, model.critic_target):
            features = critic.extract_features(obs.reshape(10, 3), critic.features_extractor).reshape(5, 2, -1)
            expected = critic.cores[0](features, th.zeros(2, critic.cores[0].state_size), 0.25, resets)[0]
            th.testing.assert_close(critic.unroll(obs, resets)[0], expected)
    model.save(tmp_path / "timed.zip")
    loaded = RecurrentSAC.load(tmp_path / "timed.zip", device="cpu")
    assert loaded.policy.actor.core_spec.step_time == 0.25
    assert loaded.policy.critic.core_spec.step_time == 0.25


def test_stored_states_are_the_actors_acting_states():
    model = make("cfc", burn_in_state="stored", learning_starts=10_000)
    model.learn(120)  # no update: the actor does not change
    rb = model.replay_buffer
    assert rb.states is not None
    n = rb.size()
    with th.no_grad():
        for env in range(2):
            obs = th.as_tensor(rb.observations[:n, env:env + 1])
            starts = th.as_tensor(rb.episode_starts[:n, env:env + 1])
            state = model.actor.initial_state(1)
            for t in range(n):
                state = state * (~starts[t]).float().unsqueeze(-1)
                np.testing.assert_allclose(rb.states[t, env], state[0].numpy(), atol=1e-5)
                _, state = model.actor.core(model.actor._features(obs[t:t + 1]), state, None, starts[t:t + 1])
    model.learning_starts = 0
    model.learn(40, reset_num_timesteps=False)  # trains from stored states
    assert model._n_updates > 0


def test_learns_behind_vec_normalize_and_with_single_episode_windows():
    env = VecNormalize(make_vec_env(ENV_ID, n_envs=2, seed=0))
    model = RecurrentSAC("RecurrentSACPolicy", env, policy_kwargs=dict(cell="cfc", units=8, net_arch=[16]),
                         seed=0, device="cpu", cross_episodes=False, **SMALL)
    model.learn(100)
    assert model._n_updates > 0
    rb = model.replay_buffer
    np.testing.assert_allclose(rb.observations[:50, :, 0] ** 2 + rb.observations[:50, :, 1] ** 2, 1.0, rtol=1e-5)
    assert rb.episode_starts[0].all() and not rb.episode_starts[1:50].any()  # original (unnormalised) data


def test_loss_masks_drop_targets_across_episode_boundaries():
    T, B, burn_in = 5, 1, 1
    z = th.zeros(T, B)
    truncations, terminations = z.clone(), z.clone()
    truncations[2, 0] = 1.0  # truncated inside the window: its next history is not there
    terminations[3, 0] = 1.0  # terminated: no bootstrap, stays in
    mask = th.ones(T, B)
    data = SequenceReplayBufferSamples(
        observations=th.zeros(T, B, 3), actions=th.zeros(T, B, 1), next_observations=th.zeros(T, B, 3),
        rewards=z, terminations=terminations, truncations=truncations, resets=th.zeros(T, B, dtype=th.bool),
        mask=mask, start_states=None,
    )
    m, cm = loss_masks(data, burn_in)
    assert m.tolist() == [[1.0]] * 4
    assert cm[:, 0].tolist() == [1.0, 0.0, 1.0, 1.0]
    mask[4, 0] = 0.0  # the step after step 3 is not stored: step 3 still terminates
    truncations[3, 0], terminations[3, 0] = 0.0, 0.0
    assert loss_masks(data, burn_in)[1][:, 0].tolist() == [1.0, 0.0, 0.0, 0.0]
    truncations[4, 0], mask[4, 0] = 1.0, 1.0  # a truncated last step has its own next observation
    assert loss_masks(data, burn_in)[1][:, 0].tolist() == [1.0, 0.0, 1.0, 1.0]


def test_callbacks_progress_bar_tensorboard_and_evaluate(tmp_path):
    class Count(BaseCallback):
        calls = 0

        def _on_step(self) -> bool:
            Count.calls += 1
            return True

    model = make("lstm", tensorboard_log=str(tmp_path))
    model.learn(80, callback=Count(), progress_bar=True)
    assert Count.calls == 40
    assert list(tmp_path.glob("RecurrentSAC_1/events.out.tfevents.*"))
    mean, _ = evaluate_policy(model, model.get_env(), n_eval_episodes=2)
    assert -2000.0 < mean < 0.0


LOAD_AND_ACT = textwrap.dedent(
    """
    import json, sys
    import numpy as np, torch
    torch.set_num_threads(1)
    from liquid_rl.agents.recurrent_sac import RecurrentSAC
    model = RecurrentSAC.load(sys.argv[1], device="cpu")
    obs = np.load(sys.argv[2])
    state, actions = None, []
    for t, o in enumerate(obs):
        a, state = model.predict(o, state, np.array([t == 4, False]), deterministic=True)
        actions.append(a.tolist())
    print(json.dumps(actions))
    """
)


def test_save_load_in_a_fresh_process_gives_identical_actions(tmp_path):
    model = make("cfc", policy_kwargs=dict(wiring="ncp", units=10))
    model.learn(100)
    model.save(tmp_path / "model.zip")
    obs = np.random.default_rng(0).uniform(-1, 1, (8, 2, 3)).astype(np.float32)
    np.save(tmp_path / "obs.npy", obs)
    state, expected = None, []
    for t, o in enumerate(obs):
        a, state = model.predict(o, state, np.array([t == 4, False]), deterministic=True)
        expected.append(a.tolist())
    out = subprocess.run([sys.executable, "-c", LOAD_AND_ACT, str(tmp_path / "model.zip"), str(tmp_path / "obs.npy")],
                         capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == expected


def test_replay_buffer_round_trip_and_resume(tmp_path):
    model = make("cfc", burn_in_state="stored")
    model.learn(100)
    model.save(tmp_path / "model.zip")
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    old = model.replay_buffer

    loaded = RecurrentSAC.load(tmp_path / "model.zip", env=make_vec_env(ENV_ID, n_envs=2, seed=1), device="cpu")
    loaded.load_replay_buffer(tmp_path / "buffer.pkl")
    rb = loaded.replay_buffer
    assert isinstance(rb, SequenceReplayBuffer) and rb.pos == old.pos == 50
    for name in ("observations", "next_observations", "actions", "rewards", "episode_starts", "states"):
        np.testing.assert_array_equal(getattr(rb, name), getattr(old, name))
    # the loaded buffer's newest episodes end there: new env steps start new episodes
    assert (rb.dones[49] == 1).all() and (rb.timeouts[49] == 1).all()
    loaded.learn(20, reset_num_timesteps=False)
    assert loaded.num_timesteps == 120 and rb.pos == 60 and rb.episode_starts[50].all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(policy_kwargs=dict(cell="gru")), "Unknown cell 'gru'"),
        (dict(policy_kwargs=dict(units=0)), "units must be a positive int"),
        (dict(policy_kwargs=dict(cell="lstm", wiring="ncp")), "wiring='full'"),
        (dict(policy_kwargs=dict(wiring="grid")), "Unknown wiring 'grid'"),
        (dict(policy_kwargs=dict(step_time=0)), "step_time must be a finite number > 0"),
        (dict(policy_kwargs=dict(cell="cfc", ode_unfolds=3)), "Bad option for cell 'cfc'"),
        (dict(burn_in_state="random"), "burn_in_state"),
        (dict(sequence_length=0), "sequence_length"),
        (dict(replay_buffer_class=SequenceReplayBuffer.__mro__[1]), "SequenceReplayBuffer"),
        (dict(buffer_size=10), "cannot hold one window"),
        (dict(max_grad_norm=0), "max_grad_norm must be > 0"),
        (dict(critic_learning_rate=0.0), "critic_learning_rate must be in \\(0, 1\\]"),
    ],
)
def test_bad_input_raises_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make(**kwargs)


@pytest.mark.parametrize("max_grad_norm", [None, 1e-3])
def test_max_grad_norm_clips_what_each_optimizer_steps_on(max_grad_norm):
    """The gradient norm each optimizer sees is at most ``max_grad_norm``; unclipped it is
    well above 1e-3 here, so the bound is not met by chance; the pre-clip norms are always logged."""
    model = make(max_grad_norm=max_grad_norm)
    model.learn(60)  # fill past learning_starts
    seen: dict[str, list[float]] = {"actor": [], "critic": []}
    for name, net in (("actor", model.actor), ("critic", model.critic)):
        step = net.optimizer.step

        def recording_step(*args, _net=net, _name=name, _step=step, **kwargs):
            grads = [p.grad for p in _net.parameters() if p.grad is not None]
            seen[_name].append(float(th.linalg.vector_norm(th.stack([th.linalg.vector_norm(g) for g in grads]))))
            return _step(*args, **kwargs)

        net.optimizer.step = recording_step
    model.train(gradient_steps=5, batch_size=4)
    for name in ("actor", "critic"):
        assert len(seen[name]) == 5
        if max_grad_norm is None:
            assert max(seen[name]) > 10 * 1e-3
            logged = model.logger.name_to_value[f"train/{name}_grad_norm"]
            assert logged == pytest.approx(float(np.mean(seen[name])), rel=1e-4)
        else:
            assert max(seen[name]) <= max_grad_norm * (1 + 1e-4)
            assert model.logger.name_to_value[f"train/{name}_grad_norm"] > max_grad_norm


def test_actor_and_critic_learning_rates_and_the_temperature_schedule():
    model = make(learning_rate=1e-3, actor_learning_rate=2e-4, critic_learning_rate=5e-4)
    model.learn(60)
    assert [g["lr"] for g in model.actor.optimizer.param_groups] == [2e-4]
    assert [g["lr"] for g in model.critic.optimizer.param_groups] == [5e-4]
    assert model.ent_coef_optimizer.param_groups[0]["lr"] == 1e-3
    assert "train/ent_coef" in model.logger.name_to_value


def test_64_windows_of_64_steps_from_a_zero_start():
    """pomdp-baselines' batch: 64 sequences x 64 steps, no burn-in, in one call per core."""
    model = make(batch_size=64, sequence_length=64, burn_in=0, learning_starts=80, n_envs=1)
    calls = []
    hook = model.actor.core.register_forward_hook(lambda m, args, out: calls.append(args[0].shape))
    model.learn(81)
    hook.remove()
    assert (65, 64, model.actor.core.input_size) in calls  # T + 1 positions, 64 windows, one call
    data = model.replay_buffer.sample(64)
    assert data.observations.shape[:2] == (64, 64)
    assert bool(data.mask.all())  # 81 stored rows: every window lies in stored data
