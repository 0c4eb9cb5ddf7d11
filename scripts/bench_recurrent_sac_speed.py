"""Speed of recurrent SAC (``liquid_rl.agents.RecurrentSAC``): gradient updates per second
(sequences of L steps after a burn-in, ``batch_size`` sequences per update) against
stable-baselines3's SAC (MLP, 256 transitions per update), on ``PendulumNoVel-v1`` with a
filled replay buffer, one torch thread; per wall-clock second and per second of process
CPU time (which other jobs on a shared machine do not change). One JSON line per
configuration in ``--speed-results``; configurations already there are skipped::

    python scripts/bench_recurrent_sac_speed.py
    python scripts/bench_recurrent_sac_speed.py --device cuda

The learning suite is a sweep: ``liquid-rl sweep benchmarks/recurrent_sac_inputs.yaml``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import torch
from stable_baselines3 import SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_util import make_vec_env

import liquid_rl.envs  # noqa: F401  (registers the envs)
from liquid_rl.agents.recurrent_sac import RecurrentSAC


def env_id(task: str) -> str:
    return f"liquid_rl/{task}"


def machine(device: str) -> str:
    """The processor, its core count (and the GPU) a row was measured on: wall times
    differ between machines. Rows without it were measured on a 2-core machine."""
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    cpu = f"{cpu}, {os.cpu_count()} cores"
    if torch.device(device).type == "cuda":
        return f"{torch.cuda.get_device_name()}, {cpu}"
    return cpu


def load_rows(path: str) -> list[dict[str, Any]]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]



SPEED_CONFIGS: dict[str, dict[str, Any]] = {
    "rsac-cfc64-L32-B32": dict(cell="cfc", units=64, sequence_length=32, burn_in=8, batch_size=32),
    "rsac-cfc64-L16-B16": dict(cell="cfc", units=64, sequence_length=16, burn_in=8, batch_size=16),
    "rsac-cfc64-L8-B32": dict(cell="cfc", units=64, sequence_length=8, burn_in=8, batch_size=32),
    "rsac-lstm64-L32-B32": dict(cell="lstm", units=64, sequence_length=32, burn_in=8, batch_size=32),
    "rsac-ltc32-L32-B32": dict(cell="ltc", units=32, sequence_length=32, burn_in=8, batch_size=32),
    "sac-mlp-B256": dict(batch_size=256),
}


def speed(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    done = {(r["config"], r.get("device", "cpu")) for r in load_rows(args.speed_results)}
    for name in args.speed_configs:
        if (name, device.type) in done:
            continue
        cfg = dict(SPEED_CONFIGS[name])
        env = make_vec_env(env_id("PendulumNoVel-v1"), n_envs=1, seed=0)
        fill = 2_000
        if name.startswith("rsac-"):
            policy_kwargs = dict(cell=cfg.pop("cell"), units=cfg.pop("units"), net_arch=[256, 256])
            model: BaseAlgorithm = RecurrentSAC("RecurrentSACPolicy", env, learning_starts=fill, seed=0,
                                                device=device, policy_kwargs=policy_kwargs, **cfg)
        else:
            model = SAC("MlpPolicy", env, learning_starts=fill, seed=0, device=device, **cfg)
        model.learn(fill)  # fills the buffer, no update
        model.train(gradient_steps=2, batch_size=model.batch_size)  # warm-up
        n = args.updates
        sync()
        t0, c0 = time.perf_counter(), time.process_time()
        model.train(gradient_steps=n, batch_size=model.batch_size)
        sync()
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        row = dict(config=name, updates=n, seconds=round(dt, 2), updates_per_s=round(n / dt, 2),
                   cpu_seconds=round(dc, 2), updates_per_cpu_s=round(n / dc, 2),
                   transitions_per_update=cfg.get("batch_size", 0) * cfg.get("sequence_length", 1),
                   settings=SPEED_CONFIGS[name], torch_threads=1, loadavg_1min=round(os.getloadavg()[0], 2),
                   device=device.type, machine=machine(args.device))
        print(json.dumps(row), flush=True)
        os.makedirs(os.path.dirname(args.speed_results) or ".", exist_ok=True)
        with open(args.speed_results, "a") as f:
            f.write(json.dumps(row) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--speed-results", default="docs/results/recurrent_sac_speed.jsonl")
    parser.add_argument("--speed-configs", nargs="+", default=list(SPEED_CONFIGS), choices=list(SPEED_CONFIGS))
    parser.add_argument("--updates", type=int, default=100, help="timed gradient updates per configuration")
    parser.add_argument("--device", default="cpu", help="torch device of the models (cpu, cuda)")
    speed(parser.parse_args())


if __name__ == "__main__":
    main()
