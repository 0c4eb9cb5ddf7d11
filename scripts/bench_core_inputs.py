"""Learning benchmark: previous action and reward as core inputs.

Runs a fixed list of ``liquid-rl train`` runs one after another (one training process at
a time), most telling first: the reward-only HiddenTarget task (RecurrentSAC and
RecurrentPPO with and without the reward input), then HalfCheetah-P/-V at 100k steps
(RecurrentSAC CfC with previous action and reward against SAC on 4 stacked frames, then
LSTM cores, then more seeds). Each finished run appends one JSON line to the results
file; a rerun skips finished runs and resumes an interrupted one from its checkpoint::

    nice -n 15 python scripts/bench_core_inputs.py            # run / continue the list
    python scripts/bench_core_inputs.py --list                # what is planned, what is done
    python scripts/bench_core_inputs.py --only hidden_target  # runs whose name contains this

A row: name, config, overrides, seed, steps, final (last evaluation: mean and std of its
episodes), best (highest evaluation mean), worst_final_over_best (final / best; the issue
asks no seed to end below half of its own best), evaluations, wall and CPU seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

HT = "configs/hidden_target_"
HC_RSAC = "configs/halfcheetah_p_recurrent_sac_cfc_prev.yaml"
HC_LSTM = "configs/halfcheetah_p_recurrent_sac_lstm_prev.yaml"
HC_STACK = "configs/halfcheetah_p_sac_stack4.yaml"
V = ["env.id=liquid_rl/HalfCheetah-V-v5"]


def _hidden_target(seed: int) -> list[dict[str, Any]]:
    return [dict(name=f"hidden_target-{algo}-{inputs}-s{seed}", config=f"{HT}{algo}_{inputs}.yaml", seed=seed, set=[])
            for algo in ("recurrent_sac", "recurrent_ppo") for inputs in ("reward", "obs")]


def _halfcheetah(seed: int, kinds: tuple[str, ...] = ("rsac_cfc_prev", "sac_stack4", "rsac_lstm_prev"),
                 tasks: tuple[str, ...] = ("hc_p", "hc_v")) -> list[dict[str, Any]]:
    configs = {"rsac_cfc_prev": HC_RSAC, "sac_stack4": HC_STACK, "rsac_lstm_prev": HC_LSTM}
    return [dict(name=f"{task}-{kind}-s{seed}", config=configs[kind], seed=seed, set=V if task == "hc_v" else [])
            for task in tasks for kind in kinds]


def _runs() -> list[dict[str, Any]]:
    """The planned runs, most telling first."""
    runs = _hidden_target(0)
    runs += _halfcheetah(0, ("rsac_cfc_prev", "sac_stack4"), ("hc_p",))
    runs += _hidden_target(1) + _hidden_target(2)
    runs += _halfcheetah(0, ("rsac_cfc_prev", "sac_stack4"), ("hc_v",))
    runs += _halfcheetah(0, ("rsac_lstm_prev",))
    runs += _halfcheetah(1) + _halfcheetah(2)
    seen: set[str] = set()
    return [r for r in runs if not (r["name"] in seen or seen.add(r["name"]))]


def _done(results: Path) -> set[str]:
    if not results.exists():
        return set()
    return {json.loads(line)["name"] for line in results.read_text().splitlines() if line.strip()}


def _row(run: dict[str, Any], run_dir: Path, wall: float, cpu: float) -> dict[str, Any]:
    evals = json.loads((run_dir / "evaluations.json").read_text())
    status = json.loads((run_dir / "run.json").read_text())
    final, best = evals[-1], max(e["mean_return"] for e in evals)
    ratio = final["mean_return"] / best if best > 0 else None
    return dict(name=run["name"], config=run["config"], overrides=run["set"], seed=run["seed"],
                steps=status["num_timesteps"], final_mean=final["mean_return"], final_std=final["std_return"],
                best_mean=best, final_over_best=ratio,
                evaluations=[[e["step"], round(e["mean_return"], 3)] for e in evals],
                wall_s=round(wall, 1), cpu_s=round(cpu, 1), machine=f"{platform.machine()} {os.cpu_count()} cores",
                threads=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="docs/results/recurrent_sac_inputs.jsonl")
    parser.add_argument("--runs-dir", default="runs/core_inputs")
    parser.add_argument("--only", default=None, help="run only the planned runs whose name contains this")
    parser.add_argument("--list", action="store_true", help="print the plan and what has finished")
    args = parser.parse_args()
    results, runs_dir = ROOT / args.results, ROOT / args.runs_dir
    done = _done(results)
    plan = [r for r in _runs() if args.only is None or args.only in r["name"]]
    if args.list:
        for r in plan:
            print(f"{'done ' if r['name'] in done else 'todo '} {r['name']}")
        return 0
    results.parent.mkdir(parents=True, exist_ok=True)
    for run in plan:
        if run["name"] in done:
            continue
        run_dir = runs_dir / run["name"]
        status = json.loads((run_dir / "run.json").read_text())["status"] if (run_dir / "run.json").exists() else None
        if status == "finished":  # trained, but its row was not written
            cmd = ["true"]
        elif status is not None:
            cmd = ["liquid-rl", "train", "--resume", str(run_dir), "--no-progress"]
        else:
            cmd = ["liquid-rl", "train", "--config", str(ROOT / run["config"]), "--seed", str(run["seed"]),
                   "--out", str(run_dir), "--overwrite", "--no-progress"]
            for kv in run["set"]:
                cmd += ["--set", kv]
        print(f"[{time.strftime('%H:%M:%S')}] {run['name']}: {' '.join(cmd)}", flush=True)
        start, cpu0 = time.time(), resource.getrusage(resource.RUSAGE_CHILDREN)
        code = subprocess.call(cmd, cwd=ROOT)
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if code != 0:
            print(f"{run['name']} failed with exit status {code}; stopping", file=sys.stderr)
            return code
        row = _row(run, run_dir, time.time() - start, (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime))
        with open(results, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
