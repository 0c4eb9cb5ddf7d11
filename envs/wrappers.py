"""Observation and timing wrappers.

- ``MaskObservation(env, indices, mode)``: keep some entries of a Box observation and
  drop (``"drop"``) or zero (``"zero"``) the others; behind the partially observable
  variants in ``envs.partial``.
- ``ObservationNoise(env, sigma)``: additive Gaussian noise, for robustness evaluation.
- ``IrregularTime(env, ...)``: each agent step lasts a random time, reported in the
  observation (``"dt"``) and in ``info["dt"]``, so that liquid cells can integrate the
  real elapsed time.

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

__all__ = ["MaskObservation", "ObservationNoise", "IrregularTime", "find_base_dt"]

# Constants mixed into the wrapper seeds (arbitrary, distinct).
_NOISE_SALT = 0x6E6F697365
_TIME_SALT = 0x74696D65


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
            dt = self.sample_interval()
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
        elapsed = done * self._base_dt
        info = dict(info)
        info["dt"] = elapsed
        info["repeats"] = done
        return self._wrap(obs, elapsed), total, terminated, truncated, info
