"""Statistics across seeds with rliable (Agarwal et al., 2021): per task and setting the
interquartile mean (IQM) of the final evaluation return with a stratified bootstrap 95%
confidence interval, the probability of improvement over a baseline setting, performance
profiles, and IQM learning curves with confidence bands; a Markdown table and PNG plots."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from liquid_rl.agents.errors import UserError

__all__ = ["SettingStats", "TaskReport", "aggregate", "write_report", "CONFIDENCE"]

CONFIDENCE = 0.95
CURVE_POINTS = 20


@dataclass
class SettingStats:
    """One setting on one task: scores of its seeds and their statistics."""

    setting: str
    scores: np.ndarray  # (seeds,) final evaluation returns
    iqm: float
    ci: tuple[float, float]
    pruned: int = 0
    p_improve: float | None = None  # P(this setting > baseline)
    p_ci: tuple[float, float] | None = None


@dataclass
class TaskReport:
    task: str
    baseline: str
    settings: list[SettingStats] = field(default_factory=list)


@contextlib.contextmanager
def seeded(seed: int):
    """rliable's bootstraps draw from NumPy's global generator (its ``random_state`` argument
    does not reach the resampling): seed it for the call, then put its state back."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _iqm(x: np.ndarray) -> np.ndarray:
    from rliable import metrics

    return np.array([metrics.aggregate_iqm(x)])


def _score(row: Mapping[str, Any], metric: str) -> float | None:
    v = row.get(metric)
    return None if v is None else float(v)


def aggregate(rows: Sequence[Mapping[str, Any]], *, metric: str = "final_return", baseline: str | None = None,
              reps: int = 2000, seed: int = 0) -> list[TaskReport]:
    """IQM and its 95% interval per (task, setting) over the finished rows; probability of
    improvement of each setting over ``baseline`` (a setting name, or a part of one;
    default the first setting of each task). Each task's bootstraps run with NumPy's global
    generator seeded with ``seed``, over the settings in the order they first appear."""
    from rliable import library as rly
    from rliable import metrics

    tasks: dict[str, dict[str, list[float]]] = {}
    pruned: dict[tuple[str, str], int] = {}
    for row in rows:
        task, setting = str(row.get("task")), str(row["setting"])
        if row.get("status") != "finished" or _score(row, metric) is None:
            pruned[(task, setting)] = pruned.get((task, setting), 0) + 1
            tasks.setdefault(task, {}).setdefault(setting, [])
            continue
        tasks.setdefault(task, {}).setdefault(setting, []).append(_score(row, metric))
    reports = []
    for task, by_setting in tasks.items():
        scored = {s: np.asarray(v, dtype=float)[:, None] for s, v in by_setting.items() if v}
        if not scored:
            continue
        with seeded(seed):
            points, cis = rly.get_interval_estimates(scored, _iqm, reps=reps, confidence_interval_size=CONFIDENCE)
        base = _pick_baseline(list(scored), baseline)
        report = TaskReport(task, base)
        pairs = {s: (scored[s], scored[base]) for s in scored if s != base}
        p_points, p_cis = ({}, {})
        if pairs:
            with seeded(seed):
                p_points, p_cis = rly.get_interval_estimates(
                    pairs, metrics.probability_of_improvement, reps=reps, confidence_interval_size=CONFIDENCE)
        for s, v in by_setting.items():
            if s not in scored:
                continue
            stats = SettingStats(s, scored[s][:, 0], float(points[s][0]), (float(cis[s][0, 0]), float(cis[s][1, 0])),
                                 pruned.get((task, s), 0))
            if s in p_points:
                stats.p_improve = float(np.squeeze(p_points[s]))
                stats.p_ci = (float(np.squeeze(p_cis[s][0])), float(np.squeeze(p_cis[s][1])))
            report.settings.append(stats)
        reports.append(report)
    if not reports:
        raise UserError(f"no finished trial with a {metric} to report")
    return reports


def _pick_baseline(settings: list[str], baseline: str | None) -> str:
    if baseline is None:
        return settings[0]
    if baseline in settings:
        return baseline
    matches = [s for s in settings if baseline in s]
    return matches[0] if matches else settings[0]


def markdown(reports: Sequence[TaskReport], metric: str) -> str:
    """One table per task: seeds, IQM [95% CI], mean, median, P(improvement over the baseline)."""
    out = [f"Score: {metric} per seed; IQM with stratified bootstrap {CONFIDENCE:.0%} intervals (rliable).", ""]
    for r in reports:
        out += [f"### {r.task}", "", f"Probability of improvement over `{r.baseline}`.", "",
                "| setting | seeds | IQM [95% CI] | mean | median | P(improvement) [95% CI] |",
                "|---|---:|---|---:|---:|---|"]
        for s in r.settings:
            seeds = f"{len(s.scores)}" + (f" (+{s.pruned} pruned)" if s.pruned else "")
            p = "baseline" if s.p_improve is None else f"{s.p_improve:.2f} [{s.p_ci[0]:.2f}, {s.p_ci[1]:.2f}]"
            out.append(f"| {s.setting} | {seeds} | {s.iqm:.1f} [{s.ci[0]:.1f}, {s.ci[1]:.1f}] | "
                       f"{np.mean(s.scores):.1f} | {np.median(s.scores):.1f} | {p} |")
        out.append("")
    return "\n".join(out)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def _plot_iqm(report: TaskReport, path: Path) -> Path:
    import matplotlib.pyplot as plt
    from rliable import plot_utils

    names = [s.setting for s in report.settings]
    points = {s.setting: np.array([s.iqm]) for s in report.settings}
    intervals = {s.setting: np.array([[s.ci[0]], [s.ci[1]]]) for s in report.settings}
    fig, _ = plot_utils.plot_interval_estimates(points, intervals, metric_names=[f"IQM, {report.task}"],
                                                algorithms=names, xlabel="Return", subfigure_width=6, row_height=0.5)
    fig.savefig(path, bbox_inches="tight", dpi=100)
    plt.close(fig)
    return path


def _plot_profile(report: TaskReport, path: Path, reps: int) -> Path:
    import matplotlib.pyplot as plt
    from rliable import library as rly
    from rliable import plot_utils

    scores = {s.setting: s.scores[:, None] for s in report.settings}
    every = np.concatenate([s.scores for s in report.settings])
    taus = np.linspace(every.min(), every.max(), 51) if every.max() > every.min() else np.array([every.min()])
    with seeded(0):
        profiles, cis = rly.create_performance_profile(scores, taus, reps=reps)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    plot_utils.plot_performance_profiles(profiles, taus, performance_profile_cis=cis, ax=ax,
                                         xlabel=r"Return ($\tau$)", ylabel=r"Fraction of runs with return $> \tau$")
    ax.legend(loc="lower left", fontsize="small")  # rliable labels each line with its setting
    ax.set_title(report.task)
    fig.savefig(path, bbox_inches="tight", dpi=100)
    plt.close(fig)
    return path


def _plot_curves(task: str, rows: Sequence[Mapping[str, Any]], path: Path, reps: int, seed: int) -> Path | None:
    """IQM of the evaluation return across seeds against env steps (curves interpolated onto
    common steps), with a 95% band."""
    import matplotlib.pyplot as plt
    from rliable import library as rly
    from rliable import plot_utils

    curves: dict[str, list[np.ndarray]] = {}
    for row in rows:
        if str(row.get("task")) == task and row.get("status") == "finished" and len(row.get("curve") or []) >= 2:
            curves.setdefault(str(row["setting"]), []).append(np.asarray(row["curve"], dtype=float))
    if not curves:
        return None
    end = min(c[:, 0].max() for cs in curves.values() for c in cs)
    start = max(c[:, 0].min() for cs in curves.values() for c in cs)
    if not end > start:
        return None
    steps = np.linspace(start, end, CURVE_POINTS)
    scores = {s: np.stack([np.interp(steps, c[:, 0], c[:, 1]) for c in cs])[:, None, :] for s, cs in curves.items()}

    def iqm_per_step(x: np.ndarray) -> np.ndarray:
        from rliable import metrics

        return np.array([metrics.aggregate_iqm(x[..., i]) for i in range(x.shape[-1])])

    with seeded(seed):
        points, cis = rly.get_interval_estimates(scores, iqm_per_step, reps=max(200, reps // 10))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    plot_utils.plot_sample_efficiency_curve(steps, points, cis, algorithms=list(scores), ax=ax, xlabel="env steps",
                                            ylabel="IQM evaluation return", labelsize="medium",
                                            ticklabelsize="small")
    ax.legend(fontsize="small")  # rliable labels each line (not the bands) with its setting
    ax.set_title(task)
    fig.savefig(path, bbox_inches="tight", dpi=100)
    plt.close(fig)
    return path


def write_report(rows: Sequence[Mapping[str, Any]], out: str | Path, *, metric: str = "final_return",
                 baseline: str | None = None, reps: int = 2000, seed: int = 0) -> list[Path]:
    """Write ``report.md`` and per task ``iqm_<task>.png``, ``profile_<task>.png`` and
    ``curves_<task>.png`` into ``out``; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    reports = aggregate(rows, metric=metric, baseline=baseline, reps=reps, seed=seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "report.md"]
    written[0].write_text(markdown(reports, metric))
    for r in reports:
        slug = _slug(r.task.split("/")[-1])
        written.append(_plot_iqm(r, out / f"iqm_{slug}.png"))
        written.append(_plot_profile(r, out / f"profile_{slug}.png", reps))
        curve = _plot_curves(r.task, rows, out / f"curves_{slug}.png", reps, seed)
        if curve is not None:
            written.append(curve)
    return written
