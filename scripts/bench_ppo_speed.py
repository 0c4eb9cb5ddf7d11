"""RecurrentPPO training throughput: a liquid cell against sb3-contrib's LSTM policy.

Both runs train RecurrentPPO on the same env with the same hyperparameters (RL Zoo's
CartPoleNoVel-v1 settings by default) for a fixed number of env steps, one after the
other in this process, and report env steps per second of wall clock (rollouts and
updates together) and the ratio liquid / LSTM::

    python scripts/bench_ppo_speed.py --steps 20000 --units 32
    python scripts/bench_ppo_speed.py --cell cfc --steps 20000
    python scripts/bench_ppo_speed.py --cell-options '{"kernel": "compiled"}'
    python scripts/bench_ppo_speed.py --env liquid_rl/LaneKeepingPixels-v0 --cell cfc --steps 4096 \
        --n-steps 128 --n-epochs 4

On an image env both policies read the images through the same conv head
(``liquid_rl.conv.NCPConvExtractor``): sb3-contrib's ``CnnLstmPolicy`` against
``CnnLiquidRecurrentPolicy``.

With ``--profile PATH`` the liquid run is profiled with cProfile (top functions printed).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import time
from typing import Any

import torch
from sb3_contrib import RecurrentPPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.preprocessing import is_image_space

import liquid_rl.envs  # noqa: F401  (registers the envs)
from liquid_rl.conv import NCPConvExtractor
from liquid_rl.policies import CnnLiquidRecurrentPolicy, LiquidRecurrentPolicy

# RL Zoo (recurrentppo.yml) CartPoleNoVel-v1, without VecNormalize (throughput only).
HYPER: dict[str, Any] = dict(n_steps=32, batch_size=256, n_epochs=20, gamma=0.98, gae_lambda=0.8,
                             learning_rate=1e-3, ent_coef=0.0, clip_range=0.2)
HEAD: dict[str, Any] = dict(ortho_init=False, activation_fn=torch.nn.ReLU, net_arch=dict(pi=[64], vf=[64]))


def run(policy: Any, policy_kwargs: dict[str, Any], env_id: str, n_envs: int, steps: int, seed: int,
        profile: str | None = None, hyper: dict[str, Any] | None = None) -> tuple[float, float]:
    """Train for ``steps`` env steps (after a warm-up of one rollout and update); return env
    steps per second of wall clock and of this process's CPU time (robust to other load)."""
    hyper = dict(HYPER, **(hyper or {}))
    env = make_vec_env(env_id, n_envs=n_envs, seed=seed)
    model = RecurrentPPO(policy, env, seed=seed, policy_kwargs=policy_kwargs, **hyper)
    model.learn(n_envs * hyper["n_steps"])  # warm-up: one rollout and update
    prof = cProfile.Profile() if profile else None
    start, cpu = time.perf_counter(), time.process_time()
    if prof:
        prof.enable()
    model.learn(steps, reset_num_timesteps=False)
    if prof:
        prof.disable()
        prof.dump_stats(profile)
        pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
    return steps / (time.perf_counter() - start), steps / (time.process_time() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="liquid_rl/CartPoleNoVel-v1")
    parser.add_argument("--cell", default="ltc", help="liquid cell: ltc, cfc, liquid_s4")
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--n-steps", type=int, default=HYPER["n_steps"], help="rollout steps per env")
    parser.add_argument("--n-epochs", type=int, default=HYPER["n_epochs"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--cell-options", default="{}", help='JSON of cell options, e.g. \'{"kernel": "compiled"}\'')
    parser.add_argument("--profile", default=None, help="write a cProfile of the liquid run here")
    parser.add_argument("--json", default=None, help="append the result as a JSON line to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    hyper = dict(n_steps=args.n_steps, n_epochs=args.n_epochs)
    images = is_image_space(make_vec_env(args.env, n_envs=1).observation_space)
    head = dict(HEAD, features_extractor_class=NCPConvExtractor) if images else HEAD
    lstm, lstm_cpu = run("CnnLstmPolicy" if images else "MlpLstmPolicy", dict(head, lstm_hidden_size=args.units),
                         args.env, args.n_envs, args.steps, args.seed, hyper=hyper)
    print(f"LSTM-{args.units}: {lstm:.0f} env steps/s wall clock, {lstm_cpu:.0f} per CPU second")
    options = json.loads(args.cell_options)
    liquid, liquid_cpu = run(CnnLiquidRecurrentPolicy if images else LiquidRecurrentPolicy,
                             dict(head, cell=args.cell, units=args.units, **options), args.env,
                             args.n_envs, args.steps, args.seed, args.profile, hyper)
    print(f"{args.cell.upper()}-{args.units} {options or ''}: {liquid:.0f} env steps/s wall clock, "
          f"{liquid_cpu:.0f} per CPU second")
    print(f"ratio {args.cell}/lstm: {liquid / lstm:.2f} (wall clock), {liquid_cpu / lstm_cpu:.2f} (CPU time)")
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps(dict(env=args.env, cell=args.cell, units=args.units, steps=args.steps,
                                    n_envs=args.n_envs, n_steps=args.n_steps, n_epochs=args.n_epochs,
                                    threads=args.threads, cell_options=options, lstm_sps=lstm,
                                    liquid_sps=liquid, ratio=liquid / lstm, lstm_cpu_sps=lstm_cpu,
                                    liquid_cpu_sps=liquid_cpu, cpu_ratio=liquid_cpu / lstm_cpu)) + "\n")


if __name__ == "__main__":
    main()
