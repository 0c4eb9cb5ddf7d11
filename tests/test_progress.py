"""Training progress: the budget rounded up to whole rollouts, counted from the resumed
step, a bar on a terminal and whole lines in a log."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.env_util import make_vec_env

from liquid_rl.agents.progress import ProgressCallback, budget_note, rounded_budget

ROOT = Path(__file__).resolve().parents[1]


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def ppo():
    return PPO("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2, seed=0), n_steps=16, batch_size=32, n_epochs=1,
               policy_kwargs=dict(net_arch=[8]), seed=0)


def test_rounded_budget_is_where_learn_stops(ppo):
    assert rounded_budget(ppo, 50) == 64  # whole rollouts of 16 x 2
    assert rounded_budget(ppo, 64) == 64
    assert budget_note(ppo, 64) is None
    assert budget_note(ppo, 50) == ("liquid-rl: the budget of 50 steps is rounded up to 64: training runs whole "
                                    "rollouts of 32 steps (16 x 2 envs)")
    ppo.learn(50)
    assert ppo.num_timesteps == 64
    assert rounded_budget(ppo, 70) == 96  # resumed at 64: one more rollout
    ppo.learn(70 - 64, reset_num_timesteps=False)
    assert ppo.num_timesteps == 96
    sac = SAC("MlpPolicy", "Pendulum-v1", learning_starts=10, buffer_size=100, seed=0)
    assert rounded_budget(sac, 37) == 37 and budget_note(sac, 37) is None


def test_bar_on_a_terminal_counts_from_the_resumed_step_and_ends_its_line(ppo):
    ppo.learn(32)
    out = FakeTerminal()
    ppo.learn(70 - 32, reset_num_timesteps=False, callback=ProgressCallback(70, stream=out))
    text = out.getvalue()
    assert "rounded up to whole rollouts" in text
    assert "96/96" in text and "/70" not in text
    assert " 32/96" in text  # it starts at the resumed step, not at 0
    assert text.endswith("\n")


def test_without_a_terminal_progress_is_whole_lines(ppo):
    out = io.StringIO()
    ppo.learn(300, callback=ProgressCallback(300, stream=out))
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and out.getvalue().endswith("\n")
    assert 5 <= len(lines) <= 11
    assert all(line.startswith("liquid-rl: step ") and "/320 (" in line for line in lines)
    assert lines[-1].startswith("liquid-rl: step 320/320 (100%)")


def test_train_cli_into_a_file_keeps_progress_and_results_on_their_own_lines(tmp_path):
    log = tmp_path / "log.txt"
    with log.open("w") as f:
        out = subprocess.run([sys.executable, "-m", "liquid_rl.cli", "train", "--config",
                              str(ROOT / "configs/cartpole_novel_mlp.yaml"), "--set", "train.total_timesteps=1500",
                              "--set", "train.eval_every=0", "--out", str(tmp_path / "run")],
                             stdout=f, stderr=subprocess.STDOUT, timeout=300)
    assert out.returncode == 0, log.read_text()
    lines = log.read_text().splitlines()
    assert "liquid-rl: the budget of 1,500 steps is rounded up to 2,048: training runs whole rollouts of " \
           "1,024 steps (128 x 8 envs)" in lines
    progress = [line for line in lines if line.startswith("liquid-rl: step ")]
    assert progress and progress[-1].startswith("liquid-rl: step 2,048/2,048 (100%)")
    assert any(line == f"liquid-rl: done. Results in {tmp_path / 'run'}/" for line in lines)
    assert "\r" not in log.read_text()
