"""``liquid-rl robustness`` and agents.robustness: files, level 0 = eval, pooling, bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from liquid_rl.agents.robustness import (
    KINDS,
    bootstrap_interval,
    parse_perturbation,
    policy_key,
    pool,
)
from liquid_rl.agents.errors import UserError
from liquid_rl.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "lane_keeping_ncp.yaml"

TINY = ["--set", "train.total_timesteps=256", "--set", "env.n_envs=2", "--set", "algo.hyperparams.n_steps=128",
        "--set", "algo.hyperparams.batch_size=64", "--set", "train.eval_episodes=1"]


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """Two seeds of a tiny NCP lane-keeping run (mechanics only: a few hundred steps)."""
    root = tmp_path_factory.mktemp("runs")
    runs = []
    for seed in (0, 1):
        run = root / f"ncp_s{seed}"
        assert main(["train", "--config", str(CONFIG), "--seed", str(seed), *TINY,
                     "--out", str(run)]) == 0
        runs.append(run)
    return runs


def test_robustness_writes_both_files_and_level_0_is_eval(tiny_runs, tmp_path, capsys):
    run = tiny_runs[0]
    out = tmp_path / "rob"
    assert main(["robustness", str(run), "--perturb", "noise=0,0.3", "--perturb", "delay=0,2",
                 "--episodes", "3", "--seed", "5", "--out", str(out)]) == 0
    data = json.loads((out / "robustness.json").read_text())
    assert (out / "robustness.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = data["rows"]
    assert [(r["perturbation"], r["level"]) for r in rows] == [("noise", 0), ("noise", 0.3), ("delay", 0),
                                                                ("delay", 2)]
    for r in rows:
        assert {"run", "policy", "perturbation", "level", "mean_return", "ci_low", "ci_high", "episodes"} <= set(r)
        assert r["episodes"] == 3 and r["ci_low"] <= r["mean_return"] <= r["ci_high"]
    assert main(["eval", str(run), "--episodes", "3", "--seed", "5", "--deterministic", "--no-progress",
                 "--json", str(tmp_path / "eval.json")]) == 0
    plain = json.loads((tmp_path / "eval.json").read_text())
    for r in rows:
        if r["level"] == 0:
            assert r["returns"] == plain["returns"]
            assert r["mean_return"] == plain["mean_return"]
    assert rows[1]["returns"] != plain["returns"]  # noise changes the episodes


def test_runs_of_one_config_are_pooled(tiny_runs, tmp_path, capsys):
    out = tmp_path / "rob"
    assert main(["robustness", *map(str, tiny_runs), "--perturb", "dropout=0,0.5", "--episodes", "2",
                 "--out", str(out)]) == 0
    data = json.loads((out / "robustness.json").read_text())
    assert len(data["rows"]) == 4
    pooled = data["pooled"]
    assert len(pooled) == 2 and all(p["runs"] == 2 and p["episodes"] == 4 for p in pooled)
    for p in pooled:
        parts = [r["returns"] for r in data["rows"] if r["level"] == p["level"]]
        assert p["mean_return"] == pytest.approx(np.mean(parts[0] + parts[1]))


@pytest.mark.parametrize("args, match", [
    (["--perturb", "blur=0,1"], "blur does not apply"),
    (["--perturb", "occlusion=0.2"], "occlusion does not apply"),
    (["--perturb", "wind=1"], "KIND one of"),
    (["--perturb", "dropout=0,1.5"], r"in \[0, 1\]"),
    (["--perturb", "delay=0.5"], "integers"),
    (["--perturb", "noise=0,x"], "comma-separated numbers"),
    (["--perturb", "noise=0", "--perturb", "noise=0.1"], "each kind may be given once"),
])
def test_bad_perturbations_exit_2_and_write_nothing(tiny_runs, tmp_path, capsys, args, match):
    out = tmp_path / "rob"
    assert main(["robustness", str(tiny_runs[0]), *args, "--episodes", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("liquid-rl: error:")
    assert re.search(match, err[0])
    assert not out.exists()


def test_missing_run_exits_2(tmp_path, capsys):
    assert main(["robustness", str(tmp_path / "nope"), "--perturb", "noise=0", "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()


def test_parse_and_kinds():
    assert parse_perturbation("noise=0.2,0,0.1").levels == (0.0, 0.1, 0.2)
    assert set(KINDS) == {"noise", "dropout", "delay", "control_rate", "brightness", "occlusion", "blur"}
    with pytest.raises(UserError, match="repeated"):
        parse_perturbation("delay=1,1")
    with pytest.raises(UserError, match=r"\(-1, 10\]"):
        parse_perturbation("control_rate=-1")


def test_bootstrap_interval_covers_the_mean_and_shrinks_with_more_episodes():
    rng = np.random.default_rng(0)
    small, large = rng.normal(100, 10, 10), rng.normal(100, 10, 400)
    lo_s, hi_s = bootstrap_interval(small)
    lo_l, hi_l = bootstrap_interval(large)
    assert lo_s < small.mean() < hi_s and lo_l < large.mean() < hi_l
    assert hi_l - lo_l < 0.5 * (hi_s - lo_s)
    assert hi_l - lo_l == pytest.approx(2 * 1.96 * 10 / 20, rel=0.25)  # the normal interval
    assert bootstrap_interval([3.0]) == (3.0, 3.0) and bootstrap_interval([2.0, 2.0]) == (2.0, 2.0)


def test_policy_key_ignores_only_the_seed():
    cfg = {"train": {"seed": 0, "total_timesteps": 10}, "policy": {"cell": "ltc"}}
    other_seed = {"train": {"seed": 7, "total_timesteps": 10}, "policy": {"cell": "ltc"}}
    other_cell = {"train": {"seed": 0, "total_timesteps": 10}, "policy": {"cell": "cfc"}}
    assert policy_key(cfg) == policy_key(other_seed) != policy_key(other_cell)
    rows = [{"run": f"r{i}", "policy": "p", "config_key": "k", "perturbation": "noise", "level": 0.0,
             "returns": [float(i)]} for i in range(3)]
    (merged,) = pool(rows)
    assert merged["returns"] == [0.0, 1.0, 2.0] and merged["runs"] == 3 and merged["run"] == "r0,r1,r2"
