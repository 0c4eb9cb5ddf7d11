"""Observation and timing wrappers.

- ``MaskObservation(env, indices, mode)``: keep some entries of a Box observation and
  drop (``"drop"``) or zero (``"zero"``) the others; behind the partially observable
  variants in ``envs.partial``.
- ``ObservationNoise(env, sigma)``: additive Gaussian noise, for robustness evaluation.
- ``IrregularTime(env, ...)``: each agent step lasts a random time, reported in the
  observation (``"dt"``) and in ``info["dt"]``, so that liquid cells can integrate the
  real elapsed time.

Perturbations for robustness sweeps (``liquid-rl robustness``; each is the identity at
level 0): ``ObservationNoise``, ``ObservationDropout`` (entries zeroed with
probability p), ``ActionDelay`` (actions applied k steps late), ``ControlRate`` (the
env's time step scaled), and for images ``Brightness``, ``Occlusion`` (a random patch)
and ``Blur`` (Gaussian).

The random wrappers draw from their own generator, seeded by ``reset(seed=...)`` (mixed
with a per-wrapper constant so that it does not repeat the env's own stream), so a
seeded episode is reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import RecordConstructorArgs

__all__ = ["MaskObservation", "ObservationNoise", "IrregularTime", "find_base_dt", "ObservationDropout",
           "ActionDelay", "ControlRate", "Brightness", "Occlusion", "Blur", "is_image_space"]

# Constants mixed into the wrapper seeds (arbitrary, distinct).
_NOISE_SALT = 0x6E6F697365
_TIME_SALT = 0x74696D65
_DROPOUT_SALT = 0x64726F70
_OCCLUSION_SALT = 0x6F63636C


def _wrapper_rng(seed: int | None, salt: int) -> np.random.Generator:
    if seed is None:
        return np.random.default_rng()
    return np.random.default_rng([int(seed) & (2**64 - 1), salt])


class MaskObservation(gym.ObservationWrapper[np.ndarray, Any, np.ndarray], RecordConstructorArgs):
    """Keep the entries ``indices`` of a 1-D Box observation.

    Args:
        env: environment with a 1-D ``Box`` observation space of size D.
        indices: entries to keep (sorted, unique, in [0, D)).
        mode: ``"drop"`` returns only the kept entries, shape (len(indices),), with the
            matching bounds; ``"zero"`` keeps shape (D,) and sets the other entries to 0
            (as RL Zoo's velocity masking does, so results compare with its table).
    """

    def __init__(self, env: gym.Env, indices: Sequence[int], mode: str = "drop") -> None:
        RecordConstructorArgs.__init__(self, indices=list(map(int, indices)), mode=mode)
        gym.ObservationWrapper.__init__(self, env)
        space = env.observation_space
        if not isinstance(space, spaces.Box) or len(space.shape) != 1:
            raise ValueError(
                f"MaskObservation: needs a 1-D Box observation space, got {space}"
            )
        dim = space.shape[0]
        idx = np.asarray(list(indices), dtype=np.int64)
        if idx.ndim != 1 or idx.size == 0:
            raise ValueError(f"MaskObservation: 'indices' must be a non-empty list, got {indices!r}")
        if np.any(idx < 0) or np.any(idx >= dim) or len(np.unique(idx)) != idx.size:
            raise ValueError(
                f"MaskObservation: 'indices' must be unique entries in [0, {dim}), got {indices!r}"
            )
        if mode not in ("drop", "zero"):
            raise ValueError(f"MaskObservation: 'mode' must be 'drop' or 'zero', got {mode!r}")
        self.indices = np.sort(idx)
        self.mode = mode
        if mode == "drop":
            self.observation_space = spaces.Box(
                space.low[self.indices], space.high[self.indices], dtype=space.dtype
            )
        else:
            self._mask = np.zeros(dim, dtype=space.dtype)
            self._mask[self.indices] = 1
            # Zeroed entries must stay inside the declared bounds.
            low = np.where(self._mask == 1, space.low, np.minimum(space.low, 0))
            high = np.where(self._mask == 1, space.high, np.maximum(space.high, 0))
            self.observation_space = spaces.Box(low, high, dtype=space.dtype)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        obs = np.asarray(observation)
        if self.mode == "drop":
            return obs[self.indices]
        return obs * self._mask


class ObservationNoise(gym.ObservationWrapper[np.ndarray, Any, np.ndarray], RecordConstructorArgs):
    """Add Gaussian noise ``N(0, sigma^2)`` to every entry of a Box observation.

    Args:
        env: environment with a ``Box`` observation space of shape S.
        sigma: standard deviation, a scalar or an array broadcastable to S, >= 0 (for
            image observations in pixel units; the result is rounded).
        clip: clip the noisy observation to the finite bounds of the space, so that it
            stays a valid observation.
    """

    def __init__(self, env: gym.Env, sigma: float | Sequence[float] | np.ndarray,
                 clip: bool = True) -> None:
        RecordConstructorArgs.__init__(
            self, sigma=np.asarray(sigma).tolist(), clip=clip
        )
        gym.ObservationWrapper.__init__(self, env)
        space = env.observation_space
        if not isinstance(space, spaces.Box):
            raise ValueError(f"ObservationNoise: needs a Box observation space, got {space}")
        sig = np.asarray(sigma, dtype=np.float64)
        if not np.all(np.isfinite(sig)) or np.any(sig < 0):
            raise ValueError(f"ObservationNoise: 'sigma' must be finite and >= 0, got {sigma!r}")
        try:
            self.sigma = np.broadcast_to(sig, space.shape).copy()
        except ValueError:
            raise ValueError(
                f"ObservationNoise: 'sigma' of shape {sig.shape} does not broadcast to the "
                f"observation shape {space.shape}"
            ) from None
        self.clip = bool(clip)
        self._integer = np.issubdtype(space.dtype, np.integer)
        self._low = np.asarray(space.low, dtype=np.float64)
        self._high = np.asarray(space.high, dtype=np.float64)
        self._rng = _wrapper_rng(None, _NOISE_SALT)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._rng = _wrapper_rng(seed, _NOISE_SALT)
        return super().reset(seed=seed, options=options)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        space = self.observation_space
        noisy = np.asarray(observation, dtype=np.float64) + self._rng.standard_normal(
            space.shape
        ) * self.sigma
        if self._integer:
            noisy = np.rint(noisy)
        if self.clip or self._integer:
            noisy = np.clip(noisy, self._low, self._high)
        return noisy.astype(space.dtype)


def find_base_dt(env: gym.Env) -> float | None:
    """The duration [s] of one step of ``env`` if it can be found, else None.

    Looks at the unwrapped env: ``dt`` (MuJoCo, Pendulum, our envs), ``tau``
    (CartPole), ``config["policy_frequency"]`` (highway-env).
    """
    u = env.unwrapped
    for attr in ("dt", "tau"):
        value = getattr(u, attr, None)
        if isinstance(value, (int, float, np.floating)) and not isinstance(value, bool):
            if value > 0 and math.isfinite(float(value)):
                return float(value)
    config = getattr(u, "config", None)
    if isinstance(config, dict) and config.get("policy_frequency"):
        return 1.0 / float(config["policy_frequency"])
    return None


class IrregularTime(gym.Wrapper, RecordConstructorArgs):
    """Each agent step lasts a random time; the elapsed time is observed.

    Modes:

    - ``"repeat"``: the action is repeated for ``k`` base steps, ``k`` an integer drawn
      from ``distribution`` on ``[low, high]``; rewards are summed, the repetition
      stops early when the episode ends; elapsed time = (steps done) * base dt.
      The base dt is ``base_dt`` if given, else found on the env (``find_base_dt``).
    - ``"dt"``: the env's own integration step is set to a ``dt`` drawn from
      ``distribution`` on ``[low, high]`` seconds before a single step; the env must
      have ``set_dt(dt)`` (``LaneKeepingEnv`` and ``LaneKeepingPixelsEnv`` do).

    Distributions: ``"uniform"`` on ``[low, high]`` (integers in ``repeat`` mode);
    ``"exponential"``: ``low + Exp(mean - low)``, clipped to ``high`` (rounded in
    ``repeat`` mode), like the gaps of a Poisson sampling process; or a callable
    ``f(rng) -> value`` (clipped to ``[low, high]``).

    Observation: ``Dict({"obs": original space, "dt": Box(0, inf, (1,), float32)})``
    (a Dict original space gets the extra ``"dt"`` key); ``"dt"`` is 0 after a reset.
    ``info["dt"]`` is the elapsed time in seconds; in ``repeat`` mode
    ``info["repeats"]`` is the number of base steps done.
    """

    def __init__(
        self,
        env: gym.Env,
        mode: str = "repeat",
        low: float = 1,
        high: float = 4,
        distribution: str | Callable[[np.random.Generator], float] = "uniform",
        mean: float | None = None,
        base_dt: float | None = None,
    ) -> None:
        RecordConstructorArgs.__init__(
            self, mode=mode, low=low, high=high, distribution=distribution, mean=mean,
            base_dt=base_dt,
        )
        gym.Wrapper.__init__(self, env)
        if mode not in ("repeat", "dt"):
            raise ValueError(f"IrregularTime: 'mode' must be 'repeat' or 'dt', got {mode!r}")
        self.mode = mode
        if not callable(distribution) and distribution not in ("uniform", "exponential"):
            raise ValueError(
                "IrregularTime: 'distribution' must be 'uniform', 'exponential' or a "
                f"callable, got {distribution!r}"
            )
        try:
            lo, hi = float(low), float(high)
        except (TypeError, ValueError):
            raise ValueError(f"IrregularTime: 'low' and 'high' must be numbers, got {low!r}, {high!r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"IrregularTime: 'low' and 'high' must be finite, got {low!r}, {high!r}")
        if mode == "repeat":
            if lo != int(lo) or hi != int(hi) or lo < 1:
                raise ValueError(
                    f"IrregularTime: in 'repeat' mode 'low' and 'high' are step counts >= 1, "
                    f"got {low!r}, {high!r}"
                )
        elif not lo > 0:
            raise ValueError(f"IrregularTime: 'low' must be > 0 seconds, got {low!r}")
        if not hi >= lo:
            raise ValueError(f"IrregularTime: 'high' must be >= 'low', got {low!r}, {high!r}")
        self.low, self.high = lo, hi
        self.distribution = distribution
        if distribution == "exponential":
            if mean is None or not (float(mean) > lo and math.isfinite(float(mean))):
                raise ValueError(
                    f"IrregularTime: the exponential distribution needs 'mean' > low, got {mean!r}"
                )
        self.mean = None if mean is None else float(mean)

        if mode == "repeat":
            found = float(base_dt) if base_dt is not None else find_base_dt(env)
            if found is None or not (found > 0 and math.isfinite(found)):
                raise ValueError(
                    "IrregularTime: the duration of a step of this env is unknown; "
                    "pass 'base_dt' (seconds per base step)"
                )
            self._base_dt = found
        else:
            if not callable(getattr(env.unwrapped, "set_dt", None)):
                raise ValueError(
                    "IrregularTime: mode 'dt' needs an env with set_dt(dt) "
                    f"({type(env.unwrapped).__name__} has none); use mode 'repeat'"
                )
            self._base_dt = None

        inner = env.observation_space
        dt_space = spaces.Box(0.0, np.inf, shape=(1,), dtype=np.float32)
        if isinstance(inner, spaces.Dict):
            if "dt" in inner.spaces:
                raise ValueError("IrregularTime: the observation already has a 'dt' key")
            self._dict_obs = True
            self.observation_space = spaces.Dict({**inner.spaces, "dt": dt_space})
        else:
            self._dict_obs = False
            self.observation_space = spaces.Dict({"obs": inner, "dt": dt_space})
        self._rng = _wrapper_rng(None, _TIME_SALT)
        # A ControlRate inside stretches every step by its time_scale (fixed once wrapped).
        try:
            self._time_scale = float(env.get_wrapper_attr("time_scale"))
        except AttributeError:
            self._time_scale = 1.0

    # ------------------------------------------------------------------ sampling
    def sample_interval(self) -> float:
        """Draw the next step count (``repeat``) or duration in seconds (``dt``)."""
        rng = self._rng
        lo, hi = self.low, self.high
        if callable(self.distribution):
            value = float(self.distribution(rng))
        elif self.distribution == "uniform":
            if self.mode == "repeat":
                return float(rng.integers(int(lo), int(hi) + 1))
            value = float(rng.uniform(lo, hi))
        else:
            assert self.mean is not None
            value = lo + float(rng.exponential(self.mean - lo))
        if self.mode == "repeat":
            value = float(round(value))
        return min(max(value, lo), hi)

    def _wrap(self, obs: Any, dt: float) -> dict[str, Any]:
        d = np.array([dt], dtype=np.float32)
        if self._dict_obs:
            return {**obs, "dt": d}
        return {"obs": obs, "dt": d}

    # ------------------------------------------------------------------ API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._rng = _wrapper_rng(seed, _TIME_SALT)
        obs, info = self.env.reset(seed=seed, options=options)
        info = dict(info)
        info["dt"] = 0.0
        return self._wrap(obs, 0.0), info

    def step(self, action: Any):
        if self.mode == "dt":
            dt = self.sample_interval() * self._time_scale
            self.env.unwrapped.set_dt(dt)
            obs, reward, terminated, truncated, info = self.env.step(action)
            info = dict(info)
            info["dt"] = dt
            return self._wrap(obs, dt), float(reward), terminated, truncated, info
        k = int(self.sample_interval())
        total = 0.0
        done = 0
        for _ in range(k):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            done += 1
            if terminated or truncated:
                break
        assert self._base_dt is not None
        elapsed = done * self._base_dt * self._time_scale
        info = dict(info)
        info["dt"] = elapsed
        info["repeats"] = done
        return self._wrap(obs, elapsed), total, terminated, truncated, info


# ---------------------------------------------------------------------- perturbations
def is_image_space(space: spaces.Space) -> bool:
    """A uint8 ``Box`` of shape (H, W, C): the images the image perturbations accept."""
    return isinstance(space, spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3


def _check_level(name: str, key: str, value: float, low: float, high: float = math.inf,
                 integer: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not (low <= v <= high) or (integer and v != int(v)):
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{name}: {key!r} must be {kind} in [{low:g}, {high:g}], got {value!r}")
    return v


class _ImageWrapper(gym.ObservationWrapper[np.ndarray, Any, np.ndarray]):
    """Base of the image perturbations: checks for an (H, W, C) uint8 image space."""

    def __init__(self, env: gym.Env) -> None:
        gym.ObservationWrapper.__init__(self, env)
        if not is_image_space(env.observation_space):
            raise ValueError(
                f"{type(self).__name__}: needs an (H, W, C) uint8 image observation, got "
                f"{type(env.observation_space).__name__} of shape {env.observation_space.shape}"
            )


class ObservationDropout(gym.ObservationWrapper[np.ndarray, Any, np.ndarray], RecordConstructorArgs):
    """Set each entry of a Box observation to 0 with probability ``p``, independently each step.

    Args:
        env: environment with a ``Box`` observation space (0 is clipped into its bounds).
        p: drop probability in [0, 1].
    """

    def __init__(self, env: gym.Env, p: float) -> None:
        RecordConstructorArgs.__init__(self, p=p)
        gym.ObservationWrapper.__init__(self, env)
        space = env.observation_space
        if not isinstance(space, spaces.Box):
            raise ValueError(f"ObservationDropout: needs a Box observation space, got {space}")
        self.p = _check_level("ObservationDropout", "p", p, 0.0, 1.0)
        self._zero = np.clip(np.zeros(space.shape), space.low, space.high).astype(space.dtype)
        self._rng = _wrapper_rng(None, _DROPOUT_SALT)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._rng = _wrapper_rng(seed, _DROPOUT_SALT)
        return super().reset(seed=seed, options=options)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        if self.p == 0.0:
            return observation
        drop = self._rng.random(self._zero.shape) < self.p
        return np.where(drop, self._zero, observation)


class ActionDelay(gym.Wrapper, RecordConstructorArgs):
    """Apply each action ``k`` steps after the agent chose it.

    The first ``k`` steps of an episode apply the neutral action (zeros clipped into a
    Box action space, action 0 of a Discrete one).

    Args:
        env: environment with a ``Box`` or ``Discrete`` action space.
        k: delay in steps, an integer >= 0.
    """

    def __init__(self, env: gym.Env, k: int) -> None:
        RecordConstructorArgs.__init__(self, k=k)
        gym.Wrapper.__init__(self, env)
        self.k = int(_check_level("ActionDelay", "k", k, 0, 10_000, integer=True))
        space = env.action_space
        if isinstance(space, spaces.Box):
            self._neutral: Any = np.clip(np.zeros(space.shape), space.low, space.high).astype(space.dtype)
        elif isinstance(space, spaces.Discrete):
            self._neutral = int(space.start)
        else:
            raise ValueError(f"ActionDelay: needs a Box or Discrete action space, got {space}")
        self._queue: list[Any] = []

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._queue = [self._neutral] * self.k
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any):
        self._queue.append(np.copy(action))
        return self.env.step(self._queue.pop(0))


class ControlRate(gym.Wrapper, RecordConstructorArgs):
    """Scale the env's time step by ``factor`` (the agent acts less or more often).

    The env must have ``set_dt(dt)`` and a ``dt`` attribute (``LaneKeepingEnv``); the time
    step is set after every reset. ``info["dt"]`` is the step's duration [s]. This wrapper
    adds nothing to the observation, so a policy sees the same spaces as in training; a
    run that observes the elapsed time has an ``IrregularTime`` wrapper outside this one,
    which reads ``time_scale`` (= ``factor``) and scales the steps it draws and the elapsed
    time it observes, so the cells integrate over the time that really passed.

    Args:
        env: environment with ``set_dt``.
        factor: time step multiplier, > 0 (1 = unchanged).
        scale_reward: divide each reward by ``factor``, for rewards that grow with the
            step's duration (lane keeping's progress): returns at different rates then
            compare, an episode still being ``max_steps`` steps.
    """

    def __init__(self, env: gym.Env, factor: float, scale_reward: bool = True) -> None:
        RecordConstructorArgs.__init__(self, factor=factor, scale_reward=scale_reward)
        self.scale_reward = bool(scale_reward)
        gym.Wrapper.__init__(self, env)
        self.factor = _check_level("ControlRate", "factor", factor, 1e-3, 1e3)
        self.time_scale = self.factor  # read by an IrregularTime wrapper outside this one
        u = env.unwrapped
        if not callable(getattr(u, "set_dt", None)) or find_base_dt(env) is None:
            raise ValueError(
                f"ControlRate: needs an env with set_dt(dt) ({type(u).__name__} has none)"
            )

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        base = find_base_dt(self.env)  # the env restores its own time step at reset
        assert base is not None
        self.env.unwrapped.set_dt(base * self.factor)
        return obs, info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = dict(info)
        info["dt"] = float(find_base_dt(self.env) or 0.0)
        if self.scale_reward:
            reward = float(reward) / self.factor
        return obs, reward, terminated, truncated, info


class Brightness(_ImageWrapper, RecordConstructorArgs):
    """Scale image intensities by ``1 + change`` (rounded, clipped to [0, 255]).

    Args:
        env: environment with an (H, W, C) uint8 image observation.
        change: relative brightness change in [-1, 10] (-1 = black, 0 = unchanged).
    """

    def __init__(self, env: gym.Env, change: float) -> None:
        RecordConstructorArgs.__init__(self, change=change)
        _ImageWrapper.__init__(self, env)
        self.change = _check_level("Brightness", "change", change, -1.0, 10.0)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        if self.change == 0.0:
            return observation
        img = np.rint(np.asarray(observation, dtype=np.float32) * (1.0 + self.change))
        return np.clip(img, 0, 255).astype(np.uint8)


class Occlusion(_ImageWrapper, RecordConstructorArgs):
    """Black out a patch covering ``fraction`` of the frame, at a random place each step.

    The patch has the frame's aspect ratio (sides ``sqrt(fraction)`` times the frame's,
    rounded, so the covered fraction is exact up to a pixel row).

    Args:
        env: environment with an (H, W, C) uint8 image observation.
        fraction: covered fraction of the frame in [0, 1].
    """

    def __init__(self, env: gym.Env, fraction: float) -> None:
        RecordConstructorArgs.__init__(self, fraction=fraction)
        _ImageWrapper.__init__(self, env)
        self.fraction = _check_level("Occlusion", "fraction", fraction, 0.0, 1.0)
        h, w = env.observation_space.shape[:2]
        side = math.sqrt(self.fraction)
        self.patch = (int(round(side * h)), int(round(side * w)))
        self._rng = _wrapper_rng(None, _OCCLUSION_SALT)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._rng = _wrapper_rng(seed, _OCCLUSION_SALT)
        return super().reset(seed=seed, options=options)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        ph, pw = self.patch
        if ph == 0 or pw == 0:
            return observation
        h, w = observation.shape[:2]
        top = int(self._rng.integers(0, h - ph + 1))
        left = int(self._rng.integers(0, w - pw + 1))
        img = np.array(observation, copy=True)
        img[top:top + ph, left:left + pw] = 0
        return img


class Blur(_ImageWrapper, RecordConstructorArgs):
    """Gaussian blur of each channel with standard deviation ``sigma`` pixels.

    Args:
        env: environment with an (H, W, C) uint8 image observation.
        sigma: blur radius in pixels, in [0, 100] (0 = unchanged).
    """

    def __init__(self, env: gym.Env, sigma: float) -> None:
        RecordConstructorArgs.__init__(self, sigma=sigma)
        _ImageWrapper.__init__(self, env)
        self.sigma = _check_level("Blur", "sigma", sigma, 0.0, 100.0)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        if self.sigma == 0.0:
            return observation
        from scipy.ndimage import gaussian_filter

        img = gaussian_filter(np.asarray(observation, dtype=np.float32),
                              sigma=(self.sigma, self.sigma, 0.0), mode="nearest")
        return np.clip(np.rint(img), 0, 255).astype(np.uint8)
