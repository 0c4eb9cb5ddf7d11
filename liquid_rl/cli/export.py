"""``liquid-rl export``: write a run's deterministic actor to ONNX or TorchScript."""

from __future__ import annotations

import argparse
from pathlib import Path

from liquid_rl.cli.args import UsageError

HELP = "export a run's actor to ONNX or TorchScript"


def add_parser(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("export", help=HELP,
                       description="Write the deterministic actor of a run (observation normalisation, recurrent "
                                   "state, episode-start flag, elapsed time dt and action post-processing folded "
                                   "in) to a file that onnxruntime (liquid_rl.deploy.OnnxPolicy) or TorchScript runs.")
    e.add_argument("source", metavar="RUN_OR_MODEL", help="run directory or model .zip")
    e.add_argument("--model", choices=["best", "final"], default=None,
                   help="which model of a run directory (default: final, else the latest checkpoint, else best)")
    e.add_argument("--format", choices=["onnx", "torchscript"], default="onnx", help="file format (default onnx)")
    e.add_argument("--out", metavar="FILE", required=True, help="the file to write")


def _model_path(source: str, which: str | None) -> Path:
    p = Path(source)
    if which is None:
        return p
    if not p.is_dir():
        raise UsageError(f"--model {which} needs a run directory, got {p}")
    path = p / which / "model.zip"
    if not path.is_file():
        raise UsageError(f"run directory {p} has no {which} model ({path} is missing)")
    return path


def run(args: argparse.Namespace) -> int:
    from liquid_rl.agents.safe_load import load_agent
    from liquid_rl.export import ExportError, export_agent

    agent = load_agent(_model_path(args.source, args.model), device="cpu")
    try:
        meta = export_agent(agent, args.out, args.format)
    except ExportError as e:
        raise UsageError(str(e)) from None
    dt = meta["dt"]
    print(f"wrote {args.out} ({args.format}): {meta['algo']} {meta['policy_type']} on {meta['env_id']}")
    print(f"  inputs  {', '.join(meta['inputs'])}; outputs {', '.join(meta['outputs'])}")
    print(f"  obs {tuple(meta['obs_shape'])}, state {meta['state_size']}"
          + (f", dt default {dt['default']:g} (unit {dt['unit']:g})" if dt else ""))
    return 0
