"""Dynamics, roads and camera of LaneKeeping-v0 and LaneKeepingPixels-v0."""

from __future__ import annotations

import hashlib
import math

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import liquid_rl.envs  # noqa: F401  (registers the ids)
from liquid_rl.envs.lane_keeping import CURVATURE_SCALE, LaneKeepingEnv
from liquid_rl.envs.lane_keeping_pixels import LaneKeepingPixelsEnv
from liquid_rl.envs.renderers import LINE, PALETTE, ROAD, RoadCamera, TopDownRenderer
from liquid_rl.envs.road import Road, RoadParams, lateral_offsets, road_frame

STRAIGHT = [[3000.0, 0.0]]
ZERO = np.zeros(1, dtype=np.float32)


def p_controller(obs: np.ndarray) -> np.ndarray:
    """Proportional steering on the state: offset, heading error, curvature ahead."""
    return np.clip([-1.0 * obs[0] - 2.0 * obs[1] + 0.3 * obs[4]], -1.0, 1.0).astype(np.float32)


# ----------------------------------------------------------------------------- dynamics
def test_zero_steering_on_a_straight_road_keeps_the_offset():
    env = LaneKeepingEnv(road_profile=STRAIGHT, max_steps=500)
    obs, _ = env.reset(seed=0, options={"lateral_offset": 0.7, "heading_error": 0.0})
    rewards = []
    for _ in range(500):
        obs, r, term, trunc, info = env.step(ZERO)
        rewards.append(r)
        assert not term
    assert trunc
    assert info["lateral_offset"] == pytest.approx(0.7, abs=1e-9)
    assert info["heading_error"] == pytest.approx(0.0, abs=1e-12)
    assert obs[0] == pytest.approx(0.7 / 2.0, abs=1e-6)
    # 10 m/s for 50 s along a straight road
    assert info["s"] == pytest.approx(500.0, rel=1e-9)
    np.testing.assert_allclose(rewards, 1.0 - (0.7 / 2.0) ** 2, rtol=1e-9)


def test_a_heading_error_drifts_linearly_on_a_straight_road():
    env = LaneKeepingEnv(road_profile=STRAIGHT)
    env.reset(seed=0, options={"lateral_offset": 0.0, "heading_error": 0.01})
    for _ in range(10):
        _, _, _, _, info = env.step(ZERO)
    # 1 s at 10 m/s with a constant heading error of 0.01 rad
    assert info["lateral_offset"] == pytest.approx(10.0 * math.sin(0.01), rel=1e-6)


@pytest.mark.parametrize("direction", [1.0, -1.0])
def test_a_sharp_bend_without_steering_leaves_the_road(direction):
    env = LaneKeepingEnv(road_profile=[[10.0, 0.0], [200.0, direction / 20.0]])
    env.reset(seed=0, options={"lateral_offset": 0.0, "heading_error": 0.0})
    for t in range(100):
        obs, r, term, trunc, info = env.step(ZERO)
        if term:
            break
    assert term and not trunc
    assert info["off_road"]
    assert r == -env.config["offroad_penalty"]
    # the road turns away: a left bend leaves the car on the right (negative offset)
    assert np.sign(info["lateral_offset"]) == -direction
    assert abs(info["lateral_offset"]) > 2.0
    assert t < 40  # within a few metres of bend, at 10 m/s


def test_steering_along_a_circle_keeps_the_offset():
    """The steady-state turn of the bicycle model follows a road of the same radius."""
    lf, lr, radius = 1.2, 1.5, 30.0
    env = LaneKeepingEnv(road_profile=[[3000.0, 1.0 / radius]], max_steer=0.5)
    # The centre of gravity moves at the slip angle beta to the car's axis on a circle
    # of curvature cos(beta) tan(delta) / L = sin(beta) / lr: pick beta, then delta;
    # the velocity is tangent to the road when the heading error is -beta.
    beta = math.asin(lr / radius)
    tan_d = math.tan(beta) * (lf + lr) / lr
    action = math.atan(tan_d) / 0.5
    env.reset(seed=0, options={"lateral_offset": 0.0, "heading_error": -beta})
    for _ in range(300):
        _, _, term, _, info = env.step(np.array([action], np.float32))
        assert not term
    # float32 action rounding gives a tiny curvature mismatch
    assert abs(info["lateral_offset"]) < 0.02
    assert info["heading_error"] == pytest.approx(-beta, abs=1e-3)


def test_frenet_model_matches_a_world_frame_bicycle():
    """Road-frame simulation and a world-frame bicycle integrated finely agree."""
    env = LaneKeepingEnv(max_substep=0.01)
    env.reset(seed=11)
    x, y, th = env.car_pose()
    lf, lr = env.config["wheelbase_front"], env.config["wheelbase_rear"]
    v = env.config["speed"]
    rng = np.random.default_rng(0)
    for _ in range(60):
        a = float(np.clip(rng.normal(0.0, 0.3), -1, 1))
        obs, _, term, _, _ = env.step(np.array([a], np.float32))
        delta = float(np.float32(a)) * env.config["max_steer"]
        beta = math.atan(lr / (lf + lr) * math.tan(delta))
        for _ in range(100):  # dt = 0.1 in 100 Euler sub-steps
            x += 0.001 * v * math.cos(th + beta)
            y += 0.001 * v * math.sin(th + beta)
            th += 0.001 * v * math.cos(beta) * math.tan(delta) / (lf + lr)
        if term:
            break
    ex, ey, eth = env.car_pose()
    assert math.hypot(ex - x, ey - y) < 0.1
    assert abs((eth - th + math.pi) % (2 * math.pi) - math.pi) < 5e-3


def test_time_step_is_consistent():
    """Two steps of dt/2 land where one step of dt does (RK2 sub-steps)."""
    a = LaneKeepingEnv()
    b = LaneKeepingEnv()
    a.reset(seed=4)
    b.reset(seed=4)
    b.set_dt(0.05)
    act = np.array([0.3], np.float32)
    for _ in range(20):
        _, _, _, _, ia = a.step(act)
        b.step(act)
        _, _, _, _, ib = b.step(act)
        assert ib["dt"] == 0.05 and ia["dt"] == 0.1
    assert ia["time"] == pytest.approx(ib["time"])
    assert ia["s"] == pytest.approx(ib["s"], abs=0.05)
    assert ia["lateral_offset"] == pytest.approx(ib["lateral_offset"], abs=0.02)
    with pytest.raises(ValueError, match="dt"):
        a.set_dt(-0.1)


@pytest.mark.parametrize("seed", range(6))
def test_p_controller_keeps_the_car_on_the_road_for_the_whole_episode(seed):
    env = gym.make("liquid_rl/LaneKeeping-v0")
    obs, _ = env.reset(seed=seed)
    total, steps = 0.0, 0
    while True:
        obs, r, term, trunc, info = env.step(p_controller(obs))
        total += r
        steps += 1
        assert not term, f"left the road at step {steps}"
        if trunc:
            break
    assert steps == env.unwrapped.config["max_steps"]
    assert total > 0.95 * steps  # centred and making progress


def test_random_steering_leaves_the_road():
    env = gym.make("liquid_rl/LaneKeeping-v0")
    env.action_space.seed(0)
    env.reset(seed=0)
    for _ in range(1000):
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            break
    assert term


def test_speed_variation_and_observation_layout():
    env = LaneKeepingEnv(speed=8.0, speed_variation=0.2, speed_period=5.0, preview_points=5,
                         preview_distance=25.0)
    obs, info = env.reset(seed=2)
    assert obs.shape == (8,)
    speeds = []
    for _ in range(50):
        obs, _, _, _, info = env.step(p_controller(obs))
        speeds.append(info["speed"])
        assert obs[2] == pytest.approx(info["speed"] / 8.0, rel=1e-6)
        assert obs[1] == pytest.approx(info["heading_error"], abs=1e-6)
        assert obs[0] == pytest.approx(info["lateral_offset"] / 2.0, abs=1e-6)
        road = env.road
        for i, d in enumerate([5.0, 10.0, 15.0, 20.0, 25.0]):
            assert obs[3 + i] == pytest.approx(
                np.clip(road.curvature(info["s"] + d) * CURVATURE_SCALE, -3, 3), abs=1e-6)
    assert 8.0 * 0.79 < min(speeds) < max(speeds) < 8.0 * 1.21
    assert max(speeds) - min(speeds) > 1.0


def test_reset_options_are_checked():
    env = LaneKeepingEnv()
    with pytest.raises(ValueError, match="lateral_offset"):
        env.reset(seed=0, options={"lateral_offset": 5.0})
    with pytest.raises(ValueError, match="speed"):
        env.reset(seed=0, options={"speed": 5.0})


# ----------------------------------------------------------------------------- roads
def test_roads_depend_on_the_seed_and_have_all_kinds_of_bends():
    env = LaneKeepingEnv()
    curvatures = []
    for seed in range(20):
        env.reset(seed=seed)
        road = env.road
        road.ensure(1000.0)
        k = road.kappa[road.i0 : road.i0 + int(1000.0 / road.ds)]
        curvatures.append(k)
        assert np.all(road.kappa[: road.i0] == 0.0)  # straight behind the start
        assert np.all(k[: int(19.0 / env.road.ds)] == 0.0)  # straight lead-in
        assert np.max(np.abs(k)) <= 1.0 / 18.0 + 1e-12
    allk = np.concatenate(curvatures)
    assert (allk == 0).mean() > 0.1  # straights
    assert np.any((allk > 1 / 200.0) & (allk < 1 / 60.0))  # gentle left
    assert np.any((allk < -1 / 200.0) & (allk > -1 / 60.0))  # gentle right
    assert np.any(allk > 1 / 40.0) and np.any(allk < -1 / 40.0)  # sharp, both ways
    assert not np.array_equal(curvatures[0], curvatures[1])
    env.reset(seed=3)
    env.road.ensure(1000.0)
    i0 = env.road.i0
    np.testing.assert_array_equal(env.road.kappa[i0 : i0 + len(curvatures[3])], curvatures[3])


def test_road_geometry_is_continuous_and_grows_on_demand():
    road = Road(RoadParams(), np.random.default_rng(5))
    road.ensure(3000.0)
    assert road.length >= 3000.0
    step = np.hypot(np.diff(road.x), np.diff(road.y))
    np.testing.assert_allclose(step, road.ds, rtol=1e-3)
    assert np.max(np.abs(np.diff(road.theta))) <= road.ds / 18.0 + 1e-12
    # curvature ramps: no jump larger than the ramp slope allows
    assert np.max(np.abs(np.diff(road.kappa))) < 0.01


def test_road_reaches_past_long_steps():
    env = LaneKeepingEnv(road_profile=STRAIGHT)
    env.reset(seed=0, options={"lateral_offset": 0.0, "heading_error": 0.0})
    env.set_dt(30.0)  # 300 m in one step
    _, _, term, _, info = env.step(ZERO)
    assert not term and info["s"] == pytest.approx(300.0)
    assert env.road.length > 300.0 + env.config["preview_distance"]


def test_lateral_offsets_match_a_circle():
    radius = 25.0
    road = Road(RoadParams(profile=((400.0, 1.0 / radius),), lead_in=0.0, behind=0.0), np.random.default_rng())
    idx = road.window(0.0, 120.0, 4.0)
    u, v, tu, tv, kappa = road_frame(road, idx, 0.0, 0.0, 0.0)
    rng = np.random.default_rng(1)
    # points around the circle centred at (0, radius), angles within the window
    ang = rng.uniform(0.2, 4.0, 2000)
    dist = rng.uniform(-3.0, 3.0, 2000)
    r = radius - dist
    px = r * np.sin(ang)
    py = radius - r * np.cos(ang)
    off, valid = lateral_offsets(np.array([px, py], np.float32), u, v, tu, tv, kappa, 4.0)
    assert valid.all()
    np.testing.assert_allclose(off, dist, atol=0.03)


# ----------------------------------------------------------------------------- pixels
def _road_columns(img: np.ndarray, row: int) -> np.ndarray:
    colours = PALETTE[[ROAD, LINE]]
    px = img[row]
    on = np.zeros(px.shape[0], bool)
    for c in colours:
        on |= np.all(px == c, axis=1)
    return np.flatnonzero(on)


@pytest.mark.parametrize("view", ["first_person", "top_down"])
def test_camera_sees_the_road_where_the_car_is(view):
    env = LaneKeepingPixelsEnv(road_profile=STRAIGHT, view=view)
    img, _ = env.reset(seed=0, options={"lateral_offset": 0.0, "heading_error": 0.0})
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    row = 40 if view == "first_person" else 60
    cols = _road_columns(img, row)
    centre = 0.5 * (cols.min() + cols.max())
    assert abs(centre - 31.5) <= 1.0  # centred
    assert 0 < cols.min() and cols.max() < 63  # grass on both sides
    # the car to the left of the centre sees the road to its right
    img, _ = env.reset(seed=0, options={"lateral_offset": 1.0, "heading_error": 0.0})
    moved = _road_columns(img, row)
    assert moved.min() >= cols.min() + 2 and moved.max() >= cols.max()


def test_camera_shows_a_bend_ahead():
    env = LaneKeepingPixelsEnv(road_profile=[[8.0, 0.0], [200.0, 1.0 / 20.0]])
    img, _ = env.reset(seed=0, options={"lateral_offset": 0.0, "heading_error": 0.0})
    near = _road_columns(img, 50)
    far = _road_columns(img, 28)
    # a left bend: far road pixels lie left of the near ones
    assert far.mean() < near.mean() - 3


def test_pixel_and_state_envs_share_the_dynamics():
    a = gym.make("liquid_rl/LaneKeeping-v0")
    b = gym.make("liquid_rl/LaneKeepingPixels-v0")
    obs, ia = a.reset(seed=9)
    _, ib = b.reset(seed=9)
    assert ia == ib
    for _ in range(100):
        act = p_controller(obs)
        obs, ra, ta, _, ia = a.step(act)
        img, rb, tb, _, ib = b.step(act)
        assert ia == ib and ra == rb and ta == tb
        assert b.observation_space.contains(img)


def test_top_down_render_shows_road_and_car():
    env = gym.make("liquid_rl/LaneKeeping-v0", render_mode="rgb_array", render_size=128)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (128, 128, 3)
    assert np.any(np.all(frame == (200, 30, 30), axis=2))  # car
    assert np.any(np.all(frame == (90, 90, 90), axis=2))  # road


# ----------------------------------------------------------------------------- properties
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    dt=st.floats(0.02, 0.5),
    speed=st.floats(2.0, 30.0),
    preview=st.integers(1, 12),
    actions=st.lists(st.floats(-1.0, 1.0, width=32), min_size=1, max_size=80),
)
def test_observations_stay_in_the_space(seed, dt, speed, preview, actions):
    env = LaneKeepingEnv(dt=dt, speed=speed, preview_points=preview)
    obs, _ = env.reset(seed=seed)
    assert env.observation_space.contains(obs)
    for a in actions:
        obs, r, term, trunc, _ = env.step(np.array([a], np.float32))
        assert env.observation_space.contains(obs)
        assert math.isfinite(r)
        if term or trunc:
            obs, _ = env.reset()


@settings(max_examples=8, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    height=st.integers(8, 48),
    width=st.integers(8, 48),
    view=st.sampled_from(["first_person", "top_down"]),
    pitch=st.floats(0.05, 0.8),
)
def test_pixel_observations_stay_in_the_space(seed, height, width, view, pitch):
    env = LaneKeepingPixelsEnv(image_height=height, image_width=width, view=view,
                               camera_pitch=pitch)
    obs, _ = env.reset(seed=seed)
    assert env.observation_space.contains(obs)
    for _ in range(10):
        obs, _, term, trunc, _ = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
        if term or trunc:
            break


# ----------------------------------------------------------------------------- recorded rollouts
# Recorded before the renderers left the physics: the observations, rewards and frames of
# a fixed-seed rollout must stay bit-identical.
RECORDED = {
    ("liquid_rl/LaneKeeping-v0", ()): (
        "d72c6b75b57da722859bf9f7334e60d6573e5d5bc062d135dc32eb37d3b127d3",
        "53d9114063db391793eefc49bcb302bbd614aba6064106f1b6af00f1b38cbd84",
    ),
    ("liquid_rl/LaneKeepingPixels-v0", ()): (
        "f3ab04313ae96d6b8aea7703c9726792244a86701f502fc699df829cfab8d674",
        "0ca97cbf6119544db62ae4d8e6e7061ef941cf8f027ba5620afb560e29537dfe",
    ),
    ("liquid_rl/LaneKeepingPixels-v0",
     (("view", "top_down"), ("image_height", 48), ("image_width", 40))): (
        "4c97fa6762c75fbdad928ea1d86626a79d5ba6fd00601ee239f17be79ebcde09",
        "2736e670a1504239a1c00f015d44bc3e508d28f86f471a1830b14a0f7767a737",
    ),
}


@pytest.mark.parametrize("key", list(RECORDED), ids=["state", "pixels", "pixels-top-down"])
def test_fixed_seed_rollout_matches_the_recorded_values(key):
    env_id, kwargs = key
    env = gym.make(env_id, render_mode="rgb_array", **dict(kwargs))
    obs, _ = env.reset(seed=7)
    steps, frames = hashlib.sha256(obs.tobytes()), hashlib.sha256()
    total = 0.0
    for t in range(150):
        o = env.unwrapped._state_vector()
        a = np.clip([-1.0 * o[0] - 2.0 * o[1] + 0.3 * o[4] + 0.2 * np.sin(0.3 * t)], -1, 1)
        obs, r, term, trunc, _ = env.step(a.astype(np.float32))
        steps.update(obs.tobytes())
        steps.update(np.float64(r).tobytes())
        total += r
        if t % 50 == 0:
            frames.update(env.render().tobytes())
        assert not (term or trunc)
    assert total == pytest.approx(147.48039986321072, abs=1e-9)
    assert (steps.hexdigest(), frames.hexdigest()) == RECORDED[key]


def test_renderers_work_without_an_env():
    road = Road(RoadParams(profile=((3000.0, 0.0),)), np.random.default_rng(0))
    top = TopDownRenderer(64, 40.0, half_width=2.0).render(road, 10.0, *road.pose(10.0, 0.0))
    assert top.shape == (64, 64, 3) and np.any(np.all(top == (200, 30, 30), axis=2))
    cam = RoadCamera(32, 32).render(road, 10.0, *road.pose(10.0, 0.0))
    assert cam.shape == (32, 32, 3) and np.any(np.all(cam == PALETTE[ROAD], axis=2))
    with pytest.raises(ValueError, match="unknown view"):
        RoadCamera(8, 8, view="side")
