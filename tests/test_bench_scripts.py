"""Benchmark scripts: a finished (task, policy, seed) row is written once and skipped on
rerun; tuning variants are tagged and kept apart."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bench_rl(results: Path, *extra: str) -> str:
    cmd = [sys.executable, str(ROOT / "scripts" / "bench_rl.py"), "--suite", "recurrent_ppo", "--policies", "mlp",
           "--tasks", "liquid_rl/CartPoleNoVel-v1", "--seeds", "0", "--steps", "256", "--n-eval", "2",
           "--results", str(results), *extra]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600).stdout


def test_bench_rl_writes_each_run_once_and_tags_variants(tmp_path):
    results = tmp_path / "rl.jsonl"
    first = _bench_rl(results)
    assert "mlp seed 0" in first
    assert "mlp seed 0" not in _bench_rl(results)            # finished: skipped
    _bench_rl(results, "--hyper", "learning_rate=3e-4", "n_epochs=2")
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(rows) == 2
    assert "variant" not in rows[0] and rows[1]["variant"] == "learning_rate=0.0003 n_epochs=2"
    assert rows[0]["settings"]["n_epochs"] == "20" and rows[1]["settings"]["n_epochs"] == "2"
    assert all(r["steps"] == 256 and r["episodes"] == 2 and r["normalize"] == "obs+reward" for r in rows)
    table = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_rl.py"), "--summary", "--results",
                            str(results)], check=True, capture_output=True, text=True).stdout
    assert "| mlp |" in table and "| mlp [learning_rate=0.0003 n_epochs=2] |" in table
