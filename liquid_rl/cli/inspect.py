"""``liquid-rl inspect``: plot neuron activity and the wiring of a liquid policy."""

from __future__ import annotations

import argparse
from pathlib import Path

from liquid_rl.cli.args import DEVICES, MODEL_HELP, MODELS, positive_int, seed

HELP = "plot neuron activity and wiring of a liquid policy"


def add_parser(sub: argparse._SubParsersAction) -> None:
    i = sub.add_parser("inspect", help=HELP,
                       description="Run one episode and write neuron activity (heatmap, motor and command "
                                   "neuron traces) and the wiring diagram as PNGs.")
    i.add_argument("source", metavar="RUN_OR_MODEL", help="run directory or model .zip")
    i.add_argument("--model", choices=MODELS, help=MODEL_HELP)
    i.add_argument("--out", metavar="DIR", help="output folder (default <run>/inspect, <run>/inspect_MODEL with --model)")
    i.add_argument("--seed", type=seed, default=0, help="seed of the episode (default 0)")
    i.add_argument("--max-steps", type=positive_int, help="stop the episode after this many steps")
    i.add_argument("--stochastic", action="store_true", help="sample actions instead of acting deterministically")
    i.add_argument("--device", choices=DEVICES, default="auto")


def run(args: argparse.Namespace) -> int:
    from liquid_rl.agents.build import apply_threads
    from liquid_rl.agents.inspect import inspect_agent
    from liquid_rl.agents.output_paths import check_output_dir
    from liquid_rl.agents.safe_load import load_agent

    if args.out:
        check_output_dir(args.out, "--out")
    agent = load_agent(args.source, device=args.device, model=args.model)
    apply_threads(agent.config)
    out = args.out or (Path(args.source) / f"inspect_{args.model}" if args.model else None)
    result = inspect_agent(agent, out_dir=out, seed=args.seed, deterministic=not args.stochastic,
                           max_steps=args.max_steps, device=args.device)
    print(f"one episode: {result['steps']} steps, return {result['return']:.2f} (core {result['core']})")
    for key in ("heatmap", "traces", "wiring", "activity"):
        if result[key]:
            print(f"  {key:9s}{result[key]}")
    return 0
