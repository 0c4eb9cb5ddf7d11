"""Training into a run directory, evaluation and inspection of the result (short runs:
mechanics only)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from liquid_rl.agents import evaluate, inspect_agent, load_agent, train
from liquid_rl.agents.config import load_config
from liquid_rl.agents.safe_load import read_metadata
from liquid_rl.cli import main

NCP_19 = {"inter_neurons": 12, "command_neurons": 6, "motor_neurons": 1, "sensory_fanout": 4, "inter_fanout": 4,
          "recurrent_command_synapses": 6, "motor_fanin": 6}
LIQUID = {
    "description": "test run",
    "env": {"id": "liquid_rl/CartPoleNoVel-v1", "n_envs": 2},
    "algo": {"name": "recurrent_ppo", "hyperparams": {"n_steps": 32, "batch_size": 64, "n_epochs": 1}},
    "policy": {"type": "liquid_recurrent", "cell": "ltc", "wiring": NCP_19, "ode_unfolds": 2},
    "train": {"total_timesteps": 256, "checkpoint_every": 128, "eval_every": 128, "eval_episodes": 2,
              "diagnostics_every": 64, "progress_bar": False},
}
MLP = {
    "env": {"id": "liquid_rl/LaneKeeping-v0", "n_envs": 2, "max_episode_steps": 30},
    "algo": {"name": "ppo", "hyperparams": {"n_steps": 32, "batch_size": 64, "n_epochs": 1}},
    "policy": {"type": "mlp", "net_arch": [16]},
    "train": {"total_timesteps": 128, "eval_every": 0, "diagnostics_every": 32, "progress_bar": False},
}


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def scalars(tb_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.fixture(scope="module")
def liquid_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("liquid")
    config = write_config(tmp / "liquid.yaml", LIQUID)
    run = tmp / "run"
    assert main(["train", "--config", str(config), "--out", str(run), "--seed", "3", "--no-progress"]) == 0
    return run


def test_run_directory_holds_everything(liquid_run):
    run = liquid_run
    cfg = load_config(run / "config.yaml")
    assert cfg["train"]["seed"] == 3 and cfg["policy"]["wiring"] == NCP_19  # resolved, with the CLI's seed
    assert cfg["train"]["keep_checkpoints"] == 3  # defaults written out
    status = json.loads((run / "run.json").read_text())
    assert status["status"] == "finished" and status["num_timesteps"] == 256
    for name in ("final/model.zip", "best/model.zip", "best/eval.json", "learning_curve.png", "wiring.png",
                 "episodes.csv", "evaluations.json", "checkpoints/latest.json"):
        assert (run / name).is_file() and (run / name).stat().st_size > 0, name
    assert json.loads((run / "checkpoints/latest.json").read_text())["step"] == 256
    assert [e["step"] for e in json.loads((run / "evaluations.json").read_text())] == [128, 256]
    best = json.loads((run / "best/eval.json").read_text())
    assert best["mean_return"] == max(e["mean_return"] for e in json.loads((run / "evaluations.json").read_text()))
    meta = read_metadata(run / "final/model.zip")
    assert meta["counters"]["num_timesteps"] == 256 and meta["algo"] == "recurrent_ppo"


def test_tensorboard_has_sb3_eval_and_liquid_scalars(liquid_run):
    tags = scalars(liquid_run / "tb")
    for tag in ("rollout/ep_len_mean", "train/value_loss", "eval/mean_reward", "liquid/actor/tau_mean",
                "liquid/actor/tau_min", "liquid/actor/tau_max", "liquid/actor/state_norm", "liquid/critic/state_norm"):
        assert tag in tags, tag
    tau = [v for _, v in tags["liquid/actor/tau_mean"]]
    lo = [v for _, v in tags["liquid/actor/tau_min"]]
    hi = [v for _, v in tags["liquid/actor/tau_max"]]
    assert all(0 < a <= b <= c for a, b, c in zip(lo, tau, hi))  # time constants are positive and ordered
    assert [s for s, _ in tags["eval/mean_reward"]] == [128, 256]


def test_evaluate_prints_and_writes_json(liquid_run, capsys):
    assert main(["eval", str(liquid_run), "--episodes", "3", "--deterministic", "--no-progress"]) == 0
    out = capsys.readouterr().out
    result = json.loads((liquid_run / "eval.json").read_text())
    assert len(result["returns"]) == 3 and result["episodes"] == 3 and result["deterministic"] is True
    assert result["mean_return"] == pytest.approx(np.mean(result["returns"]))
    assert result["std_return"] == pytest.approx(np.std(result["returns"]))
    assert result["mean_length"] == pytest.approx(np.mean(result["lengths"]))
    assert result["returns"] == [float(n) for n in result["lengths"]]  # CartPole: +1 per step
    assert result["model"].endswith("final/model.zip") and result["num_timesteps"] == 256
    assert f"return  {result['mean_return']:.2f} +- {result['std_return']:.2f}" in out
    # the same seed gives the same episodes
    again = evaluate(liquid_run, episodes=3, deterministic=True)
    assert again["returns"] == result["returns"]


def test_observation_noise_reaches_the_policy(liquid_run, tmp_path):
    agent = load_agent(liquid_run)
    clean, noisy = agent.make_env(seed=5), agent.make_env(seed=5, noise=0.5)
    a, b = clean.reset(), noisy.reset()
    assert a.shape == b.shape == (1, 4)
    assert np.std(b - a) == pytest.approx(0.5, rel=0.9) and not np.allclose(a, b)
    clean.close()
    noisy.close()
    path = tmp_path / "noisy.json"
    assert main(["eval", str(liquid_run), "--episodes", "2", "--noise", "0.5", "--json", str(path),
                 "--no-progress"]) == 0
    assert json.loads(path.read_text())["noise"] == 0.5


def test_inspect_writes_activity_plots(liquid_run, tmp_path, capsys):
    out = tmp_path / "inspect"
    assert main(["inspect", str(liquid_run), "--out", str(out)]) == 0
    for name in ("activity_heatmap.png", "activity_traces.png", "wiring.png", "activity.npz"):
        assert (out / name).stat().st_size > 0, name
    with np.load(out / "activity.npz") as data:
        states, labels = data["states"], list(data["labels"])
    steps = json.loads((out / "inspect.json").read_text())["steps"]
    assert states.shape == (steps, 19) and np.all(np.isfinite(states))
    assert (labels.count("motor"), labels.count("command"), labels.count("inter")) == (1, 6, 12)
    assert "heatmap" in capsys.readouterr().out
    result = inspect_agent(liquid_run, out_dir=tmp_path / "short", max_steps=5)
    assert result["steps"] == 5


def test_mlp_run_video_and_no_liquid_scalars(tmp_path):
    run = train(MLP, tmp_path / "mlp")
    assert not (run / "wiring.png").exists()  # no liquid core, no wiring
    assert not [t for t in scalars(run / "tb") if t.startswith("liquid/")]
    video = tmp_path / "episode.mp4"
    result = evaluate(run, episodes=1, video=video, deterministic=True)
    import imageio.v2 as imageio

    reader = imageio.get_reader(video)
    frames = reader.count_frames()
    first = reader.get_data(0)
    reader.close()
    assert frames == result["lengths"][0]  # the first observation and one frame per step but the last
    assert first.ndim == 3 and first.shape[2] == 3 and first.std() > 0


def test_existing_run_directory_is_never_overwritten_silently(tmp_path, capsys):
    config = write_config(tmp_path / "mlp.yaml", {**MLP, "train": {**MLP["train"], "total_timesteps": 64}})
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--out", str(run)]) == 0
    before = (run / "config.yaml").read_text(), (run / "final/model.zip").stat().st_mtime_ns
    assert main(["train", "--config", str(config), "--out", str(run), "--set", "train.seed=1"]) == 2
    err = capsys.readouterr().err
    assert f"run directory {run} exists; pass --overwrite to replace it; continue it with --resume {run}" in err
    assert ((run / "config.yaml").read_text(), (run / "final/model.zip").stat().st_mtime_ns) == before
    assert main(["train", "--config", str(config), "--out", str(run), "--set", "train.seed=1", "--overwrite"]) == 0
    assert load_config(run / "config.yaml")["train"]["seed"] == 1
    other = tmp_path / "not_a_run"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    assert main(["train", "--config", str(config), "--out", str(other), "--overwrite"]) == 2
    assert "is a non-empty directory that is not a liquid-rl run; refusing to delete it" in capsys.readouterr().err
    assert (other / "thesis.tex").read_text() == "precious"


@pytest.mark.parametrize("change, message", [
    ({"env": {"id": "liquid_rl/NoSuchEnv-v0"}}, "'env.id' unknown environment 'liquid_rl/NoSuchEnv-v0'"),
    ({"env": {"id": "liquid_rl/LaneKeeping-v0", "n_env": 2}}, "unknown key 'env.n_env' (did you mean 'env.n_envs'?)"),
    ({"env": {"id": "liquid_rl/LaneKeeping-v0", "kwargs": {"speed": -1}}}, "'env' liquid_rl/LaneKeeping-v0: ValueError"),
    ({"policy": {"type": "mlp", "kwargs": {"n_lstm_layers": 2}}}, "cannot build ppo with policy.type 'mlp'"),
])
def test_bad_configs_exit_2_and_write_nothing(tmp_path, capsys, change, message):
    config = write_config(tmp_path / "bad.yaml", {**MLP, **change})
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--out", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("liquid-rl: error: config: ") and message in err[0], err
    assert not run.exists()


@pytest.mark.parametrize("env_id", ["liquid_rl/LaneKeeping-v0", "liquid_rl/LaneKeepingPixels-v0"])
def test_reward_only_normalisation_checkpoints_resumes_and_evaluates(tmp_path, env_id):
    # VecNormalize keeps no observation statistics with norm_obs=False; saving must not need them.
    config = dict(MLP, env=dict(MLP["env"], id=env_id, normalize={"obs": False, "reward": True}),
                  train=dict(MLP["train"], checkpoint_every=64, eval_every=64, eval_episodes=1))
    run = tmp_path / "run"
    assert main(["train", "--config", str(write_config(tmp_path / "c.yaml", config)), "--out", str(run),
                 "--no-progress"]) == 0
    norm = read_metadata(run / "final/model.zip")["normalization"]
    assert norm["obs_rms"] is None and norm["norm_obs"] is False and norm["ret_rms"]["count"] > 1
    assert json.loads((run / "checkpoints/latest.json").read_text())["step"] == 128
    assert [e["step"] for e in json.loads((run / "evaluations.json").read_text())] == [64, 128]
    assert main(["train", "--resume", str(run), "--set", "train.total_timesteps=192", "--no-progress"]) == 0
    assert read_metadata(run / "final/model.zip")["normalization"]["ret_rms"]["count"] > norm["ret_rms"]["count"]
    assert main(["eval", str(run), "--episodes", "2", "--no-progress"]) == 0
    assert len(json.loads((run / "eval.json").read_text())["returns"]) == 2
