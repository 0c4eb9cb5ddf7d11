"""Run a sweep on Ray Tune: grid trials or an Optuna search, pruned by ASHA or the median
rule on the evaluation curve, resumable after the sweep is killed.

Sweep directory::

    sweep.yaml      the sweep file as given (a rerun must give the same one)
    tune/           Ray Tune's experiment state (``Tuner.restore`` continues it)
    runs/<trial>/   one ordinary run directory per trial (see ``liquid_rl.agents.train``)
    trials.jsonl    one row per finished trial (see ``results``)
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from liquid_rl.agents.errors import UserError
from liquid_rl.agents.sweep.results import TRIALS_FILE, append_row, read_rows
from liquid_rl.agents.sweep.spec import SweepSpec
from liquid_rl.agents.sweep.trial import run_trial

__all__ = ["run_sweep", "prepare_sweep_dir", "SweepSummary", "summary_line"]

EXPERIMENT = "tune"


class SweepSummary(dict):
    """``{"finished": n, "pruned": n, "error": n, "unfinished": n, "dir": path, "ray_start_s": s, "wall_s": s}``."""


def prepare_sweep_dir(spec: SweepSpec, out: Path) -> bool:
    """Create ``out`` for this sweep, or accept it holding the same sweep (a rerun); returns
    whether it is a rerun. Raises UserError for a directory that holds something else."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory")
    stored = out / "sweep.yaml"
    if stored.is_file():
        if stored.read_text() != spec.text:
            raise UserError(f"sweep directory {out} holds a different sweep file; choose another --out")
        return True
    if out.is_dir() and any(out.iterdir()):
        raise UserError(f"--out {out} is a non-empty directory that is not a sweep of {spec.path.name}")
    out.mkdir(parents=True, exist_ok=True)
    stored.write_text(spec.text)
    return False


def _space(spec: SweepSpec) -> dict[str, Any]:
    from ray import tune

    search = {}
    for key, d in spec.search.items():
        if d.kind == "float":
            search[key] = tune.uniform(d.low, d.high)
        elif d.kind == "log_float":
            search[key] = tune.loguniform(d.low, d.high)
        elif d.kind == "int":
            search[key] = tune.randint(d.low, d.high + 1)  # Tune's upper bound is exclusive
        else:
            search[key] = tune.choice(list(d.choices))
    if spec.is_search:
        trial = {"name": "", "base": spec.bases[0], "seed": spec.seeds[0], "overrides": {}}
        return {"spec": trial, "search": search}
    return {"spec": tune.grid_search([t.as_dict() for t in spec.grid_trials()]), "search": {}}


def _scheduler(spec: SweepSpec, max_t: int):
    from ray.tune.schedulers import ASHAScheduler, MedianStoppingRule

    p = spec.pruner
    if p["type"] == "asha":
        return ASHAScheduler(time_attr="timesteps", max_t=max_t, grace_period=max(1, p["grace_steps"]),
                             reduction_factor=p["reduction_factor"])
    if p["type"] == "median":
        return MedianStoppingRule(time_attr="timesteps", grace_period=p["grace_steps"],
                                  min_samples_required=p["min_samples"])
    return None


def _max_timesteps(spec: SweepSpec) -> int:
    from liquid_rl.agents.config import load_config
    from liquid_rl.agents.sweep.spec import override_strings

    return max(load_config(b, override_strings(spec.fixed))["train"]["total_timesteps"] for b in spec.bases)


class _Rows:
    """Writes each finished trial's row to ``trials.jsonl`` once. The file itself says what
    is written: a restored experiment brings back its own copy of the callback, and a trial
    killed after finishing is written when the rerun reads it back."""

    def __init__(self, out: Path) -> None:
        self.path = out / TRIALS_FILE

    def add(self, row: dict[str, Any]) -> None:
        """Append ``row`` unless its trial has a row already; a finished row supersedes a
        pruned one (readers take a trial's last row)."""
        last = {r["trial"]: r["status"] for r in read_rows(self.path)} if self.path.is_file() else {}
        if row["trial"] not in last or (last[row["trial"]] != "finished" and row["status"] == "finished"):
            append_row(self.path, row)


def _callback(rows: _Rows):
    from ray.tune import Callback

    class RowsCallback(Callback):
        def on_trial_complete(self, iteration, trials, trial, **info):  # noqa: ANN001 (Tune's signature)
            result = trial.last_result or {}
            if result.get("finished"):
                rows.add(result["row"])
            else:  # stopped by the scheduler
                _add_pruned(rows, result, trial.config)

    return RowsCallback()


def _init_ray(spec: SweepSpec, address: str | None, max_concurrent: int | None) -> tuple[bool, float]:
    """Start a local Ray for this sweep (unless one is running in this process, or
    ``address`` names a cluster); returns (started here, seconds it took)."""
    import ray

    t0 = time.time()
    if ray.is_initialized():
        return False, 0.0
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # nothing leaves the machine
    if address is not None:
        ray.init(address=address, log_to_driver=False)
        return True, time.time() - t0
    cpus = os.cpu_count() or 1
    if max_concurrent is not None:
        cpus = min(cpus, int(max_concurrent * spec.cpus)) or 1
    cpus = max(cpus, int(spec.cpus))
    gpus = None if spec.gpus > 0 else 0
    ray.init(address="local", num_cpus=cpus, num_gpus=gpus, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    return True, time.time() - t0


def run_sweep(spec: SweepSpec, out: str | Path, *, address: str | None = None,
              max_concurrent: int | None = None, verbose: int = 1) -> SweepSummary:
    """Run (or continue) a sweep into ``out``; returns how many trials finished, were pruned
    or failed. Rerunning after a kill skips finished trials and resumes the others from
    their latest checkpoint."""
    import ray
    from ray import tune

    out = Path(out).resolve()
    rerun = prepare_sweep_dir(spec, out)
    concurrent = max_concurrent if max_concurrent is not None else spec.max_concurrent
    t0 = time.time()
    started, ray_start = _init_ray(spec, address, concurrent)
    try:
        rows = _Rows(out)
        trainable = tune.with_resources(run_trial, {"cpu": spec.cpus, "gpu": spec.gpus})
        experiment = out / EXPERIMENT
        run_config = tune.RunConfig(storage_path=str(out), name=EXPERIMENT, callbacks=[_callback(rows)],
                                    verbose=verbose, failure_config=tune.FailureConfig(max_failures=0))
        if rerun and tune.Tuner.can_restore(str(experiment)):
            tuner = tune.Tuner.restore(str(experiment), trainable, resume_unfinished=True, resume_errored=True,
                                       param_space=_param_space(spec, out))
        else:
            tuner = tune.Tuner(trainable, param_space=_param_space(spec, out),
                               tune_config=_tune_config(spec, concurrent), run_config=run_config)
        results = tuner.fit()
        summary = SweepSummary(finished=0, pruned=0, error=0, unfinished=0, dir=str(out),
                               ray_start_s=round(ray_start, 2))
        for r in results:
            if r.error is not None:
                summary["error"] += 1
            elif (r.metrics or {}).get("finished"):
                rows.add(r.metrics["row"])  # a row lost to a kill after the trial finished
                summary["finished"] += 1
            elif spec.pruner["type"] != "none" and r.metrics:
                _add_pruned(rows, r.metrics, r.config or {})
                summary["pruned"] += 1
            else:  # cut off by an interrupt (SIGINT): a rerun continues it
                summary["unfinished"] += 1
        summary["wall_s"] = round(time.time() - t0, 2)
        return summary
    finally:
        if started:
            ray.shutdown()


def _param_space(spec: SweepSpec, out: Path) -> dict[str, Any]:
    return {"sweep_dir": str(out), "fixed": dict(spec.fixed), "cpus": spec.cpus, "gpus": spec.gpus,
            **_space(spec)}


def _tune_config(spec: SweepSpec, concurrent: int | None):
    from ray import tune

    search_alg = None
    if spec.is_search:
        from ray.tune.search import ConcurrencyLimiter
        from ray.tune.search.optuna import OptunaSearch

        search_alg = OptunaSearch(metric=spec.metric, mode=spec.mode, seed=spec.seeds[0])
        if concurrent is not None:
            search_alg = ConcurrencyLimiter(search_alg, max_concurrent=concurrent)
    return tune.TuneConfig(metric=spec.metric, mode=spec.mode, search_alg=search_alg,
                           scheduler=_scheduler(spec, _max_timesteps(spec)),
                           num_samples=spec.trials if spec.is_search else 1,
                           max_concurrent_trials=concurrent if not spec.is_search else None)


def _add_pruned(rows: _Rows, result: dict[str, Any], config: dict[str, Any]) -> None:
    """A trial the scheduler stopped: its row says ``pruned`` (it ran up to ``timesteps``)."""
    from liquid_rl.agents.sweep.trial import previous_wall, setting_label, trial_row

    name = result.get("trial")
    if not name or "spec" not in config:
        return
    spec = config["spec"]
    overrides = {**spec["overrides"], **(config.get("search") or {})}
    run_dir = Path(config["sweep_dir"]) / "runs" / name
    if run_dir.is_dir():
        rows.add(trial_row(run_dir, name, setting_label(spec["base"], overrides), spec["seed"],
                           {**config.get("fixed", {}), **overrides}, "pruned", round(previous_wall(run_dir), 2)))


def summary_line(summary: SweepSummary) -> str:
    """One line saying how the sweep ended and where its trials are."""
    counts = (f"{summary['finished']} finished, {summary['pruned']} pruned, {summary['error']} failed"
              f" in {summary['wall_s']:.0f} s (Ray started in {summary['ray_start_s']:.1f} s)")
    if summary["unfinished"]:
        return (f"liquid-rl: sweep interrupted: {counts}, {summary['unfinished']} unfinished; "
                f"rerun the same command to continue. Trials: {summary['dir']}/{TRIALS_FILE}")
    return (f"liquid-rl: sweep done: {counts}. Trials: {summary['dir']}/{TRIALS_FILE}; "
            f"report: liquid-rl report {summary['dir']}")
