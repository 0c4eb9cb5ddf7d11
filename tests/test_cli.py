"""The ``liquid-rl`` command line: entry points, arguments and bad input (exit 2, one
line, nothing written)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from liquid_rl.agents.build import build_model, make_vec_env
from liquid_rl.agents.config import validate_config
from liquid_rl.agents.safe_load import save_agent
from liquid_rl.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
TINY = {
    "env": {"id": "liquid_rl/LaneKeeping-v0", "max_episode_steps": 20},
    "algo": {"name": "ppo", "hyperparams": {"n_steps": 16, "batch_size": 16}},
    "policy": {"type": "mlp", "net_arch": [8]},
    "train": {"total_timesteps": 16},
}


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    cfg = validate_config(TINY)
    venv = make_vec_env(cfg, seed=0)
    path = save_agent(build_model(cfg, venv), tmp_path_factory.mktemp("m") / "model.zip", cfg)
    venv.close()
    return path


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("liquid-rl: error: ")
    return lines[0]


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_console_script_and_script_wrappers():
    exe = shutil.which("liquid-rl", path=os.path.dirname(sys.executable)) or shutil.which("liquid-rl")
    assert exe is not None, "pip install -e . creates the liquid-rl console script"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "train" in out.stdout and "inspect" in out.stdout
    for script, word in (("train.py", "--resume"), ("evaluate.py", "--noise"), ("inspect_agent.py", "--max-steps")):
        out = subprocess.run([sys.executable, str(ROOT / "scripts" / script), "--help"], capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0 and word in out.stdout, script


def test_parser_defaults_and_choices():
    args = build_parser().parse_args(["eval", "runs/x"])
    assert (args.episodes, args.deterministic, args.noise, args.video, args.json, args.seed) == (10, False, 0.0, None,
                                                                                                None, 0)
    args = build_parser().parse_args(["train", "--config", "c.yaml", "--set", "a.b=1", "--set", "c=2"])
    assert args.overrides == ["a.b=1", "c=2"] and args.device is None and not args.overwrite


@pytest.mark.parametrize("argv, message", [
    (["train"], "one of the arguments --config --resume is required"),
    (["train", "--config", "a.yaml", "--resume", "r"], "not allowed with argument"),
    (["train", "--config", "a.yaml", "--device", "tpu"], "invalid choice: 'tpu'"),
    (["train", "--config", "a.yaml", "--seed", "-1"], "expected an integer >= 0"),
    (["eval", "m.zip", "--episodes", "0"], "expected a positive integer"),
    (["eval", "m.zip", "--noise", "-0.1"], "expected a number >= 0"),
    (["eval", "m.zip", "--noise", "nan"], "expected a finite number >= 0"),
    (["fly"], "invalid choice: 'fly'"),
])
def test_usage_errors_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_eval_bad_input_exits_2_and_writes_nothing(model_file, tmp_path, capsys):
    before = listing(tmp_path)
    assert main(["eval", str(tmp_path / "missing.zip")]) == 2
    assert "no such model file or run directory" in one_error_line(capsys)
    corrupt = tmp_path / "corrupt.zip"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    assert main(["eval", str(corrupt)]) == 2
    assert f"{corrupt} is not a model file: truncated or corrupt" in one_error_line(capsys)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(TINY))
    (run / "run.json").write_text("{}")
    assert main(["eval", str(run)]) == 2
    assert f"run directory {run} has no model" in one_error_line(capsys)
    assert main(["inspect", str(run)]) == 2
    assert "has no model" in one_error_line(capsys)
    assert main(["eval", str(model_file), "--video", str(tmp_path / "clip.avi")]) == 2
    assert "must end in .mp4 or .gif" in one_error_line(capsys)
    assert listing(tmp_path) == sorted(before + ["corrupt.zip", "run", "run/config.yaml", "run/run.json"])


def test_eval_of_a_model_with_an_unknown_env_id(model_file, tmp_path, capsys):
    import zipfile

    from liquid_rl.agents.safe_load import METADATA_NAME, read_metadata

    meta = read_metadata(model_file)
    meta["config"]["env"]["id"] = "liquid_rl/Gone-v0"
    moved = tmp_path / "moved.zip"
    with zipfile.ZipFile(model_file) as zin, zipfile.ZipFile(moved, "w") as zout:
        for name in zin.namelist():
            zout.writestr(name, json.dumps(meta) if name == METADATA_NAME else zin.read(name))
    assert main(["eval", str(moved)]) == 2
    assert "unknown environment 'liquid_rl/Gone-v0'" in one_error_line(capsys)
    assert listing(tmp_path) == ["moved.zip"]


def test_eval_json_goes_beside_a_model_file(model_file, capsys):
    assert main(["eval", str(model_file), "--episodes", "1", "--no-progress"]) == 0
    path = model_file.with_name("model_eval.json")
    assert json.loads(path.read_text())["episodes"] == 1
    assert str(path) in capsys.readouterr().out
    assert main(["eval", str(model_file), "--episodes", "1", "--noise", "0.2", "--no-progress"]) == 0
    assert json.loads(model_file.with_name("model_eval_noise0.2.json").read_text())["noise"] == 0.2


def test_inspect_needs_a_recurrent_policy(model_file, capsys):
    assert main(["inspect", str(model_file)]) == 2
    assert "has no recurrent core to inspect" in one_error_line(capsys)


def test_check_validates_configs(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(TINY))
    assert main(["check", str(good), str(ROOT / "configs" / "lane_keeping_ncp.yaml")]) == 0
    assert capsys.readouterr().out.count(": ok (") == 2
    assert main(["check", str(good), "--set", "env.n_envs=0"]) == 2
    assert "'env.n_envs' must be an integer in [1, 512], got 0" in one_error_line(capsys)
