"""Benchmarks of recurrent SAC (``liquid_rl.agents.RecurrentSAC``); results in docs/benchmarks.md.

``--speed``: gradient updates per second of RecurrentSAC (sequences of L steps after a
burn-in, ``batch_size`` sequences per update) against stable-baselines3's SAC (MLP,
256 transitions per update), on ``PendulumNoVel-v1`` with a filled replay buffer, one
torch thread; per wall-clock second and per second of process CPU time (which other
jobs on a shared machine do not change). One JSON line per configuration in
``--speed-results``.

``--learn``: the learning suite. Each (task, policy, seed) trains for the task's budget
and then plays 20 deterministic evaluation episodes on a separately seeded env (the
recurrent state carried through each episode); one JSON line per finished run in
``--results``, written as soon as it finishes. Every ``--eval-every`` steps a run also
evaluates 5 episodes (the learning curve in the row, the entropy temperature beside it)
and saves a checkpoint (model and replay buffer) under ``--checkpoints``, so an
interrupted run resumes from its last checkpoint and a rerun skips finished rows::

    python scripts/bench_recurrent_sac.py --speed
    python scripts/bench_recurrent_sac.py --speed --device cuda
    python scripts/bench_recurrent_sac.py --learn --tasks PendulumNoVel-v1 --seeds 0 1 2
    python scripts/bench_recurrent_sac.py --learn --tasks HalfCheetah-P-v5 HalfCheetah-V-v5 --seeds 0 1 2
    python scripts/bench_recurrent_sac.py --summary

Each finished run also leaves its trained agent (``<checkpoints>/<task>_<policy>_<seed>_final.zip``);
``--memory-probe`` replays one with the actor state reset every N steps, which shows how
far back its memory matters::

    python scripts/bench_recurrent_sac.py --tasks HalfCheetah-P-v5 \
        --memory-probe runs/bench_recurrent_sac/HalfCheetah-P-v5_rsac-cfc-stored_1_final.zip

Policies (``--policies`` selects):

- ``rsac-cfc``: RecurrentSAC, CfC with 64 units for the actor and for each critic,
  heads [256, 256], windows of 8 burn-in + 16 learning steps, 16 windows per update
  (256 transitions, as SAC's batch);
- ``rsac-lstm``: the same with an LSTM of 64 units;
- ``rsac-cfc-stored``: ``rsac-cfc`` whose burn-in starts from the actor state stored
  while acting (``burn_in_state="stored"``) instead of zeros;
- ``rsac-cfc-w32``: ``rsac-cfc`` with 32 windows of 8 burn-in + 8 learning steps (the
  same 256 transitions per update from twice as many independent windows);
- ``sac-mlp``: SAC with an MLP [256, 256] on the current observation;
- ``sac-stack``: SAC with an MLP on 4 stacked observations (``VecFrameStack``);
- ``sac-history``: SAC on 4 stacked observations read by ``LiquidHistoryExtractor``
  (CfC, 64 units) in actor and critic.

Budgets and hyperparameters per task are in ``TASKS``; all policies of a task share them.
Seeds run outermost, so every (task, policy) gets seed 0 before any gets seed 1. On a machine
with many cores, ``--jobs N`` runs N of them at once, each in its own process::

    python scripts/bench_recurrent_sac.py --learn --tasks HalfCheetah-P-v5 --policies sac-mlp sac-stack --jobs 6
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from collections import defaultdict
from typing import Any

import numpy as np
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv, VecFrameStack

import liquid_rl.envs  # noqa: F401  (registers the envs)
from liquid_rl.agents.recurrent_sac import RecurrentSAC

#: task -> budget, evaluation interval and the hyperparameters shared by all policies.
TASKS: dict[str, dict[str, Any]] = {
    "PendulumNoVel-v1": dict(steps=50_000, learning_rate=1e-3, learning_starts=1_000),
    "HalfCheetah-P-v5": dict(steps=100_000, learning_rate=3e-4, learning_starts=10_000),
    "HalfCheetah-V-v5": dict(steps=100_000, learning_rate=3e-4, learning_starts=10_000),
}
#: RecurrentSAC's sequence settings in the learning suite: 16 windows x 16 learning steps.
RSAC = dict(sequence_length=16, burn_in=8, batch_size=16, burn_in_state="zero")
#: RecurrentSAC policies of the suite: the core's cell and what differs from ``RSAC``.
RSAC_POLICIES: dict[str, dict[str, Any]] = {
    "rsac-cfc": dict(cell="cfc"),
    "rsac-lstm": dict(cell="lstm"),
    "rsac-cfc-stored": dict(cell="cfc", burn_in_state="stored"),
    "rsac-cfc-w32": dict(cell="cfc", sequence_length=8, batch_size=32),
}
POLICIES = (*RSAC_POLICIES, "sac-mlp", "sac-stack", "sac-history")


def rsac_sequence(policy: str) -> dict[str, Any]:
    """The sequence settings (``RSAC`` with the policy's changes) of a RecurrentSAC policy."""
    return {**RSAC, **{k: v for k, v in RSAC_POLICIES[policy].items() if k != "cell"}}
N_STACK = 4


def env_id(task: str) -> str:
    return f"liquid_rl/{task}"


def make_env(task: str, policy: str, seed: int) -> VecEnv:
    env = make_vec_env(env_id(task), n_envs=1, seed=seed)
    if policy in ("sac-stack", "sac-history"):
        env = VecFrameStack(env, n_stack=N_STACK)
    return env


def make_model(task: str, policy: str, env: VecEnv, seed: int, device: str = "cpu",
               steps: int | None = None) -> BaseAlgorithm:
    """The agent of ``policy`` for ``task``. Its replay buffer holds the whole budget
    (``steps``, default the task's): nothing is overwritten, as with SAC's 1M default,
    and a checkpoint pickles 100k steps instead of an empty 1M (600 MB with 4 stacked
    HalfCheetah observations)."""
    hp = {k: v for k, v in TASKS[task].items() if k != "steps"}
    common = dict(seed=seed, device=device, verbose=0, buffer_size=steps or TASKS[task]["steps"], **hp)
    if policy in RSAC_POLICIES:
        kwargs = dict(cell=RSAC_POLICIES[policy]["cell"], units=64, net_arch=[256, 256])
        return RecurrentSAC("RecurrentSACPolicy", env, policy_kwargs=kwargs, **rsac_sequence(policy), **common)
    if policy in ("sac-mlp", "sac-stack"):
        return SAC("MlpPolicy", env, **common)
    if policy == "sac-history":
        from liquid_rl.extractors import LiquidHistoryExtractor

        kwargs = dict(features_extractor_class=LiquidHistoryExtractor,
                      features_extractor_kwargs=dict(history=N_STACK, cell="cfc", units=64))
        return SAC("MlpPolicy", env, policy_kwargs=kwargs, **common)
    raise ValueError(f"unknown policy {policy!r}; choose from {POLICIES}")


def count_params(model: BaseAlgorithm) -> int:
    actor = getattr(model, "actor", None) or model.policy
    return int(sum(p.numel() for p in actor.parameters()))


def evaluate(model: BaseAlgorithm, task: str, policy: str, seed: int, episodes: int) -> tuple[float, float]:
    env = make_env(task, policy, 10_000 + seed)
    mean, std = evaluate_policy(model, env, n_eval_episodes=episodes, deterministic=True)
    env.close()
    return float(mean), float(std)


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


def run_one(task: str, policy: str, seed: int, eval_every: int, checkpoints: str,
            device: str = "cpu", steps: int | None = None) -> dict[str, Any]:
    """Train (resuming from a checkpoint if one exists), evaluate, return the result row."""
    steps = steps or TASKS[task]["steps"]
    ckpt = os.path.join(checkpoints, f"{task}_{policy}_{seed}")
    env = make_env(task, policy, seed)
    cls = RecurrentSAC if policy in RSAC_POLICIES else SAC
    progress: dict[str, Any] = dict(curve=[], wall_s=0.0)
    found = find_checkpoint(ckpt)
    if found is not None:
        with open(os.path.join(found, "progress.json")) as f:
            progress = json.load(f)
        model = cls.load(os.path.join(found, "model.zip"), env=env, device=device)
        model.load_replay_buffer(os.path.join(found, "buffer.pkl"))
        print(f"  resumed at {model.num_timesteps} steps", flush=True)
    else:
        model = make_model(task, policy, env, seed, device, steps)
    while model.num_timesteps < steps:
        t0 = time.time()
        chunk = min(eval_every, steps - model.num_timesteps)
        model.learn(chunk, reset_num_timesteps=False, progress_bar=False)
        progress["wall_s"] += time.time() - t0
        mean, _ = evaluate(model, task, policy, seed, 5)
        progress["curve"].append([int(model.num_timesteps), round(mean, 2)])
        # the entropy temperature beside the curve: where a run collapses, it shows whether alpha moved
        if getattr(model, "log_ent_coef", None) is not None:
            progress.setdefault("ent_coef", []).append(round(float(model.log_ent_coef.detach().exp().item()), 5))
        print(f"  {task} {policy} seed {seed}: {model.num_timesteps} steps, return {mean:.1f}, "
              f"{progress['wall_s']:.0f} s", flush=True)
        if model.num_timesteps < steps:
            write_checkpoint(ckpt, model, progress)
    mean, std = evaluate(model, task, policy, seed, 20)
    sequence = rsac_sequence(policy) if policy in RSAC_POLICIES else None
    row = dict(task=task, policy=policy, seed=seed, steps=int(model.num_timesteps), mean_return=round(mean, 2),
               std_return=round(std, 2), best_curve_return=max(r for _, r in progress["curve"]),
               curve=progress["curve"], ent_coef=progress.get("ent_coef"), updates=int(model._n_updates),
               wall_s=round(progress["wall_s"]), actor_params=count_params(model),
               hyperparameters={**TASKS[task], "steps": steps}, sequence=sequence, device=device,
               machine=machine(device))
    env.close()
    model.save(ckpt + "_final.zip")  # the trained agent, for looking at it afterwards (no replay buffer)
    for path in (ckpt, ckpt + ".old"):
        shutil.rmtree(path, ignore_errors=True)
    return row


def write_checkpoint(ckpt: str, model: BaseAlgorithm, progress: dict[str, Any]) -> None:
    """Model, replay buffer and progress into a fresh folder that then replaces ``ckpt``
    by renames: a kill at any point leaves ``ckpt`` or ``ckpt.old`` complete."""
    tmp = f"{ckpt}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    model.save(os.path.join(tmp, "model.zip"))
    model.save_replay_buffer(os.path.join(tmp, "buffer.pkl"))
    with open(os.path.join(tmp, "progress.json"), "w") as f:
        json.dump(progress, f)
    if os.path.exists(ckpt):   # complete, so an older one is not needed
        shutil.rmtree(ckpt + ".old", ignore_errors=True)
        os.rename(ckpt, ckpt + ".old")
    os.rename(tmp, ckpt)
    shutil.rmtree(ckpt + ".old", ignore_errors=True)


def find_checkpoint(ckpt: str) -> str | None:
    """The complete checkpoint folder of a run, if any (see :func:`write_checkpoint`)."""
    for path in (ckpt, ckpt + ".old"):
        if os.path.exists(os.path.join(path, "progress.json")):
            return path
    return None


def load_rows(path: str) -> list[dict[str, Any]]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def planned_runs(args: argparse.Namespace) -> list[tuple[str, str, int]]:
    """(task, policy, seed) in suite order, seeds outermost; the default policies differ per task."""
    return [(task, policy, seed) for seed in args.seeds for task in args.tasks
            for policy in (args.policies or default_policies(task))]


def append_row(path: str, row: dict[str, Any]) -> None:
    """One JSON line, under a lock: parallel runs (``--jobs``) share the results file."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(json.dumps(row) + "\n")
        f.flush()
        fcntl.flock(f, fcntl.LOCK_UN)


def learn(args: argparse.Namespace) -> None:
    if args.jobs > 1:
        learn_in_parallel(args)
        return
    for task, policy, seed in planned_runs(args):
        done = {(r["task"], r["policy"], r["seed"]) for r in load_rows(args.results)}
        if (task, policy, seed) in done:
            continue
        print(f"{task} {policy} seed {seed}", flush=True)
        try:
            row = run_one(task, policy, seed, args.eval_every, args.checkpoints, args.device, args.steps)
        except Exception:  # one failed run must not stop the suite
            traceback.print_exc()
            continue
        append_row(args.results, row)
        print(f"  -> {row['mean_return']:.1f} +- {row['std_return']:.1f}", flush=True)


def learn_in_parallel(args: argparse.Namespace) -> None:
    """Each pending run in its own process (one torch thread each), ``--jobs`` at a time;
    a run's output goes to ``<checkpoints>/<task>_<policy>_<seed>.log``."""
    done = {(r["task"], r["policy"], r["seed"]) for r in load_rows(args.results)}
    pending = [run for run in planned_runs(args) if run not in done]
    os.makedirs(args.checkpoints, exist_ok=True)
    running: list[subprocess.Popen] = []
    while pending or running:
        while pending and len(running) < args.jobs:
            task, policy, seed = pending.pop(0)
            cmd = [sys.executable, os.path.abspath(__file__), "--learn", "--tasks", task, "--policies", policy,
                   "--seeds", str(seed), "--eval-every", str(args.eval_every), "--results", args.results,
                   "--checkpoints", args.checkpoints, "--device", args.device]
            if args.steps:
                cmd += ["--steps", str(args.steps)]
            log = open(os.path.join(args.checkpoints, f"{task}_{policy}_{seed}.log"), "a")
            running.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
            log.close()
            print(f"started {task} {policy} seed {seed}", flush=True)
        time.sleep(5)
        running = [p for p in running if p.poll() is None]


def summary(path: str) -> None:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in load_rows(path):
        groups[(r["task"], r["policy"])].append(r)
    print("| task | policy | seeds | return (mean +- std over seeds) | per seed | wall time per run |")
    print("|---|---|---|---|---|---|")
    for (task, policy), rows in sorted(groups.items()):
        means = [r["mean_return"] for r in rows]
        per_seed = ", ".join(f"{r['mean_return']:.0f}" for r in sorted(rows, key=lambda r: r["seed"]))
        walls: dict[str, list[float]] = defaultdict(list)
        for r in rows:
            walls[r.get("machine", "2 cores").rsplit(", ", 1)[-1]].append(r["wall_s"] / 60)
        wall = "; ".join(f"{np.mean(w):.0f} min ({m})" for m, w in sorted(walls.items()))
        print(f"| {task} | {policy} | {len(rows)} | {np.mean(means):.1f} +- {np.std(means):.1f} | {per_seed} "
              f"| {wall} |")


# ------------------------------------------------------------------ memory probe
def memory_probe(args: argparse.Namespace) -> None:
    """How far back a trained RecurrentSAC agent's memory matters: deterministic returns
    with the actor state reset every N steps (0: never, as the agent is meant to run)."""
    torch.set_num_threads(1)
    model = RecurrentSAC.load(args.memory_probe, device=args.device)
    task = args.tasks[0]
    for every in args.reset_every:
        env = make_vec_env(env_id(task), n_envs=1, seed=10_000)
        returns = []
        for _ in range(args.episodes):
            obs, state, start, total, t, done = env.reset(), None, np.ones(1, dtype=bool), 0.0, 0, False
            while not done:
                if every and t % every == 0:
                    start = np.ones(1, dtype=bool)
                action, state = model.predict(obs, state, start, deterministic=True)
                obs, reward, dones, _ = env.step(action)
                total, t, done, start = total + float(reward[0]), t + 1, bool(dones[0]), dones.copy()
            returns.append(total)
        env.close()
        print(f"{task}: reset every {every or 'never'}: {np.mean(returns):.1f} +- {np.std(returns):.1f} "
              f"over {args.episodes} episodes", flush=True)


# ------------------------------------------------------------------ speed
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--speed", action="store_true", help="gradient updates per second")
    mode.add_argument("--learn", action="store_true", help="the learning suite")
    mode.add_argument("--summary", action="store_true", help="print the learning results table")
    mode.add_argument("--memory-probe", metavar="AGENT", help="returns of a saved RecurrentSAC agent (e.g. a run's "
                      "_final.zip) with its state reset every --reset-every steps, on the first of --tasks")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--policies", nargs="+", default=None, choices=POLICIES,
                        help="default: rsac-cfc rsac-lstm sac-mlp on PendulumNoVel, all on HalfCheetah")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--eval-every", type=int, default=10_000)
    parser.add_argument("--results", default="docs/results/recurrent_sac.jsonl")
    parser.add_argument("--checkpoints", default="runs/bench_recurrent_sac")
    parser.add_argument("--speed-results", default="docs/results/recurrent_sac_speed.jsonl")
    parser.add_argument("--speed-configs", nargs="+", default=list(SPEED_CONFIGS), choices=list(SPEED_CONFIGS))
    parser.add_argument("--updates", type=int, default=100, help="timed gradient updates per configuration")
    parser.add_argument("--device", default="cpu", help="torch device of the models (cpu, cuda)")
    parser.add_argument("--reset-every", nargs="+", type=int, default=[0, 2, 8, 24], help="memory probe; 0: never")
    parser.add_argument("--episodes", type=int, default=10, help="memory probe: episodes per setting")
    parser.add_argument("--steps", type=int, default=None, help="budget per run instead of the task's (smoke runs)")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel processes (--learn), one core each")
    args = parser.parse_args()
    if args.summary:
        summary(args.results)
    elif args.memory_probe:
        memory_probe(args)
    elif args.speed:
        speed(args)
    else:
        torch.set_num_threads(1)
        learn(args)


def default_policies(task: str) -> list[str]:
    if task.startswith("PendulumNoVel"):
        return ["rsac-cfc", "rsac-lstm", "sac-mlp"]
    return ["rsac-cfc", "sac-mlp", "sac-stack", "sac-history"]


if __name__ == "__main__":
    main()
