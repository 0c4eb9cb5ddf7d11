"""Experiment configs: the YAML schema, ``--set`` overrides and validation.

A config has four sections (documented key by key in ``docs/configs.md``)::

    env:    {id, kwargs, wrappers: [{name, kwargs}], n_envs, vec_env, normalize, frame_stack,
             max_episode_steps}
    algo:   {name, hyperparams}
    policy: {type, cell, wiring, units, output_size, ode_unfolds, solver, mode, history,
             net_arch, activation_fn, kwargs}
    train:  {total_timesteps, seed, device, checkpoint_every, keep_checkpoints, eval_every,
             eval_episodes, eval_deterministic, diagnostics_every, progress_bar, verbose,
             threads}

:func:`validate_config` checks everything that can be checked without building an
environment (unknown keys at any level, types, ranges, choices, the env id being
registered, algorithm hyperparameters against the algorithm's signature) and returns the
*resolved* config: every key present, defaults filled in. Errors are
:class:`ConfigError` with one line naming the key, e.g.
``config: unknown key 'env.n_env' (did you mean 'n_envs'?)``.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import math
import numbers
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "UserError",
    "ConfigError",
    "load_config",
    "validate_config",
    "apply_overrides",
    "dump_config",
    "config_from_yaml_text",
    "POLICY_TYPES",
    "WRAPPERS",
    "ACTIVATIONS",
]


class UserError(Exception):
    """A problem with what the user asked for (a file, a value, a path): the command line
    prints the message, one line, and exits with status 2."""


class ConfigError(UserError):
    """An invalid experiment config; the message names the key."""

    def __init__(self, message: str) -> None:
        super().__init__(message if message.startswith("config") else f"config: {message}")


REQUIRED = object()  # marks a key without default


class _Bad(Exception):
    """Raised by a checker: the value is wrong, for the reason given."""


# --- value checkers: each returns the normalised value or raises _Bad -----------------

Checker = Callable[[Any], Any]


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_SCIENTIFIC = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def _scientific(v: Any) -> Any:
    """YAML 1.1 reads 1e5 (no dot) as a string; take it as the number it means."""
    if isinstance(v, str) and _SCIENTIFIC.match(v.strip()):
        return float(v)
    return v


def integer(low: int | None = None, high: int | None = None) -> Checker:
    def check(v: Any) -> int:
        v = _scientific(v)
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            # 1e5 in YAML is a float; accept it when it is a whole number
            if isinstance(v, float) and math.isfinite(v) and v == int(v):
                v = int(v)
            else:
                raise _Bad(f"must be an integer{_bounds(low, high)}, got {_show(v)}")
        v = int(v)
        if (low is not None and v < low) or (high is not None and v > high):
            raise _Bad(f"must be an integer{_bounds(low, high)}, got {v}")
        return v
    check.__doc__ = f"integer{_bounds(low, high)}"
    return check


def number(low: float | None = None, high: float | None = None, low_open: bool = False) -> Checker:
    def check(v: Any) -> float:
        v = _scientific(v)
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
            raise _Bad(f"must be a number{_bounds(low, high, low_open)}, got {_show(v)}")
        v = float(v)
        if low is not None and (v <= low if low_open else v < low):
            raise _Bad(f"must be a number{_bounds(low, high, low_open)}, got {v}")
        if high is not None and v > high:
            raise _Bad(f"must be a number{_bounds(low, high, low_open)}, got {v}")
        return v
    check.__doc__ = f"number{_bounds(low, high, low_open)}"
    return check


def _bounds(low: float | None, high: float | None, low_open: bool = False) -> str:
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low}, {high}]"
    if low is not None:
        return f" {'>' if low_open else '>='} {low}"
    if high is not None:
        return f" <= {high}"
    return ""


def boolean(v: Any) -> bool:
    """true or false"""
    if not isinstance(v, bool):
        raise _Bad(f"must be true or false, got {_show(v)}")
    return v


def string(v: Any) -> str:
    """string"""
    if not isinstance(v, str) or not v:
        raise _Bad(f"must be a non-empty string, got {_show(v)}")
    return v


def choice(options: Sequence[Any]) -> Checker:
    def check(v: Any) -> Any:
        if isinstance(v, bool) or v not in options:
            raise _Bad(f"must be one of {', '.join(map(str, options))}; got {_show(v)}")
        return v
    check.__doc__ = " | ".join(map(str, options))
    return check


def optional(inner: Checker) -> Checker:
    def check(v: Any) -> Any:
        return None if v is None else inner(v)
    check.__doc__ = f"{inner.__doc__} or null"
    return check


def mapping(v: Any) -> dict[str, Any]:
    """mapping"""
    if v is None:
        return {}
    if not isinstance(v, Mapping) or not all(isinstance(k, str) for k in v):
        raise _Bad(f"must be a mapping of names to values, got {_show(v)}")
    return dict(v)


def net_arch(v: Any) -> list[int] | dict[str, list[int]]:
    """list of layer sizes, or a mapping {pi: [...], vf: [...]} (PPO) / {pi, qf} (SAC, TD3)"""
    def layers(x: Any) -> list[int]:
        if not isinstance(x, list) or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in x):
            raise _Bad(f"must be a list of positive layer sizes or {{pi: [...], vf: [...]}}, got {_show(v)}")
        return list(x)
    if isinstance(v, Mapping):
        bad = [k for k in v if k not in ("pi", "vf", "qf")]
        if bad:
            raise _Bad(f"has unknown key {bad[0]!r}; a net_arch mapping takes pi, vf (PPO, A2C) or pi, qf (SAC, TD3)")
        return {k: layers(x) for k, x in v.items()}
    return layers(v)


NCP_KEYS = ("inter_neurons", "command_neurons", "motor_neurons", "sensory_fanout", "inter_fanout",
            "recurrent_command_synapses", "motor_fanin", "seed")


def wiring(v: Any) -> str | dict[str, int]:
    """full | ncp | random, or an explicit NCP {inter_neurons, command_neurons, motor_neurons,
    sensory_fanout, inter_fanout, recurrent_command_synapses, motor_fanin[, seed]}"""
    if isinstance(v, str):
        return choice(WIRING_NAMES)(v)
    if not isinstance(v, Mapping):
        raise _Bad(f"must be one of {', '.join(WIRING_NAMES)} or an NCP mapping; got {_show(v)}")
    for k in v:
        if k not in NCP_KEYS:
            close = difflib.get_close_matches(str(k), NCP_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; an NCP takes {', '.join(NCP_KEYS)}"
            raise _Bad(f"has unknown key {k!r}{hint}")
    out = {}
    for k in NCP_KEYS:
        if k not in v:
            if k == "seed":
                continue
            raise _Bad(f"is missing {k!r} (an NCP takes {', '.join(NCP_KEYS)})")
        low = 0 if k in ("recurrent_command_synapses", "seed") else 1
        try:
            out[k] = integer(low)(v[k])
        except _Bad as e:
            raise _Bad(f"{k} {e}") from None
    return out


# --- the schema -------------------------------------------------------------------------


class Key:
    """One config key: its checker, default and a one-line description (for docs)."""

    def __init__(self, check: Checker, default: Any = REQUIRED, doc: str = "") -> None:
        self.check, self.default, self.doc = check, default, doc


#: Policy types and what they need.
POLICY_TYPES = ("mlp", "lstm", "liquid_recurrent", "liquid_history")
#: Names accepted by ``policy.activation_fn`` -> torch.nn class names.
ACTIVATIONS = {"tanh": "Tanh", "relu": "ReLU", "elu": "ELU", "leaky_relu": "LeakyReLU", "gelu": "GELU",
               "silu": "SiLU"}
#: Names accepted in ``env.wrappers`` -> "module:attribute".
WRAPPERS = {
    "ObservationNoise": "liquid_rl.envs.wrappers:ObservationNoise",
    "MaskObservation": "liquid_rl.envs.wrappers:MaskObservation",
    "IrregularTime": "liquid_rl.envs.wrappers:IrregularTime",
    "ClipAction": "gymnasium.wrappers:ClipAction",
    "RescaleAction": "gymnasium.wrappers:RescaleAction",
    "FlattenObservation": "gymnasium.wrappers:FlattenObservation",
    "ResizeObservation": "gymnasium.wrappers:ResizeObservation",
    "GrayscaleObservation": "gymnasium.wrappers:GrayscaleObservation",
}
CELL_NAMES = ("ltc", "cfc", "liquid_s4", "lstm")
WIRING_NAMES = ("full", "ncp", "random")
SOLVER_NAMES = ("semi_implicit", "explicit", "rk4")
CFC_MODES = ("default", "no_gate", "pure")

SCHEMA: dict[str, dict[str, Key]] = {
    "env": {
        "id": Key(string, REQUIRED, "registered Gymnasium id, e.g. liquid_rl/LaneKeeping-v0"),
        "kwargs": Key(mapping, {}, "keyword arguments of gymnasium.make (the env's own config)"),
        "wrappers": Key(lambda v: v, [], "list of {name, kwargs}: Gymnasium wrappers applied in order"),
        "n_envs": Key(integer(1), 1, "number of parallel training envs"),
        "vec_env": Key(choice(["dummy", "subproc"]), "dummy", "DummyVecEnv (one process) or SubprocVecEnv"),
        "normalize": Key(lambda v: v, {}, "VecNormalize: {obs, reward, clip_obs, clip_reward}"),
        "frame_stack": Key(integer(1), 1, "VecFrameStack n_stack (set from policy.history for liquid_history)"),
        "max_episode_steps": Key(optional(integer(1)), None, "override the env's time limit"),
    },
    "algo": {
        "name": Key(choice(["ppo", "recurrent_ppo", "a2c", "sac", "td3", "recurrent_sac"]), REQUIRED,
                    "the algorithm"),
        "hyperparams": Key(mapping, {}, "keyword arguments of the algorithm class (checked against it)"),
    },
    "policy": {
        "type": Key(choice(POLICY_TYPES), "mlp", "mlp | lstm | liquid_recurrent | liquid_history"),
        "cell": Key(optional(choice(CELL_NAMES)), None, "liquid policies: ltc | cfc | liquid_s4 | lstm"),
        "wiring": Key(optional(wiring), None, "liquid policies: full | ncp | random, or an NCP mapping"),
        "units": Key(optional(integer(1)), None, "neurons of the cell (lstm: hidden size)"),
        "output_size": Key(optional(integer(1)), None, "motor neurons read out of the cell"),
        "ode_unfolds": Key(optional(integer(1)), None, "LTC solver sub-steps per env step"),
        "solver": Key(optional(choice(SOLVER_NAMES)), None, "LTC solver"),
        "mode": Key(optional(choice(CFC_MODES)), None, "CfC mode"),
        "history": Key(optional(integer(1)), None, "liquid_history: observations in the window (frame stack)"),
        "net_arch": Key(optional(net_arch), None, "layers after the features/cell (SB3's net_arch)"),
        "activation_fn": Key(optional(choice(list(ACTIVATIONS))), None, "activation of net_arch layers"),
        "kwargs": Key(mapping, {}, "more keyword arguments of the policy (liquid_history: of the extractor)"),
    },
    "train": {
        "total_timesteps": Key(integer(1), REQUIRED, "training budget in env steps (all envs together)"),
        "seed": Key(integer(0), 0, "random seed of the model and the envs"),
        "device": Key(choice(["auto", "cpu", "cuda"]), "auto", "torch device"),
        "threads": Key(optional(integer(1)), 1, "torch CPU threads (small policies run fastest on 1; null: torch's default)"),
        "checkpoint_every": Key(integer(1), 10000, "env steps between checkpoints"),
        "keep_checkpoints": Key(integer(1), 3, "checkpoints kept (the oldest are deleted)"),
        "eval_every": Key(integer(0), 10000, "env steps between evaluations for the best model (0: never)"),
        "eval_episodes": Key(integer(1), 5, "episodes per periodic evaluation"),
        "eval_deterministic": Key(boolean, True, "deterministic actions in periodic evaluations"),
        "diagnostics_every": Key(integer(0), 2000, "env steps between liquid diagnostics in TensorBoard (0: never)"),
        "progress_bar": Key(boolean, True, "show a progress bar"),
        "verbose": Key(integer(0, 2), 0, "stable-baselines3 verbosity"),
    },
}
NORMALIZE: dict[str, Key] = {
    "obs": Key(boolean, False, "normalise observations"),
    "reward": Key(boolean, False, "normalise rewards"),
    "clip_obs": Key(number(0, low_open=True), 10.0, "clip normalised observations"),
    "clip_reward": Key(number(0, low_open=True), 10.0, "clip normalised rewards"),
}
TOP_LEVEL = {"description": Key(optional(string), None, "free text")}

# Keys of the policy section used by each policy type (besides type and kwargs).
_LIQUID_KEYS = ("cell", "wiring", "units", "output_size", "ode_unfolds", "solver", "mode")
_TYPE_KEYS = {
    "mlp": ("net_arch", "activation_fn"),
    "lstm": ("units", "net_arch", "activation_fn"),
    "liquid_recurrent": _LIQUID_KEYS + ("net_arch", "activation_fn"),
    "liquid_history": _LIQUID_KEYS + ("history", "net_arch", "activation_fn"),
}
RECURRENT_ALGOS = ("recurrent_ppo", "recurrent_sac")
# Algorithm arguments that liquid-rl sets itself, and where the config sets them instead.
_RESERVED = {
    "policy": "policy.type", "env": "env.id", "policy_kwargs": "the policy section",
    "tensorboard_log": "the run directory", "verbose": "train.verbose", "seed": "train.seed",
    "device": "train.device", "_init_setup_model": None, "rollout_buffer_class": None,
    "replay_buffer_class": None,
}
# Ranges of common hyperparameters (on top of the type check from the signature).
_RANGES: dict[str, Checker] = {
    "n_steps": integer(1), "batch_size": integer(1), "n_epochs": integer(1),
    "gamma": number(0, 1, low_open=True), "gae_lambda": number(0, 1), "vf_coef": number(0),
    "max_grad_norm": number(0, low_open=True), "buffer_size": integer(1), "learning_starts": integer(0),
    "tau": number(0, 1, low_open=True), "policy_delay": integer(1), "target_policy_noise": number(0),
    "target_noise_clip": number(0), "target_update_interval": integer(1), "sde_sample_freq": integer(-1),
    "stats_window_size": integer(1), "rms_prop_eps": number(0, low_open=True),
}


# --- helpers ------------------------------------------------------------------------------


def _unknown(path: str, key: Any, known: Sequence[str]) -> ConfigError:
    where = f"{path}.{key}" if path else str(key)
    close = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else f"; valid keys: {', '.join(known)}"
    return ConfigError(f"unknown key {where!r}{hint}")


def _section(path: str, given: Any, keys: Mapping[str, Key]) -> dict[str, Any]:
    """Check the keys of one mapping against ``keys``; fill defaults; check values."""
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        raise ConfigError(f"{path!r} must be a mapping, got {_show(given)}")
    for k in given:
        if k not in keys:
            raise _unknown(path, k, list(keys))
    out: dict[str, Any] = {}
    for name, key in keys.items():
        where = f"{path}.{name}" if path else name
        if name not in given:
            if key.default is REQUIRED:
                raise ConfigError(f"missing key {where!r} ({key.doc})")
            out[name] = copy.deepcopy(key.default)
            continue
        try:
            out[name] = key.check(given[name])
        except _Bad as e:
            raise ConfigError(f"{where!r} {e}") from None
    return out


def _import(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(__import__(module, fromlist=[attr]), attr)


def _accepts_kwargs(fn: Callable[..., Any]) -> tuple[set[str], bool]:
    """Names of the keyword parameters of ``fn`` and whether it takes ``**kwargs``."""
    params = inspect.signature(fn).parameters.values()
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return names, any(p.kind == p.VAR_KEYWORD for p in params)


def _check_wrappers(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"'env.wrappers' must be a list of {{name, kwargs}}, got {_show(value)}")
    out = []
    for i, item in enumerate(value):
        path = f"env.wrappers[{i}]"
        if isinstance(item, str):
            item = {"name": item}
        w = _section(path, item, {"name": Key(string, REQUIRED, "wrapper name"), "kwargs": Key(mapping, {})})
        if w["name"] not in WRAPPERS:
            close = difflib.get_close_matches(w["name"], list(WRAPPERS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; choose one of {', '.join(WRAPPERS)}"
            raise ConfigError(f"'{path}.name' unknown wrapper {w['name']!r}{hint}")
        cls = _import(WRAPPERS[w["name"]])
        names, _ = _accepts_kwargs(cls.__init__)
        names.discard("self")
        names.discard("env")
        for k in w["kwargs"]:
            if k not in names:
                raise _unknown(f"{path}.kwargs", k, sorted(names))
        out.append(w)
    return out


def _check_env_id(env_id: str) -> None:
    import gymnasium as gym

    import liquid_rl.envs  # noqa: F401  (registers our ids)

    if ":" in env_id:  # "module:Env-v0" makes gymnasium import a module: not from a config
        raise ConfigError(f"'env.id' {env_id!r}: give a registered id without a 'module:' prefix")
    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=1, cutoff=0.7)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"'env.id' unknown environment {env_id!r}{hint}; ids of liquid-rl start with "
                          "'liquid_rl/', e.g. liquid_rl/LaneKeeping-v0")


# --- hyperparameters against the algorithm signature -----------------------------------------

_SCHEDULE = re.compile(r"^lin_([0-9.eE+-]+)$")


def _type_ok(value: Any, annotation: Any) -> bool:
    """Whether a YAML value fits a (simple) type annotation of an algorithm argument."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin in (tuple, typing.Tuple):  # noqa: UP006
        args = typing.get_args(annotation)
        return (isinstance(value, (list, tuple)) and len(value) == len(args)
                and all(_type_ok(v, a) for v, a in zip(value, args)))
    if origin in (dict, typing.Dict, Mapping):  # noqa: UP006
        return isinstance(value, Mapping)
    if origin in (list, typing.List):  # noqa: UP006
        return isinstance(value, list)
    if origin is Callable or annotation is Callable or str(annotation).startswith("collections.abc.Callable"):
        return isinstance(value, str) and bool(_SCHEDULE.match(value))  # "lin_3e-4": a linear schedule
    return False


def _resolve_annotation(annotation: Any, fn: Callable[..., Any]) -> Any:
    """A string annotation (``from __future__ import annotations``) evaluated in the
    namespace of the function's module; Any if it cannot be."""
    if not isinstance(annotation, str):
        return annotation
    import sys

    module = sys.modules.get(getattr(fn, "__module__", ""), None)
    try:
        return eval(annotation, dict(vars(module)) if module else {})  # noqa: S307  (library source, not input)
    except Exception:
        return Any


def _describe(annotation: Any) -> str:
    text = str(annotation).replace("collections.abc.Callable[[float], float]", "schedule 'lin_<start>'")
    return re.sub(r"<class '([\w.]+)'>", r"\1", text).replace("typing.", "")


def _check_action_noise(value: Any, path: str) -> dict[str, Any] | None:
    if value is None:
        return None
    keys = {"type": Key(choice(["normal", "ornstein_uhlenbeck"]), REQUIRED, "noise process"),
            "sigma": Key(number(0), REQUIRED, "standard deviation (per action dimension)"),
            "theta": Key(number(0), 0.15, "OU mean reversion"), "dt": Key(number(0, low_open=True), 0.01, "OU step")}
    return _section(path, value, keys)


def check_hyperparams(algo: str, hyper: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``algo.hyperparams`` against the algorithm class signature."""
    from liquid_rl.agents.algorithms import get_algorithm

    cls = get_algorithm(algo)
    sig = inspect.signature(cls.__init__)
    params = {n: p for n, p in sig.parameters.items() if n != "self"}
    out: dict[str, Any] = {}
    for name, value in hyper.items():
        path = f"algo.hyperparams.{name}"
        value = _scientific(value)
        if name in _RESERVED:
            where = _RESERVED[name]
            raise ConfigError(f"{path!r} is set by liquid-rl" + (f"; use {where}" if where else "; remove it"))
        if name not in params:
            known = sorted(n for n in params if n not in _RESERVED)
            raise _unknown("algo.hyperparams", name, known)
        if name == "action_noise":
            out[name] = _check_action_noise(value, path)
            continue
        if name == "ent_coef" and isinstance(value, str):
            if not re.match(r"^auto(_[0-9.eE+-]+)?$", value):
                raise ConfigError(f"{path!r} must be a number >= 0, 'auto' or 'auto_<init>', got {_show(value)}")
            out[name] = value
            continue
        if name == "train_freq" and isinstance(value, list):
            value = list(value)
            if len(value) == 2 and isinstance(value[1], str) and value[1] not in ("step", "episode"):
                raise ConfigError(f"{path!r} unit must be 'step' or 'episode', got {value[1]!r}")
        annotation = _resolve_annotation(params[name].annotation, cls.__init__)
        if isinstance(value, float) and value.is_integer() and _type_ok(1, annotation) and not _type_ok(0.5, annotation):
            value = int(value)  # 1e6 in YAML for an integer argument
        if not _type_ok(value, annotation):
            raise ConfigError(f"{path!r} must be {_describe(annotation)}, got {_show(value)}")
        if name in _RANGES and value is not None and not isinstance(value, (list, str)):
            try:
                value = _RANGES[name](value)
            except _Bad as e:
                raise ConfigError(f"{path!r} {e}") from None
        if name in ("learning_rate", "clip_range") and isinstance(value, (int, float)) and not value > 0:
            raise ConfigError(f"{path!r} must be > 0, got {value}")
        if isinstance(value, str) and _SCHEDULE.match(value):
            try:
                start = float(_SCHEDULE.match(value).group(1))  # type: ignore[union-attr]
            except ValueError:
                raise ConfigError(f"{path!r} bad schedule {value!r}; write lin_<start>, e.g. lin_3e-4") from None
            if not start > 0:
                raise ConfigError(f"{path!r} schedule must start > 0, got {value!r}")
        out[name] = value
    return out


# --- the whole config --------------------------------------------------------------------------


def validate_config(config: Any) -> dict[str, Any]:
    """Validate a config (a mapping as loaded from YAML) and return the resolved config.

    Raises:
        ConfigError: one line naming the first problem found.
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"a config must be a mapping with sections env, algo, policy, train; got {_show(config)}")
    known = list(SCHEMA) + list(TOP_LEVEL)
    for k in config:
        if k not in known:
            raise _unknown("", k, known)
    cfg: dict[str, Any] = {}
    for name, key in TOP_LEVEL.items():
        try:
            cfg[name] = key.check(config.get(name, key.default))
        except _Bad as e:
            raise ConfigError(f"{name!r} {e}") from None
    for section, keys in SCHEMA.items():
        if section not in config and any(k.default is REQUIRED for k in keys.values()):
            raise ConfigError(f"missing section {section!r}")
        cfg[section] = _section(section, config.get(section), keys)

    env, algo, policy, train = cfg["env"], cfg["algo"], cfg["policy"], cfg["train"]
    env["wrappers"] = _check_wrappers(env["wrappers"])
    env["normalize"] = _section("env.normalize", env["normalize"], NORMALIZE)
    _check_env_id(env["id"])

    # The policy type decides which keys apply and which algorithms fit.
    ptype = policy["type"]
    for k in _LIQUID_KEYS + ("history", "units"):
        if policy[k] is not None and k not in _TYPE_KEYS[ptype]:
            fits = [t for t, ks in _TYPE_KEYS.items() if k in ks]
            raise ConfigError(f"'policy.{k}' does not apply to policy.type {ptype!r} (it is for {' or '.join(fits)})")
    for k in policy["kwargs"]:
        if k in SCHEMA["policy"] or k in ("lstm_hidden_size", "features_extractor_class", "features_extractor_kwargs"):
            instead = "policy.units" if k == "lstm_hidden_size" else (
                "policy.type" if k.startswith("features_extractor") else f"policy.{k}")
            raise ConfigError(f"'policy.kwargs.{k}' is set by {instead}; set it there")
    if ptype in ("liquid_recurrent", "liquid_history") and policy["cell"] is None:
        raise ConfigError(f"'policy.cell' is required for policy.type {ptype!r}: one of {', '.join(CELL_NAMES)}")
    if ptype == "liquid_history" and policy["history"] is None:
        raise ConfigError("'policy.history' is required for policy.type 'liquid_history' (observations per window)")
    name = algo["name"]
    if ptype == "lstm" and name != "recurrent_ppo":
        raise ConfigError(f"'policy.type' 'lstm' needs algo.name 'recurrent_ppo', got {name!r} "
                          "(for an LSTM elsewhere use policy.type 'liquid_history' or 'liquid_recurrent' with cell 'lstm')")
    if ptype == "liquid_recurrent" and name not in RECURRENT_ALGOS:
        raise ConfigError(f"'policy.type' 'liquid_recurrent' needs algo.name 'recurrent_ppo' or 'recurrent_sac', "
                          f"got {name!r} (for sac, td3, ppo, a2c use policy.type 'liquid_history')")
    if name == "recurrent_ppo" and ptype not in ("lstm", "liquid_recurrent"):
        raise ConfigError(f"algo.name 'recurrent_ppo' needs policy.type 'lstm' or 'liquid_recurrent', got {ptype!r}")
    if name == "recurrent_sac" and ptype != "liquid_recurrent":
        raise ConfigError(f"algo.name 'recurrent_sac' needs policy.type 'liquid_recurrent', got {ptype!r}")
    if ptype == "liquid_history":
        if env["frame_stack"] not in (1, policy["history"]):
            raise ConfigError(f"'env.frame_stack' ({env['frame_stack']}) differs from policy.history "
                              f"({policy['history']}); drop env.frame_stack, liquid_history stacks the frames")
        env["frame_stack"] = policy["history"]
    if isinstance(policy["wiring"], dict):
        total = sum(policy["wiring"][k] for k in ("inter_neurons", "command_neurons", "motor_neurons"))
        if policy["units"] not in (None, total):
            raise ConfigError(f"'policy.units' is {policy['units']} but the NCP wiring has {total} neurons; drop units")
        if policy["output_size"] not in (None, policy["wiring"]["motor_neurons"]):
            raise ConfigError("'policy.output_size' differs from the NCP wiring's motor_neurons; drop output_size")
        if policy["cell"] not in ("ltc", "cfc"):
            raise ConfigError(f"'policy.wiring' an NCP wiring needs cell ltc or cfc, not {policy['cell']!r}")
    if policy["cell"] == "lstm" and any(policy[k] is not None for k in ("wiring", "ode_unfolds", "solver", "mode")):
        raise ConfigError("'policy.cell' lstm takes no wiring, ode_unfolds, solver or mode")
    if policy["cell"] != "ltc" and any(policy[k] is not None for k in ("ode_unfolds", "solver")):
        raise ConfigError(f"'policy.ode_unfolds' and 'policy.solver' are LTC options; policy.cell is {policy['cell']!r}")
    if policy["mode"] is not None and policy["cell"] != "cfc":
        raise ConfigError(f"'policy.mode' is a CfC option; policy.cell is {policy['cell']!r}")
    algo["hyperparams"] = check_hyperparams(name, algo["hyperparams"])

    if train["device"] == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("'train.device' is cuda but no CUDA device is available; use auto or cpu")
    return cfg


# --- files and overrides -------------------------------------------------------------------


def config_from_yaml_text(text: str, source: str = "config") -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"config: {source}{where}: invalid YAML ({problem})") from None


def _read_yaml(path: str | Path) -> Any:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config: file not found: {p}")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"config: cannot read {p}: {e}") from None
    data = config_from_yaml_text(text, str(p))
    if data is None:
        raise ConfigError(f"config: {p} is empty")
    return data


def apply_overrides(config: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides (values parsed as YAML) to a copy of ``config``."""
    cfg = copy.deepcopy(dict(config))
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"config: --set {item!r}: write key.path=value, e.g. train.total_timesteps=50000")
        value = config_from_yaml_text(text, f"--set {key}")
        node: Any = cfg
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.get(part) if isinstance(node, Mapping) else None
            if child is None:
                child = {}
                node[part] = child
            elif not isinstance(child, dict):
                raise ConfigError(f"config: --set {key}: {'.'.join(parts[: i + 1])!r} is not a section")
            node = child
        node[parts[-1]] = value
    return cfg


def load_config(path: str | Path, overrides: Sequence[str] = (), seed: int | None = None,
                device: str | None = None) -> dict[str, Any]:
    """Read a YAML config, apply ``--set`` overrides, ``--seed`` and ``--device``; validate.

    Returns the resolved config (every key present).
    """
    cfg = _read_yaml(path)
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"config: {path} must hold a mapping with sections env, algo, policy, train")
    extra = list(overrides)
    if seed is not None:
        extra.append(f"train.seed={int(seed)}")
    if device is not None:
        extra.append(f"train.device={device}")
    return validate_config(apply_overrides(cfg, extra))


def dump_config(config: Mapping[str, Any]) -> str:
    """The config as YAML text (sections in schema order)."""
    return yaml.safe_dump(dict(config), sort_keys=False, default_flow_style=None)
