"""``liquid-rl train``: train from a config into a run directory, or resume a run."""

from __future__ import annotations

import argparse

from liquid_rl.cli.args import DEVICES, UsageError, seed

HELP = "train an agent from a YAML config, or resume a run"


def add_parser(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help=HELP,
                       description="Train an agent from a YAML config into a run directory, or resume a run.")
    src = t.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", metavar="FILE", help="experiment config (see docs/configs.md)")
    src.add_argument("--resume", metavar="DIR", help="continue a run from its latest checkpoint")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.total_timesteps=50000 (repeatable)")
    t.add_argument("--seed", type=seed, help="random seed (train.seed)")
    t.add_argument("--out", metavar="DIR", help="run directory (default runs/<config name>-seed<seed>)")
    t.add_argument("--device", choices=DEVICES, help="torch device (train.device)")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from liquid_rl.agents.train import resume, train

    progress = False if args.no_progress else None
    if args.resume:
        for flag in ("seed", "out"):
            if getattr(args, flag) is not None:
                raise UsageError(f"--resume continues a run as configured; drop --{flag}")
        if args.overwrite:
            raise UsageError("--resume and --overwrite do not go together")
        resume(args.resume, overrides=args.overrides, progress_bar=progress, device=args.device)
    else:
        train(args.config, args.out, overrides=args.overrides, seed=args.seed, device=args.device,
              overwrite=args.overwrite, progress_bar=progress)
    return 0
