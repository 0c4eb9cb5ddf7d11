"""The ``liquid-rl`` command: one module of this package per subcommand.

::

    liquid-rl train --config FILE [--set key=value ...] [--seed N] [--out DIR] [--device auto|cpu|cuda] [--overwrite]
    liquid-rl train --resume DIR
    liquid-rl eval RUN_OR_MODEL --episodes N [--deterministic] [--video FILE.mp4] [--noise SIGMA] [--json FILE]
    liquid-rl inspect RUN_OR_MODEL [--out DIR]
    liquid-rl robustness RUN [RUN ...] --perturb KIND=LEVELS [--perturb ...] [--episodes N] [--out DIR]
    liquid-rl check FILE [--set key=value ...]
    liquid-rl sweep SWEEP.yaml [--out DIR] [--address ADDR] [--max-concurrent N]
    liquid-rl report SWEEP_DIR [SWEEP_DIR ...] [--out DIR] [--baseline SETTING]
    liquid-rl list envs|configs|cells [--dir DIR]
    liquid-rl export RUN_OR_MODEL [--model best|final] --format onnx|torchscript --out FILE

Each subcommand module has ``add_parser(subparsers)`` and ``run(args) -> int``; adding a
command is a new module plus one line in ``COMMANDS``. Bad input (an invalid config, a
missing or corrupt model file, an existing run directory) prints one line,
``liquid-rl: error: ...``, and exits with status 2, having written nothing.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from liquid_rl.cli.args import UsageError

__all__ = ["main", "build_parser", "COMMANDS", "EXIT_USAGE"]

EXIT_USAGE = 2

# command name -> module of this package that defines it, in the order of ``--help``.
COMMANDS: dict[str, str] = {
    "train": "train",
    "eval": "evaluate",
    "inspect": "inspect",
    "check": "check",
    "list": "list",
    "sweep": "sweep",
    "report": "report",
    "export": "export",
    "robustness": "robustness",
}


def _module(command: str):
    return importlib.import_module(f"liquid_rl.cli.{COMMANDS[command]}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="liquid-rl",
        description="Train, evaluate and inspect liquid neural network policies (stable-baselines3).")
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}")
    sub.required = True
    for command in COMMANDS:
        _module(command).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``liquid-rl`` console script; returns the exit status."""
    os.environ.setdefault("MUJOCO_GL", "egl")  # headless MuJoCo rendering, set before mujoco loads
    parser = build_parser()
    args = parser.parse_args(argv)
    from liquid_rl.agents.config import UserError

    try:
        return _module(args.command).run(args)
    except (UserError, UsageError) as e:
        message = " ".join(str(e).split("\n")[0].split())
        print(f"liquid-rl: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
