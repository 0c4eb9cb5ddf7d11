"""Lane-keeping robustness comparison: train NCP, LSTM, CfC and MLP/CNN, then sweep perturbations.

Trains the configs in order with ``liquid-rl train`` (one process at a time), evaluates
each finished run with ``liquid-rl robustness`` and appends one line per run to the
results file; finished runs are skipped on a rerun (an interrupted training resumes).
Then the rows of all finished runs of an env are pooled per config into
``<results dir>/lane_keeping_robustness_<env>.{json,png}``.

Order: the state env first (every config with seed 0, then seeds 1, 2), pixels after.

    nice -n 15 python scripts/bench_lane_keeping.py --runs runs/lane_keeping \\
        --results docs/results/lane_keeping_robustness.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: env tag -> (configs in order, perturbations)
SUITES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "state": (
        ("lane_keeping_ncp", "lane_keeping_lstm", "lane_keeping_cfc", "lane_keeping_mlp"),
        ("noise=0,0.05,0.1,0.2,0.4", "dropout=0,0.1,0.2,0.4", "delay=0,1,2,4", "control_rate=-0.5,0,0.5,1"),
    ),
    "pixels": (
        ("lane_keeping_pixels_ncp", "lane_keeping_pixels_lstm", "lane_keeping_pixels_cfc", "lane_keeping_pixels_cnn"),
        ("noise=0,0.05,0.1,0.2", "dropout=0,0.05,0.1,0.2", "delay=0,1,2,4", "control_rate=-0.5,0,0.5,1",
         "brightness=-0.5,0,0.5,1", "occlusion=0,0.1,0.25", "blur=0,0.5,1,2"),
    ),
}


def _cli(*args: str) -> None:
    cmd = [sys.executable, "-m", "liquid_rl.cli", *args]
    print("+", " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def _finished(results: Path) -> dict[tuple[str, int], set[str]]:
    """(config, seed) -> the perturbation kinds already measured (a run may have several lines)."""
    done: dict[tuple[str, int], set[str]] = {}
    if not results.is_file():
        return done
    for line in results.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            done.setdefault((r["config"], int(r["seed"])), set()).update(x["perturbation"] for x in r["rows"])
    return done


def _pool(results: Path, env: str) -> None:
    from liquid_rl.agents.robustness import write_robustness

    if not results.is_file():
        return
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    runs = [r for r in rows if r["env"] == env]
    if not runs:
        return
    out = results.parent / f"lane_keeping_robustness_{env}"
    settings = {"episodes": runs[0]["episodes"], "seed": 0, "deterministic": True,
                "runs": list(dict.fromkeys(f"{r['config']}@{r['seed']}" for r in runs))}
    write_robustness([row for r in runs for row in r["rows"]], out, settings)
    print(f"pooled {len(settings['runs'])} runs -> {out}", flush=True)


def table(results: Path, env: str) -> str:
    """The pooled rows of ``env`` as a markdown table: mean return [95% CI] per policy and level."""
    path = results.parent / f"lane_keeping_robustness_{env}" / "robustness.json"
    if not path.is_file():
        return f"(no finished {env} runs)"
    pooled = json.loads(path.read_text())["pooled"]
    policies = list(dict.fromkeys(r["policy"] for r in pooled))
    runs = {r["policy"]: r["runs"] for r in pooled}
    short = {p: p.split(", ")[-1] for p in policies}  # "<env>, <algorithm>, <policy>": the policy
    lines = ["| perturbation | level | " + " | ".join(f"{short[p]} (n={runs[p]})" for p in policies) + " |",
             "|---|---|" + "---|" * len(policies)]
    for kind in dict.fromkeys(r["perturbation"] for r in pooled):
        for level in sorted({r["level"] for r in pooled if r["perturbation"] == kind}):
            cells = []
            for p in policies:
                r = next((r for r in pooled if (r["policy"], r["perturbation"], r["level"]) == (p, kind, level)), None)
                cells.append("-" if r is None else f"{r['mean_return']:.1f} [{r['ci_low']:.1f}, {r['ci_high']:.1f}]")
            lines.append(f"| {kind} | {level:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", default="runs/lane_keeping", help="directory of the training runs")
    p.add_argument("--results", default="docs/results/lane_keeping_robustness.jsonl")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--envs", nargs="+", choices=list(SUITES), default=list(SUITES))
    p.add_argument("--configs", nargs="+", default=None,
                   help="only these configs (names in configs/, e.g. lane_keeping_lstm); default: all of each env")
    p.add_argument("--timesteps", type=int, default=150_000, help="training budget of every run")
    p.add_argument("--episodes", type=int, default=10, help="evaluation episodes per level")
    p.add_argument("--table", action="store_true", help="print the pooled results as markdown and exit")
    args = p.parse_args(argv)
    runs, results = ROOT / args.runs, ROOT / args.results
    if args.table:
        for env in args.envs:
            print(f"{env}:\n{table(results, env)}\n")
        return 0
    results.parent.mkdir(parents=True, exist_ok=True)
    for env in args.envs:
        configs, perturb = SUITES[env]
        for seed in args.seeds:
            for config in configs:
                if args.configs is not None and config not in args.configs:
                    continue
                done = _finished(results).get((config, seed), set())
                todo = [x for x in perturb if x.partition("=")[0] not in done]
                if not todo:
                    continue
                run = runs / f"{config}_s{seed}"
                if (run / "final" / "model.zip").is_file():
                    pass
                elif run.is_dir():
                    _cli("train", "--resume", str(run))
                else:
                    _cli("train", "--config", str(ROOT / "configs" / f"{config}.yaml"), "--seed", str(seed),
                         "--set", f"train.total_timesteps={args.timesteps}", "--out", str(run))
                # kinds added to a suite later are measured on their own, next to the first ones
                out = run / ("robustness" if not done else "robustness_" + "_".join(x.partition("=")[0] for x in todo))
                name = os.path.relpath(run, ROOT) if run.is_relative_to(ROOT) else str(run)
                _cli("robustness", name, *[a for x in todo for a in ("--perturb", x)],
                     "--episodes", str(args.episodes), "--out", str(out))
                data = json.loads((out / "robustness.json").read_text())
                line = {"env": env, "config": config, "seed": seed, "timesteps": args.timesteps,
                        "episodes": args.episodes, "rows": data["rows"]}
                with results.open("a") as f:
                    f.write(json.dumps(line) + "\n")
                _pool(results, env)
    for env in args.envs:  # again at the end: two instances on disjoint --configs may interleave
        _pool(results, env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
