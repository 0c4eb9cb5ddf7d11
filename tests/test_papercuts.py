"""What a new user meets first: `liquid-rl list`, the `check` line, env registration on
`import liquid_rl`, MuJoCo's deprecation noise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "liquid_rl.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_import_liquid_rl_registers_the_environments():
    code = ("import gymnasium as gym, sys, liquid_rl\n"
            "env = gym.make('liquid_rl/LaneKeeping-v0'); obs, _ = env.reset(seed=0)\n"
            "print(obs.shape, 'mujoco' in sys.modules, 'highway_env' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["(11,)", "False", "False"]  # no simulator loaded by the import


def test_list_envs_gives_every_registered_id_with_a_line():
    from liquid_rl.envs import ENV_IDS

    out = cli("list", "envs")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert sorted(line.split()[0] for line in lines) == sorted(ENV_IDS)
    assert all(len(line.split(None, 1)) == 2 for line in lines)
    assert any(line.startswith("liquid_rl/PendulumNoVel-v1 ") and "Pendulum-v1 with its velocities zeroed" in line
               for line in lines)


def test_list_cells_and_configs():
    from liquid_rl.cells import CELLS

    out = cli("list", "cells")
    assert out.returncode == 0, out.stderr
    assert [line.split()[0] for line in out.stdout.strip().splitlines()] == list(CELLS)
    out = cli("list", "configs")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == len(list((ROOT / "configs").glob("*.yaml")))
    assert any(line.startswith("configs/lane_keeping_ncp.yaml ") and "19-neuron NCP" in line for line in lines)


def test_list_refuses_bad_input_with_one_line(tmp_path):
    out = cli("list", "configs", "--dir", str(tmp_path))
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip().splitlines() == [
        f"liquid-rl: error: no configs (*.yaml) in {tmp_path}/: run from the project folder or pass --dir DIR"]
    out = cli("list", "policies")
    assert out.returncode == 2 and "invalid choice: 'policies'" in out.stderr


def test_check_says_what_the_policy_is():
    out = cli("check", "configs/lane_keeping_pixels_cnn.yaml", "configs/lane_keeping_ncp.yaml")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "configs/lane_keeping_pixels_cnn.yaml: ok (liquid_rl/LaneKeepingPixels-v0, ppo, policy mlp: CnnPolicy "
        "(stable-baselines3's NatureCNN conv net + MLP))",
        "configs/lane_keeping_ncp.yaml: ok (liquid_rl/LaneKeeping-v0, recurrent_ppo, policy liquid_recurrent: "
        "LiquidRecurrentPolicy (ltc core))",
    ]


def test_check_of_mujoco_configs_prints_no_deprecation_warning():
    pytest.importorskip("mujoco")
    out = cli("check", "configs/halfcheetah_sac_mlp.yaml", "configs/halfcheetah_p_sac_mlp.yaml")
    assert out.returncode == 0, out.stderr
    assert "settotalmass" not in out.stdout + out.stderr
    assert "WARNING" not in out.stdout + out.stderr
    assert out.stdout.count(": ok (") == 2


def test_quiet_mujoco_keeps_other_mujoco_warnings():
    mujoco = pytest.importorskip("mujoco")
    from liquid_rl.envs import quiet_mujoco

    previous = mujoco.get_mju_user_warning()
    try:
        quiet_mujoco()
        quiet_mujoco()  # idempotent
        handler = mujoco.get_mju_user_warning()
        handler("compiler attribute 'settotalmass' is deprecated and will be removed")  # dropped
        with pytest.warns(RuntimeWarning, match="MuJoCo: Nan, Inf or huge value in QACC"):
            handler("Nan, Inf or huge value in QACC at DOF 0")
    finally:
        mujoco.set_mju_user_warning(previous)


# --- eval / inspect --model best|final|checkpoint (item 5) --------------------------------------------

@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run") / "r"
    out = cli("train", "--config", "configs/cartpole_novel_mlp.yaml", "--set", "train.total_timesteps=2048",
              "--set", "train.eval_every=1024", "--set", "train.eval_episodes=1", "--set", "train.checkpoint_every=1024",
              "--out", str(run), "--no-progress")
    assert out.returncode == 0, out.stderr
    return run


def test_eval_model_picks_best_final_or_latest_checkpoint(small_run):
    from liquid_rl.agents.checkpoints import latest_checkpoint

    import json

    for which, expected in (("best", small_run / "best" / "model.zip"), ("final", small_run / "final" / "model.zip"),
                            ("checkpoint", latest_checkpoint(small_run).model_path)):
        out = cli("eval", str(small_run), "--model", which, "--episodes", "1")
        assert out.returncode == 0, out.stderr
        assert f"of {expected}" in out.stdout.splitlines()[0]
        result = json.loads((small_run / f"eval_{which}.json").read_text())
        assert Path(result["model"]) == expected
    assert not (small_run / "eval.json").exists()  # the default results file is left alone


def test_model_flag_errors_are_one_line(small_run, tmp_path):
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(small_run, bare)
    shutil.rmtree(bare / "best")
    for command in ("eval", "inspect"):
        out = cli(command, str(bare), "--model", "best")
        assert out.returncode == 2 and out.stdout == ""
        assert out.stderr.strip() == f"liquid-rl: error: run directory {bare} has no best model (nothing in best/model.zip)"
    out = cli("eval", str(small_run / "final" / "model.zip"), "--model", "final")
    assert out.returncode == 2
    assert "--model final picks a model of a run directory" in out.stderr
    out = cli("eval", str(small_run), "--model", "latest")
    assert out.returncode == 2 and "invalid choice: 'latest'" in out.stderr


def test_model_choices_are_the_loaders():
    from liquid_rl.agents.safe_load import MODEL_CHOICES
    from liquid_rl.cli.args import MODELS

    assert tuple(MODELS) == MODEL_CHOICES
