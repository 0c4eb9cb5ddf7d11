"""Resume after kill -9: a real ``liquid-rl train`` process is killed once it has written
a checkpoint, then resumed; the step count continues from that checkpoint to the budget,
and for an off-policy algorithm the replay buffer continues as well."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from liquid_rl.agents.checkpoints import Checkpoint, latest_checkpoint
from liquid_rl.agents.safe_load import read_metadata
from liquid_rl.cli import main

pytestmark = pytest.mark.slow

PPO_CONFIG = {
    "env": {"id": "CartPole-v1", "n_envs": 2, "normalize": {"obs": True, "reward": True}},
    "algo": {"name": "ppo", "hyperparams": {"n_steps": 64, "batch_size": 64, "n_epochs": 2}},
    "policy": {"type": "mlp", "net_arch": [16]},
    "train": {"total_timesteps": 3072, "checkpoint_every": 256, "keep_checkpoints": 2, "eval_every": 1024,
              "eval_episodes": 1, "diagnostics_every": 0, "progress_bar": False},
}
SAC_CONFIG = {
    "env": {"id": "Pendulum-v1", "normalize": {"obs": True}},
    "algo": {"name": "sac", "hyperparams": {"buffer_size": 5000, "learning_starts": 64, "batch_size": 32}},
    "policy": {"type": "mlp", "net_arch": [16]},
    "train": {"total_timesteps": 1200, "checkpoint_every": 200, "eval_every": 0, "diagnostics_every": 0,
              "progress_bar": False},
}

RSAC_CONFIG = {
    "env": {"id": "liquid_rl/PendulumNoVel-v1", "n_envs": 2},
    "algo": {"name": "recurrent_sac", "hyperparams": {"buffer_size": 4000, "learning_starts": 64, "batch_size": 4,
                                                      "sequence_length": 4, "burn_in": 2, "burn_in_state": "stored"}},
    "policy": {"type": "liquid_recurrent", "cell": "cfc", "units": 8, "net_arch": [16]},
    "train": {"total_timesteps": 1200, "checkpoint_every": 200, "eval_every": 0, "diagnostics_every": 0,
              "progress_bar": False},
}


def start_training(config: dict, tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "liquid_rl.cli", "train", "--config", str(path), "--out", str(run)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    return proc, run


def kill_after_checkpoint(proc: subprocess.Popen, run: Path, min_step: int, timeout: float = 240) -> int:
    """Wait until the latest checkpoint has ``step >= min_step``, then SIGKILL; return that step."""
    deadline = time.monotonic() + timeout
    manifest = run / "checkpoints" / "latest.json"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"training ended before the kill: {proc.stderr.read().decode()[-2000:]}")
        if manifest.is_file():
            try:
                step = json.loads(manifest.read_text())["step"]
            except ValueError:
                step = 0
            if step >= min_step:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
                return step
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("no checkpoint in time")


def test_kill_and_resume_on_policy(tmp_path, capsys):
    proc, run = start_training(PPO_CONFIG, tmp_path)
    kill_after_checkpoint(proc, run, min_step=512)
    assert proc.returncode == -signal.SIGKILL
    status = json.loads((run / "run.json").read_text())
    assert status["status"] == "running" and not (run / "final").exists()
    ckpt = latest_checkpoint(run)  # the last consistent checkpoint, maybe newer than the one we saw
    assert ckpt is not None and 512 <= ckpt.step < 3072 and ckpt.step % 128 == 0  # between rollouts
    saved_stats = read_metadata(ckpt.model_path)["normalization"]
    assert saved_stats["obs_rms"]["count"] > 1

    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert f"resuming {run} at step {ckpt.step} of 3072" in capsys.readouterr().err

    status = json.loads((run / "run.json").read_text())
    assert status["status"] == "finished" and status["num_timesteps"] == 3072
    assert [(h["event"], h["step"]) for h in status["history"]] == [("start", 0), ("resume", ckpt.step)]
    final = read_metadata(run / "final" / "model.zip")
    assert final["counters"]["num_timesteps"] == 3072
    # normalisation statistics continued from the checkpoint's, not from scratch
    # (+ the observations of the resumed run's first reset)
    assert final["normalization"]["obs_rms"]["count"] == pytest.approx(
        saved_stats["obs_rms"]["count"] + 3072 - ckpt.step + 2, abs=0.5)
    # the episode log has no steps twice and none past the budget
    rows = np.loadtxt(run / "episodes.csv", delimiter=",", skiprows=1, ndmin=2)
    assert np.all(np.diff(rows[:, 0]) >= 0) and rows[-1, 0] <= 3072
    evaluations = json.loads((run / "evaluations.json").read_text())
    assert [e["step"] for e in evaluations] == sorted({e["step"] for e in evaluations})
    assert evaluations[-1]["step"] == 3072
    events = sorted((run / "tb").glob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime)
    assert len(events) == 2  # one per process, same folder
    # the resumed file starts by purging the killed process's steps from the checkpoint on
    resumed = list(EventFileLoader(str(events[1])).Load())
    starts = [e.step for e in resumed if e.HasField("session_log") and e.session_log.status == e.session_log.START]
    assert starts == [ckpt.step]
    assert min(e.step for e in resumed if e.HasField("summary")) >= ckpt.step
    assert (run / "learning_curve.png").stat().st_size > 0
    kept = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert kept == ["latest.json", "step_000000002816", "step_000000003072"]


def kill_after_buffer_checkpoint(config: dict, tmp_path: Path, keys: tuple[str, ...]
                                 ) -> tuple[Path, Checkpoint, dict[str, np.ndarray]]:
    """Train an off-policy ``config``, SIGKILL it once a checkpoint at step >= 400 exists;
    return the run, that checkpoint and copies of the replay buffer's arrays ``keys``."""
    proc, run = start_training(config, tmp_path)
    kill_after_checkpoint(proc, run, min_step=400)
    ckpt = latest_checkpoint(run)
    assert ckpt is not None and ckpt.replay_buffer_path is not None
    with np.load(ckpt.replay_buffer_path, allow_pickle=False) as data:
        return run, ckpt, {k: data[k].copy() for k in keys}


def test_kill_and_resume_off_policy_restores_the_replay_buffer(tmp_path, capsys):
    run, ckpt, arrays = kill_after_buffer_checkpoint(SAC_CONFIG, tmp_path, ("observations",))
    before = arrays["observations"]
    assert before.shape[0] == ckpt.step  # one transition per step so far

    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert f"at step {ckpt.step} of 1200" in capsys.readouterr().err
    final = latest_checkpoint(run)
    assert final is not None and final.step == 1200
    assert read_metadata(run / "final" / "model.zip")["counters"]["num_timesteps"] == 1200
    with np.load(final.replay_buffer_path, allow_pickle=False) as data:
        after = data["observations"]
        scalars = json.loads(bytes(data["__scalars__"]).decode())
    # the buffer continued: the old transitions are still there and the new ones follow
    assert scalars["pos"] == 1200 and after.shape[0] == 1200
    assert np.array_equal(after[: ckpt.step], before)


def test_kill_and_resume_recurrent_sac_restores_its_sequence_buffer(tmp_path, capsys):
    keys = ("observations", "episode_starts", "states", "dones", "timeouts")
    run, ckpt, before = kill_after_buffer_checkpoint(RSAC_CONFIG, tmp_path, keys)
    rows = ckpt.step // 2  # two envs: one row per vectorised step
    assert before["observations"].shape == (rows, 2, 3) and before["states"].shape == (rows, 2, 8)
    assert before["episode_starts"][0].all() and np.abs(before["states"][1:]).sum() > 0  # acting states were kept

    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert f"at step {ckpt.step} of 1200" in capsys.readouterr().err
    final = latest_checkpoint(run)
    assert final is not None and final.step == 1200
    with np.load(final.replay_buffer_path, allow_pickle=False) as data:
        after = {k: data[k] for k in before}
    for k in ("observations", "episode_starts", "states"):
        np.testing.assert_array_equal(after[k][:rows], before[k], err_msg=k)
    # the stored episodes end where the kill cut them, and the resumed env starts new ones
    assert (after["dones"][rows - 1] == 1).all() and (after["timeouts"][rows - 1] == 1).all()
    assert after["episode_starts"][rows].all() and after["observations"].shape[0] == 600


def test_resume_before_the_first_checkpoint_starts_over(tmp_path, capsys):
    config = {**PPO_CONFIG, "train": {**PPO_CONFIG["train"], "total_timesteps": 256, "eval_every": 0}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    assert main(["train", "--config", str(path), "--out", str(run), "--no-progress"]) == 0
    # as if killed before any checkpoint: only the run files remain
    import shutil

    for name in ("checkpoints", "final"):
        shutil.rmtree(run / name)
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert f"resuming {run} at step 0 of 256" in capsys.readouterr().err
    assert read_metadata(run / "final" / "model.zip")["counters"]["num_timesteps"] == 256
    # a finished run has nothing left to do; a longer budget extends it
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert "has reached its budget" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--set", "train.total_timesteps=384", "--no-progress"]) == 0
    assert read_metadata(run / "final" / "model.zip")["counters"]["num_timesteps"] == 384


def test_resume_bad_input(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path / "nope")]) == 2
    assert "no such run directory" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "not a run directory (no config.yaml)" in capsys.readouterr().err
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(PPO_CONFIG))
    assert main(["train", "--resume", str(tmp_path), "--set", "policy.net_arch=[8]"]) == 2
    assert "--resume takes only --set train.total_timesteps" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path), "--seed", "3"]) == 2
    assert "drop --seed" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]  # nothing written
