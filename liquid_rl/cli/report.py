"""``liquid-rl report``: statistics across seeds (rliable) of sweeps: a Markdown table and PNG plots."""

from __future__ import annotations

import argparse
from pathlib import Path

from liquid_rl.cli.args import positive_int, seed

HELP = "IQM, confidence intervals and plots across seeds of sweeps"


def add_parser(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("report", help=HELP, description=(
        "Aggregate the finished trials of sweeps per task and setting with rliable: interquartile mean "
        "with stratified bootstrap 95%% intervals, probability of improvement over a baseline, "
        "performance profiles, learning curves. Also reads the result files in docs/results/."))
    c.add_argument("sources", nargs="+", metavar="SWEEP_DIR", help="sweep directories or trials.jsonl files")
    c.add_argument("--out", default=None, metavar="DIR", help="where to write (default <first SWEEP_DIR>/report)")
    c.add_argument("--metric", choices=["final_return", "best_return"], default="final_return",
                   help="the score of a trial (default: the last evaluation's mean return)")
    c.add_argument("--baseline", default=None, metavar="SETTING",
                   help="setting (or a part of its name) others are compared with (default: each task's first)")
    c.add_argument("--reps", type=positive_int, default=2000, help="bootstrap replications (default 2000)")
    c.add_argument("--seed", type=seed, default=0, help="seed of the bootstrap (default 0)")


def run(args: argparse.Namespace) -> int:
    from liquid_rl.agents.sweep.report import write_report
    from liquid_rl.agents.sweep.results import read_sweep_rows

    rows = read_sweep_rows(args.sources)
    first = Path(args.sources[0])
    out = Path(args.out) if args.out else (first / "report" if first.is_dir() else first.with_suffix("") / "report")
    for path in write_report(rows, out, metric=args.metric, baseline=args.baseline, reps=args.reps, seed=args.seed):
        print(path)
    return 0
