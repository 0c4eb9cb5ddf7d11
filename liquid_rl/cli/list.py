"""``liquid-rl list envs|configs|cells``: what exists, one line each (as RL Zoo's ``--list``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from liquid_rl.cli.args import UsageError

HELP = "list the environments, configs or cells, one line each"

KINDS = ("envs", "configs", "cells")

#: cell name -> what it is; a cell of ``liquid_rl.cells.CELLS`` missing here shows its docstring.
CELL_DESCRIPTIONS = {
    "ltc": "liquid time-constant neurons (ODE solved per step), any wiring: full, ncp, random",
    "cfc": "closed-form continuous-time neurons (no ODE solver), any wiring: full, ncp, random",
    "lstm": "torch.nn.LSTM, the baseline (wiring full only)",
    "liquid_s4": "Liquid-S4 state-space layers (wiring full only)",
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help=HELP, description="List what can be used: registered environments, the "
                                                      "configs of a folder, or the recurrent cells.")
    p.add_argument("kind", choices=KINDS)
    p.add_argument("--dir", default="configs", metavar="DIR", help="folder of configs (default ./configs)")


def _rows(kind: str, folder: str) -> list[tuple[str, str]]:
    if kind == "envs":
        from liquid_rl.envs import DESCRIPTIONS

        return sorted(DESCRIPTIONS.items())
    if kind == "cells":
        from liquid_rl.cells import CELLS

        return [(name, CELL_DESCRIPTIONS.get(name) or (fn.__doc__ or "").strip().split("\n")[0])
                for name, fn in CELLS.items()]
    import yaml

    root = Path(folder)
    files = sorted(root.glob("*.yaml")) + sorted(root.glob("*.yml"))
    if not files:
        raise UsageError(f"no configs (*.yaml) in {root}/: run from the project folder or pass --dir DIR")
    rows = []
    for path in files:
        try:
            data = yaml.safe_load(path.read_text())
            text = data.get("description") if isinstance(data, dict) else None
        except (OSError, yaml.YAMLError):
            text = None
        rows.append((str(path), str(text) if text else "(no description)"))
    return rows


def run(args: argparse.Namespace) -> int:
    rows = _rows(args.kind, args.dir)
    width = max(len(name) for name, _ in rows)
    for name, text in rows:
        print(f"{name:{width}s}  {text}")
    return 0
