#!/usr/bin/env python
"""Steps per second of the liquid-rl environments, on one CPU core.

Each environment is made with ``gymnasium.make`` (so with Gymnasium's default
wrappers), driven by pre-drawn random actions for ``--seconds`` seconds, and reset when
an episode ends. Rates printed: ``step/s`` counts only the time spent in ``env.step``
(wall clock), ``CPU step/s`` the same in process CPU time (steadier when the machine
is shared), ``incl. reset`` the whole loop (random actions end lane-keeping episodes
every few dozen steps, so resets weigh more there than in training).

    python scripts/bench_envs.py                 # all environments
    python scripts/bench_envs.py --ids liquid_rl/LaneKeeping-v0 --seconds 5
    python scripts/bench_envs.py --json results.json

Targets (checked on CPU step/s; exit status 1 if missed): LaneKeeping-v0 >= 20k
step/s, LaneKeepingPixels-v0 >= 2k step/s.
"""

from __future__ import annotations

import os

# One core, no thread pools: set before numpy is imported.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("MUJOCO_GL", "egl")

import argparse
import json
import platform
import sys
import time
import warnings
from typing import Any

import gymnasium as gym
import numpy as np

import liquid_rl.envs as lenvs
from liquid_rl.envs.wrappers import IrregularTime

TARGETS = {"liquid_rl/LaneKeeping-v0": 20_000, "liquid_rl/LaneKeepingPixels-v0": 2_000}

#: Extra configurations measured for information: (label, id, make kwargs, wrapper).
EXTRA = [
    ("liquid_rl/LaneKeepingPixels-v0 view=top_down", "liquid_rl/LaneKeepingPixels-v0",
     {"view": "top_down"}, None),
    ("IrregularTime(LaneKeeping-v0, mode=dt)", "liquid_rl/LaneKeeping-v0", {},
     lambda env: IrregularTime(env, mode="dt", low=0.05, high=0.2)),
]


def pin_to_one_core() -> str:
    """Restrict this process to one CPU core (Linux); returns a description."""
    if hasattr(os, "sched_setaffinity"):
        cores = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cores[-1]})
        return f"pinned to core {cores[-1]}"
    return "not pinned (no sched_setaffinity)"


def bench(env: gym.Env, seconds: float, seed: int = 0) -> dict[str, Any]:
    """Run ``env`` for about ``seconds`` and return the measured rates.

    Wall-clock rates suffer when other processes share the core; the CPU-time rate
    (``time.process_time``) is steadier on a busy machine. Resets are timed apart
    and subtracted to get the step-only rates.
    """
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(1024)]
    env.reset(seed=seed)
    # Warm-up (first-call costs, lazy imports, caches).
    for i in range(20):
        _, _, term, trunc, _ = env.step(actions[i])
        if term or trunc:
            env.reset()
    steps = episodes = 0
    reset_wall = reset_cpu = 0.0
    wall, cpu = time.perf_counter, time.process_time
    start_wall, start_cpu = wall(), cpu()
    while True:
        for _ in range(64):
            _, _, term, trunc, _ = env.step(actions[steps & 1023])
            steps += 1
            if term or trunc:
                episodes += 1
                t0, c0 = wall(), cpu()
                env.reset()
                reset_wall += wall() - t0
                reset_cpu += cpu() - c0
        if wall() - start_wall >= seconds:
            break
    total_wall = wall() - start_wall
    total_cpu = cpu() - start_cpu
    return {
        "steps": steps,
        "steps_per_s": steps / (total_wall - reset_wall),
        "steps_per_cpu_s": steps / max(total_cpu - reset_cpu, 1e-9),
        "steps_per_s_with_reset": steps / total_wall,
        "mean_episode_length": steps / max(episodes, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", nargs="*", default=None, help="env ids (default: all)")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per env")
    parser.add_argument("--no-extra", action="store_true", help="skip the extra configurations")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)

    pinned = pin_to_one_core()
    cases = [(i, i, {}, None) for i in (args.ids or lenvs.ENV_IDS)]
    if not args.ids and not args.no_extra:
        cases += EXTRA

    print(f"# python {platform.python_version()}, numpy {np.__version__}, "
          f"gymnasium {gym.__version__}, {platform.machine()}, {pinned}")
    header = (f"{'environment':<48} {'obs':>9} {'step/s':>9} {'CPU step/s':>11} "
              f"{'incl. reset':>12} {'ep. len':>8}")
    print(header)
    print("-" * len(header))
    results = []
    failed = False
    for label, env_id, kwargs, wrap in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            env = gym.make(env_id, **kwargs)
            if wrap is not None:
                env = wrap(env)
            r = bench(env, args.seconds)
            env.close()
        space = env.observation_space
        shape = "dict" if isinstance(space, gym.spaces.Dict) else "x".join(map(str, space.shape))
        mark = ""
        if label in TARGETS:
            # CPU time: what one core delivers, even when other processes share it.
            ok = r["steps_per_cpu_s"] >= TARGETS[label]
            failed |= not ok
            mark = f"  (target {TARGETS[label]}: {'ok' if ok else 'MISSED'})"
        print(f"{label:<48} {shape:>9} {r['steps_per_s']:>9,.0f} {r['steps_per_cpu_s']:>11,.0f} "
              f"{r['steps_per_s_with_reset']:>12,.0f} {r['mean_episode_length']:>8.0f}{mark}",
              flush=True)
        results.append({"env": label, "obs": shape, **r})
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"pinned": pinned, "results": results}, f, indent=2)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
