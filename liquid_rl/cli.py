"""The ``liquid-rl`` command: train, evaluate and inspect agents.

::

    liquid-rl train --config FILE [--set key=value ...] [--seed N] [--out DIR] [--device auto|cpu|cuda] [--overwrite]
    liquid-rl train --resume DIR
    liquid-rl eval RUN_OR_MODEL --episodes N [--deterministic] [--video FILE.mp4] [--noise SIGMA] [--json FILE]
    liquid-rl inspect RUN_OR_MODEL [--out DIR]
    liquid-rl check FILE [--set key=value ...]

Bad input (an invalid config, a missing or corrupt model file, an existing run directory)
prints one line, ``liquid-rl: error: ...``, and exits with status 2, having written nothing.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main", "build_parser"]

EXIT_USAGE = 2


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text}")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="liquid-rl",
        description="Train, evaluate and inspect liquid neural network policies (stable-baselines3).")
    sub = parser.add_subparsers(dest="command", metavar="{train,eval,inspect,check}")
    sub.required = True

    t = sub.add_parser("train", help="train an agent from a YAML config, or resume a run",
                       description="Train an agent from a YAML config into a run directory, or resume a run.")
    src = t.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", metavar="FILE", help="experiment config (see docs/configs.md)")
    src.add_argument("--resume", metavar="DIR", help="continue a run from its latest checkpoint")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.total_timesteps=50000 (repeatable)")
    t.add_argument("--seed", type=_seed, help="random seed (train.seed)")
    t.add_argument("--out", metavar="DIR", help="run directory (default runs/<config name>-seed<seed>)")
    t.add_argument("--device", choices=["auto", "cpu", "cuda"], help="torch device (train.device)")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")

    e = sub.add_parser("eval", help="evaluate a run or model file",
                       description="Run episodes with a trained agent; print and save mean and std of "
                                   "return and episode length.")
    e.add_argument("source", metavar="RUN_OR_MODEL", help="run directory or model .zip")
    e.add_argument("--episodes", type=_positive_int, default=10, help="number of episodes (default 10)")
    e.add_argument("--deterministic", action="store_true", help="act with the mode of the action distribution")
    e.add_argument("--video", metavar="FILE.mp4", help="record the first episode (.mp4 or .gif)")
    e.add_argument("--noise", type=_non_negative_float, default=0.0, metavar="SIGMA",
                   help="std of Gaussian noise added to each observation entry (robustness)")
    e.add_argument("--json", metavar="FILE", help="results file (default <run>/eval.json, or beside the model)")
    e.add_argument("--seed", type=_seed, default=0, help="seed of the evaluation episodes (default 0)")
    e.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    e.add_argument("--no-progress", action="store_true", help="no progress bar")

    i = sub.add_parser("inspect", help="plot neuron activity and wiring of a liquid policy",
                       description="Run one episode and write neuron activity (heatmap, motor and command "
                                   "neuron traces) and the wiring diagram as PNGs.")
    i.add_argument("source", metavar="RUN_OR_MODEL", help="run directory or model .zip")
    i.add_argument("--out", metavar="DIR", help="output folder (default <run>/inspect)")
    i.add_argument("--seed", type=_seed, default=0, help="seed of the episode (default 0)")
    i.add_argument("--max-steps", type=_positive_int, help="stop the episode after this many steps")
    i.add_argument("--stochastic", action="store_true", help="sample actions instead of acting deterministically")
    i.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")

    c = sub.add_parser("check", help="validate configs without training",
                       description="Validate configs: schema, then build the env and model once.")
    c.add_argument("configs", nargs="+", metavar="FILE")
    c.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    return parser


def _default_json(source: str, noise: float) -> Path:
    from liquid_rl.agents.safe_load import resolve_model_path

    p = Path(source)
    name = "eval.json" if noise == 0 else f"eval_noise{noise:g}.json"
    if p.is_dir():
        return p / name
    model = resolve_model_path(p)
    return model.with_name(f"{model.stem}_{name}")


def _cmd_train(args: argparse.Namespace) -> int:
    from liquid_rl.agents.train import resume, train

    progress = False if args.no_progress else None
    if args.resume:
        for flag in ("seed", "out"):
            if getattr(args, flag) is not None:
                raise _usage(f"--resume continues a run as configured; drop --{flag}")
        if args.overwrite:
            raise _usage("--resume and --overwrite do not go together")
        resume(args.resume, overrides=args.overrides, progress_bar=progress, device=args.device)
    else:
        train(args.config, args.out, overrides=args.overrides, seed=args.seed, device=args.device,
              overwrite=args.overwrite, progress_bar=progress)
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from liquid_rl.agents.build import apply_threads
    from liquid_rl.agents.evaluate import evaluate
    from liquid_rl.agents.safe_load import load_agent

    # Load (and so check) the model before choosing where to write.
    agent = load_agent(args.source, device=args.device)
    apply_threads(agent.config)
    json_path = Path(args.json) if args.json else _default_json(args.source, args.noise)
    result = evaluate(agent, episodes=args.episodes, deterministic=args.deterministic, video=args.video,
                      noise=args.noise, json_path=json_path, seed=args.seed, progress=not args.no_progress)
    noise = f", observation noise sigma={args.noise:g}" if args.noise else ""
    print(f"{result['env_id']}: {result['episodes']} episodes ({'deterministic' if args.deterministic else 'stochastic'}"
          f"{noise}) of {result['model']}")
    print(f"  return  {result['mean_return']:.2f} +- {result['std_return']:.2f}")
    print(f"  length  {result['mean_length']:.1f} +- {result['std_length']:.1f}")
    print(f"  results {json_path}")
    if "video" in result:
        print(f"  video   {result['video']}")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from liquid_rl.agents.build import apply_threads
    from liquid_rl.agents.inspect import inspect_agent
    from liquid_rl.agents.safe_load import load_agent

    agent = load_agent(args.source, device=args.device)
    apply_threads(agent.config)
    result = inspect_agent(agent, out_dir=args.out, seed=args.seed, deterministic=not args.stochastic,
                           max_steps=args.max_steps, device=args.device)
    print(f"one episode: {result['steps']} steps, return {result['return']:.2f} (core {result['core']})")
    for key in ("heatmap", "traces", "wiring", "activity"):
        if result[key]:
            print(f"  {key:9s}{result[key]}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from liquid_rl.agents.build import check_buildable
    from liquid_rl.agents.config import load_config

    for path in args.configs:
        cfg = load_config(path, args.overrides)
        check_buildable(cfg)
        print(f"{path}: ok ({cfg['env']['id']}, {cfg['algo']['name']}, policy {cfg['policy']['type']})")
    return 0


class _UsageError(Exception):
    pass


def _usage(message: str) -> _UsageError:
    return _UsageError(message)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``liquid-rl`` console script; returns the exit status."""
    os.environ.setdefault("MUJOCO_GL", "egl")  # headless MuJoCo rendering, set before mujoco loads
    parser = build_parser()
    args = parser.parse_args(argv)
    from liquid_rl.agents.config import UserError

    commands = {"train": _cmd_train, "eval": _cmd_eval, "inspect": _cmd_inspect, "check": _cmd_check}
    try:
        return commands[args.command](args)
    except (UserError, _UsageError) as e:
        message = " ".join(str(e).split("\n")[0].split())
        print(f"liquid-rl: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _console() -> None:  # pragma: no cover
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
