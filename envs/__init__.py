"""Gymnasium environments and wrappers of liquid-rl (installed as ``liquid_rl.envs``).

Importing this package registers the environments below with Gymnasium; it is cheap
(highway-env and MuJoCo are imported only when their environments are made) and
idempotent.

- ``liquid_rl/LaneKeeping-v0``: ``lane_keeping.LaneKeepingEnv``, state observation
- ``liquid_rl/LaneKeepingPixels-v0``: ``lane_keeping_pixels.LaneKeepingPixelsEnv``,
  64x64x3 camera image
- ``liquid_rl/HighwayLaneKeeping-v0``: ``highway.HighwayLaneKeepingEnv``, highway-env's
  ``lane-keeping-v0`` with a flat observation
- ``liquid_rl/CartPoleNoVel-v1``, ``liquid_rl/PendulumNoVel-v1``,
  ``liquid_rl/MountainCarContinuousNoVel-v0``: velocities zeroed (``partial``)
- ``liquid_rl/{R}-P-v5`` and ``liquid_rl/{R}-V-v5`` for R in HalfCheetah, Hopper,
  Walker2d, Ant: MuJoCo positions only / velocities only (``partial``)

Wrappers are in ``liquid_rl.envs.wrappers`` (``IrregularTime``, ``ObservationNoise``,
``MaskObservation``).
"""

from __future__ import annotations

from typing import Any

from gymnasium.envs.registration import register, registry

NAMESPACE = "liquid_rl"

#: Base env ids of the partially observable variants and their episode lengths.
_NO_VEL = {
    "CartPole-v1": ("CartPoleNoVel-v1", 500),
    "Pendulum-v1": ("PendulumNoVel-v1", 200),
    "MountainCarContinuous-v0": ("MountainCarContinuousNoVel-v0", 999),
}
_MUJOCO = ("HalfCheetah", "Hopper", "Walker2d", "Ant")


def _register(name: str, entry_point: str, **kwargs: Any) -> str:
    env_id = f"{NAMESPACE}/{name}"
    if env_id not in registry:  # importing twice must neither fail nor warn
        register(id=env_id, entry_point=entry_point, **kwargs)
    return env_id


def _register_all() -> list[str]:
    ids = [
        _register("LaneKeeping-v0", "liquid_rl.envs.lane_keeping:LaneKeepingEnv"),
        _register("LaneKeepingPixels-v0", "liquid_rl.envs.lane_keeping_pixels:LaneKeepingPixelsEnv"),
        _register("HighwayLaneKeeping-v0", "liquid_rl.envs.highway:HighwayLaneKeepingEnv"),
    ]
    for base, (name, steps) in _NO_VEL.items():
        ids.append(
            _register(name, "liquid_rl.envs.partial:make_no_vel",
                      max_episode_steps=steps, kwargs={"base_id": base})
        )
    for robot in _MUJOCO:
        for part in ("P", "V"):
            ids.append(
                _register(f"{robot}-{part}-v5", "liquid_rl.envs.partial:make_mujoco_partial",
                          max_episode_steps=1000,
                          kwargs={"base_id": f"{robot}-v5", "part": part})
            )
    return ids


#: All ids registered by this package.
ENV_IDS: tuple[str, ...] = tuple(_register_all())

__all__ = ["ENV_IDS", "NAMESPACE"]
