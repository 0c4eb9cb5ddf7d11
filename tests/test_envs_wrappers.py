"""Wrappers: IrregularTime, ObservationNoise, MaskObservation and the perturbations of robustness sweeps."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

import liquid_rl.envs  # noqa: F401  (registers the ids)
from liquid_rl.envs.wrappers import (
    ActionDelay,
    Blur,
    Brightness,
    ControlRate,
    IrregularTime,
    MaskObservation,
    ObservationDropout,
    ObservationNoise,
    Occlusion,
    find_base_dt,
)


@pytest.fixture(autouse=True)
def _mujoco_log_elsewhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def _quiet_check_env(env):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env)


# ----------------------------------------------------------------------------- IrregularTime
def test_base_dt_is_found_on_the_env():
    assert find_base_dt(gym.make("CartPole-v1")) == pytest.approx(0.02)  # tau
    assert find_base_dt(gym.make("Pendulum-v1")) == pytest.approx(0.05)  # dt
    assert find_base_dt(gym.make("liquid_rl/LaneKeeping-v0")) == pytest.approx(0.1)
    assert find_base_dt(gym.make("liquid_rl/Hopper-V-v5")) == pytest.approx(0.008)
    assert find_base_dt(gym.make("MountainCarContinuous-v0")) is None


def test_repeat_mode_on_cartpole_sums_rewards_and_reports_elapsed_time():
    env = IrregularTime(gym.make("liquid_rl/CartPoleNoVel-v1"), mode="repeat", low=1, high=4)
    assert isinstance(env.observation_space, spaces.Dict)
    assert set(env.observation_space.spaces) == {"obs", "dt"}
    obs, info = env.reset(seed=0)
    assert obs["dt"].shape == (1,) and obs["dt"][0] == 0.0 and info["dt"] == 0.0
    seen = []
    for _ in range(400):
        obs, r, term, trunc, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
        k = info["repeats"]
        assert 1 <= k <= 4
        assert info["dt"] == pytest.approx(k * 0.02)
        assert obs["dt"][0] == pytest.approx(info["dt"])
        assert r == pytest.approx(float(k))  # CartPole pays 1 per base step
        seen.append(k)
        if term or trunc:
            env.reset()
    counts = np.bincount(seen, minlength=5)[1:]
    assert np.all(counts > 0.15 * len(seen))  # uniform over 1..4


def test_repeat_mode_on_mujoco_uses_the_frame_time():
    env = IrregularTime(gym.make("liquid_rl/HalfCheetah-V-v5"), low=2, high=2)
    env.reset(seed=0)
    t0 = env.unwrapped.data.time
    _, _, _, _, info = env.step(env.action_space.sample())
    assert info["dt"] == pytest.approx(2 * env.unwrapped.dt)
    assert env.unwrapped.data.time - t0 == pytest.approx(info["dt"])


def test_repeat_stops_at_the_end_of_an_episode():
    env = IrregularTime(gym.make("liquid_rl/PendulumNoVel-v1", max_episode_steps=5),
                        low=3, high=3)
    env.reset(seed=0)
    _, _, _, trunc1, i1 = env.step(env.action_space.sample())
    _, _, _, trunc2, i2 = env.step(env.action_space.sample())
    assert not trunc1 and i1["repeats"] == 3
    assert trunc2 and i2["repeats"] == 2 and i2["dt"] == pytest.approx(0.1)


def test_dt_mode_sets_the_lane_keeping_time_step():
    env = IrregularTime(gym.make("liquid_rl/LaneKeeping-v0", road_profile=[[3000.0, 0.0]]),
                        mode="dt", low=0.02, high=0.3)
    env.reset(seed=0, options={"lateral_offset": 0.0, "heading_error": 0.0})
    dts = []
    for _ in range(300):
        obs, r, term, trunc, info = env.step(np.zeros(1, np.float32))
        assert env.unwrapped.dt == info["dt"] == pytest.approx(float(obs["dt"][0]))
        assert 0.02 <= info["dt"] <= 0.3
        # progress reward scales with the elapsed time (10 m/s, 1 per 0.1 s)
        assert r == pytest.approx(info["dt"] / 0.1, rel=1e-6)
        dts.append(info["dt"])
    assert info["time"] == pytest.approx(sum(dts))
    assert np.mean(dts) == pytest.approx(0.16, abs=0.02)


def test_exponential_distribution_has_the_configured_mean():
    env = IrregularTime(gym.make("liquid_rl/LaneKeeping-v0"), mode="dt", low=0.05, high=5.0,
                        distribution="exponential", mean=0.15)
    env.reset(seed=3)
    draws = np.array([env.sample_interval() for _ in range(4000)])
    assert draws.min() >= 0.05 and draws.max() <= 5.0
    assert draws.mean() == pytest.approx(0.15, rel=0.05)
    assert np.std(draws) == pytest.approx(0.10, rel=0.1)  # exponential: std = mean - low


def test_callable_distribution_is_clipped():
    env = IrregularTime(gym.make("CartPole-v1"), low=1, high=3, distribution=lambda rng: 10)
    env.reset(seed=0)
    assert env.sample_interval() == 3


def test_irregular_time_is_seeded_by_reset():
    def run(seed):
        env = IrregularTime(gym.make("liquid_rl/LaneKeeping-v0"), mode="dt", low=0.05, high=0.2)
        env.reset(seed=seed)
        return [env.step(np.zeros(1, np.float32))[4]["dt"] for _ in range(20)]

    assert run(1) == run(1)
    assert run(1) != run(2)


@pytest.mark.parametrize(
    "make",
    [
        lambda: IrregularTime(gym.make("liquid_rl/LaneKeeping-v0"), mode="dt", low=0.05, high=0.2),
        lambda: IrregularTime(gym.make("liquid_rl/CartPoleNoVel-v1"), low=1, high=3),
        lambda: IrregularTime(gym.make("liquid_rl/MountainCarContinuousNoVel-v0"), low=1,
                              high=3, base_dt=1.0),
    ],
)
def test_irregular_time_passes_check_env(make):
    _quiet_check_env(make())


def test_irregular_time_works_with_sb3_multi_input():
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = IrregularTime(gym.make("liquid_rl/LaneKeeping-v0"), mode="dt", low=0.05, high=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sb3_check_env(env, warn=False)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "sometimes"}, "mode"),
        ({"low": 0, "high": 3}, "low"),
        ({"low": 1.5, "high": 3}, "low"),
        ({"low": 3, "high": 1}, "high"),
        ({"low": 1, "high": float("inf")}, "finite"),
        ({"distribution": "gamma"}, "distribution"),
        ({"distribution": "exponential"}, "mean"),
    ],
)
def test_irregular_time_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        IrregularTime(gym.make("CartPole-v1"), **kwargs)


def test_irregular_time_needs_a_known_time_step():
    with pytest.raises(ValueError, match="base_dt"):
        IrregularTime(gym.make("MountainCarContinuous-v0"))
    with pytest.raises(ValueError, match="set_dt"):
        IrregularTime(gym.make("Pendulum-v1"), mode="dt", low=0.01, high=0.1)


# ----------------------------------------------------------------------------- ObservationNoise
def test_observation_noise_statistics():
    sigma = 0.05
    clean = gym.make("liquid_rl/LaneKeeping-v0")
    noisy = ObservationNoise(gym.make("liquid_rl/LaneKeeping-v0"), sigma)
    a, _ = clean.reset(seed=5)
    b, _ = noisy.reset(seed=5)
    diffs = [b - a]
    act = np.zeros(1, np.float32)
    for _ in range(400):
        a, _, term, trunc, ia = clean.step(act)
        b, _, _, _, ib = noisy.step(act)
        assert ia == ib  # the noise does not touch the dynamics
        diffs.append(b - a)
        if term or trunc:
            a, _ = clean.reset(seed=6)
            b, _ = noisy.reset(seed=6)
    d = np.concatenate(diffs)
    assert b.dtype == np.float32
    assert abs(d.mean()) < 0.005
    assert d.std() == pytest.approx(sigma, rel=0.05)


def test_observation_noise_is_seeded_and_clipped():
    def first(seed):
        env = ObservationNoise(gym.make("liquid_rl/PendulumNoVel-v1"), sigma=[0.0, 0.0, 100.0])
        obs, _ = env.reset(seed=seed)
        return obs

    np.testing.assert_array_equal(first(3), first(3))
    assert not np.array_equal(first(3), first(4))
    obs = first(3)
    assert abs(obs[2]) <= 8.0  # clipped to the Pendulum bounds
    assert obs[2] != 0.0  # sigma per entry: only the last one is noisy


def test_observation_noise_on_images_stays_uint8():
    env = ObservationNoise(gym.make("liquid_rl/LaneKeepingPixels-v0"), sigma=20.0)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.uint8 and env.observation_space.contains(obs)
    _quiet_check_env(env)


@pytest.mark.parametrize("sigma", [-0.1, float("nan"), [0.1, 0.2]])
def test_observation_noise_rejects_bad_sigma(sigma):
    with pytest.raises(ValueError, match="sigma"):
        ObservationNoise(gym.make("CartPole-v1"), sigma)


# ----------------------------------------------------------------------------- MaskObservation
def test_mask_observation_drop_and_zero():
    base = gym.make("CartPole-v1")
    drop = MaskObservation(gym.make("CartPole-v1"), [2, 0], mode="drop")
    zero = MaskObservation(gym.make("CartPole-v1"), [0, 2], mode="zero")
    assert drop.observation_space.shape == (2,)
    np.testing.assert_array_equal(drop.observation_space.high, base.observation_space.high[[0, 2]])
    assert zero.observation_space.shape == (4,)
    full, _ = base.reset(seed=0)
    d, _ = drop.reset(seed=0)
    z, _ = zero.reset(seed=0)
    np.testing.assert_array_equal(d, full[[0, 2]])
    np.testing.assert_array_equal(z, full * np.array([1, 0, 1, 0], np.float32))
    _quiet_check_env(drop)
    _quiet_check_env(zero)


@pytest.mark.parametrize(
    ("indices", "mode", "match"),
    [([], "drop", "indices"), ([4], "drop", "indices"), ([1, 1], "drop", "indices"),
     ([0], "hide", "mode")],
)
def test_mask_observation_rejects_bad_arguments(indices, mode, match):
    with pytest.raises(ValueError, match=match):
        MaskObservation(gym.make("CartPole-v1"), indices, mode=mode)


@settings(max_examples=25, deadline=None)
@given(
    keep=st.sets(st.integers(0, 10), min_size=1),
    mode=st.sampled_from(["drop", "zero"]),
    seed=st.integers(0, 1000),
)
def test_mask_observation_property(keep, mode, seed):
    """Kept entries equal the original ones, the others are gone or zero."""
    keep = sorted(keep)
    base = gym.make("liquid_rl/LaneKeeping-v0", disable_env_checker=True)
    env = MaskObservation(gym.make("liquid_rl/LaneKeeping-v0", disable_env_checker=True), keep,
                          mode=mode)
    full, _ = base.reset(seed=seed)
    obs, _ = env.reset(seed=seed)
    for _ in range(5):
        assert env.observation_space.contains(obs)
        if mode == "drop":
            np.testing.assert_array_equal(obs, full[keep])
        else:
            np.testing.assert_array_equal(obs[keep], full[keep])
            hidden = [i for i in range(full.shape[0]) if i not in keep]
            assert np.all(obs[hidden] == 0)
        act = np.array([0.2], np.float32)
        full, *_ = base.step(act)
        obs, *_ = env.step(act)


@settings(max_examples=20, deadline=None)
@given(
    low=st.integers(1, 5),
    extra=st.integers(0, 5),
    seed=st.integers(0, 2**31 - 1),
)
def test_repeat_counts_property(low, extra, seed):
    """Every drawn repeat count lies in [low, high] and elapsed = count * base dt."""
    env = IrregularTime(gym.make("liquid_rl/LaneKeeping-v0", disable_env_checker=True),
                        low=low, high=low + extra)
    env.reset(seed=seed)
    for _ in range(5):
        _, _, term, trunc, info = env.step(np.zeros(1, np.float32))
        assert low <= info["repeats"] <= low + extra or term or trunc
        assert info["dt"] == pytest.approx(info["repeats"] * 0.1)
        if term or trunc:
            break


# ----------------------------------------------------------------------------- perturbations
class _Echo(gym.Env):
    """Observes a constant vector (or image) and the last action it applied (``info["applied"]``)."""

    def __init__(self, obs: np.ndarray) -> None:
        self._obs = obs
        self.observation_space = spaces.Box(0, 255, obs.shape, dtype=obs.dtype) if obs.dtype == np.uint8 \
            else spaces.Box(-5.0, 5.0, obs.shape, dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._obs.copy(), {}

    def step(self, action):
        return self._obs.copy(), 0.0, False, False, {"applied": float(np.asarray(action)[0])}


def _image(value: int = 200, size: int = 64) -> np.ndarray:
    return np.full((size, size, 3), value, dtype=np.uint8)


def test_dropout_zeroes_entries_at_the_given_rate():
    env = ObservationDropout(_Echo(np.ones(50, np.float32)), p=0.3)
    env.reset(seed=1)
    obs = np.array([env.step(np.zeros(1))[0] for _ in range(400)])
    assert set(np.unique(obs)) == {0.0, 1.0}
    assert (obs == 0).mean() == pytest.approx(0.3, abs=0.01)  # 20,000 draws: std 0.003
    # independent per entry and step: no entry is always kept or always dropped
    assert 0.15 < (obs == 0).mean(axis=0).min() and (obs == 0).mean(axis=0).max() < 0.45
    env.reset(seed=1)
    again = np.array([env.step(np.zeros(1))[0] for _ in range(400)])
    assert np.array_equal(obs, again)  # seeded by reset
    none = ObservationDropout(_Echo(np.ones(5, np.float32)), p=0.0)
    all_ = ObservationDropout(_Echo(np.ones(5, np.float32)), p=1.0)
    none.reset(seed=0), all_.reset(seed=0)
    assert np.all(none.step(np.zeros(1))[0] == 1) and np.all(all_.step(np.zeros(1))[0] == 0)


@pytest.mark.parametrize("k", [0, 1, 3])
def test_delay_applies_each_action_k_steps_late(k):
    env = ActionDelay(_Echo(np.zeros(2, np.float32)), k=k)
    for _ in range(2):  # a reset empties the queue
        env.reset(seed=0)
        applied = [env.step(np.array([0.1 * (i + 1)], np.float32))[4]["applied"] for i in range(8)]
        expected = [0.0] * k + [0.1 * (i + 1) for i in range(8 - k)]
        assert applied == pytest.approx(expected)


def test_control_rate_scales_the_lane_keeping_time_step():
    straight = {"road_profile": [[3000.0, 0.0]]}
    plain = gym.make("liquid_rl/LaneKeeping-v0", **straight)
    fast = ControlRate(gym.make("liquid_rl/LaneKeeping-v0", **straight), factor=2.0)
    opts = {"lateral_offset": 0.0, "heading_error": 0.0}
    plain.reset(seed=0, options=opts)
    fast.reset(seed=0, options=opts)
    zero = np.zeros(1, np.float32)
    for _ in range(3):
        _, r1, *_, i1 = plain.step(zero)
        _, r2, *_, i2 = fast.step(zero)
        assert i2["dt"] == pytest.approx(0.2) and i1["dt"] == pytest.approx(0.1)
    assert i2["s"] == pytest.approx(2 * i1["s"])  # twice the distance per step
    assert r2 == pytest.approx(r1)  # the reward is per unit of time: divided by the factor
    unscaled = ControlRate(gym.make("liquid_rl/LaneKeeping-v0", **straight), factor=2.0, scale_reward=False)
    unscaled.reset(seed=0, options=opts)
    assert unscaled.step(zero)[1] == pytest.approx(2 * r1)
    # the time step survives a reset (the env restores its own at reset)
    fast.reset(seed=1)
    assert fast.step(zero)[4]["dt"] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="set_dt"):
        ControlRate(gym.make("CartPole-v1"), factor=2.0)
    with pytest.raises(ValueError, match="factor"):
        ControlRate(gym.make("liquid_rl/LaneKeeping-v0"), factor=0.0)


@pytest.mark.parametrize("mode, low, high", [("repeat", 2, 2), ("dt", 0.05, 0.05)])
def test_control_rate_reaches_the_elapsed_time_irregular_time_observes(mode, low, high):
    # A run trained with IrregularTime observes dt; under ControlRate (put around the raw env,
    # inside the run's wrappers) the cells must see the time that really passed.
    straight = {"road_profile": [[3000.0, 0.0]]}
    opts = {"lateral_offset": 0.0, "heading_error": 0.0}
    plain = IrregularTime(gym.make("liquid_rl/LaneKeeping-v0", **straight), mode=mode, low=low, high=high)
    slow = IrregularTime(ControlRate(gym.make("liquid_rl/LaneKeeping-v0", **straight), factor=3.0),
                         mode=mode, low=low, high=high)
    plain.reset(seed=0, options=opts)
    slow.reset(seed=0, options=opts)
    zero = np.zeros(1, np.float32)
    for _ in range(3):
        o1, *_, i1 = plain.step(zero)
        o2, *_, i2 = slow.step(zero)
        expected = 0.2 if mode == "repeat" else 0.05
        assert o1["dt"][0] == pytest.approx(expected) and i1["dt"] == pytest.approx(expected)
        assert o2["dt"][0] == pytest.approx(3 * expected) and i2["dt"] == pytest.approx(3 * expected)
    assert i2["s"] == pytest.approx(3 * i1["s"])  # the car really drove three times as long


def test_brightness_scales_and_clips_intensities():
    def first(change, value=100):
        env = Brightness(_Echo(_image(value)), change=change)
        env.reset(seed=0)
        return env.step(np.zeros(1))[0]

    assert np.all(first(0.5) == 150) and np.all(first(-0.25) == 75)
    assert np.all(first(2.0) == 255) and np.all(first(-1.0) == 0)
    assert np.array_equal(first(0.0, 123), _image(123)) and first(0.5).dtype == np.uint8


def test_occlusion_covers_the_given_fraction_at_random_places():
    env = Occlusion(_Echo(_image(200)), fraction=0.25)
    env.reset(seed=0)
    masks = [np.all(env.step(np.zeros(1))[0] == 0, axis=2) for _ in range(20)]
    for m in masks:
        assert m.sum() == 32 * 32  # a 32 x 32 patch of a 64 x 64 frame
        rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
        assert rows.size == 32 and cols.size == 32 and np.ptp(rows) == 31  # one square
    assert len({np.flatnonzero(m.ravel())[0] for m in masks}) > 5  # it moves
    none = Occlusion(_Echo(_image(200)), fraction=0.0)
    none.reset(seed=0)
    assert np.all(none.step(np.zeros(1))[0] == 200)


def test_blur_smooths_edges_and_keeps_flat_regions():
    img = _image(0)
    img[:, 32:] = 255  # a vertical edge
    env = Blur(_Echo(img), sigma=2.0)
    env.reset(seed=0)
    out = env.step(np.zeros(1))[0].astype(int)
    row = out[10, :, 0]
    assert row[0] == 0 and row[-1] == 255  # far from the edge: unchanged
    assert 0 < row[31] < 128 < row[32] < 255  # at the edge: a ramp
    assert np.all(np.diff(row) >= 0)
    assert np.all(out == out[:1])  # each row the same: no vertical smearing of a vertical edge
    plain = Blur(_Echo(img), sigma=0.0)
    plain.reset(seed=0)
    assert np.array_equal(plain.step(np.zeros(1))[0], img)


@pytest.mark.parametrize("wrapper", [Brightness, Occlusion, Blur])
def test_image_perturbations_need_images(wrapper):
    with pytest.raises(ValueError, match="image observation"):
        wrapper(gym.make("liquid_rl/LaneKeeping-v0"), 0.5)


@pytest.mark.parametrize("make, level", [(ObservationDropout, 1.5), (ObservationDropout, -0.1), (ActionDelay, 1.5),
                                         (ActionDelay, -1), (Brightness, -2.0), (Occlusion, 1.1), (Blur, -1.0)])
def test_perturbations_reject_levels_out_of_range(make, level):
    env = _Echo(_image()) if make in (Brightness, Occlusion, Blur) else _Echo(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"must be .* in \["):
        make(env, level)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), change=st.floats(-1.0, 10.0), fraction=st.floats(0.0, 1.0),
       sigma=st.floats(0.0, 5.0), p=st.floats(0.0, 1.0))
def test_perturbed_observations_stay_in_the_space(seed, change, fraction, sigma, p):
    base = gym.make("liquid_rl/LaneKeepingPixels-v0", image_height=16, image_width=16)
    env = ObservationDropout(Blur(Occlusion(Brightness(base, change), fraction), sigma), p)
    obs, _ = env.reset(seed=seed)
    assert env.observation_space.contains(obs)
    for _ in range(3):
        obs = env.step(env.action_space.sample())[0]
        assert env.observation_space.contains(obs)
