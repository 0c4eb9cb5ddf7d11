"""``trials.jsonl``: one row per finished trial of a sweep, and readers of older result files.

Row keys: ``trial`` (run name), ``setting`` (what the seeds of one setting share), ``task``
(env id), ``seed``, ``overrides`` (every dotted key and value the trial set: the sweep's ``set:``
and its grid or search values), ``final_return``
(the last evaluation's mean return), ``best_return`` (the best evaluation's), ``timesteps``,
``wall_s``, ``run_dir``, ``status`` (finished, pruned or error), ``curve`` ([[step, mean
return], ...] of the periodic evaluations).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from liquid_rl.agents.errors import UserError

__all__ = ["TRIALS_FILE", "ROW_KEYS", "read_rows", "append_row", "read_sweep_rows", "from_legacy"]

TRIALS_FILE = "trials.jsonl"
ROW_KEYS = ("trial", "setting", "task", "seed", "overrides", "final_return", "best_return", "timesteps", "wall_s",
            "run_dir", "status", "curve")


def append_row(path: Path, row: Mapping[str, Any]) -> None:
    """Append one row (a single write of one line, flushed to disk)."""
    missing = [k for k in ROW_KEYS if k not in row]
    if missing:
        raise ValueError(f"trial row lacks {missing}")
    line = json.dumps(dict(row)) + "\n"
    with open(path, "a") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def from_legacy(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row of the benchmark scripts' result files (``docs/results/rl*.jsonl``,
    ``recurrent_sac.jsonl``) as a trial row."""
    final = row.get("mean", row.get("mean_return"))
    curve = [[int(s), float(r)] for s, r in row.get("curve", [])]
    best = row.get("best_curve_return", max((r for _, r in curve), default=final))
    if isinstance(row.get("best"), dict) and "mean" in row["best"]:  # the best curve point's policy, re-evaluated
        best = row["best"]["mean"]
    suite = row.get("suite")
    # What the seeds of one setting share: rows of other budgets, normalisations or tuning
    # variants never mix (PPO rows without ``normalize`` normalised observations only).
    normalize = row.get("normalize", "none" if suite in (None, "sac_history") else "obs")
    parts = [str(row["policy"]), row.get("variant") or "", f"normalize {normalize}" if suite else "",
             f"{int(row.get('steps', 0)) // 1000}k steps" if row.get("steps") else ""]
    setting = ", ".join(p for p in parts if p)
    return {
        "trial": "-".join(str(x) for x in (suite, str(row["task"]).split("/")[-1], row["policy"], row.get("variant"),
                                           normalize, row.get("steps"), f"seed{row['seed']}") if x),
        "setting": setting,
        "task": str(row["task"]).split("/")[-1],
        "seed": int(row["seed"]),
        "overrides": dict(row.get("settings") or row.get("hyperparameters") or {}),
        "final_return": None if final is None else float(final),
        "best_return": None if best is None else float(best),
        "timesteps": int(row.get("steps", curve[-1][0] if curve else 0)),
        "wall_s": row.get("wall_s"),
        "run_dir": None,
        "status": "finished",
        "curve": curve,
    }


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a ``trials.jsonl`` (or of an older result file, converted); a torn last line
    (a killed writer) is skipped."""
    path = Path(path)
    rows = []
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            if i == len(lines) - 1:
                continue
            raise UserError(f"{path}: line {i + 1} is not JSON") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}: line {i + 1} is not a JSON object")
        if "trial" not in row:
            if "policy" not in row or "task" not in row or "seed" not in row:
                raise UserError(f"{path}: line {i + 1} is neither a trial row nor a benchmark result row")
            row = from_legacy(row)
        rows.append(row)
    return rows


def read_sweep_rows(sources: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Rows of sweep directories (their ``trials.jsonl``) or of result files; the last row of
    a trial wins (a trial finished again after a lost record is counted once)."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for source in sources:
        p = Path(source)
        file = p / TRIALS_FILE if p.is_dir() else p
        if not file.is_file():
            raise UserError(f"{source}: no {TRIALS_FILE} here (not a sweep directory or a result file)")
        for row in read_rows(file):
            rows[(str(file), row["trial"])] = row
    return list(rows.values())
