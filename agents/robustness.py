"""Robustness sweeps: evaluate saved agents under perturbations of growing strength.

Each perturbation kind is a wrapper of ``liquid_rl.envs.wrappers`` put around the raw
env (before the run's own wrappers), and every kind is the identity at level 0, so
level 0 is the plain evaluation (``agents.evaluate``) on the same seeds. Levels:

============  ===================  ==============================================
kind          wrapper              level
============  ===================  ==============================================
noise         ObservationNoise     sigma in units of each entry's scale (below)
dropout       ObservationDropout   probability that an entry is zeroed each step
delay         ActionDelay          steps by which each action is applied late
control_rate  ControlRate          relative change of the time step (factor 1 + level)
brightness    Brightness           relative change of the intensities
occlusion     Occlusion            fraction of the frame covered by a black patch
blur          Blur                 Gaussian blur sigma in pixels
============  ===================  ==============================================

The scale of an observation entry: its running std if the run normalises observations,
else half the range of its finite bounds (255/2 for images), else 1.

Returns are summarised by their mean and a 95% bootstrap interval over episodes
(``scipy.stats.bootstrap``, percentile method, fixed random state). Runs whose configs
differ only in ``train.seed`` are one policy; their episodes are pooled.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from liquid_rl.agents.atomic_files import atomic_write_text
from liquid_rl.agents.errors import UserError
from liquid_rl.agents.evaluate import evaluate
from liquid_rl.agents.safe_load import Agent
from liquid_rl.envs import wrappers as W

__all__ = ["Kind", "KINDS", "Perturbation", "parse_perturbation", "observation_scale", "make_perturb",
           "check_applies", "bootstrap_interval", "policy_key", "sweep", "pool", "plot_robustness",
           "write_robustness", "RESULTS", "PLOT"]

RESULTS, PLOT = "robustness.json", "robustness.png"


@dataclass(frozen=True)
class Kind:
    """A perturbation kind: the allowed levels and how to wrap an env at one level."""

    name: str
    wrap: Callable[[gym.Env, float, np.ndarray], gym.Env]  # (env, level, observation scale)
    low: float
    high: float
    unit: str
    integer: bool = False
    low_open: bool = False

    def check_level(self, level: float) -> None:
        ok = (self.low < level if self.low_open else self.low <= level) and level <= self.high
        if not ok or (self.integer and level != int(level)) or not math.isfinite(level):
            bracket = "(" if self.low_open else "["
            what = "integers" if self.integer else "numbers"
            raise UserError(f"--perturb {self.name}: levels must be {what} in {bracket}{self.low:g}, "
                            f"{self.high:g}], got {level:g}")


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("noise", lambda env, x, scale: W.ObservationNoise(env, x * scale), 0.0, 10.0, "sigma / entry scale"),
    Kind("dropout", lambda env, x, _: W.ObservationDropout(env, x), 0.0, 1.0, "drop probability"),
    Kind("delay", lambda env, x, _: W.ActionDelay(env, int(x)), 0, 100, "steps", integer=True),
    Kind("control_rate", lambda env, x, _: W.ControlRate(env, 1.0 + x), -1.0, 10.0, "relative dt change",
         low_open=True),
    Kind("brightness", lambda env, x, _: W.Brightness(env, x), -1.0, 10.0, "relative change"),
    Kind("occlusion", lambda env, x, _: W.Occlusion(env, x), 0.0, 1.0, "covered fraction"),
    Kind("blur", lambda env, x, _: W.Blur(env, x), 0.0, 20.0, "sigma [px]"),
)}


@dataclass(frozen=True)
class Perturbation:
    """One ``--perturb KIND=L1,L2,...`` argument."""

    kind: str
    levels: tuple[float, ...]


def parse_perturbation(text: str) -> Perturbation:
    """``"noise=0,0.1,0.2"`` -> ``Perturbation("noise", (0.0, 0.1, 0.2))``; bad text raises UserError."""
    kind, sep, rest = text.partition("=")
    kind = kind.strip()
    if not sep or kind not in KINDS:
        raise UserError(f"--perturb {text!r}: expected KIND=LEVEL[,LEVEL...] with KIND one of "
                        f"{', '.join(KINDS)}")
    try:
        levels = tuple(float(x) for x in rest.split(","))
    except ValueError:
        raise UserError(f"--perturb {text!r}: levels must be comma-separated numbers") from None
    for level in levels:
        KINDS[kind].check_level(level)
    if len(set(levels)) != len(levels):
        raise UserError(f"--perturb {text!r}: a level is repeated")
    return Perturbation(kind, tuple(sorted(levels)))


def observation_scale(agent: Agent, space: spaces.Space) -> np.ndarray:
    """Per-entry scale of the raw observation (see the module doc), broadcastable to its shape."""
    if not isinstance(space, spaces.Box):
        return np.ones(())
    norm = agent.normalization
    if norm and norm.get("norm_obs") and isinstance(norm.get("obs_rms"), dict) and "var" in norm["obs_rms"]:
        var = np.asarray(norm["obs_rms"]["var"], dtype=np.float64)
        if var.shape == space.shape:
            return np.sqrt(var + float(norm.get("epsilon", 1e-8)))
    low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
    finite = np.isfinite(low) & np.isfinite(high) & (high > low)
    return np.where(finite, 0.5 * (np.where(finite, high, 1.0) - np.where(finite, low, 0.0)), 1.0)


def _raw_env(agent: Agent) -> gym.Env:
    import liquid_rl.envs  # noqa: F401  (registers our ids)

    env_cfg = agent.config["env"]
    return gym.make(env_cfg["id"], **dict(env_cfg["kwargs"]))


def make_perturb(agent: Agent, kind: str, level: float, scale: np.ndarray) -> Callable[[gym.Env], gym.Env] | None:
    """The wrapper factory for ``evaluate(perturb=...)``; None at level 0 (plain evaluation)."""
    if level == 0:
        return None
    k = KINDS[kind]
    return lambda env: k.wrap(env, level, scale)


def check_applies(agent: Agent, name: str, perturbations: Sequence[Perturbation]) -> np.ndarray:
    """Raise UserError if a kind does not apply to the agent's env; return the observation scale."""
    env = _raw_env(agent)
    try:
        scale = observation_scale(agent, env.observation_space)
        for p in perturbations:
            level = next((x for x in p.levels if x != 0), None)
            if level is None:
                continue
            try:
                KINDS[p.kind].wrap(env, level, scale)
            except ValueError as e:
                raise UserError(f"--perturb {p.kind} does not apply to {name} ({agent.config['env']['id']}): "
                                f"{str(e).splitlines()[0]}") from None
    finally:
        env.close()
    return scale


def bootstrap_interval(returns: Sequence[float], confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean; (mean, mean) for fewer than 2 distinct values."""
    from scipy.stats import bootstrap

    r = np.asarray(returns, dtype=np.float64)
    if r.size < 2 or np.all(r == r[0]):
        m = float(r.mean())
        return m, m
    res = bootstrap((r,), np.mean, confidence_level=confidence, n_resamples=2000, method="percentile",
                    random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def policy_key(config: dict[str, Any]) -> str:
    """Identity of a run's config without its seed: runs with the same key are pooled."""
    cfg = json.loads(json.dumps(config, default=str))
    cfg.get("train", {}).pop("seed", None)
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:10]


def policy_label(config: dict[str, Any]) -> str:
    """A short name of the policy: the config's description, else policy type and cell."""
    text = config.get("description")
    if text:
        return str(text)
    pol = config.get("policy", {})
    return "-".join(str(x) for x in (config["algo"]["name"], pol.get("type"), pol.get("cell")) if x)


def _row(run: str, policy: str, key: str, kind: str, level: float, returns: Sequence[float],
         seed: int) -> dict[str, Any]:
    lo, hi = bootstrap_interval(returns, seed=seed)
    return {"run": run, "policy": policy, "config_key": key, "perturbation": kind, "level": float(level),
            "mean_return": float(np.mean(returns)), "ci_low": lo, "ci_high": hi, "episodes": len(returns),
            "returns": [float(x) for x in returns]}


def sweep(agents: Sequence[tuple[str, Agent]], perturbations: Sequence[Perturbation], episodes: int = 10,
          seed: int = 0, deterministic: bool = True,
          on_row: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """One row per (run, perturbation, level): mean return and bootstrap interval over ``episodes``.

    Every run is evaluated on the same seeds; level 0 is evaluated once per run and is
    :func:`~liquid_rl.agents.evaluate.evaluate` exactly. Raises UserError before any
    evaluation if a kind does not apply to a run.
    """
    if not perturbations:
        raise UserError("give at least one --perturb KIND=LEVELS")
    scales = {name: check_applies(agent, name, perturbations) for name, agent in agents}
    rows: list[dict[str, Any]] = []
    for name, agent in agents:
        label, key = policy_label(agent.config), policy_key(agent.config)
        plain: list[float] | None = None
        for p in perturbations:
            for level in p.levels:
                if level == 0 and plain is not None:
                    returns = plain
                else:
                    result = evaluate(agent, episodes=episodes, deterministic=deterministic, seed=seed,
                                      perturb=make_perturb(agent, p.kind, level, scales[name]))
                    returns = result["returns"]
                    if level == 0:
                        plain = returns
                row = _row(name, label, key, p.kind, level, returns, seed)
                rows.append(row)
                if on_row is not None:
                    on_row(row)
    return rows


def pool(rows: Sequence[dict[str, Any]], seed: int = 0) -> list[dict[str, Any]]:
    """Rows of the same config (up to the seed), perturbation and level merged (episodes pooled).

    Configs with the same label get their key appended to it, so that the plot tells them apart.
    """
    groups: dict[tuple[str, str, float], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["config_key"], r["perturbation"], r["level"]), []).append(r)
    labels: dict[str, set[str]] = {}
    for r in rows:
        labels.setdefault(r["policy"], set()).add(r["config_key"])
    out = []
    for (key, kind, level), group in groups.items():
        returns = [x for r in group for x in r["returns"]]
        policy = group[0]["policy"]
        if len(labels[policy]) > 1:
            policy = f"{policy} [{key}]"
        row = _row(",".join(r["run"] for r in group), policy, key, kind, level, returns, seed)
        row["runs"] = len(group)
        out.append(row)
    return out


def plot_robustness(pooled: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Return against level, one panel per perturbation, one line per policy with its interval band."""
    from liquid_rl.agents.plots import _plt

    plt = _plt()
    kinds = list(dict.fromkeys(r["perturbation"] for r in pooled))
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.5 * len(kinds), 3.6), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        for policy in dict.fromkeys(r["policy"] for r in pooled):
            rs = sorted((r for r in pooled if r["perturbation"] == kind and r["policy"] == policy),
                        key=lambda r: r["level"])
            if not rs:
                continue
            x = [r["level"] for r in rs]
            line, = ax.plot(x, [r["mean_return"] for r in rs], marker="o", ms=3,
                            label=f"{policy} (n={rs[0]['runs']})")
            ax.fill_between(x, [r["ci_low"] for r in rs], [r["ci_high"] for r in rs],
                            color=line.get_color(), alpha=0.2)
        ax.set_title(kind)
        ax.set_xlabel(f"level ({KINDS[kind].unit})")
        ax.set_ylabel("mean return (95% CI)")
        ax.grid(alpha=0.3)
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0.06 * max(1, len(names) // 2 + 1), 1, 1))
    fig.legend(handles, names, loc="lower center", ncol=2, fontsize=7, frameon=False)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p


def write_robustness(rows: Sequence[dict[str, Any]], out: str | Path, settings: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``robustness.json`` (per-run rows and pooled rows) and ``robustness.png`` under ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pooled = pool(rows, seed=int(settings.get("seed", 0)))
    data = {**settings, "rows": list(rows), "pooled": pooled}
    atomic_write_text(out / RESULTS, json.dumps(data, indent=1))
    return out / RESULTS, plot_robustness(pooled, out / PLOT)
