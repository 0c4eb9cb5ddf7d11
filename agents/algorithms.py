"""Algorithm names of the configs -> stable-baselines3 (and sb3-contrib, liquid-rl) classes."""

from __future__ import annotations

import importlib

from stable_baselines3.common.base_class import BaseAlgorithm

from liquid_rl.agents.errors import ConfigError

__all__ = ["ALGORITHMS", "ON_POLICY", "OFF_POLICY", "RECURRENT_ALGOS", "get_algorithm", "is_off_policy"]

#: name -> (module, class); imported on first use, so an optional package costs nothing
#: until its algorithm is asked for
ALGORITHMS: dict[str, tuple[str, str]] = {
    "ppo": ("stable_baselines3", "PPO"),
    "a2c": ("stable_baselines3", "A2C"),
    "sac": ("stable_baselines3", "SAC"),
    "td3": ("stable_baselines3", "TD3"),
    "recurrent_ppo": ("sb3_contrib", "RecurrentPPO"),
    "recurrent_sac": ("liquid_rl.agents.recurrent_sac", "RecurrentSAC"),
}
ON_POLICY = ("ppo", "a2c", "recurrent_ppo")
OFF_POLICY = ("sac", "td3", "recurrent_sac")
RECURRENT_ALGOS = ("recurrent_ppo", "recurrent_sac")  # carry a policy state across steps


def get_algorithm(name: str) -> type[BaseAlgorithm]:
    """The algorithm class of a config name.

    Raises:
        ConfigError: unknown name, or an algorithm whose module is not available.
    """
    if name not in ALGORITHMS:
        raise ConfigError(f"'algo.name' unknown algorithm {name!r}; choose one of {', '.join(ALGORITHMS)}")
    module, attr = ALGORITHMS[name]
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"'algo.name' {name!r} is not available in this installation ({module}.{attr}: {e})") from None
    return cls


def is_off_policy(name: str) -> bool:
    """Whether the algorithm learns from a replay buffer (saved with checkpoints)."""
    return name in OFF_POLICY
