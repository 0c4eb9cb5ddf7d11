"""The whole-config check: sections against the schema, then the rules between keys
(which policy type takes which keys and algorithms, wiring sizes against each other,
wrappers against their signatures, the env id against Gymnasium's registry)."""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import torch

import liquid_rl.envs  # noqa: F401  (registers our env ids)
from liquid_rl.agents.config.checks import REQUIRED, Invalid, Key, check_section, mapping, show, string, unknown_key
from liquid_rl.agents.config.hyperparams import check_hyperparams, check_kwarg_types
from liquid_rl.agents.config.schema import (
    CELL_NAMES,
    LIQUID_KEYS,
    NORMALIZE,
    RECURRENT_ALGOS,
    SCHEMA,
    TOP_LEVEL,
    TYPE_KEYS,
    WRAPPERS,
)
from liquid_rl.agents.errors import ConfigError
from liquid_rl.agents.recurrent_sac_policy import RecurrentSACPolicy
from liquid_rl.cfc import CfC
from liquid_rl.extractors import LiquidHistoryExtractor
from liquid_rl.liquid_s4 import LiquidS4
from liquid_rl.ltc import LTC
from liquid_rl.policies import LiquidRecurrentPolicy

__all__ = ["validate_config", "import_target"]


def import_target(target: str) -> Any:
    """``"module:attribute"`` -> the attribute (the wrappers of :data:`WRAPPERS`)."""
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def _keyword_names(fn: Any) -> set[str]:
    params = inspect.signature(fn).parameters.values()
    return {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _check_wrappers(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"'env.wrappers' must be a list of {{name, kwargs}}, got {show(value)}")
    out = []
    for i, item in enumerate(value):
        path = f"env.wrappers[{i}]"
        if isinstance(item, str):
            item = {"name": item}
        w = check_section(path, item, {"name": Key(string, REQUIRED, "wrapper name"), "kwargs": Key(mapping, {})})
        if w["name"] not in WRAPPERS:
            close = difflib.get_close_matches(w["name"], list(WRAPPERS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; choose one of {', '.join(WRAPPERS)}"
            raise ConfigError(f"'{path}.name' unknown wrapper {w['name']!r}{hint}")
        names = _keyword_names(import_target(WRAPPERS[w["name"]]).__init__) - {"self", "env"}
        for k in w["kwargs"]:
            if k not in names:
                raise unknown_key(f"{path}.kwargs", k, sorted(names))
        check_kwarg_types(f"{path}.kwargs", w["kwargs"], [import_target(WRAPPERS[w["name"]]).__init__])
        out.append(w)
    return out


def _check_env_id(env_id: str) -> None:
    if ":" in env_id:  # "module:Env-v0" makes gymnasium import a module: not from a config
        raise ConfigError(f"'env.id' {env_id!r}: give a registered id without a 'module:' prefix")
    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=1, cutoff=0.7)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"'env.id' unknown environment {env_id!r}{hint}; ids of liquid-rl start with "
                          "'liquid_rl/', e.g. liquid_rl/LaneKeeping-v0")


def _check_ncp(ncp: Mapping[str, int]) -> None:
    """The fan-outs of an explicit NCP against its layer sizes (what ``wirings.NCP`` needs)."""
    for key, layer in (("sensory_fanout", "inter_neurons"), ("inter_fanout", "command_neurons"),
                       ("motor_fanin", "command_neurons")):
        if ncp[key] > ncp[layer]:
            raise ConfigError(f"'policy.wiring.{key}' must be in [1, {ncp[layer]}] (the NCP's {layer}), "
                              f"got {ncp[key]}")


def _check_auto_ncp(policy: Mapping[str, Any]) -> None:
    """``wiring: ncp`` (AutoNCP): the motor neurons must leave room for inter and command
    neurons."""
    units, out = policy["units"], policy["output_size"]
    if units is not None and out is not None and out >= units - 2:
        raise ConfigError(f"'policy.output_size' must be in [1, {max(1, units - 3)}] for wiring ncp with "
                          f"{units} units (an NCP needs inter and command neurons), got {out}")


def _check_policy(policy: dict[str, Any], algo_name: str, env: dict[str, Any]) -> None:
    ptype = policy["type"]
    for k in LIQUID_KEYS + ("history", "units", "core_inputs"):
        if policy[k] is not None and k not in TYPE_KEYS[ptype]:
            fits = [t for t, ks in TYPE_KEYS.items() if k in ks]
            raise ConfigError(f"'policy.{k}' does not apply to policy.type {ptype!r} (it is for {' or '.join(fits)})")
    for k in policy["kwargs"]:
        if k in SCHEMA["policy"] or k in ("lstm_hidden_size", "features_extractor_class", "features_extractor_kwargs"):
            instead = "policy.units" if k == "lstm_hidden_size" else (
                "policy.type" if k.startswith("features_extractor") else f"policy.{k}")
            raise ConfigError(f"'policy.kwargs.{k}' is set by {instead}; set it there")
    if ptype in ("liquid_recurrent", "liquid_history"):
        # the policy's (or extractor's) own options first, then the cells' (mixed_memory, ...)
        owner = (LiquidHistoryExtractor if ptype == "liquid_history"
                 else RecurrentSACPolicy if algo_name == "recurrent_sac" else LiquidRecurrentPolicy)
        check_kwarg_types("policy.kwargs", policy["kwargs"], [owner.__init__, LTC.__init__, CfC.__init__,
                                                              LiquidS4.__init__])
    if ptype in ("liquid_recurrent", "liquid_history") and policy["cell"] is None:
        raise ConfigError(f"'policy.cell' is required for policy.type {ptype!r}: one of {', '.join(CELL_NAMES)}")
    if ptype == "liquid_history" and policy["history"] is None:
        raise ConfigError("'policy.history' is required for policy.type 'liquid_history' (observations per window)")
    if ptype == "lstm" and algo_name != "recurrent_ppo":
        raise ConfigError(f"'policy.type' 'lstm' needs algo.name 'recurrent_ppo', got {algo_name!r} "
                          "(for an LSTM elsewhere use policy.type 'liquid_history' or 'liquid_recurrent' with cell 'lstm')")
    if ptype == "liquid_recurrent" and algo_name not in RECURRENT_ALGOS:
        raise ConfigError(f"'policy.type' 'liquid_recurrent' needs algo.name 'recurrent_ppo' or 'recurrent_sac', "
                          f"got {algo_name!r} (for sac, td3, ppo, a2c use policy.type 'liquid_history')")
    if algo_name == "recurrent_ppo" and ptype not in ("lstm", "liquid_recurrent"):
        raise ConfigError(f"algo.name 'recurrent_ppo' needs policy.type 'lstm' or 'liquid_recurrent', got {ptype!r}")
    if algo_name == "recurrent_sac" and ptype != "liquid_recurrent":
        raise ConfigError(f"algo.name 'recurrent_sac' needs policy.type 'liquid_recurrent', got {ptype!r}")
    if ptype == "liquid_history":
        if env["frame_stack"] not in (1, policy["history"]):
            raise ConfigError(f"'env.frame_stack' ({env['frame_stack']}) differs from policy.history "
                              f"({policy['history']}); drop env.frame_stack, liquid_history stacks the frames")
        env["frame_stack"] = policy["history"]
    if isinstance(policy["wiring"], dict):
        _check_ncp(policy["wiring"])
        total = sum(policy["wiring"][k] for k in ("inter_neurons", "command_neurons", "motor_neurons"))
        if policy["units"] not in (None, total):
            raise ConfigError(f"'policy.units' is {policy['units']} but the NCP wiring has {total} neurons; drop units")
        if policy["output_size"] not in (None, policy["wiring"]["motor_neurons"]):
            raise ConfigError("'policy.output_size' differs from the NCP wiring's motor_neurons; drop output_size")
        if policy["cell"] not in ("ltc", "cfc"):
            raise ConfigError(f"'policy.wiring' an NCP wiring needs cell ltc or cfc, not {policy['cell']!r}")
    if policy["wiring"] == "ncp":
        _check_auto_ncp(policy)
    if policy["units"] is not None and policy["output_size"] is not None and policy["output_size"] > policy["units"]:
        raise ConfigError(f"'policy.output_size' must be in [1, {policy['units']}] (policy.units), "
                          f"got {policy['output_size']}")
    if policy["cell"] == "lstm" and any(policy[k] is not None for k in ("wiring", "ode_unfolds", "solver", "mode")):
        raise ConfigError("'policy.cell' lstm takes no wiring, ode_unfolds, solver or mode")
    if policy["cell"] != "ltc" and any(policy[k] is not None for k in ("ode_unfolds", "solver")):
        raise ConfigError(f"'policy.ode_unfolds' and 'policy.solver' are LTC options; policy.cell is {policy['cell']!r}")
    if policy["mode"] is not None and policy["cell"] != "cfc":
        raise ConfigError(f"'policy.mode' is a CfC option; policy.cell is {policy['cell']!r}")


def validate_config(config: Any) -> dict[str, Any]:
    """Validate a config (a mapping as loaded from YAML) and return the resolved config:
    every key present, defaults filled in.

    Raises:
        ConfigError: one line naming the first problem found.
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"a config must be a mapping with sections env, algo, policy, train; got {show(config)}")
    known = list(SCHEMA) + list(TOP_LEVEL)
    for k in config:
        if k not in known:
            raise unknown_key("", k, known)
    cfg: dict[str, Any] = {}
    for name, key in TOP_LEVEL.items():
        try:
            cfg[name] = key.check(config.get(name, key.default))
        except Invalid as e:
            raise ConfigError(f"{name!r} {e}") from None
    for section, keys in SCHEMA.items():
        if section not in config and any(k.default is REQUIRED for k in keys.values()):
            raise ConfigError(f"missing section {section!r}")
        cfg[section] = check_section(section, config.get(section), keys)

    env, algo, policy, train = cfg["env"], cfg["algo"], cfg["policy"], cfg["train"]
    env["wrappers"] = _check_wrappers(env["wrappers"])
    env["normalize"] = check_section("env.normalize", env["normalize"], NORMALIZE)
    _check_env_id(env["id"])
    _check_policy(policy, algo["name"], env)
    algo["hyperparams"] = check_hyperparams(algo["name"], algo["hyperparams"])

    if train["device"] == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("'train.device' is cuda but no CUDA device is available; use auto or cpu")
    return cfg
