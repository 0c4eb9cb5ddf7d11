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
environment and returns the *resolved* config: every key present, defaults filled in.
Errors are :class:`ConfigError` with one line naming the key, e.g.
``config: unknown key 'env.n_env' (did you mean 'env.n_envs'?)``.

Where things are: ``checks`` (the checking language), ``schema`` (every key),
``hyperparams`` (against the algorithm's signature), ``rules`` (between keys),
``yaml_io`` (files and ``--set``); the errors are ``liquid_rl.agents.errors``.
"""

from liquid_rl.agents.config.hyperparams import check_hyperparams
from liquid_rl.agents.config.rules import import_target, validate_config
from liquid_rl.agents.config.schema import (
    ACTIVATIONS,
    CELL_NAMES,
    CFC_MODES,
    LIMITS,
    POLICY_TYPES,
    SCHEMA,
    SOLVER_NAMES,
    WIRING_NAMES,
    WRAPPERS,
)
from liquid_rl.agents.config.yaml_io import (
    apply_overrides,
    config_from_yaml_text,
    dump_config,
    load_config,
    read_config_file,
)
from liquid_rl.agents.errors import ConfigError, UserError

__all__ = [
    "UserError",
    "ConfigError",
    "load_config",
    "validate_config",
    "check_hyperparams",
    "apply_overrides",
    "dump_config",
    "config_from_yaml_text",
    "read_config_file",
    "import_target",
    "SCHEMA",
    "LIMITS",
    "POLICY_TYPES",
    "WRAPPERS",
    "ACTIVATIONS",
    "CELL_NAMES",
    "WIRING_NAMES",
    "SOLVER_NAMES",
    "CFC_MODES",
]
