"""``liquid-rl robustness``: evaluate saved agents under perturbations of growing strength."""

from __future__ import annotations

import argparse
from pathlib import Path

from liquid_rl.cli.args import DEVICES, UsageError, positive_int, seed

HELP = "robustness curves of saved agents under perturbations"


def add_parser(sub: argparse._SubParsersAction) -> None:
    from liquid_rl.agents.robustness import KINDS

    r = sub.add_parser(
        "robustness", help=HELP,
        description="Evaluate each run under each perturbation level (the same episode seeds for all) and "
                    "write robustness.json (mean return and 95%% bootstrap interval per run, perturbation and "
                    "level, and pooled over runs of the same config) and robustness.png. Level 0 is the plain "
                    "evaluation (eval --deterministic with the same --seed and --episodes).")
    r.add_argument("runs", nargs="+", metavar="RUN", help="run directories or model .zip files")
    r.add_argument("--perturb", action="append", required=True, metavar="KIND=LEVELS",
                   help=f"e.g. noise=0,0.1,0.2; KIND one of {', '.join(KINDS)} (repeatable)")
    r.add_argument("--episodes", type=positive_int, default=10, help="episodes per level (default 10)")
    r.add_argument("--seed", type=seed, default=0, help="seed of the evaluation episodes (default 0)")
    r.add_argument("--stochastic", action="store_true", help="sample actions instead of taking the mode")
    r.add_argument("--out", metavar="DIR", default="robustness", help="output directory (default ./robustness)")
    r.add_argument("--device", choices=DEVICES, default="auto")


def run(args: argparse.Namespace) -> int:
    from liquid_rl.agents.build import apply_threads
    from liquid_rl.agents.robustness import parse_perturbation, sweep, write_robustness
    from liquid_rl.agents.safe_load import load_agent

    perturbations = [parse_perturbation(text) for text in args.perturb]
    kinds = [p.kind for p in perturbations]
    if len(set(kinds)) != len(kinds):
        raise UsageError("--perturb: each kind may be given once")
    if len(set(args.runs)) != len(args.runs):
        raise UsageError("RUN: a run is given twice")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a directory")
    agents = [(name, load_agent(name, device=args.device)) for name in args.runs]
    apply_threads(agents[0][1].config)

    def show(row: dict) -> None:
        print(f"  {row['run']}  {row['perturbation']}={row['level']:g}  return {row['mean_return']:.1f} "
              f"[{row['ci_low']:.1f}, {row['ci_high']:.1f}]", flush=True)

    rows = sweep(agents, perturbations, episodes=args.episodes, seed=args.seed,
                 deterministic=not args.stochastic, on_row=show)
    settings = {"episodes": args.episodes, "seed": args.seed, "deterministic": not args.stochastic,
                "perturbations": {p.kind: list(p.levels) for p in perturbations}}
    json_path, png_path = write_robustness(rows, out, settings)
    print(f"  results {json_path}")
    print(f"  plot    {png_path}")
    return 0
