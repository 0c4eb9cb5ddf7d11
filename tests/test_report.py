"""``liquid-rl report``: rliable's statistics on trial rows, Markdown and PNGs, old result files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

rliable = pytest.importorskip("rliable")

from rliable import library as rly  # noqa: E402
from rliable import metrics  # noqa: E402

from liquid_rl.agents.sweep.report import aggregate  # noqa: E402
from liquid_rl.agents.sweep.results import read_rows, read_sweep_rows  # noqa: E402
from liquid_rl.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCORES = {"ltc": [310.0, 250.5, 400.0, 120.0, 333.3], "mlp": [40.0, 38.5, 55.0, 61.0, 20.0]}


def made_up_rows() -> list[dict]:
    rows = []
    for setting, scores in SCORES.items():
        for seed, score in enumerate(scores):
            rows.append({"trial": f"{setting}-seed{seed}", "setting": setting, "task": "liquid_rl/CartPoleNoVel-v1",
                         "seed": seed, "overrides": {}, "final_return": score, "best_return": score + 1,
                         "timesteps": 1000, "wall_s": 1.0, "run_dir": None, "status": "finished",
                         "curve": [[500, score / 2 + seed], [1000, score]]})
    rows.append({**rows[0], "trial": "ltc-pruned", "seed": 9, "status": "pruned", "final_return": -5.0})
    return rows


def test_iqm_and_intervals_are_rliables(tmp_path):
    path = tmp_path / "trials.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in made_up_rows()))
    (report,) = aggregate(read_rows(path), reps=500, seed=3, baseline="mlp")
    scores = {s: np.asarray(v)[:, None] for s, v in SCORES.items()}
    np.random.seed(3)  # rliable resamples with NumPy's global generator
    points, cis = rly.get_interval_estimates(scores, lambda x: np.array([metrics.aggregate_iqm(x)]), reps=500)
    np.random.seed(3)
    p_points, p_cis = rly.get_interval_estimates({"ltc": (scores["ltc"], scores["mlp"])},
                                                 metrics.probability_of_improvement, reps=500)
    by = {s.setting: s for s in report.settings}
    assert report.baseline == "mlp" and list(by) == ["ltc", "mlp"]
    for setting in SCORES:
        assert by[setting].iqm == pytest.approx(points[setting][0])
        assert by[setting].ci == pytest.approx((cis[setting][0, 0], cis[setting][1, 0]))
    assert by["ltc"].iqm == pytest.approx(np.mean(sorted(SCORES["ltc"])[1:4]), rel=0.1)  # IQM of 5: about the middle 3
    assert by["ltc"].pruned == 1 and len(by["ltc"].scores) == 5  # the pruned trial is counted, not scored
    assert by["ltc"].p_improve == pytest.approx(float(np.squeeze(p_points["ltc"]))) == pytest.approx(1.0)
    assert by["ltc"].p_ci == pytest.approx((float(np.squeeze(p_cis["ltc"][0])), float(np.squeeze(p_cis["ltc"][1]))))
    assert by["mlp"].p_improve is None


def test_report_cli_writes_table_and_plots(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "trials.jsonl").write_text("".join(json.dumps(r) + "\n" for r in made_up_rows()))
    assert main(["report", str(sweep), "--reps", "200"]) == 0
    printed = capsys.readouterr().out.split()
    names = sorted(Path(p).name for p in printed)
    assert names == ["curves_CartPoleNoVel-v1.png", "iqm_CartPoleNoVel-v1.png", "profile_CartPoleNoVel-v1.png",
                     "report.md"]
    for p in printed:
        assert Path(p).parent == sweep / "report" and Path(p).stat().st_size > 0
    table = (sweep / "report" / "report.md").read_text()
    assert "| ltc | 5 (+1 pruned) |" in table and "| mlp | 5 |" in table and "baseline" in table


def test_report_of_nothing_finished_exits_2(tmp_path, capsys):
    rows = [dict(r, status="pruned") for r in made_up_rows()]
    (tmp_path / "trials.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["report", str(tmp_path)]) == 2
    assert "no finished trial" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing")]) == 2


@pytest.mark.parametrize("name", ["rl.jsonl", "rl_tuning.jsonl", "rl_curves.jsonl", "recurrent_sac.jsonl"])
def test_benchmark_result_files_are_readable(name):
    path = ROOT / "docs" / "results" / name
    rows = read_sweep_rows([path])
    assert len(rows) == sum(1 for line in path.read_text().splitlines() if line.strip())  # no row merged away
    assert rows and all(r["status"] == "finished" and r["final_return"] is not None for r in rows)
    reports = aggregate(rows, reps=100)
    assert sum(len(s.scores) for r in reports for s in r.settings) == len(rows)
