"""One sweep trial, run by Ray Tune in a worker: an ordinary ``liquid_rl.agents.train`` run
in ``<sweep>/runs/<trial>``, started, resumed from its last checkpoint, or (finished
already) only read back. Each periodic evaluation is reported to Tune, whose scheduler
may stop the trial there."""

from __future__ import annotations

import fcntl
import json
import time
from pathlib import Path
from typing import Any

from liquid_rl.agents.sweep.spec import override_strings, trial_name

__all__ = ["run_trial", "trial_row", "setting_label", "previous_wall", "WALL_FILE"]

WALL_FILE = "sweep_wall_s.json"  # seconds this trial has run, over all attempts


def _run_status(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / "run.json").read_text()).get("status")
    except (OSError, ValueError):
        return None


def _evaluations(run_dir: Path) -> list[dict[str, Any]]:
    try:
        return json.loads((run_dir / "evaluations.json").read_text())
    except (OSError, ValueError):
        return []


def trial_row(run_dir: Path, name: str, setting: str, seed: int, overrides: dict[str, Any], status: str,
              wall_s: float | None) -> dict[str, Any]:
    """The ``trials.jsonl`` row of a run directory."""
    from liquid_rl.agents.config import load_config

    evals = _evaluations(run_dir)
    curve = [[int(e["step"]), float(e["mean_return"])] for e in evals]
    try:
        run = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        run = {}
    task = load_config(run_dir / "config.yaml")["env"]["id"] if (run_dir / "config.yaml").is_file() else None
    return {"trial": name, "setting": setting, "task": task, "seed": seed, "overrides": overrides,
            "final_return": curve[-1][1] if curve else None,
            "best_return": max(r for _, r in curve) if curve else None,
            "timesteps": int(run.get("num_timesteps", 0)), "wall_s": wall_s, "run_dir": str(run_dir),
            "status": status, "curve": curve}


def setting_label(base: str, overrides: dict[str, Any]) -> str:
    """What the seeds of one setting share: the base config's name and the overrides."""
    return " ".join([Path(base).stem] + [f"{k}={json.dumps(v)}" for k, v in overrides.items()])


def run_trial(config: dict[str, Any]) -> None:
    """Ray Tune function trainable. ``config``: ``sweep_dir``, ``spec`` (base, seed, overrides,
    name; name empty for search trials), ``fixed`` (overrides of every trial), ``search``
    (sampled values), ``cpus``, ``gpus``."""
    from ray import tune

    from liquid_rl.agents.train import resume, train

    spec = config["spec"]
    sampled = dict(config.get("search") or {})
    overrides = {**spec["overrides"], **sampled}
    name = spec["name"] or trial_name(spec["base"], sampled, spec["seed"]) + "-" + tune.get_context().get_trial_id()
    runs = Path(config["sweep_dir"]) / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    run_dir = runs / name
    setting = setting_label(spec["base"], overrides)
    extra = override_strings({**config["fixed"], **overrides}) + [
        f"train.threads={int(config['cpus'])}", "train.progress_bar=false"]
    if config.get("gpus", 0) > 0:
        extra.append("train.device=cuda")
    best = [float("-inf")]
    start, previous = time.time(), previous_wall(run_dir)

    def wall() -> float:
        total = previous + time.time() - start
        if run_dir.is_dir():
            (run_dir / WALL_FILE).write_text(json.dumps(total))
        return total

    def report(result: dict[str, Any], **final: Any) -> None:
        wall()
        best[0] = max(best[0], float(result["mean_return"]))
        tune.report({"eval_return": float(result["mean_return"]), "best_return": best[0],
                     "timesteps": int(result["step"]), "trial": name, **final})

    # One process per run directory, even if a worker of a killed sweep still lingers.
    with open(runs / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        status = _run_status(run_dir)
        if status != "finished":
            if (run_dir / "config.yaml").is_file():
                resume(run_dir, on_evaluation=report)
            else:
                train(spec["base"], run_dir, overrides=extra, seed=spec["seed"], overwrite=True,
                      on_evaluation=report)
        row = trial_row(run_dir, name, setting, spec["seed"], {**config["fixed"], **overrides}, "finished",
                        round(previous if status == "finished" else wall(), 2))
        last = {"mean_return": row["final_return"] if row["final_return"] is not None else float("nan"),
                "step": row["timesteps"]}
        best[0] = row["best_return"] if row["best_return"] is not None else best[0]
        report(last, finished=True, row=row)


def previous_wall(run_dir: Path) -> float:
    """Wall time earlier attempts of a trial spent (updated at each evaluation)."""
    try:
        return float(json.loads((run_dir / WALL_FILE).read_text()))
    except (OSError, ValueError):
        return 0.0
