"""Gymnasium environments and wrappers of liquid-rl (installed as ``liquid_rl.envs``).

Importing this package registers the environments below with Gymnasium; it is cheap
(highway-env and MuJoCo are imported only when their environments are made) and
idempotent.

- ``liquid_rl/LaneKeeping-v0``: ``lane_keeping.LaneKeepingEnv``, state observation
- ``liquid_rl/LaneKeepingPixels-v0``: ``lane_keeping_pixels.LaneKeepingPixelsEnv``,
  64x64x3 camera image
- ``liquid_rl/HighwayLaneKeeping-v0``: ``highway.HighwayLaneKeepingEnv``, highway-env's
  ``lane-keeping-v0`` with a flat observation
- ``liquid_rl/HiddenTarget-v0``: ``hidden_target.HiddenTargetEnv``, a goal seen only
  through the reward
- ``liquid_rl/CartPoleNoVel-v1``, ``liquid_rl/PendulumNoVel-v1``,
  ``liquid_rl/MountainCarContinuousNoVel-v0``: velocities zeroed (``partial``)
- ``liquid_rl/{R}-P-v5`` and ``liquid_rl/{R}-V-v5`` for R in HalfCheetah, Hopper,
  Walker2d, Ant: MuJoCo positions only / velocities only (``partial``)

Wrappers are in ``liquid_rl.envs.wrappers`` (``IrregularTime``, ``ObservationNoise``,
``MaskObservation``, and the perturbations of ``liquid-rl robustness``); the drawing of
the lane-keeping road is in ``liquid_rl.envs.renderers``.
"""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import register, registry

from .triton_first import load_triton_first

load_triton_first()  # before any MuJoCo render (see triton_first)

NAMESPACE = "liquid_rl"

#: Base env ids of the partially observable variants and their episode lengths.
_NO_VEL = {
    "CartPole-v1": ("CartPoleNoVel-v1", 500),
    "Pendulum-v1": ("PendulumNoVel-v1", 200),
    "MountainCarContinuous-v0": ("MountainCarContinuousNoVel-v0", 999),
}
_MUJOCO = ("HalfCheetah", "Hopper", "Walker2d", "Ant")


#: env id -> one line saying what it is (``liquid-rl list envs``).
DESCRIPTIONS: dict[str, str] = {}


def _register(name: str, entry_point: str, description: str, **kwargs: Any) -> str:
    env_id = f"{NAMESPACE}/{name}"
    if env_id not in registry:  # importing twice must neither fail nor warn
        register(id=env_id, entry_point=entry_point, **kwargs)
    DESCRIPTIONS[env_id] = description
    return env_id


def _register_all() -> list[str]:
    ids = [
        _register("LaneKeeping-v0", "liquid_rl.envs.lane_keeping:LaneKeepingEnv",
                  "lane keeping on a winding road, state observation (offset, heading, speed, curvature ahead)"),
        _register("LaneKeepingPixels-v0", "liquid_rl.envs.lane_keeping_pixels:LaneKeepingPixelsEnv",
                  "lane keeping on a winding road, 64x64x3 camera image"),
        _register("HighwayLaneKeeping-v0", "liquid_rl.envs.highway:HighwayLaneKeepingEnv",
                  "highway-env's lane-keeping-v0 with a flat observation (needs highway-env)"),
        _register("HiddenTarget-v0", "liquid_rl.envs.hidden_target:HiddenTargetEnv",
                  "find a hidden point seen only through the reward (needs the previous action and reward)"),
    ]
    for base, (name, steps) in _NO_VEL.items():
        ids.append(
            _register(name, "liquid_rl.envs.partial:make_no_vel", f"{base} with its velocities zeroed",
                      max_episode_steps=steps, kwargs={"base_id": base})
        )
    for robot in _MUJOCO:
        for part, shown in (("P", "positions"), ("V", "velocities")):
            ids.append(
                _register(f"{robot}-{part}-v5", "liquid_rl.envs.partial:make_mujoco_partial",
                          f"MuJoCo {robot}-v5 observing only its {shown}",
                          max_episode_steps=1000,
                          kwargs={"base_id": f"{robot}-v5", "part": part})
            )
    return ids


def quiet_mujoco() -> None:
    """Drop MuJoCo's ``settotalmass`` deprecation warning and turn its other warnings into
    Python ``RuntimeWarning``s.

    Gymnasium's MuJoCo model files use ``settotalmass``, which MuJoCo 3.x deprecates and
    prints for every env made (6 lines for one ``check``); a user can do nothing about it.
    Idempotent; imports mujoco, so call it only when a MuJoCo env is made.
    """
    import mujoco

    if getattr(mujoco.get_mju_user_warning(), "quiet_settotalmass", False):
        return

    def _warning(message: str) -> None:
        if "'settotalmass' is deprecated" not in message:
            warnings.warn(f"MuJoCo: {message}", RuntimeWarning, stacklevel=2)

    _warning.quiet_settotalmass = True  # type: ignore[attr-defined]
    mujoco.set_mju_user_warning(_warning)


def make(env_id: str, **kwargs: Any) -> gym.Env:
    """``gym.make`` with MuJoCo's warnings that a user cannot act on silenced (:func:`quiet_mujoco`)."""
    try:
        entry = str(gym.spec(env_id).entry_point)
    except gym.error.Error:
        entry = ""  # gym.make raises the error a user understands
    if "mujoco" in entry.lower():
        quiet_mujoco()
    return gym.make(env_id, **kwargs)


#: All ids registered by this package.
ENV_IDS: tuple[str, ...] = tuple(_register_all())

__all__ = ["ENV_IDS", "DESCRIPTIONS", "NAMESPACE", "make", "quiet_mujoco"]
