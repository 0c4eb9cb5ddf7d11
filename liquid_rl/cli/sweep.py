"""``liquid-rl sweep``: run a sweep file (grid or Optuna search) on Ray Tune; rerun to resume."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from liquid_rl.cli.args import positive_int

HELP = "run a sweep of trainings (grid or Optuna search) on Ray Tune"


def add_parser(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("sweep", help=HELP, description=(
        "Run every trial of a sweep file as an ordinary training on Ray Tune. Rerunning the same "
        "command after a kill skips finished trials and resumes the others from their checkpoints."))
    c.add_argument("sweep", metavar="SWEEP.yaml")
    c.add_argument("--out", default=None, metavar="DIR", help="sweep directory (default sweeps/<sweep name>)")
    c.add_argument("--address", default=None, metavar="ADDR",
                   help="an existing Ray cluster (default: a local Ray started for this sweep)")
    c.add_argument("--max-concurrent", type=positive_int, default=None, metavar="N",
                   help="trials at once (default: the file's max_concurrent, else as many as the CPUs allow)")


def run(args: argparse.Namespace) -> int:
    from liquid_rl.agents.sweep.runner import run_sweep, summary_line
    from liquid_rl.agents.sweep.spec import load_sweep

    spec = load_sweep(args.sweep)
    out = Path(args.out) if args.out is not None else Path("sweeps") / Path(args.sweep).stem
    summary = run_sweep(spec, out, address=args.address, max_concurrent=args.max_concurrent)
    print(summary_line(summary), file=sys.stderr)
    if summary["unfinished"]:
        return 130  # interrupted, as the train command
    return 0 if summary["error"] == 0 else 1
