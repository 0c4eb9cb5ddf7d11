"""Overhead of running trainings as a sweep on Ray Tune: 8 short trials (CartPoleNoVel MLP
PPO, 4 seeds x 2 learning rates) through ``liquid-rl sweep`` against the same 8 trainings
as plain ``liquid-rl train`` processes one after the other.

    python scripts/bench_sweep_overhead.py --out /tmp/sweep_overhead [--steps 4096]

Prints one JSON line: wall seconds of the plain processes, of the sweep with one trial at
a time and with two, and Ray's start-up inside the sweep.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SEEDS = [0, 1, 2, 3]
RATES = [0.001, 0.0003]


def fixed(steps: int) -> dict:
    return {"train.total_timesteps": steps, "train.eval_every": steps // 4, "train.checkpoint_every": steps // 4,
            "train.eval_episodes": 2, "env.n_envs": 4, "algo.hyperparams.n_steps": 64}


def cli(*args: str) -> tuple[float, str]:
    t = time.time()
    done = subprocess.run([sys.executable, "-m", "liquid_rl.cli", *args], capture_output=True, text=True, check=True)
    return time.time() - t, done.stderr


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=4096)
    a = p.parse_args()
    shutil.rmtree(a.out, ignore_errors=True)
    a.out.mkdir(parents=True)
    base = str(ROOT / "configs" / "cartpole_novel_mlp.yaml")
    sweep = a.out / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"base": base, "seeds": SEEDS, "set": fixed(a.steps),
                                     "grid": {"algo.hyperparams.learning_rate": RATES}}))
    result: dict = {"trials": len(SEEDS) * len(RATES), "steps": a.steps}
    t = time.time()
    for rate in RATES:
        for seed in SEEDS:
            sets = [f"{k}={v}" for k, v in {**fixed(a.steps), "algo.hyperparams.learning_rate": rate}.items()]
            cli("train", "--config", base, "--seed", str(seed), "--out", str(a.out / "plain" / f"{rate}-{seed}"),
                *[x for s in sets for x in ("--set", s)])
    result["plain_s"] = round(time.time() - t, 1)
    for n in (1, 2):
        wall, err = cli("sweep", str(sweep), "--out", str(a.out / f"sweep{n}"), "--max-concurrent", str(n))
        result[f"sweep_{n}_at_a_time_s"] = round(wall, 1)
    rows = [json.loads(line) for line in (a.out / "sweep1" / "trials.jsonl").read_text().splitlines()]
    result["sweep_1_trial_wall_s_sum"] = round(sum(r["wall_s"] for r in rows), 1)
    ray = re.search(r"Ray started in ([0-9.]+) s", err)
    result["ray_start_s"] = float(ray.group(1)) if ray else None
    print(json.dumps(result))


if __name__ == "__main__":
    main()
