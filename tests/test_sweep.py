"""Sweeps on Ray Tune: validation, a grid, kill and rerun, an Optuna search (tiny budgets)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("ray")
pytest.importorskip("optuna")

from liquid_rl.agents.sweep.results import ROW_KEYS, read_rows  # noqa: E402
from liquid_rl.agents.sweep.spec import load_sweep, override_strings, trial_name  # noqa: E402
from liquid_rl.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BASE = str(ROOT / "configs" / "cartpole_novel_mlp.yaml")
# A few hundred steps: mechanics only (three evaluations, two checkpoints).
TINY = {"train.total_timesteps": 384, "train.eval_every": 128, "train.eval_episodes": 1,
        "train.checkpoint_every": 128, "env.n_envs": 2, "algo.hyperparams.n_steps": 64,
        "algo.hyperparams.batch_size": 64, "algo.hyperparams.n_epochs": 1}


def write_sweep(tmp_path: Path, **entries) -> Path:
    searched = entries.get("search", {})
    data = {"base": BASE, "set": {k: v for k, v in TINY.items() if k not in searched}, **entries}
    path = tmp_path / "sweep.yaml"
    path.write_text(json.dumps(data))  # JSON is YAML
    return path


def rows_of(out: Path) -> list[dict]:
    return read_rows(out / "trials.jsonl")


@pytest.mark.parametrize("entries, message", [
    ({"seeds": "0"}, "seeds: expected a non-empty list"),
    ({"seeds": [0, 0]}, "repeated seed"),
    ({"grid": {"algo.hyperparams.learning_rate": 0.1}}, "grid.algo.hyperparams.learning_rate: expected a non-empty"),
    ({"grid": {"learning_rate": [0.1]}}, "dotted config keys"),
    ({"grid": {"algo.hyperparams.n_epochs": [0]}}, "n_epochs"),
    ({"search": {"algo.hyperparams.learning_rate": {"type": "log_float", "low": 0, "high": 1}}, "trials": 2},
     "log_float needs low > 0"),
    ({"search": {"algo.hyperparams.gamma": {"type": "float", "low": 0.9, "high": 0.99}}}, "a search needs trials"),
    ({"search": {"algo.hyperparams.gamma": {"type": "beta"}}, "trials": 2}, "expected {type: float|log_float"),
    ({"pruner": "hyperband"}, "pruner: expected one of none, asha, median"),
    ({"metric": "loss"}, "metric: expected one of eval_return, best_return"),
    ({"resources": {"cpus": 0}}, "resources.cpus: expected a whole number >= 1"),
    ({"grid": {"train.seed": [1, 2]}}, "train.seed is set by seeds"),
    ({"epochs": 3}, "unknown key 'epochs'"),
])
def test_bad_sweep_file_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, entries, message):
    path = write_sweep(tmp_path, **entries)
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("liquid-rl: error: sweep ") and message in err, err
    assert not out.exists()


def test_missing_base_config_and_bad_yaml_exit_2(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text("base: configs/no_such.yaml\n")
    assert main(["sweep", str(path)]) == 2
    assert "config configs/no_such.yaml not found" in capsys.readouterr().err
    path.write_text("base: [unclosed\n")
    assert main(["sweep", str(path)]) == 2
    assert "not valid YAML (line" in capsys.readouterr().err


@settings(max_examples=40, deadline=None)
@given(st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
                 st.text(st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=12),
                 st.lists(st.integers(0, 64), max_size=3)))
def test_override_strings_read_back_as_the_same_value(value):
    from liquid_rl.agents.config import apply_overrides

    cfg = apply_overrides({"algo": {"hyperparams": {}}}, override_strings({"algo.hyperparams.x": value}))
    assert cfg["algo"]["hyperparams"]["x"] == value


def test_trial_names_are_stable_and_distinct(tmp_path):
    spec = load_sweep(write_sweep(tmp_path, seeds=[0, 1], grid={"algo.hyperparams.learning_rate": [0.001, 0.0003],
                                                                "algo.hyperparams.gamma": [0.99, 0.9]}))
    names = [t.name for t in spec.grid_trials()]
    assert len(names) == len(set(names)) == 8
    assert names[0] == trial_name(BASE, {"algo.hyperparams.learning_rate": 0.001, "algo.hyperparams.gamma": 0.99}, 0)
    assert names[0] == "cartpole_novel_mlp-learning_rate=0.001-gamma=0.99-seed0"


def test_grid_of_two_settings_and_two_seeds_gives_four_rows(tmp_path, ray_local):
    path = write_sweep(tmp_path, seeds=[0, 1], grid={"algo.hyperparams.learning_rate": [0.001, 0.0003]})
    out = tmp_path / "sweep"
    assert main(["sweep", str(path), "--out", str(out)]) == 0
    rows = rows_of(out)
    assert len(rows) == 4
    assert {(r["seed"], r["overrides"]["algo.hyperparams.learning_rate"]) for r in rows} == \
        {(0, 0.001), (1, 0.001), (0, 0.0003), (1, 0.0003)}
    for r in rows:
        assert set(ROW_KEYS) <= set(r)
        assert r["status"] == "finished" and r["timesteps"] == 384 and r["task"] == "liquid_rl/CartPoleNoVel-v1"
        assert [s for s, _ in r["curve"]] == [128, 256, 384]
        assert TINY.items() <= r["overrides"].items()  # every key the trial set
        rate = r["overrides"]["algo.hyperparams.learning_rate"]
        assert r["setting"] == f"cartpole_novel_mlp algo.hyperparams.learning_rate={rate}"
        assert r["final_return"] == r["curve"][-1][1] and r["best_return"] == max(v for _, v in r["curve"])
        run = json.loads((Path(r["run_dir"]) / "run.json").read_text())
        assert run["status"] == "finished" and (Path(r["run_dir"]) / "final" / "model.zip").is_file()
        cfg = (Path(r["run_dir"]) / "config.yaml").read_text()
        assert f"learning_rate: {r['overrides']['algo.hyperparams.learning_rate']}" in cfg
    # The same command again: everything is finished, nothing runs, no row is added.
    assert main(["sweep", str(path), "--out", str(out)]) == 0
    assert len(rows_of(out)) == 4
    # Another sweep file into the same directory is refused.
    other = write_sweep(tmp_path, seeds=[5])
    assert main(["sweep", str(other), "--out", str(out)]) == 2


def test_sweep_killed_after_first_trial_resumes_with_each_trial_once(tmp_path, ray_local):
    path = write_sweep(tmp_path, seeds=[0, 1], max_concurrent=1)
    out = tmp_path / "sweep"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "liquid_rl.cli", "sweep", str(path), "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        deadline = time.time() + 120
        # Kill once a trial has finished and the next one has a checkpoint but has not finished.
        while time.time() < deadline:
            rows = rows_of(out) if (out / "trials.jsonl").is_file() else []
            started = [p for p in (out / "runs").glob("*/checkpoints/*")] if (out / "runs").is_dir() else []
            if len(rows) == 1 and any(rows[0]["trial"] not in str(p) for p in started):
                break
            assert proc.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail("no finished trial within 120 s")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    killed = {r.name: json.loads((r / "run.json").read_text())["status"] for r in (out / "runs").iterdir()
              if (r / "run.json").is_file()}
    assert sorted(killed.values()).count("finished") == 1 and "running" in killed.values()
    assert main(["sweep", str(path), "--out", str(out)]) == 0
    rows = rows_of(out)
    assert sorted(r["seed"] for r in rows) == [0, 1]  # each trial once, none lost
    for r in rows:
        history = [h["event"] for h in json.loads((Path(r["run_dir"]) / "run.json").read_text())["history"]]
        name = Path(r["run_dir"]).name
        if killed.get(name) == "finished":
            assert history == ["start"]  # not run again
        elif killed.get(name) == "running":
            assert history == ["start", "resume"]  # continued from its checkpoint
        assert r["status"] == "finished" and r["timesteps"] == 384


def test_optuna_search_of_three_trials(tmp_path, ray_local):
    path = write_sweep(tmp_path, seeds=[3], trials=3, pruner={"type": "asha", "grace_steps": 128},
                       search={"algo.hyperparams.learning_rate": {"type": "log_float", "low": 1e-4, "high": 1e-2},
                               "algo.hyperparams.n_epochs": {"type": "int", "low": 1, "high": 2},
                               "algo.hyperparams.gamma": {"type": "categorical", "choices": [0.9, 0.99]}})
    out = tmp_path / "search"
    assert main(["sweep", str(path), "--out", str(out), "--max-concurrent", "2"]) == 0
    rows = rows_of(out)
    assert len(rows) == 3 and len({r["trial"] for r in rows}) == 3
    for r in rows:
        o = r["overrides"]
        assert 1e-4 <= o["algo.hyperparams.learning_rate"] <= 1e-2
        assert o["algo.hyperparams.n_epochs"] in (1, 2) and o["algo.hyperparams.gamma"] in (0.9, 0.99)
        assert r["seed"] == 3 and r["status"] in ("finished", "pruned")
        assert 128 <= r["timesteps"] <= 384
    assert len({r["overrides"]["algo.hyperparams.learning_rate"] for r in rows}) == 3


@pytest.mark.parametrize("path", sorted((ROOT / "benchmarks").glob("*.yaml")), ids=lambda p: p.name)
def test_benchmark_sweep_files_are_valid(path):
    spec = load_sweep(path)  # every trial's config validated
    assert spec.description and (spec.is_search or len(spec.seeds) >= 3)
