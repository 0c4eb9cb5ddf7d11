"""Partially observable variants: velocities (or positions) hidden from the agent.

- Classic control "NoVel" (``CartPoleNoVel-v1``, ``PendulumNoVel-v1``,
  ``MountainCarContinuousNoVel-v0``): the velocity entries are set to zero and the
  observation keeps its shape, exactly as RL Baselines3 Zoo's ``MaskVelocityWrapper``
  does, so that returns compare with the Zoo's table.
- MuJoCo ``-P`` (positions only) and ``-V`` (velocities only) variants of
  HalfCheetah, Hopper, Walker2d and Ant v5: the other entries (and Ant's contact
  forces) are dropped. Which entries hold ``qpos`` and which ``qvel`` is derived from
  the compiled model and the env's options (see ``mujoco_observation_layout``), so
  options such as ``exclude_current_positions_from_observation=False`` or
  ``include_cfrc_ext_in_observation=False`` give the right split.

The base env is made with its own time limit disabled; the registered id carries the
same ``max_episode_steps`` as the base env (so ``spec.max_episode_steps`` is right and a
``max_episode_steps=`` given to ``gymnasium.make`` is the one that counts).
Keyword arguments of ``gymnasium.make`` are passed to the base env.

The listed render modes leave out ``"human"`` (it needs a display; ``check_env`` tries
every listed mode). ``render_mode="human"`` still reaches the base env's own viewer.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from .wrappers import MaskObservation

#: Velocity entries of the classic control observations (as in RL Zoo):
#: CartPole (x, x_dot, theta, theta_dot), Pendulum (cos th, sin th, th_dot),
#: MountainCarContinuous (position, velocity).
VELOCITY_INDICES: dict[str, tuple[int, ...]] = {
    "CartPole-v1": (1, 3),
    "Pendulum-v1": (2,),
    "MountainCarContinuous-v0": (1,),
}

MUJOCO_BASES = ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5")


def _headless_render_modes(env: gym.Env) -> None:
    modes = [m for m in env.metadata.get("render_modes", []) if m != "human"]
    env.metadata = {**env.metadata, "render_modes": modes}


def make_no_vel(base_id: str, **kwargs: Any) -> gym.Env:
    """``base_id`` with its velocity entries zeroed (RL Zoo's masking)."""
    if base_id not in VELOCITY_INDICES:
        raise ValueError(
            f"make_no_vel: no velocity masking for {base_id!r}; known: {sorted(VELOCITY_INDICES)}"
        )
    env = gym.make(base_id, max_episode_steps=-1, disable_env_checker=True, **kwargs)
    dim = env.observation_space.shape[0]
    keep = [i for i in range(dim) if i not in VELOCITY_INDICES[base_id]]
    wrapped = MaskObservation(env, keep, mode="zero")
    _headless_render_modes(wrapped)
    return wrapped


def _horizontal_root_coordinates(model: Any) -> int:
    """How many leading ``qpos`` entries are the root's horizontal (x, y) position.

    These are the entries that ``exclude_current_positions_from_observation`` hides:
    a free root joint starts with x, y, z (2 horizontal); a planar robot starts with
    slide joints, and those whose axis has no vertical component are horizontal.
    """
    import mujoco  # lazy: importing liquid_rl.envs must not load MuJoCo

    if model.njnt == 0:
        return 0
    if int(model.jnt_type[0]) == int(mujoco.mjtJoint.mjJNT_FREE):
        return 2
    count = 0
    for j in range(model.njnt):
        if int(model.jnt_type[j]) != int(mujoco.mjtJoint.mjJNT_SLIDE):
            break
        if int(model.jnt_qposadr[j]) != count:
            break
        if abs(float(model.jnt_axis[j][2])) > 1e-9:
            break  # the vertical slide (rootz) is kept in the observation
        count += 1
    return count


def mujoco_observation_layout(env: gym.Env) -> dict[str, Any]:
    """Which observation entries of a MuJoCo v5 locomotion env are qpos and qvel.

    Derived from ``model.nq``, ``model.nv``, the root joint and the env options
    ``exclude_current_positions_from_observation`` and (Ant)
    ``include_cfrc_ext_in_observation``; checked against the observation size and,
    when the env has one, its ``observation_structure``.

    Returns a dict with ``"qpos"`` and ``"qvel"`` (index arrays into the observation),
    ``"qpos_source"`` and ``"qvel_source"`` (the ``data.qpos`` / ``data.qvel`` entries
    they hold) and ``"extra"`` (the size of what follows, e.g. contact forces).
    Hopper and Walker2d clip their velocity entries to [-10, 10].
    """
    u = env.unwrapped
    model = getattr(u, "model", None)
    if model is None or not hasattr(model, "nq"):
        raise ValueError(f"{type(u).__name__} is not a MuJoCo env (no model)")
    nq, nv = int(model.nq), int(model.nv)
    exclude = bool(getattr(u, "_exclude_current_positions_from_observation", True))
    skipped = _horizontal_root_coordinates(model) if exclude else 0
    n_pos = nq - skipped
    extra = 0
    if getattr(u, "_include_cfrc_ext_in_observation", False) or getattr(
        u, "_use_contact_forces", False
    ):
        extra = int(u.data.cfrc_ext[1:].size)  # v5 leaves out the world body
    dim = int(np.prod(env.observation_space.shape))
    if n_pos + nv + extra != dim:
        raise ValueError(
            f"{type(u).__name__}: observation size {dim} does not split into "
            f"{n_pos} positions + {nv} velocities + {extra} others"
        )
    structure = getattr(u, "observation_structure", None)
    if isinstance(structure, dict):
        expect = (structure.get("skipped_qpos"), structure.get("qpos"), structure.get("qvel"))
        if expect != (skipped, n_pos, nv):
            raise ValueError(
                f"{type(u).__name__}: derived split (skipped {skipped}, qpos {n_pos}, "
                f"qvel {nv}) disagrees with observation_structure {structure}"
            )
    return {
        "qpos": np.arange(n_pos),
        "qvel": np.arange(n_pos, n_pos + nv),
        "qpos_source": np.arange(skipped, nq),
        "qvel_source": np.arange(nv),
        "extra": extra,
    }


def make_mujoco_partial(base_id: str, part: str, **kwargs: Any) -> gym.Env:
    """``base_id`` observing only positions (``part="P"``) or velocities (``"V"``)."""
    if part not in ("P", "V"):
        raise ValueError(f"make_mujoco_partial: 'part' must be 'P' or 'V', got {part!r}")
    env = gym.make(base_id, max_episode_steps=-1, disable_env_checker=True, **kwargs)
    layout = mujoco_observation_layout(env)
    wrapped = MaskObservation(env, layout["qpos" if part == "P" else "qvel"], mode="drop")
    _headless_render_modes(wrapped)
    return wrapped
