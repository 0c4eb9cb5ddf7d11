"""Config schema: defaults, unknown keys, types, ranges, algorithm signatures, overrides,
and every YAML in configs/ validating and building."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from liquid_rl.agents.build import check_buildable, policy_spec
from liquid_rl.agents.config import ConfigError, apply_overrides, dump_config, load_config, validate_config

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml"))

BASE = {
    "env": {"id": "CartPole-v1"},
    "algo": {"name": "ppo", "hyperparams": {"n_steps": 64}},
    "policy": {"type": "mlp"},
    "train": {"total_timesteps": 1000},
}


def cfg_with(**changes: object) -> dict:
    """BASE with dotted keys set, e.g. cfg_with(**{"env.n_envs": 2})."""
    return apply_overrides(copy.deepcopy(BASE), [f"{k}={v}" for k, v in changes.items()])


def error_of(config: dict) -> str:
    with pytest.raises(ConfigError) as e:
        validate_config(config)
    message = str(e.value)
    assert "\n" not in message and message.startswith("config: ")
    return message


def test_defaults_are_filled_in():
    cfg = validate_config(BASE)
    assert cfg["env"] == {"id": "CartPole-v1", "kwargs": {}, "wrappers": [], "n_envs": 1, "vec_env": "dummy",
                          "normalize": {"obs": False, "reward": False, "clip_obs": 10.0, "clip_reward": 10.0},
                          "frame_stack": 1, "max_episode_steps": None}
    assert cfg["train"]["seed"] == 0 and cfg["train"]["threads"] == 1 and cfg["train"]["device"] == "auto"
    assert cfg["train"]["checkpoint_every"] == 10000 and cfg["train"]["keep_checkpoints"] == 3
    assert cfg["policy"]["type"] == "mlp" and cfg["policy"]["cell"] is None
    # resolved configs are fixed points: validating again changes nothing
    assert validate_config(cfg) == cfg


@pytest.mark.parametrize("key, expected", [
    ("env.n_env", "unknown key 'env.n_env' (did you mean 'env.n_envs'?)"),
    ("trian", "unknown key 'trian' (did you mean 'train'?)"),
    ("policy.unit", "unknown key 'policy.unit' (did you mean 'policy.units'?)"),
    ("env.normalize.observations", "unknown key 'env.normalize.observations'"),
    ("train.checkpoint_evry", "did you mean 'train.checkpoint_every'?"),
])
def test_unknown_keys_are_named(key, expected):
    assert expected in error_of(cfg_with(**{key: 1}))


@pytest.mark.parametrize("key, value, expected", [
    ("env.n_envs", 0, "'env.n_envs' must be an integer in [1, 512], got 0"),
    ("env.n_envs", "two", "'env.n_envs' must be an integer in [1, 512], got 'two'"),
    ("env.vec_env", "threads", "'env.vec_env' must be one of dummy, subproc; got 'threads'"),
    ("env.normalize.clip_obs", -1, "'env.normalize.clip_obs' must be a number > 0"),
    ("train.total_timesteps", 1.5, "'train.total_timesteps' must be an integer in [1, 1e10]"),
    ("train.device", "tpu", "'train.device' must be one of auto, cpu, cuda"),
    ("train.progress_bar", "yes please", "'train.progress_bar' must be true or false"),
    ("policy.type", "transformer", "'policy.type' must be one of mlp, lstm, liquid_recurrent, liquid_history"),
    ("policy.net_arch", "[64, -1]", "'policy.net_arch' must be a list of layer sizes in [1, 8192]"),
    ("policy.activation_fn", "sigmoid", "'policy.activation_fn' must be one of tanh, relu"),
    ("algo.name", "dqn", "'algo.name' must be one of ppo, a2c, sac, td3, recurrent_ppo, recurrent_sac"),
])
def test_bad_values_are_named_with_allowed_values(key, value, expected):
    assert expected in error_of(cfg_with(**{key: value}))


def test_whole_number_floats_are_integers():
    cfg = validate_config(cfg_with(**{"train.total_timesteps": "1e5"}))
    assert cfg["train"]["total_timesteps"] == 100000 and isinstance(cfg["train"]["total_timesteps"], int)


def test_missing_required_keys():
    assert "missing key 'env.id'" in error_of(cfg_with(**{"env": "{}"}))
    assert "missing section 'algo'" in error_of({k: v for k, v in BASE.items() if k != "algo"})
    assert "missing key 'train.total_timesteps'" in error_of(cfg_with(**{"train": "{}"}))


def test_env_id_must_be_registered():
    assert "'env.id' unknown environment 'liquid_rl/LaneKeping-v0' (did you mean 'liquid_rl/LaneKeeping-v0'?)" \
        in error_of(cfg_with(**{"env.id": "liquid_rl/LaneKeping-v0"}))
    assert "without a 'module:' prefix" in error_of(cfg_with(**{"env.id": "os:Env-v0"}))


def test_wrappers_by_name_and_signature():
    ok = validate_config(cfg_with(**{"env.wrappers": "[{name: ObservationNoise, kwargs: {sigma: 0.1}}, ClipAction]"}))
    assert ok["env"]["wrappers"] == [{"name": "ObservationNoise", "kwargs": {"sigma": 0.1}},
                                     {"name": "ClipAction", "kwargs": {}}]
    assert "'env.wrappers[0].name' unknown wrapper 'ObservationNoize' (did you mean 'ObservationNoise'?)" in \
        error_of(cfg_with(**{"env.wrappers": "[{name: ObservationNoize}]"}))
    assert "unknown key 'env.wrappers[0].kwargs.sgima' (did you mean 'env.wrappers[0].kwargs.sigma'?)" in \
        error_of(cfg_with(**{"env.wrappers": "[{name: ObservationNoise, kwargs: {sgima: 1}}]"}))


def test_hyperparameters_checked_against_the_algorithm_signature():
    assert "unknown key 'algo.hyperparams.n_step' (did you mean 'algo.hyperparams.n_steps'?)" in \
        error_of(cfg_with(**{"algo.hyperparams.n_step": 64}))
    assert "'algo.hyperparams.n_epochs' must be int, got 'ten'" in error_of(cfg_with(**{"algo.hyperparams.n_epochs": "ten"}))
    assert "'algo.hyperparams.gamma' must be a number in (0, 1], got 1.5" in \
        error_of(cfg_with(**{"algo.hyperparams.gamma": 1.5}))
    assert "'algo.hyperparams.seed' is set by liquid-rl; use train.seed" in error_of(cfg_with(**{"algo.hyperparams.seed": 1}))
    assert "'algo.hyperparams.policy_kwargs' is set by liquid-rl" in \
        error_of(cfg_with(**{"algo.hyperparams.policy_kwargs": "{}"}))
    # SAC has buffer_size, PPO does not
    assert "unknown key 'algo.hyperparams.buffer_size'" in error_of(cfg_with(**{"algo.hyperparams.buffer_size": 10}))
    sac = validate_config(cfg_with(**{"env.id": "Pendulum-v1", "algo.name": "sac", "algo.hyperparams": "{}",
                                      "algo.hyperparams.buffer_size": "1e4", "algo.hyperparams.ent_coef": "auto_0.1",
                                      "algo.hyperparams.train_freq": "[1, episode]"}))
    assert sac["algo"]["hyperparams"] == {"buffer_size": 10000, "ent_coef": "auto_0.1", "train_freq": [1, "episode"]}
    assert "'algo.hyperparams.learning_rate' must be" in error_of(cfg_with(**{"algo.hyperparams.learning_rate": "fast"}))
    assert "'algo.hyperparams.learning_rate' must be a number in (0, 1]" in error_of(cfg_with(**{"algo.hyperparams.learning_rate": 0}))


def test_linear_schedules_and_action_noise_become_objects():
    from gymnasium import spaces
    from stable_baselines3.common.noise import NormalActionNoise

    from liquid_rl.agents.build import _hyperparams

    cfg = validate_config(cfg_with(**{"env.id": "Pendulum-v1", "algo.name": "td3", "algo.hyperparams": "{}",
                                      "algo.hyperparams.learning_rate": "lin_0.001",
                                      "algo.hyperparams.action_noise": "{type: normal, sigma: 0.2}"}))
    hyper = _hyperparams(cfg, spaces.Box(-1, 1, (2,)))
    assert hyper["learning_rate"](1.0) == pytest.approx(0.001) and hyper["learning_rate"](0.25) == pytest.approx(0.00025)
    assert hyper["learning_rate"](-0.01) == 0.0  # past the budget: stays at 0, never negative
    assert isinstance(hyper["action_noise"], NormalActionNoise)
    assert list(hyper["action_noise"]._sigma) == [0.2, 0.2]
    assert "unknown key 'algo.hyperparams.action_noise'" in \
        error_of(cfg_with(**{"algo.hyperparams.action_noise": "{type: normal, sigma: 0.2}"}))


@given(start=st.floats(1e-6, 1.0), progress=st.floats(-1.0, 1.0))
def test_linear_schedule_decays_to_zero_and_never_goes_negative(start, progress):
    from liquid_rl.agents.build import linear_schedule

    value = linear_schedule(start)(progress)
    assert value == (progress * start if progress > 0 else 0.0)
    assert 0.0 <= value <= start


def test_last_update_past_the_budget_runs_with_zero_learning_rate_and_clip_range():
    """A rollout that ends past total_timesteps makes SB3's progress negative; the update
    after it must not ascend the loss (negative learning rate) or clip with a negative range."""
    from stable_baselines3 import PPO

    from liquid_rl.agents.build import linear_schedule

    model = PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu",
                learning_rate=linear_schedule(1e-3), clip_range=linear_schedule(0.2))
    model.learn(100)  # two rollouts of 64: the second ends at 128, past the budget
    assert model.num_timesteps == 128 and model._current_progress_remaining < 0
    assert model.policy.optimizer.param_groups[0]["lr"] == 0.0
    assert model.logger.name_to_value["train/clip_range"] == 0.0


def test_policy_types_fit_their_algorithms():
    assert "'policy.type' 'lstm' needs algo.name 'recurrent_ppo'" in error_of(cfg_with(**{"policy.type": "lstm"}))
    assert "algo.name 'recurrent_ppo' needs policy.type 'lstm' or 'liquid_recurrent'" in \
        error_of(cfg_with(**{"algo.name": "recurrent_ppo"}))
    assert "'policy.cell' is required" in error_of(cfg_with(**{"algo.name": "recurrent_ppo",
                                                               "policy.type": "liquid_recurrent"}))
    assert "'policy.history' is required" in error_of(cfg_with(**{"policy.type": "liquid_history",
                                                                  "policy.cell": "ltc"}))
    assert "'policy.cell' does not apply to policy.type 'mlp'" in error_of(cfg_with(**{"policy.cell": "ltc"}))
    assert "'policy.mode' is a CfC option" in error_of(cfg_with(**{"policy.type": "liquid_history", "policy.cell": "ltc",
                                                                   "policy.history": 4, "policy.mode": "pure"}))
    assert "'policy.ode_unfolds' and 'policy.solver' are LTC options" in error_of(cfg_with(
        **{"policy.type": "liquid_history", "policy.cell": "cfc", "policy.history": 4, "policy.ode_unfolds": 3}))


def test_policy_kwargs_do_not_shadow_section_keys():
    assert "'policy.kwargs.units' is set by policy.units" in error_of(cfg_with(**{"policy.kwargs.units": 8}))
    assert "'policy.kwargs.lstm_hidden_size' is set by policy.units" in \
        error_of(cfg_with(**{"policy.kwargs.lstm_hidden_size": 8}))
    cfg = validate_config(cfg_with(**{"policy.kwargs.ortho_init": "false"}))
    assert cfg["policy"]["kwargs"] == {"ortho_init": False}


def test_liquid_history_stacks_frames():
    cfg = validate_config(cfg_with(**{"policy.type": "liquid_history", "policy.cell": "cfc", "policy.units": 8,
                                      "policy.history": 4}))
    assert cfg["env"]["frame_stack"] == 4
    assert "differs from policy.history" in error_of(cfg_with(**{"policy.type": "liquid_history", "policy.cell": "cfc",
                                                                 "policy.history": 4, "env.frame_stack": 3}))


def test_explicit_ncp_wiring():
    cfg = validate_config(cfg_with(**{
        "algo.name": "recurrent_ppo", "policy.type": "liquid_recurrent", "policy.cell": "ltc",
        "policy.wiring": "{inter_neurons: 12, command_neurons: 6, motor_neurons: 1, sensory_fanout: 6, "
                         "inter_fanout: 4, recurrent_command_synapses: 6, motor_fanin: 6}"}))
    from gymnasium import spaces

    from liquid_rl.wirings import NCP

    policy, kwargs = policy_spec(cfg, spaces.Box(-1, 1, (4,)))
    assert policy.__name__ == "LiquidRecurrentPolicy"
    assert isinstance(kwargs["wiring"], NCP) and kwargs["units"] == 19 and kwargs["cell"] == "ltc"
    bad = cfg_with(**{"algo.name": "recurrent_ppo", "policy.type": "liquid_recurrent", "policy.cell": "ltc",
                      "policy.wiring": "{inter_neurons: 12, command_neurons: 6, motor_neuron: 1}"})
    assert "'policy.wiring' has unknown key 'motor_neuron' (did you mean 'motor_neurons'?)" in error_of(bad)


def test_policy_spec_follows_the_observation_space():
    from gymnasium import spaces

    cfg = validate_config(BASE)
    assert policy_spec(cfg, spaces.Box(-1, 1, (4,)))[0] == "MlpPolicy"
    assert policy_spec(cfg, spaces.Box(0, 255, (3, 64, 64), dtype="uint8"))[0] == "CnnPolicy"
    assert policy_spec(cfg, spaces.Dict({"obs": spaces.Box(-1, 1, (4,))}))[0] == "MultiInputPolicy"
    lstm = validate_config(cfg_with(**{"algo.name": "recurrent_ppo", "policy.type": "lstm", "policy.units": 32}))
    assert policy_spec(lstm, spaces.Box(-1, 1, (4,))) == ("MlpLstmPolicy", {"lstm_hidden_size": 32})


def test_overrides_parse_yaml_values_and_create_sections():
    cfg = apply_overrides(BASE, ["train.total_timesteps=5e3", "env.kwargs.dt=0.05", "policy.net_arch=[8, 8]",
                                 "train.progress_bar=false"])
    assert cfg["env"]["kwargs"] == {"dt": 0.05}
    assert cfg["policy"]["net_arch"] == [8, 8] and cfg["train"]["progress_bar"] is False
    assert validate_config(cfg)["train"]["total_timesteps"] == 5000
    assert BASE["train"] == {"total_timesteps": 1000}  # the input is not modified
    with pytest.raises(ConfigError, match="write key.path=value"):
        apply_overrides(BASE, ["train.total_timesteps"])
    with pytest.raises(ConfigError, match="'env.id' is not a section"):
        apply_overrides(BASE, ["env.id.x=1"])
    with pytest.raises(ConfigError, match="invalid YAML"):
        apply_overrides(BASE, ["policy.net_arch=[8, 8"])


def test_load_config_reports_file_problems(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("env: {id: CartPole-v1\nalgo: x\n")
    with pytest.raises(ConfigError, match="bad.yaml line 2: invalid YAML"):
        load_config(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ConfigError, match="is empty"):
        load_config(empty)


def test_dump_and_load_round_trip(tmp_path):
    cfg = validate_config(cfg_with(**{"policy.net_arch": "{pi: [8], vf: [16]}"}))
    path = tmp_path / "c.yaml"
    path.write_text(dump_config(cfg))
    assert load_config(path) == cfg
    assert load_config(path, seed=7, device="cpu")["train"]["seed"] == 7


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_shipped_config_validates_and_builds(path):
    cfg = load_config(path)
    assert cfg["description"], "every shipped config says what it is"
    check_buildable(cfg)


def test_every_comparison_has_its_baselines():
    names = {p.stem for p in CONFIGS}
    assert len(CONFIGS) >= 20
    for task in ("cartpole_novel", "pendulum_novel", "mountaincar_novel"):
        assert {f"{task}_{p}" for p in ("ltc", "cfc", "lstm", "mlp")} <= names
    assert {"lane_keeping_ncp", "lane_keeping_lstm", "lane_keeping_mlp"} <= names
    assert {"lane_keeping_pixels_ncp", "lane_keeping_pixels_lstm", "lane_keeping_pixels_cnn"} <= names
    assert {"halfcheetah_sac_ltc_history", "halfcheetah_sac_lstm_history", "halfcheetah_sac_mlp"} <= names
    assert {"halfcheetah_p_recurrent_sac_ltc", "halfcheetah_p_recurrent_sac_lstm", "halfcheetah_p_sac_mlp"} <= names
