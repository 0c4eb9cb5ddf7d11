"""The config schema: every key of every section, its checker, default and description.

Name lists come from the registries that own them (``liquid_rl.core.CELLS``,
``core.WIRINGS``, ``solvers.SOLVERS``, ``cfc.MODES``, ``agents.algorithms.ALGORITHMS``),
so adding a cell, a solver or an algorithm is one change there.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from liquid_rl.agents.algorithms import ALGORITHMS, RECURRENT_ALGOS
from liquid_rl.agents.config.checks import (
    REQUIRED,
    Checker,
    Invalid,
    Key,
    boolean,
    choice,
    integer,
    mapping,
    number,
    optional,
    show,
    string,
)
from liquid_rl.core import CELLS, WIRINGS
from liquid_rl.cfc import MODES
from liquid_rl.core_inputs import CORE_INPUTS, check_core_inputs
from liquid_rl.solvers import SOLVERS

__all__ = [
    "SCHEMA", "NORMALIZE", "TOP_LEVEL", "POLICY_TYPES", "ACTIVATIONS", "WRAPPERS", "CELL_NAMES", "WIRING_NAMES",
    "SOLVER_NAMES", "CFC_MODES", "ALGORITHM_NAMES", "RECURRENT_ALGOS", "NCP_KEYS", "LIQUID_KEYS", "TYPE_KEYS",
    "LIMITS",
]

CELL_NAMES = tuple(CELLS)
WIRING_NAMES = tuple(WIRINGS)
SOLVER_NAMES = tuple(SOLVERS)
CFC_MODES = tuple(MODES)
ALGORITHM_NAMES = tuple(ALGORITHMS)

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

#: Upper bounds that keep a run finite and its sizes allocatable. Sizes that depend on
#: the env (buffers) are estimated against the machine's memory when the model is built.
LIMITS = {
    "total_timesteps": 10**10,  # ~ a year of steps at 300 steps/s
    "n_envs": 512,
    "units": 2048,  # LTC parameters grow with units^2 (several matrices)
    "ode_unfolds": 100,
    "history": 1024,
    "layer": 8192,  # one net_arch layer
}


def net_arch(v: Any) -> list[int] | dict[str, list[int]]:
    """list of layer sizes, or a mapping {pi: [...], vf: [...]} (PPO) / {pi, qf} (SAC, TD3)"""
    top = LIMITS["layer"]

    def layers(x: Any) -> list[int]:
        if not isinstance(x, list) or any(isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= top
                                          for n in x):
            raise Invalid(f"must be a list of layer sizes in [1, {top}] or {{pi: [...], vf: [...]}}, got {show(v)}")
        return list(x)
    if isinstance(v, Mapping):
        bad = [k for k in v if k not in ("pi", "vf", "qf")]
        if bad:
            raise Invalid(f"has unknown key {bad[0]!r}; a net_arch mapping takes pi, vf (PPO, A2C) or pi, qf (SAC, TD3)")
        return {k: layers(x) for k, x in v.items()}
    return layers(v)


NCP_KEYS = ("inter_neurons", "command_neurons", "motor_neurons", "sensory_fanout", "inter_fanout",
            "recurrent_command_synapses", "motor_fanin", "seed")


def core_inputs(v: Any) -> list[str]:
    """list of obs | prev_action | prev_reward, with obs"""
    try:
        return list(check_core_inputs(v))
    except ValueError as e:
        raise Invalid(str(e).replace("core_inputs must be", "must be")) from None


def wiring(v: Any) -> str | dict[str, int]:
    """full | ncp | random, or an explicit NCP {inter_neurons, command_neurons, motor_neurons,
    sensory_fanout, inter_fanout, recurrent_command_synapses, motor_fanin[, seed]}"""
    if isinstance(v, str):
        return choice(WIRING_NAMES)(v)
    if not isinstance(v, Mapping):
        raise Invalid(f"must be one of {', '.join(WIRING_NAMES)} or an NCP mapping; got {show(v)}")
    for k in v:
        if k not in NCP_KEYS:
            close = difflib.get_close_matches(str(k), NCP_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; an NCP takes {', '.join(NCP_KEYS)}"
            raise Invalid(f"has unknown key {k!r}{hint}")
    out = {}
    for k in NCP_KEYS:
        if k not in v:
            if k == "seed":
                continue
            raise Invalid(f"is missing {k!r} (an NCP takes {', '.join(NCP_KEYS)})")
        low = 0 if k in ("recurrent_command_synapses", "seed") else 1
        high = None if k == "seed" else LIMITS["units"]
        try:
            out[k] = integer(low, high)(v[k])
        except Invalid as e:
            raise Invalid(f"{k} {e}") from None
    return out


def _units(doc: str) -> Key:
    return Key(optional(integer(1, LIMITS["units"])), None, doc)


SCHEMA: dict[str, dict[str, Key]] = {
    "env": {
        "id": Key(string, REQUIRED, "registered Gymnasium id, e.g. liquid_rl/LaneKeeping-v0"),
        "kwargs": Key(mapping, {}, "keyword arguments of gymnasium.make (the env's own config)"),
        "wrappers": Key(lambda v: v, [], "list of {name, kwargs}: Gymnasium wrappers applied in order"),
        "n_envs": Key(integer(1, LIMITS["n_envs"]), 1, "number of parallel training envs"),
        "vec_env": Key(choice(["dummy", "subproc"]), "dummy", "DummyVecEnv (one process) or SubprocVecEnv"),
        "normalize": Key(lambda v: v, {}, "VecNormalize: {obs, reward, clip_obs, clip_reward}"),
        "frame_stack": Key(integer(1, LIMITS["history"]), 1,
                           "VecFrameStack n_stack (set from policy.history for liquid_history)"),
        "max_episode_steps": Key(optional(integer(1)), None, "override the env's time limit"),
    },
    "algo": {
        "name": Key(choice(ALGORITHM_NAMES), REQUIRED, "the algorithm"),
        "hyperparams": Key(mapping, {}, "keyword arguments of the algorithm class (checked against it)"),
    },
    "policy": {
        "type": Key(choice(POLICY_TYPES), "mlp", " | ".join(POLICY_TYPES)),
        "cell": Key(optional(choice(CELL_NAMES)), None, f"liquid policies: {' | '.join(CELL_NAMES)}"),
        "wiring": Key(optional(wiring), None, f"liquid policies: {' | '.join(WIRING_NAMES)}, or an NCP mapping"),
        "units": _units("neurons of the cell (lstm: hidden size)"),
        "output_size": _units("motor neurons read out of the cell"),
        "ode_unfolds": Key(optional(integer(1, LIMITS["ode_unfolds"])), None, "LTC solver sub-steps per env step"),
        "solver": Key(optional(choice(SOLVER_NAMES)), None, "LTC solver"),
        "mode": Key(optional(choice(CFC_MODES)), None, "CfC mode"),
        "core_inputs": Key(optional(core_inputs), None,
                           "liquid_recurrent: what the cores read, a list of " + " | ".join(CORE_INPUTS)),
        "history": Key(optional(integer(1, LIMITS["history"])), None,
                       "liquid_history: observations in the window (frame stack)"),
        "net_arch": Key(optional(net_arch), None, "layers after the features/cell (SB3's net_arch)"),
        "activation_fn": Key(optional(choice(list(ACTIVATIONS))), None, "activation of net_arch layers"),
        "kwargs": Key(mapping, {}, "more keyword arguments of the policy (liquid_history: of the extractor)"),
    },
    "train": {
        "total_timesteps": Key(integer(1, LIMITS["total_timesteps"]), REQUIRED,
                               "training budget in env steps (all envs together)"),
        "seed": Key(integer(0, 2**32 - 1), 0, "random seed of the model and the envs"),
        "device": Key(choice(["auto", "cpu", "cuda"]), "auto", "torch device"),
        "threads": Key(optional(integer(1, 1024)), 1,
                       "torch CPU threads (small policies run fastest on 1; null: torch's default)"),
        "checkpoint_every": Key(integer(1), 10000, "env steps between checkpoints"),
        "keep_checkpoints": Key(integer(1), 3, "checkpoints kept (the oldest are deleted)"),
        "eval_every": Key(integer(0), 10000, "env steps between evaluations for the best model (0: never)"),
        "eval_episodes": Key(integer(1, 10**6), 5, "episodes per periodic evaluation"),
        "eval_deterministic": Key(boolean, True, "deterministic actions in periodic evaluations"),
        "diagnostics_every": Key(integer(0), 2000, "env steps between liquid diagnostics in TensorBoard (0: never)"),
        "progress_bar": Key(boolean, True, "show a progress bar"),
        "check_finite": Key(boolean, True, "stop with an error at a NaN or infinite observation, reward or action"),
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
LIQUID_KEYS = ("cell", "wiring", "units", "output_size", "ode_unfolds", "solver", "mode")
TYPE_KEYS = {
    "mlp": ("net_arch", "activation_fn"),
    "lstm": ("units", "net_arch", "activation_fn"),
    "liquid_recurrent": LIQUID_KEYS + ("net_arch", "activation_fn", "core_inputs"),
    "liquid_history": LIQUID_KEYS + ("history", "net_arch", "activation_fn"),
}

#: Checker of the action noise mapping of off-policy algorithms.
ACTION_NOISE: dict[str, Key] = {
    "type": Key(choice(["normal", "ornstein_uhlenbeck"]), REQUIRED, "noise process"),
    "sigma": Key(number(0), REQUIRED, "standard deviation (per action dimension)"),
    "theta": Key(number(0), 0.15, "OU mean reversion"),
    "dt": Key(number(0, low_open=True), 0.01, "OU step"),
}
# Ranges of common hyperparameters (on top of the type check from the signature).
HYPERPARAM_RANGES: dict[str, Checker] = {
    "learning_rate": number(0, 1, low_open=True), "clip_range": number(0, 10, low_open=True),
    "clip_range_vf": optional(number(0, low_open=True)), "ent_coef": number(0, 10),
    "n_steps": integer(1, 10**7), "batch_size": integer(1, 10**7), "n_epochs": integer(1, 10**4),
    "gamma": number(0, 1, low_open=True), "gae_lambda": number(0, 1), "vf_coef": number(0, 10**3),
    "max_grad_norm": number(0, low_open=True), "buffer_size": integer(1, 10**9), "learning_starts": integer(0),
    "tau": number(0, 1, low_open=True), "policy_delay": integer(1, 10**4), "target_policy_noise": number(0),
    "target_noise_clip": number(0), "target_update_interval": integer(1), "sde_sample_freq": integer(-1),
    "stats_window_size": integer(1, 10**6), "rms_prop_eps": number(0, low_open=True),
    "gradient_steps": integer(-1, 10**4), "target_kl": optional(number(0, low_open=True)),
}
