"""What a recurrent core reads each step: the observation and, optionally, the previous
action and the previous reward (pomdp-baselines, Ni et al. 2022; RLlib's
``lstm_use_prev_action`` / ``lstm_use_prev_reward``).

Data path. :class:`PreviousActionReward` is a VecEnv wrapper that appends the action
taken and the reward received at the previous step to each flat observation::

    [obs (D) | prev_action (A) | prev_reward (1)]

with zeros at each episode start. Box actions are scaled to [-1, 1] (as SB3 scales
them), Discrete actions one-hot. Because the inputs travel inside the observation, every
place that stores observations (RecurrentPPO's rollout buffer, RecurrentSAC's sequence
replay, ``predict``'s caller) holds exactly what acting saw, with no extra state.

Policies that take ``core_inputs`` split such an observation again
(:func:`split_observation`) and feed the parts through :class:`CoreInputs`: the
observation's features and the previous action and reward, each optionally through a
small embedding (Linear, optional LayerNorm, ReLU; pomdp-baselines: obs 32, action 16,
reward 16), concatenated as the core's input.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn
from torch import Tensor, nn

__all__ = ["CORE_INPUTS", "EXTRA_INPUTS", "check_core_inputs", "extras", "action_input_size", "extra_size", "PreviousActionReward",
           "find_previous_inputs", "observation_part", "split_observation", "CoreInputs", "POMDP_BASELINES_EMBEDDINGS"]

CORE_INPUTS = ("obs", "prev_action", "prev_reward")
EXTRA_INPUTS = ("prev_action", "prev_reward")
# pomdp-baselines' embedding sizes (Ni et al. 2022)
POMDP_BASELINES_EMBEDDINGS = {"obs": 32, "prev_action": 16, "prev_reward": 16}


def check_core_inputs(core_inputs: Any) -> tuple[str, ...]:
    """``core_inputs`` as a tuple in canonical order; ValueError unless a list of distinct
    names of ``CORE_INPUTS`` that includes "obs"."""
    if isinstance(core_inputs, str) or not isinstance(core_inputs, Iterable):
        raise ValueError(f"core_inputs must be a list of {list(CORE_INPUTS)}, got {core_inputs!r}")
    names = list(core_inputs)
    bad = [n for n in names if n not in CORE_INPUTS]
    if bad or len(set(names)) != len(names) or "obs" not in names:
        raise ValueError(f"core_inputs must be distinct names of {list(CORE_INPUTS)} including 'obs', "
                         f"got {core_inputs!r}")
    return tuple(n for n in CORE_INPUTS if n in names)


def extras(core_inputs: Iterable[str]) -> tuple[str, ...]:
    """The previous-step inputs among ``core_inputs``, in canonical order."""
    return tuple(n for n in EXTRA_INPUTS if n in core_inputs)


def action_input_size(action_space: spaces.Space) -> int:
    """Numbers that encode one action as an input: Box size, or n for one-hot Discrete."""
    if isinstance(action_space, spaces.Box):
        return int(np.prod(action_space.shape))
    if isinstance(action_space, spaces.Discrete):
        return int(action_space.n)
    raise ValueError(f"prev_action takes a Box or Discrete action space, got {action_space}")


def extra_size(core_inputs: Iterable[str], action_space: spaces.Space) -> int:
    """Length of the previous-step part appended to the observation."""
    ex = extras(core_inputs)
    return ("prev_action" in ex) * action_input_size(action_space) + ("prev_reward" in ex)


class PreviousActionReward(VecEnvWrapper):
    """Append the previous action and reward to each flat Box observation.

    Args:
        venv: a VecEnv with a 1-D Box observation space and a Box or Discrete action space.
        inputs: which to append, a subset of ("prev_action", "prev_reward"), in that order.

    Observations become ``(n_envs, D + E)``: the env's D numbers, then the previous action
    (Box: scaled to [-1, 1]; Discrete: one-hot), then the previous reward; all zero right
    after a reset and at the first observation of every episode. The
    ``terminal_observation`` of an episode that ends carries the action and reward of its
    last step (the history an off-policy target bootstraps from).
    """

    def __init__(self, venv: VecEnv, inputs: Iterable[str] = EXTRA_INPUTS) -> None:
        names = tuple(inputs)
        if not names or any(n not in EXTRA_INPUTS for n in names) or len(set(names)) != len(names):
            raise ValueError(f"PreviousActionReward inputs must be distinct names of {list(EXTRA_INPUTS)}, got {names!r}")
        self.inputs = tuple(n for n in EXTRA_INPUTS if n in names)
        space = venv.observation_space
        if not isinstance(space, spaces.Box) or len(space.shape) != 1:
            raise ValueError(f"PreviousActionReward takes a flat Box observation space, got {space}")
        self._action_size = action_input_size(venv.action_space) if "prev_action" in self.inputs else 0
        n_extra = self._action_size + ("prev_reward" in self.inputs)
        low = np.concatenate([space.low, np.full(n_extra, -np.inf)]).astype(np.float32)
        high = np.concatenate([space.high, np.full(n_extra, np.inf)]).astype(np.float32)
        super().__init__(venv, observation_space=spaces.Box(low, high, dtype=np.float32))
        self._extra = np.zeros((venv.num_envs, n_extra), dtype=np.float32)
        self._actions: np.ndarray | None = None

    def _encode_actions(self, actions: np.ndarray) -> np.ndarray:
        """(n_envs, *action_shape) env actions -> (n_envs, A) inputs."""
        space = self.venv.action_space
        if isinstance(space, spaces.Discrete):
            return np.eye(space.n, dtype=np.float32)[np.asarray(actions, dtype=np.int64).reshape(-1) - space.start]
        a = np.asarray(actions, dtype=np.float32).reshape(self.num_envs, -1)
        low, high = space.low.reshape(-1), space.high.reshape(-1)
        bounded = np.isfinite(low) & np.isfinite(high)
        scaled = np.where(bounded, 2.0 * (a - low) / np.where(bounded, high - low, 1.0) - 1.0, a)
        return np.clip(scaled, -1.0, 1.0, where=bounded, out=scaled).astype(np.float32)

    def _with_extra(self, obs: np.ndarray, extra: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(obs, dtype=np.float32).reshape(len(extra), -1), extra], axis=1)

    def reset(self) -> VecEnvObs:
        obs = self.venv.reset()
        self._extra[:] = 0.0
        return self._with_extra(obs, self._extra)  # type: ignore[arg-type]

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions
        self.venv.step_async(actions)

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        assert self._actions is not None
        parts = []
        if "prev_action" in self.inputs:
            parts.append(self._encode_actions(self._actions))
        if "prev_reward" in self.inputs:
            parts.append(np.asarray(rewards, dtype=np.float32).reshape(-1, 1))
        extra = np.concatenate(parts, axis=1)
        for i, done in enumerate(dones):
            if done and infos[i].get("terminal_observation") is not None:
                infos[i]["terminal_observation"] = self._with_extra(infos[i]["terminal_observation"][None], extra[i:i + 1])[0]
        self._extra = np.where(np.asarray(dones, dtype=bool)[:, None], 0.0, extra).astype(np.float32)
        return self._with_extra(obs, self._extra), rewards, dones, infos  # type: ignore[arg-type]


def find_previous_inputs(venv: VecEnv | None) -> PreviousActionReward | None:
    """The PreviousActionReward inside a chain of VecEnv wrappers, if any."""
    while venv is not None:
        if isinstance(venv, PreviousActionReward):
            return venv
        venv = getattr(venv, "venv", None)
    return None


def observation_part(space: spaces.Space, n_extra: int) -> spaces.Space:
    """The env's own observation space inside one that ``PreviousActionReward`` extended
    by ``n_extra`` numbers (``space`` itself when ``n_extra == 0``)."""
    if n_extra == 0:
        return space
    if not isinstance(space, spaces.Box) or len(space.shape) != 1 or space.shape[0] <= n_extra:
        raise ValueError(f"core_inputs with a previous action or reward need a flat Box observation longer than "
                         f"{n_extra} (the env wrapped in PreviousActionReward), got {space}")
    return spaces.Box(space.low[:-n_extra], space.high[:-n_extra], dtype=space.dtype)  # type: ignore[arg-type]


def split_observation(obs: Tensor, n_extra: int) -> tuple[Tensor, Tensor]:
    """(N, D + E) -> the observation (N, D) and the previous-step part (N, E)."""
    if n_extra == 0:
        return obs, obs[..., :0]
    return obs[..., :-n_extra], obs[..., -n_extra:]


def _embedding(size: int, out: int | None, layer_norm: bool) -> tuple[nn.Module, int]:
    if out is None:
        return (nn.LayerNorm(size) if layer_norm else nn.Identity()), size
    layers: list[nn.Module] = [nn.Linear(size, out)]
    if layer_norm:
        layers.append(nn.LayerNorm(out))
    layers.append(nn.ReLU())
    return nn.Sequential(*layers), out


class CoreInputs(nn.Module):
    """Observation features and previous action / reward -> the core's input.

    Args:
        core_inputs: names of ``CORE_INPUTS`` (checked by :func:`check_core_inputs`).
        features_dim: F, observation features per step (after the features extractor).
        action_size: A, numbers of the previous-action input (0 when not used).
        embeddings: output size per input name (e.g. ``POMDP_BASELINES_EMBEDDINGS``); an
            input without an entry passes through unchanged. ``None``: no embeddings.
        layer_norm: LayerNorm after each embedding (or on the raw input without one).

    ``forward(features (..., F), extra (..., E)) -> (..., output_size)``, where ``extra``
    is the previous-step part of the observation (:func:`split_observation`).
    """

    def __init__(self, core_inputs: Iterable[str], features_dim: int, action_size: int,
                 embeddings: Mapping[str, int] | None = None, layer_norm: bool = False) -> None:
        super().__init__()
        self.core_inputs = check_core_inputs(core_inputs)
        embeddings = dict(embeddings or {})
        bad = [k for k in embeddings if k not in self.core_inputs]
        if bad:
            raise ValueError(f"input_embeddings names {bad} that are not in core_inputs {list(self.core_inputs)}")
        for k, v in embeddings.items():
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"input_embeddings[{k!r}] must be a positive integer, got {v!r}")
        sizes = {"obs": features_dim, "prev_action": action_size, "prev_reward": 1}
        self.sizes = [sizes[n] for n in self.core_inputs]
        self.parts = nn.ModuleList()
        self.output_size = 0
        for name in self.core_inputs:
            module, out = _embedding(sizes[name], embeddings.get(name), layer_norm)
            self.parts.append(module)
            self.output_size += out
        self.n_extra = sum(self.sizes[1:])

    def forward(self, features: Tensor, extra: Tensor) -> Tensor:
        pieces = [features, *th.split(extra, self.sizes[1:], dim=-1)] if self.n_extra else [features]
        return th.cat([m(p) for m, p in zip(self.parts, pieces)], dim=-1)
