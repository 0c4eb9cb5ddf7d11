"""A replay buffer of sequences for recurrent off-policy algorithms (recurrent SAC).

Transitions are stored as stable-baselines3's :class:`ReplayBuffer` stores them: one
row per vectorised env step, one column per env (``(buffer_size, n_envs, ...)``
arrays, written circularly). Besides the usual fields, each row keeps whether its
observation is the first of an episode (``episode_starts``) and, optionally, the
recurrent state the actor had *before* it saw that observation (``states``).

:meth:`SequenceReplayBuffer.sample` returns windows of ``T = burn_in + sequence_length``
consecutive steps of one env column each, time-major:

- a window never crosses the circular write pointer, so it never mixes fresh and
  overwritten data, and never mixes env columns;
- a window may cross episode boundaries: ``resets[t]`` is True where an episode starts
  inside the window, and the recurrent cores zero their state there (their ``resets``
  argument), so no state flows from one episode into the next;
- ``mask[t]`` is 1 for steps that hold data (0 past the newest row while the buffer
  holds fewer than T rows); with ``cross_episodes=False`` it is also 0 for steps of
  another episode than the one of the first learning step (step ``burn_in``);
- ``start_states`` is the stored actor state at the window's first step (when states
  are stored), for burn-in from the stored state instead of from zero.

Episode ends are split as SB3 splits them: ``terminations`` (the MDP ended: no
bootstrap) and ``truncations`` (a time limit cut the episode: bootstrap from
``next_observations``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.vec_env import VecNormalize


class SequenceReplayBufferSamples(NamedTuple):
    """A batch of ``B`` windows of ``T`` steps, time-major.

    Shapes: observations, next_observations (T, B, *obs_shape); actions (T, B, A);
    rewards, terminations, truncations, mask (T, B) float32; resets (T, B) bool;
    start_states (B, S) or None.
    """

    observations: th.Tensor
    actions: th.Tensor
    next_observations: th.Tensor
    rewards: th.Tensor
    terminations: th.Tensor
    truncations: th.Tensor
    resets: th.Tensor
    mask: th.Tensor
    start_states: th.Tensor | None


class SequenceReplayBuffer(ReplayBuffer):
    """Circular per-env transition storage sampled as windows of consecutive steps.

    :param buffer_size: total number of transitions kept (split over the env columns,
        as in SB3's ``ReplayBuffer``: ``buffer_size // n_envs`` rows).
    :param observation_space: a ``Box`` or ``Discrete`` observation space.
    :param action_space: the action space.
    :param device: torch device of the sampled tensors.
    :param n_envs: number of env columns.
    :param optimize_memory_usage: must be False (kept for SB3's constructor call).
    :param handle_timeout_termination: keep time-limit truncations apart from
        terminations (``infos[i]["TimeLimit.truncated"]``), as SB3 does.
    :param sequence_length: L, the steps of each window that enter the losses.
    :param burn_in: B, steps before them that only rebuild the recurrent state.
    :param state_size: S > 0 stores one actor state of S floats per step
        (``add(..., state=...)``) and returns ``start_states``; 0 stores none.
    :param cross_episodes: if False, mask out steps of another episode than the one
        of the first learning step.
    """

    episode_starts: np.ndarray
    states: np.ndarray | None

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        sequence_length: int = 32,
        burn_in: int = 0,
        state_size: int = 0,
        cross_episodes: bool = True,
    ) -> None:
        if optimize_memory_usage:
            raise ValueError("SequenceReplayBuffer does not support optimize_memory_usage=True")
        if isinstance(observation_space, spaces.Dict):
            raise ValueError("SequenceReplayBuffer does not support Dict observation spaces")
        if int(sequence_length) < 1:
            raise ValueError(f"sequence_length must be >= 1, got {sequence_length}")
        if int(burn_in) < 0:
            raise ValueError(f"burn_in must be >= 0, got {burn_in}")
        if int(state_size) < 0:
            raise ValueError(f"state_size must be >= 0, got {state_size}")
        rows = max(buffer_size // n_envs, 1)
        if rows < burn_in + sequence_length:
            raise ValueError(
                f"buffer_size // n_envs = {rows} rows cannot hold one window of "
                f"burn_in + sequence_length = {burn_in + sequence_length} steps"
            )
        super().__init__(buffer_size, observation_space, action_space, device, n_envs,
                         optimize_memory_usage=False, handle_timeout_termination=handle_timeout_termination)
        self.sequence_length = int(sequence_length)
        self.burn_in = int(burn_in)
        self.state_size = int(state_size)
        self.cross_episodes = bool(cross_episodes)
        self.episode_starts = np.zeros((self.buffer_size, self.n_envs), dtype=bool)
        self.states = (np.zeros((self.buffer_size, self.n_envs, self.state_size), dtype=np.float32)
                       if self.state_size > 0 else None)

    @property
    def window_length(self) -> int:
        """T = burn_in + sequence_length, the steps of one sampled window."""
        return self.burn_in + self.sequence_length

    def add(
        self,
        obs: np.ndarray,
        next_obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
        episode_start: np.ndarray | None = None,
        state: np.ndarray | None = None,
    ) -> None:
        """Store one vectorised step (each argument has a leading ``n_envs`` axis).

        :param episode_start: (n_envs,) bool, True where ``obs`` is the first observation
            of an episode. ``None`` infers it: True after a stored episode end in that
            column (done or truncation) and for the very first row.
        :param state: (n_envs, S) actor state before ``obs``; required when
            ``state_size > 0``, refused otherwise.
        """
        if episode_start is None:
            if self.pos == 0 and not self.full:
                episode_start = np.ones(self.n_envs, dtype=bool)
            else:
                prev = (self.pos - 1) % self.buffer_size
                episode_start = (self.dones[prev] > 0) | (self.timeouts[prev] > 0)
        episode_start = np.asarray(episode_start, dtype=bool).reshape(self.n_envs)
        if self.states is not None:
            if state is None:
                raise ValueError(f"this buffer stores states (state_size={self.state_size}); add() needs state=")
            state = np.asarray(state, dtype=np.float32)
            if state.shape != (self.n_envs, self.state_size):
                raise ValueError(f"state must have shape {(self.n_envs, self.state_size)}, got {state.shape}")
            self.states[self.pos] = state
        elif state is not None:
            raise ValueError("this buffer stores no states (state_size=0); do not pass state=")
        self.episode_starts[self.pos] = episode_start
        super().add(obs, next_obs, action, reward, done, infos)  # advances self.pos

    def truncate_last_step(self) -> None:
        """End the episodes of the newest row as a time-limit truncation.

        Call it when the next stored step will not follow the newest one (the env was
        reset, or a loaded buffer continues with a new env): the next ``add`` then
        starts new episodes and no target bootstraps across the gap.
        """
        if self.pos == 0 and not self.full:
            return
        last = (self.pos - 1) % self.buffer_size
        open_ = self.dones[last] == 0
        self.dones[last, open_] = 1.0
        self.timeouts[last, open_] = 1.0

    def sample(self, batch_size: int, env: VecNormalize | None = None) -> SequenceReplayBufferSamples:  # type: ignore[override]
        """Sample ``batch_size`` windows of ``T = burn_in + sequence_length`` steps.

        Window starts are uniform over the positions whose whole window lies in the
        stored, time-ordered data (from the oldest to the newest row); the env column
        is uniform. While fewer than T rows are stored, windows start at the oldest row
        and the steps past the newest row have ``mask == 0``.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        size = self.size()
        if size == 0:
            raise ValueError("cannot sample from an empty SequenceReplayBuffer")
        T = self.window_length
        oldest = self.pos if self.full else 0
        offsets = np.random.randint(0, max(size - T, 0) + 1, size=batch_size)  # from the oldest row
        env_indices = np.random.randint(0, self.n_envs, size=batch_size)
        return self._get_windows(oldest, offsets, env_indices, env)

    def _get_windows(self, oldest: int, offsets: np.ndarray, env_indices: np.ndarray,
                     env: VecNormalize | None = None) -> SequenceReplayBufferSamples:
        """Windows starting ``offsets`` rows after the ``oldest`` row, in env columns
        ``env_indices`` (both (B,)), as time-major tensors."""
        T = self.window_length
        steps = offsets[None, :] + np.arange(T)[:, None]  # (T, B), age order from the oldest row
        valid = steps < self.size()
        rows = (oldest + steps) % self.buffer_size
        cols = np.broadcast_to(env_indices[None, :], rows.shape)

        dones = self.dones[rows, cols] > 0
        timeouts = self.timeouts[rows, cols] > 0
        resets = self.episode_starts[rows, cols].copy()
        resets[~valid] = False
        mask = valid.copy()
        if not self.cross_episodes:
            episode = np.cumsum(resets, axis=0)
            mask &= episode == episode[self.burn_in]

        start_states = None
        if self.states is not None:
            start_states = self.to_torch(self.states[rows[0], env_indices])
        f32 = np.float32
        return SequenceReplayBufferSamples(
            observations=self.to_torch(self._normalize_obs(self.observations[rows, cols], env)),
            actions=self.to_torch(self.actions[rows, cols]),
            next_observations=self.to_torch(self._normalize_obs(self.next_observations[rows, cols], env)),
            rewards=self.to_torch(self._normalize_reward(self.rewards[rows, cols], env).astype(f32)),
            terminations=self.to_torch((dones & ~timeouts).astype(f32)),
            truncations=self.to_torch(timeouts.astype(f32)),
            resets=self.to_torch(resets),
            mask=self.to_torch(mask.astype(f32)),
            start_states=start_states,
        )

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> SequenceReplayBufferSamples:  # type: ignore[override]
        """Windows starting at buffer rows ``batch_inds`` (columns drawn uniformly)."""
        oldest = self.pos if self.full else 0
        offsets = (np.asarray(batch_inds) - oldest) % self.buffer_size
        offsets = np.minimum(offsets, max(self.size() - self.window_length, 0))
        env_indices = np.random.randint(0, self.n_envs, size=len(offsets))
        return self._get_windows(oldest, offsets, env_indices, env)
