"""``liquid-rl check``: validate configs (schema, then build env and model once) without training."""

from __future__ import annotations

import argparse

HELP = "validate configs without training"


def add_parser(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("check", help=HELP,
                       description="Validate configs: schema, then build the env and model once.")
    c.add_argument("configs", nargs="+", metavar="FILE")
    c.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")


def run(args: argparse.Namespace) -> int:
    from liquid_rl.agents.build import check_buildable
    from liquid_rl.agents.config import load_config

    for path in args.configs:
        cfg = load_config(path, args.overrides)
        check_buildable(cfg)
        print(f"{path}: ok ({cfg['env']['id']}, {cfg['algo']['name']}, policy {cfg['policy']['type']})")
    return 0
