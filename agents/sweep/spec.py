"""Sweep files: what to run, validated in full before anything starts.

A sweep file (YAML)::

    description: CartPoleNoVel, PPO: learning rates over three seeds
    base: configs/cartpole_novel_mlp.yaml     # or a list of configs
    seeds: [0, 1, 2]
    set: {train.total_timesteps: 50000}       # dotted keys fixed for every trial
    grid:                                     # dotted keys -> lists of values (Cartesian product)
      algo.hyperparams.learning_rate: [0.001, 0.0003]
    search:                                   # or: an Optuna search space (one base, one seed)
      algo.hyperparams.learning_rate: {type: log_float, low: 1.0e-4, high: 1.0e-2}
      algo.hyperparams.n_steps: {type: int, low: 16, high: 256}
      policy.units: {type: categorical, choices: [16, 32]}
    trials: 20                                # number of Optuna samples (search only)
    metric: eval_return                       # eval_return (each evaluation) or best_return
    pruner: {type: asha, grace_steps: 20000, reduction_factor: 3}   # or median, or none
    resources: {cpus: 1, gpus: 0}             # per trial; torch threads = cpus
    max_concurrent: 2                         # trials at once (default: as many as fit)

Config paths are relative to the current directory, else to the sweep file's folder or
the folder above it (so ``benchmarks/x.yaml`` can name ``configs/y.yaml``).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from liquid_rl.agents.errors import UserError

__all__ = ["SweepSpec", "TrialSpec", "Distribution", "load_sweep", "override_strings", "METRICS", "PRUNERS"]

METRICS = ("eval_return", "best_return")
PRUNERS = ("none", "asha", "median")
DISTRIBUTIONS = ("float", "log_float", "int", "categorical")
_TOP_KEYS = ("description", "base", "seeds", "set", "grid", "search", "trials", "metric", "mode", "pruner",
             "resources", "max_concurrent")


class SweepError(UserError):
    """An invalid sweep file; the message names the file and the key."""


@dataclass(frozen=True)
class Distribution:
    """One dimension of a search space."""

    kind: str  # one of DISTRIBUTIONS
    low: float | int | None = None
    high: float | int | None = None
    choices: tuple[Any, ...] = ()

    def corners(self) -> list[Any]:
        """The values that bound the space (validated before the sweep starts)."""
        if self.kind == "categorical":
            return list(self.choices)
        return [self.low, self.high]


@dataclass(frozen=True)
class TrialSpec:
    """One grid trial: a base config, a seed and the dotted overrides of its setting."""

    name: str
    base: str
    seed: int
    overrides: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "base": self.base, "seed": self.seed, "overrides": dict(self.overrides)}


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep file."""

    path: Path
    bases: tuple[str, ...]
    seeds: tuple[int, ...]
    fixed: dict[str, Any]
    grid: dict[str, tuple[Any, ...]]
    search: dict[str, Distribution]
    trials: int
    metric: str
    mode: str
    pruner: dict[str, Any]
    cpus: float
    gpus: float
    max_concurrent: int | None
    description: str = ""
    text: str = field(default="", repr=False)

    @property
    def is_search(self) -> bool:
        return bool(self.search)

    def grid_trials(self) -> list[TrialSpec]:
        """Every (base, grid setting, seed) of a grid sweep, named stably: a rerun finds its runs."""
        keys = list(self.grid)
        combos = list(itertools.product(*(self.grid[k] for k in keys))) or [()]
        out = []
        for base in self.bases:
            for combo in combos:
                setting = dict(zip(keys, combo))
                for seed in self.seeds:
                    out.append(TrialSpec(trial_name(base, setting, seed), base, seed, setting))
        return out


def trial_name(base: str, setting: Mapping[str, Any], seed: int) -> str:
    """e.g. ``cartpole_novel_mlp-learning_rate=0.001-seed0`` (file-name safe)."""
    parts = [Path(base).stem] + [f"{k.rsplit('.', 1)[-1]}={_short(v)}" for k, v in setting.items()]
    return re.sub(r"[^A-Za-z0-9_.=+-]", "_", "-".join(parts))[:150] + f"-seed{seed}"


def _short(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else json.dumps(v, separators=(",", ":")).strip('"')


def override_strings(values: Mapping[str, Any]) -> list[str]:
    """``{"a.b": 1}`` -> ``["a.b=1"]`` (values as JSON, which the config's YAML parser reads back)."""
    return [f"{k}={json.dumps(v)}" for k, v in values.items()]


def _fail(path: Path, message: str) -> SweepError:
    return SweepError(f"sweep {path}: {message}")


def _resolve_base(path: Path, entry: Any) -> str:
    if not isinstance(entry, str) or not entry:
        raise _fail(path, f"base: expected a config path, got {entry!r}")
    for root in (Path.cwd(), path.parent, path.parent.parent):
        candidate = (root / entry) if not Path(entry).is_absolute() else Path(entry)
        if candidate.is_file():
            return str(candidate.resolve())
    raise _fail(path, f"base: config {entry} not found (relative to the current directory or {path.parent})")


def _dotted(path: Path, section: str, key: Any) -> str:
    if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+", key):
        raise _fail(path, f"{section}: keys are dotted config keys like algo.hyperparams.learning_rate, got {key!r}")
    if key == "train.seed":
        raise _fail(path, f"{section}: train.seed is set by seeds:, not here")
    return key


def _number(path: Path, where: str, v: Any, integer: bool = False) -> float | int:
    ok = isinstance(v, int) if integer else isinstance(v, (int, float))
    if isinstance(v, bool) or not ok:
        raise _fail(path, f"{where}: expected {'an integer' if integer else 'a number'}, got {v!r}")
    return v


def _distribution(path: Path, key: str, d: Any) -> Distribution:
    where = f"search.{key}"
    if not isinstance(d, Mapping) or d.get("type") not in DISTRIBUTIONS:
        raise _fail(path, f"{where}: expected {{type: {'|'.join(DISTRIBUTIONS)}, ...}}, got {d!r}")
    kind = d["type"]
    if kind == "categorical":
        extra = set(d) - {"type", "choices"}
        choices = d.get("choices")
        if extra or not isinstance(choices, list) or not choices:
            raise _fail(path, f"{where}: categorical takes only choices: [a non-empty list]")
        return Distribution(kind, choices=tuple(choices))
    extra = set(d) - {"type", "low", "high"}
    if extra:
        raise _fail(path, f"{where}: unknown key {sorted(extra)[0]!r} (allowed: type, low, high)")
    low = _number(path, f"{where}.low", d.get("low"), integer=kind == "int")
    high = _number(path, f"{where}.high", d.get("high"), integer=kind == "int")
    if not low < high:
        raise _fail(path, f"{where}: low must be below high, got low={low} high={high}")
    if kind == "log_float" and low <= 0:
        raise _fail(path, f"{where}: log_float needs low > 0, got {low}")
    return Distribution(kind, low=low, high=high)


def _pruner(path: Path, p: Any) -> dict[str, Any]:
    if p is None or p == "none":
        return {"type": "none"}
    if isinstance(p, str):
        p = {"type": p}
    if not isinstance(p, Mapping) or p.get("type") not in PRUNERS:
        raise _fail(path, f"pruner: expected one of {', '.join(PRUNERS)} (or {{type: asha, ...}}), got {p!r}")
    allowed = {"none": {"type"}, "asha": {"type", "grace_steps", "reduction_factor"},
               "median": {"type", "grace_steps", "min_samples"}}[p["type"]]
    extra = set(p) - allowed
    if extra:
        raise _fail(path, f"pruner: unknown key {sorted(extra)[0]!r} for {p['type']} (allowed: "
                          f"{', '.join(sorted(allowed))})")
    out = {"type": p["type"], "grace_steps": 0, "reduction_factor": 3, "min_samples": 3, **p}
    if _number(path, "pruner.grace_steps", out["grace_steps"], integer=True) < 0:
        raise _fail(path, f"pruner.grace_steps: expected an integer >= 0, got {out['grace_steps']}")
    if _number(path, "pruner.reduction_factor", out["reduction_factor"]) <= 1:
        raise _fail(path, f"pruner.reduction_factor: expected a number > 1, got {out['reduction_factor']}")
    if _number(path, "pruner.min_samples", out["min_samples"], integer=True) < 1:
        raise _fail(path, f"pruner.min_samples: expected an integer >= 1, got {out['min_samples']}")
    return out


def _resources(path: Path, r: Any) -> tuple[float, float]:
    r = {} if r is None else r
    if not isinstance(r, Mapping) or set(r) - {"cpus", "gpus"}:
        raise _fail(path, f"resources: expected {{cpus: N, gpus: N}}, got {r!r}")
    cpus = _number(path, "resources.cpus", r.get("cpus", 1))
    gpus = _number(path, "resources.gpus", r.get("gpus", 0))
    if cpus < 1 or cpus != int(cpus):
        raise _fail(path, f"resources.cpus: expected a whole number >= 1, got {cpus}")
    if gpus < 0:
        raise _fail(path, f"resources.gpus: expected a number >= 0, got {gpus}")
    return cpus, gpus


def parse_sweep(path: str | Path, data: Any, text: str = "") -> SweepSpec:
    """Check a sweep file's structure and values (see the module docstring)."""
    path = Path(path)
    if not isinstance(data, Mapping):
        raise _fail(path, "expected a mapping with base:, seeds: and grid: or search:")
    unknown = [k for k in data if k not in _TOP_KEYS]
    if unknown:
        raise _fail(path, f"unknown key {unknown[0]!r} (allowed: {', '.join(_TOP_KEYS)})")
    if "base" not in data:
        raise _fail(path, "base: missing (the experiment config, e.g. configs/cartpole_novel_mlp.yaml)")
    raw_bases = data["base"] if isinstance(data["base"], list) else [data["base"]]
    if not raw_bases:
        raise _fail(path, "base: expected a config path or a non-empty list of them")
    bases = tuple(_resolve_base(path, b) for b in raw_bases)
    seeds = data.get("seeds", [0])
    if (not isinstance(seeds, list) or not seeds
            or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds)):
        raise _fail(path, f"seeds: expected a non-empty list of integers >= 0, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise _fail(path, f"seeds: repeated seed in {seeds}")
    fixed = data.get("set") or {}
    if not isinstance(fixed, Mapping):
        raise _fail(path, f"set: expected a mapping of dotted keys to values, got {fixed!r}")
    fixed = {_dotted(path, "set", k): v for k, v in fixed.items()}
    grid_raw = data.get("grid") or {}
    if not isinstance(grid_raw, Mapping):
        raise _fail(path, f"grid: expected a mapping of dotted keys to lists of values, got {grid_raw!r}")
    grid: dict[str, tuple[Any, ...]] = {}
    for k, values in grid_raw.items():
        if not isinstance(values, list) or not values:
            raise _fail(path, f"grid.{k}: expected a non-empty list of values, got {values!r}")
        grid[_dotted(path, "grid", k)] = tuple(values)
    search_raw = data.get("search") or {}
    if not isinstance(search_raw, Mapping):
        raise _fail(path, f"search: expected a mapping of dotted keys to distributions, got {search_raw!r}")
    search = {_dotted(path, "search", k): _distribution(path, k, d) for k, d in search_raw.items()}
    both = set(fixed) & (set(grid) | set(search)) or set(grid) & set(search)
    if both:
        raise _fail(path, f"key {sorted(both)[0]} is given twice (set:, grid:, search:)")
    if search and grid:
        raise _fail(path, "grid: and search: cannot be combined (Optuna samples the whole space)")
    if search and (len(bases) > 1 or len(seeds) > 1):
        raise _fail(path, "search: takes one base and one seed (as RL Zoo's -optimize); "
                          "run the best settings over seeds with a grid sweep")
    trials = data.get("trials", 1 if not search else None)
    if search and (trials is None or isinstance(trials, bool) or not isinstance(trials, int) or trials < 1):
        raise _fail(path, f"trials: a search needs trials: N (an integer >= 1), got {trials!r}")
    if not search and "trials" in data:
        raise _fail(path, "trials: only for a search: sweep (a grid runs every combination)")
    metric = data.get("metric", "eval_return")
    if metric not in METRICS:
        raise _fail(path, f"metric: expected one of {', '.join(METRICS)}, got {metric!r}")
    mode = data.get("mode", "max")
    if mode not in ("max", "min"):
        raise _fail(path, f"mode: expected max or min, got {mode!r}")
    cpus, gpus = _resources(path, data.get("resources"))
    mc = data.get("max_concurrent")
    if mc is not None and (isinstance(mc, bool) or not isinstance(mc, int) or mc < 1):
        raise _fail(path, f"max_concurrent: expected an integer >= 1, got {mc!r}")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise _fail(path, f"description: expected text, got {description!r}")
    return SweepSpec(path=path, bases=bases, seeds=tuple(seeds), fixed=dict(fixed), grid=grid, search=search,
                     trials=int(trials), metric=metric, mode=mode, pruner=_pruner(path, data.get("pruner")),
                     cpus=cpus, gpus=gpus, max_concurrent=mc, description=description, text=text)


def check_configs(spec: SweepSpec) -> None:
    """Validate the config of every grid trial (or of the corners of a search space)."""
    from liquid_rl.agents.config import load_config

    def check(base: str, values: Mapping[str, Any], seed: int) -> None:
        try:
            load_config(base, override_strings({**spec.fixed, **values}), seed=seed)
        except UserError as e:
            raise _fail(spec.path, f"{Path(base).name} with {dict(values) or 'no overrides'}: {e}") from None

    if spec.is_search:
        keys = list(spec.search)
        for corner in itertools.product(*(spec.search[k].corners() for k in keys)):
            check(spec.bases[0], dict(zip(keys, corner)), spec.seeds[0])
        return
    seen: set[tuple[str, str]] = set()
    for t in spec.grid_trials():
        key = (t.base, json.dumps(t.overrides, sort_keys=True))
        if key not in seen:  # seeds do not change validity
            seen.add(key)
            check(t.base, t.overrides, t.seed)
    names = [t.name for t in spec.grid_trials()]
    if len(set(names)) != len(names):
        raise _fail(spec.path, "two trials get the same run name; give grid values that differ in text")


def load_sweep(path: str | Path, validate_configs: bool = True) -> SweepSpec:
    """Read and validate a sweep file, and (by default) the config of every trial.

    Raises:
        SweepError: one line naming the file and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise SweepError(f"sweep {path}: no such file")
    text = path.read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise _fail(path, f"not valid YAML{where}") from None
    spec = parse_sweep(path, data, text)
    if validate_configs:
        check_configs(spec)
    return spec
