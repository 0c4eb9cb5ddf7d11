"""SequenceReplayBuffer: windows of consecutive steps, masks, resets, stored states.

Every stored step encodes where it came from: observation = (global step k, env,
episode id, step in episode), so a sampled window can be checked step by step.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from hypothesis import given, settings
from hypothesis import strategies as st

from liquid_rl.agents.sequence_replay import SequenceReplayBuffer

OBS_SPACE = spaces.Box(-np.inf, np.inf, (4,), np.float32)
ACT_SPACE = spaces.Box(-1.0, 1.0, (2,), np.float32)


def fill(buffer: SequenceReplayBuffer, n_steps: int, end_prob: float, seed: int,
         explicit_starts: bool = True) -> dict[tuple[int, int], tuple[bool, bool]]:
    """Write ``n_steps`` vectorised steps of random-length episodes; return the episode
    end of each (step, env): (terminated, truncated)."""
    rng = np.random.default_rng(seed)
    n = buffer.n_envs
    episode = np.arange(n) * 1000
    t_in_ep = np.zeros(n, dtype=int)
    starts = np.ones(n, dtype=bool)
    ends = {}
    for k in range(n_steps):
        obs = np.stack([np.full(n, k), np.arange(n), episode, t_in_ep], axis=1).astype(np.float32)
        next_obs = obs + np.array([1, 0, 0, 1], dtype=np.float32)
        done = rng.random(n) < end_prob
        truncated = done & (rng.random(n) < 0.5)
        infos = [{"TimeLimit.truncated": bool(truncated[i])} for i in range(n)]
        action = np.stack([np.full(n, k / 1000.0), np.arange(n) / 10.0], axis=1).astype(np.float32)
        reward = (10.0 * k + np.arange(n)).astype(np.float32)
        state = None
        if buffer.state_size:
            state = np.zeros((n, buffer.state_size), np.float32)
            state[:, 0], state[:, 1] = k, np.arange(n)
        buffer.add(obs, next_obs, action, reward, done.astype(np.float32), infos,
                   episode_start=starts if explicit_starts else None, state=state)
        for i in range(n):
            ends[(k, i)] = (bool(done[i] and not truncated[i]), bool(truncated[i]))
        t_in_ep = np.where(done, 0, t_in_ep + 1)
        episode = np.where(done, episode + 1, episode)
        starts = done.copy()
    return ends


@settings(max_examples=60, deadline=None)
@given(
    n_envs=st.integers(1, 3),
    rows=st.integers(6, 30),
    sequence_length=st.integers(1, 6),
    burn_in=st.integers(0, 4),
    n_steps=st.integers(1, 90),
    end_prob=st.sampled_from([0.0, 0.1, 0.4]),
    state_size=st.sampled_from([0, 3]),
    cross_episodes=st.booleans(),
    explicit_starts=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_windows_are_contiguous_per_env_with_masks_and_resets(
    n_envs, rows, sequence_length, burn_in, n_steps, end_prob, state_size, cross_episodes, explicit_starts, seed
):
    T = burn_in + sequence_length
    if rows < T:
        rows = T
    buffer = SequenceReplayBuffer(rows * n_envs, OBS_SPACE, ACT_SPACE, "cpu", n_envs=n_envs,
                                  sequence_length=sequence_length, burn_in=burn_in,
                                  state_size=state_size, cross_episodes=cross_episodes)
    ends = fill(buffer, n_steps, end_prob, seed, explicit_starts)
    np.random.seed(seed)
    data = buffer.sample(16)
    B = 16
    assert data.observations.shape == (T, B, 4)
    assert data.actions.shape == (T, B, 2)
    assert data.rewards.shape == data.mask.shape == data.resets.shape == (T, B)
    assert data.resets.dtype == th.bool
    oldest_step = max(0, n_steps - rows)
    n_valid = min(T, n_steps)
    obs, nxt = data.observations.numpy(), data.next_observations.numpy()
    for b in range(B):
        k0, env = int(obs[0, b, 0]), int(obs[0, b, 1])
        assert oldest_step <= k0 <= n_steps - n_valid  # never overwritten, never unwritten
        for t in range(n_valid):
            k = k0 + t
            np.testing.assert_array_equal(obs[t, b, :2], [k, env])  # contiguous, one env column
            assert data.rewards[t, b] == 10.0 * k + env
            np.testing.assert_allclose(data.actions[t, b].numpy(), [k / 1000.0, env / 10.0], rtol=1e-6)
            assert bool(data.resets[t, b]) == (obs[t, b, 3] == 0)  # an episode starts here
            term, trunc = ends[(k, env)]
            assert data.terminations[t, b] == float(term)
            assert data.truncations[t, b] == float(trunc)
            if t + 1 < n_valid and not (term or trunc):  # same episode: next obs is the next step's obs
                np.testing.assert_array_equal(nxt[t, b], obs[t + 1, b])
            if t + 1 < n_valid and (term or trunc):
                assert bool(data.resets[t + 1, b])
        assert not data.resets[n_valid:, b].any()
        assert not data.mask[n_valid:, b].any()
        if cross_episodes:
            assert data.mask[:n_valid, b].all()
        else:
            for t in range(burn_in, n_valid):  # learning steps: only the first learning step's episode
                assert bool(data.mask[t, b]) == (obs[t, b, 2] == obs[burn_in, b, 2])
        if state_size:
            assert data.start_states is not None
            np.testing.assert_array_equal(data.start_states[b].numpy(), [k0, env, 0])
    if not state_size:
        assert data.start_states is None


def test_window_starts_cover_the_stored_range_uniformly():
    buffer = SequenceReplayBuffer(20, OBS_SPACE, ACT_SPACE, "cpu", n_envs=2, sequence_length=3, burn_in=1)
    fill(buffer, 37, 0.2, seed=0)  # 10 rows per env; steps 27..36 are stored
    np.random.seed(0)
    starts = np.concatenate([buffer.sample(256).observations[0, :, 0].numpy() for _ in range(20)])
    counts = np.bincount(starts.astype(int) - 27, minlength=7)
    assert len(counts) == 7  # starts 27..33: every window ends by the newest step 36
    assert counts.min() > 0.7 * counts.mean()


def test_inferred_episode_starts_and_truncate_last_step():
    buffer = SequenceReplayBuffer(10, OBS_SPACE, ACT_SPACE, "cpu", n_envs=1, sequence_length=2)
    obs = np.zeros((1, 4), np.float32)
    act = np.zeros((1, 2), np.float32)
    flags = [0, 0, 1, 0]
    for d in flags:
        buffer.add(obs, obs, act, np.zeros(1), np.array([d], np.float32), [{}])
    np.testing.assert_array_equal(buffer.episode_starts[:4, 0], [True, False, False, True])
    buffer.truncate_last_step()
    assert buffer.dones[3, 0] == 1 and buffer.timeouts[3, 0] == 1
    buffer.add(obs, obs, act, np.zeros(1), np.zeros(1, np.float32), [{}])
    assert buffer.episode_starts[4, 0]


def test_short_buffer_masks_the_unwritten_tail():
    buffer = SequenceReplayBuffer(50, OBS_SPACE, ACT_SPACE, "cpu", n_envs=1, sequence_length=8, burn_in=2)
    fill(buffer, 4, 0.0, seed=1)
    data = buffer.sample(3)
    np.testing.assert_array_equal(data.mask.numpy(), np.repeat([[1.0]] * 4 + [[0.0]] * 6, 3, axis=1))
    np.testing.assert_array_equal(data.observations[:4, :, 0].numpy(), np.repeat(np.arange(4.0)[:, None], 3, 1))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(buffer_size=10, n_envs=2, sequence_length=4, burn_in=2), "cannot hold one window"),
        (dict(buffer_size=100, sequence_length=0), "sequence_length"),
        (dict(buffer_size=100, burn_in=-1), "burn_in"),
        (dict(buffer_size=100, optimize_memory_usage=True), "optimize_memory_usage"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SequenceReplayBuffer(observation_space=OBS_SPACE, action_space=ACT_SPACE, device="cpu", **kwargs)


def test_state_argument_is_checked_and_empty_buffer_refuses_to_sample():
    buffer = SequenceReplayBuffer(10, OBS_SPACE, ACT_SPACE, "cpu", sequence_length=2, state_size=3)
    with pytest.raises(ValueError, match="empty"):
        buffer.sample(2)
    obs, act = np.zeros((1, 4), np.float32), np.zeros((1, 2), np.float32)
    with pytest.raises(ValueError, match="needs state="):
        buffer.add(obs, obs, act, np.zeros(1), np.zeros(1), [{}])
    with pytest.raises(ValueError, match="shape"):
        buffer.add(obs, obs, act, np.zeros(1), np.zeros(1), [{}], state=np.zeros((1, 2)))
    plain = SequenceReplayBuffer(10, OBS_SPACE, ACT_SPACE, "cpu", sequence_length=2)
    with pytest.raises(ValueError, match="stores no states"):
        plain.add(obs, obs, act, np.zeros(1), np.zeros(1), [{}], state=np.zeros((1, 3)))
