"""Benchmark scripts: recurrent SAC's update speed, the memory probe, the CartPoleNoVel probe.
(The learning suites are sweep files, tested in test_sweep.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_probe_cartpole_reports_episode_ends_and_ltc_time_constants():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "probe_cartpole.py"),
                          "--steps", "256", "--episodes", "2"], check=True, capture_output=True, text=True,
                         timeout=600).stdout
    ends = [line for line in out.splitlines() if line.startswith("episode ")]
    assert len(ends) == 2 and all("last x" in line and "time limit" in line for line in ends)
    assert "actor LTC time constants" in out and "sensory slopes" in out


def test_memory_probe_replays_a_run_with_state_resets(tmp_path):
    from liquid_rl.agents.train import train

    run = train(ROOT / "configs" / "cartpole_novel_ltc.yaml", tmp_path / "run", progress_bar=False,
                overrides=["train.total_timesteps=128", "train.eval_every=0", "env.n_envs=2",
                           "algo.hyperparams.n_steps=64", "algo.hyperparams.batch_size=64"])
    cmd = [sys.executable, str(ROOT / "scripts" / "probe_memory.py"), str(run), "--reset-every", "0", "1",
           "--episodes", "1"]
    lines = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True).stdout.splitlines()
    assert [line.split(":")[1].strip() for line in lines] == ["reset every never", "reset every 1"]
    assert all("over 1 episodes" in line for line in lines)


def test_recurrent_sac_speed_writes_a_row_and_skips_it_on_rerun(tmp_path):
    results = tmp_path / "speed.jsonl"
    cmd = [sys.executable, str(ROOT / "scripts" / "bench_recurrent_sac_speed.py"), "--speed-configs",
           "sac-mlp-B256", "--updates", "2", "--speed-results", str(results)]
    subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True)
    subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True)
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["config"] == "sac-mlp-B256" and rows[0]["updates"] == 2
    assert rows[0]["updates_per_s"] > 0 and rows[0]["transitions_per_update"] == 256


def test_input_probe_zeroes_groups_and_rejects_bad_indices(tmp_path):
    from liquid_rl.agents.train import train

    run = train(ROOT / "configs" / "cartpole_novel_ltc.yaml", tmp_path / "run", progress_bar=False,
                overrides=["train.total_timesteps=128", "train.eval_every=0", "env.n_envs=2",
                           "algo.hyperparams.n_steps=64", "algo.hyperparams.batch_size=64"])
    script = str(ROOT / "scripts" / "probe_inputs.py")
    out = subprocess.run([sys.executable, script, str(run), "--groups", "position=0", "both=0-1",
                          "--episodes", "2"], capture_output=True, text=True, timeout=300, check=True).stdout
    header, rule, row = out.strip().splitlines()
    assert header == "| agent | none zeroed | position | both |"
    cells = [float(c) for c in row.strip("|").split("|")[1:]]
    assert len(cells) == 3 and all(c >= 1 for c in cells)  # CartPole returns count steps
    bad = subprocess.run([sys.executable, script, str(run), "--groups", "far=7"], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2 and "entries must be in [0, 4)" in bad.stderr
    assert bad.stdout == ""
