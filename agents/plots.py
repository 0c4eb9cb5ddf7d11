"""Plots of a run: the learning curve and neuron activity (PNG, matplotlib's Agg backend)."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["read_episodes", "read_evaluations", "plot_learning_curve", "plot_activity", "CURVE_NOTE"]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def read_episodes(path: str | Path) -> np.ndarray:
    """Rows (step, return, length) of ``episodes.csv``; a torn last line is skipped."""
    rows = []
    p = Path(path)
    if p.is_file():
        with p.open(newline="") as f:
            for row in csv.reader(f):
                try:
                    rows.append((float(row[0]), float(row[1]), float(row[2])))
                except (ValueError, IndexError):
                    continue  # the header, or a line cut by a kill
    return np.asarray(rows, dtype=np.float64).reshape(-1, 3)


def read_evaluations(path: str | Path) -> list[dict[str, Any]]:
    p = Path(path)
    if not p.is_file():
        return []
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError):
        return []
    return data if isinstance(data, list) else []


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    if len(y) < 2 or window <= 1:
        return y
    window = min(window, len(y))
    c = np.cumsum(np.insert(y, 0, 0.0))
    out = np.empty_like(y)
    for i in range(len(y)):  # trailing mean over up to `window` episodes
        lo = max(0, i + 1 - window)
        out[i] = (c[i + 1] - c[lo]) / (i + 1 - lo)
    return out


#: Why training returns sit below the evaluation line (a user would think training failed).
CURVE_NOTE = ("Training episodes sample exploratory actions and end early when the agent fails (e.g. the car "
              "leaves the road), so their returns lie far below the evaluation, which acts with the mode of the "
              "policy (unless train.eval_deterministic is false) over whole episodes.")


def plot_learning_curve(run_dir: str | Path, path: str | Path | None = None, title: str | None = None) -> Path:
    """Training episode returns (and their moving average) and periodic evaluations
    (mean +- std) against env steps, from ``episodes.csv`` and ``evaluations.json``; with
    both, a caption (``CURVE_NOTE``) says why the two differ."""
    run = Path(run_dir)
    plt = _plt()
    episodes = read_episodes(run / "episodes.csv")
    evals = read_evaluations(run / "evaluations.json")
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    if len(episodes):
        ax.scatter(episodes[:, 0], episodes[:, 1], s=4, alpha=0.25, color="tab:blue", label="training episodes")
        ax.plot(episodes[:, 0], _smooth(episodes[:, 1], 20), color="tab:blue", lw=1.5,
                label="training (moving average of 20)")
    if evals:
        steps = np.array([e["step"] for e in evals], dtype=float)
        mean = np.array([e["mean_return"] for e in evals], dtype=float)
        std = np.array([e["std_return"] for e in evals], dtype=float)
        ax.plot(steps, mean, "o-", color="tab:orange", lw=1.5, ms=3, label="evaluation (mean ± std)")
        ax.fill_between(steps, mean - std, mean + std, color="tab:orange", alpha=0.2)
    if not len(episodes) and not evals:
        ax.text(0.5, 0.5, "no finished episode yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return")
    ax.set_title(title or run.name)
    ax.grid(alpha=0.3)
    if len(episodes) or evals:
        ax.legend(loc="best", fontsize=8)
    if len(episodes) and evals:
        fig.text(0.01, 0.01, CURVE_NOTE, fontsize=7, color="dimgray", ha="left", va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.07 if len(episodes) and evals else 0, 1, 1))
    out = Path(path) if path is not None else run / "learning_curve.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_activity(states: np.ndarray, labels: Sequence[str], out_dir: str | Path, title: str = "",
                  dt: float | None = None) -> tuple[Path, Path]:
    """Neuron activity over an episode.

    Args:
        states: (T, N) neuron states per step.
        labels: N neuron types ("motor", "command", "inter", ...).
        out_dir: folder for ``activity_heatmap.png`` and ``activity_traces.png``.
        title: figure title.
        dt: seconds per step (for the time axis), or None for steps.

    The traces show the motor and command neurons (all neurons when there are no such
    types), at most 12; the title says how many of how many.
    """
    plt = _plt()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    T, N = states.shape
    t = np.arange(T) * (dt or 1.0)
    xlabel = "time [s]" if dt else "step"
    order = sorted(range(N), key=lambda i: ({"motor": 0, "command": 1, "inter": 2}.get(labels[i], 3), i))

    fig, ax = plt.subplots(figsize=(9, 0.25 * N + 2.0))
    lim = float(np.max(np.abs(states))) or 1.0
    im = ax.imshow(states[:, order].T, aspect="auto", cmap="coolwarm", vmin=-lim, vmax=lim,
                   extent=(t[0], t[-1] if T > 1 else 1.0, N - 0.5, -0.5), interpolation="nearest")
    ax.set_yticks(range(N))
    ax.set_yticklabels([f"{labels[i]} {i}" for i in order], fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_title(title or "neuron activity")
    fig.colorbar(im, ax=ax, label="state")
    fig.tight_layout()
    heatmap = out / "activity_heatmap.png"
    fig.savefig(heatmap, dpi=110)
    plt.close(fig)

    candidates = [i for i in order if labels[i] in ("motor", "command")] or order
    chosen = candidates[:12]
    shown = f" ({len(chosen)} of {len(candidates)} shown)" if len(candidates) > len(chosen) else ""
    fig, axes = plt.subplots(len(chosen), 1, figsize=(9, 1.1 * len(chosen) + 1.0), sharex=True, squeeze=False)
    colours = {"motor": "tab:orange", "command": "tab:purple", "inter": "tab:blue"}
    for ax, i in zip(axes[:, 0], chosen):
        ax.plot(t, states[:, i], color=colours.get(labels[i], "tab:gray"), lw=1.0)
        ax.set_ylabel(f"{labels[i]}\n{i}", fontsize=7, rotation=0, ha="right", va="center")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel(xlabel)
    what = "motor and command neurons" if labels[chosen[0]] in ("motor", "command") else "neurons"
    axes[0, 0].set_title((f"{title} · {what}" if title else what) + shown)
    fig.tight_layout()
    traces = out / "activity_traces.png"
    fig.savefig(traces, dpi=110)
    plt.close(fig)
    return heatmap, traces
