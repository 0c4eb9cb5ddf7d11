"""``liquid_rl/LaneKeeping-v0``: follow a random road with a kinematic bicycle model.

The car drives at (nearly) constant speed along a road whose curvature profile is drawn
from the seed (see ``envs.road``); the agent steers. The car is simulated in road
(Frenet) coordinates, so a step is a handful of float operations (20k+ steps/s).

Observation, float32 of shape (3 + preview_points,):

====  =======================================  ==========================
idx   quantity                                  scaling, bounds
====  =======================================  ==========================
0     lateral offset ``e`` (left positive)      ``e / half_width``, [-2, 2]
1     heading error ``psi`` (car - road)        radians, [-pi, pi]
2     speed ``v``                               ``v / speed``, [0, 2]
3..   road curvature at ``preview_points``      ``kappa * 20 m``, [-3, 3]
      points evenly spaced up to
      ``preview_distance`` ahead
====  =======================================  ==========================

On the road ``|obs[0]| <= 1``; leaving the road (``|e| > half_width``) terminates the
episode (the offset is clipped to 2 so that even a large step stays in bounds). A
curvature of 1 means a 20 m radius (the sharpest generated bends have radius 18 m).

Action: steering in [-1, 1], scaled to ``max_steer`` radians of front wheel angle.

Reward per step: ``progress * (1 - (e / half_width)^2)`` where ``progress`` is the
distance made along the road divided by ``speed * dt`` (about 1 per step when driving
straight along the road at the default time step), and ``-offroad_penalty`` on the
step that leaves the road. Truncation after ``max_steps`` steps.

``reset(options={"lateral_offset": e, "heading_error": psi})`` sets the initial state
instead of drawing it. ``set_dt(dt)`` changes the time step of the next steps (used by
``wrappers.IrregularTime(mode="dt")`` and ``wrappers.ControlRate``); long steps are
integrated in sub-steps. ``render()`` draws with ``renderers.TopDownRenderer``.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ._config import check_number, check_range, fail, merge_config
from .renderers import TopDownRenderer
from .road import Road, RoadParams, as_profile

#: Curvature observations are ``kappa * CURVATURE_SCALE`` (1 = a 20 m radius).
CURVATURE_SCALE = 20.0


class LaneKeepingEnv(gym.Env):
    """Lane keeping on a seeded random road, state observations (see module doc)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        """Default configuration; ``gym.make`` keyword arguments override it."""
        return {
            # Time and episode length.
            "dt": 0.1,  # [s] control interval
            "max_substep": 0.1,  # [s] longest integration sub-step (RK2)
            "max_steps": 1000,  # truncation
            # Car.
            "speed": 10.0,  # [m/s] nominal speed
            "speed_variation": 0.0,  # relative amplitude of a slow speed oscillation
            "speed_period": 20.0,  # [s] its period
            "wheelbase_front": 1.2,  # [m] centre of gravity to front axle
            "wheelbase_rear": 1.5,  # [m] centre of gravity to rear axle
            "max_steer": 0.5,  # [rad] front wheel angle at action +-1
            "initial_offset": 0.5,  # [m] initial lateral offset drawn in +-this
            "initial_heading": 0.1,  # [rad] initial heading error drawn in +-this
            # Road.
            "road_width": 4.0,  # [m]
            "lead_in": 20.0,  # [m] straight at the start
            "segment_length": [20.0, 80.0],  # [m] length of each segment
            "gentle_radius": [60.0, 200.0],  # [m]
            "sharp_radius": [18.0, 40.0],  # [m]
            "segment_probs": [0.3, 0.4, 0.3],  # straight, gentle, sharp
            "transition_length": 8.0,  # [m] curvature ramp between segments
            "road_profile": None,  # fixed road [[length, curvature], ...], then straight
            # (replaces the random segments and the lead-in)
            "road_resolution": 0.25,  # [m] sample spacing of the centreline
            # Observation.
            "preview_points": 8,
            "preview_distance": 40.0,  # [m]
            # Reward.
            "offroad_penalty": 10.0,
            # Rendering (top-down, north-up view centred on the car).
            "render_size": 256,  # [px]
            "render_extent": 80.0,  # [m] side of the shown square
        }

    def __init__(
        self,
        render_mode: str | None = None,
        config: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self.config = merge_config(type(self).__name__, self.default_config(), config, kwargs)
        self._validate_config(self.config)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"{type(self).__name__}: unsupported render_mode {render_mode!r}; "
                f"supported: {self.metadata['render_modes']}"
            )
        self.render_mode = render_mode
        cfg = self.config
        self.metadata = {**self.metadata, "render_fps": max(1, int(round(1.0 / cfg["dt"])))}

        self.half_width = 0.5 * float(cfg["road_width"])
        self.dt = float(cfg["dt"])
        self._lf = float(cfg["wheelbase_front"])
        self._lr = float(cfg["wheelbase_rear"])
        self._k = int(cfg["preview_points"])
        dist = float(cfg["preview_distance"])
        self._preview_offsets = [dist * (i + 1) / self._k for i in range(self._k)]
        #: how much road must exist ahead of the car for the observation [m]
        self._lookahead = self._preview_offsets[-1]
        self._road_params = RoadParams(
            ds=float(cfg["road_resolution"]),
            lead_in=float(cfg["lead_in"]),
            segment_length=tuple(map(float, cfg["segment_length"])),
            gentle_radius=tuple(map(float, cfg["gentle_radius"])),
            sharp_radius=tuple(map(float, cfg["sharp_radius"])),
            segment_probs=tuple(map(float, cfg["segment_probs"])),
            transition_length=float(cfg["transition_length"]),
            profile=as_profile(cfg["road_profile"]),
        )

        self.action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.observation_space = self._make_observation_space()

        self.road: Road | None = None
        self._s = self._e = self._psi = 0.0
        self._t = 0.0
        self._v = float(cfg["speed"])
        self._steer = 0.0
        self._speed_phase = 0.0
        self._steps = 0
        self._top_down: TopDownRenderer | None = None  # made at the first render()

    # ------------------------------------------------------------------ config
    @classmethod
    def _validate_config(cls, cfg: dict[str, Any]) -> None:
        name = cls.__name__
        for key in ("dt", "max_substep", "speed", "speed_period", "wheelbase_front",
                    "wheelbase_rear", "road_width", "preview_distance", "road_resolution",
                    "render_extent"):
            check_number(name, cfg, key, low=0.0, low_open=True)
        for key in ("initial_offset", "initial_heading", "lead_in", "transition_length",
                    "offroad_penalty"):
            check_number(name, cfg, key, low=0.0)
        check_number(name, cfg, "max_steps", low=1, integer=True)
        check_number(name, cfg, "preview_points", low=1, integer=True)
        check_number(name, cfg, "render_size", low=16, high=4096, integer=True)
        check_number(name, cfg, "speed_variation", low=0.0, high=0.9)
        check_number(name, cfg, "max_steer", low=0.0, high=1.4, low_open=True)
        if cfg["initial_offset"] >= 0.5 * cfg["road_width"]:
            raise fail(name, "initial_offset", cfg["initial_offset"],
                       "must be less than half the road width")
        for key in ("segment_length", "gentle_radius", "sharp_radius"):
            check_range(name, cfg, key)
        if cfg["sharp_radius"][0] <= 0.5 * cfg["road_width"]:
            raise fail(name, "sharp_radius", cfg["sharp_radius"],
                       "radii must exceed half the road width")
        probs = cfg["segment_probs"]
        try:
            p = np.asarray(probs, dtype=float)
        except (TypeError, ValueError):
            raise fail(name, "segment_probs", probs, "expected three numbers") from None
        if p.shape != (3,) or np.any(~np.isfinite(p)) or np.any(p < 0) or abs(p.sum() - 1) > 1e-6:
            raise fail(name, "segment_probs", probs,
                       "expected three non-negative numbers summing to 1")
        profile = cfg["road_profile"]
        if profile is not None:
            try:
                prof = as_profile(profile)
            except (TypeError, ValueError):
                raise fail(name, "road_profile", profile,
                           "expected a list of [length, curvature] pairs") from None
            assert prof is not None
            if not prof or any(not (length > 0 and math.isfinite(length)) for length, _ in prof):
                raise fail(name, "road_profile", profile, "lengths must be positive")
            min_radius = 0.5 * cfg["road_width"]
            if any(not math.isfinite(k) or abs(k) * min_radius >= 1.0 for _, k in prof):
                raise fail(name, "road_profile", profile,
                           "curvatures must be finite with radius above half the road width")

    def _make_observation_space(self) -> spaces.Box:
        k = self._k
        low = np.array([-2.0, -math.pi, 0.0] + [-3.0] * k, dtype=np.float32)
        high = np.array([2.0, math.pi, 2.0] + [3.0] * k, dtype=np.float32)
        return spaces.Box(low, high, dtype=np.float32)

    # ------------------------------------------------------------------ API
    def set_dt(self, dt: float) -> None:
        """Set the time step [s] of the following steps (until the next reset)."""
        dt = float(dt)
        if not (dt > 0.0 and math.isfinite(dt)):
            raise ValueError(f"{type(self).__name__}.set_dt: dt must be > 0, got {dt!r}")
        self.dt = dt

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        cfg = self.config
        rng = self.np_random
        # The road has its own generator, drawn from the episode's: the road depends on
        # the seed only, not on how long or with which time steps the car drives.
        road_rng = np.random.default_rng(int(rng.integers(2**63)))
        self.road = Road(self._road_params, road_rng)
        self._s = 0.0
        self._e = float(rng.uniform(-1.0, 1.0)) * cfg["initial_offset"]
        self._psi = float(rng.uniform(-1.0, 1.0)) * cfg["initial_heading"]
        if options:
            self._apply_reset_options(options)
        self._speed_phase = float(rng.uniform(0.0, 2.0 * math.pi))
        self._t = 0.0
        self._steps = 0
        self._steer = 0.0
        self.dt = float(cfg["dt"])
        self._v = self._speed_at(0.0)
        self._ensure_road(self.dt)
        return self._observation(), self._info(0.0, False)

    def _apply_reset_options(self, options: dict[str, Any]) -> None:
        """Set the initial ``lateral_offset`` [m] and/or ``heading_error`` [rad]."""
        valid = ("lateral_offset", "heading_error")
        unknown = sorted(k for k in options if k not in valid)
        if unknown:
            raise ValueError(
                f"{type(self).__name__}.reset: unknown option(s) {unknown}; valid: {list(valid)}"
            )
        if "lateral_offset" in options:
            e = float(options["lateral_offset"])
            if not abs(e) < self.half_width:
                raise ValueError(
                    f"{type(self).__name__}.reset: option 'lateral_offset' must be within "
                    f"the road (|e| < {self.half_width}), got {e!r}"
                )
            self._e = e
        if "heading_error" in options:
            psi = float(options["heading_error"])
            if not abs(psi) < math.pi:
                raise ValueError(
                    f"{type(self).__name__}.reset: option 'heading_error' must be in "
                    f"(-pi, pi), got {psi!r}"
                )
            self._psi = psi

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self.road is None:
            raise RuntimeError("Call reset() before step().")
        a = float(np.asarray(action, dtype=np.float64).reshape(-1)[0])
        if a != a:  # NaN steering would poison the state
            raise ValueError("LaneKeeping: the action is NaN")
        a = -1.0 if a < -1.0 else (1.0 if a > 1.0 else a)
        self._steer = a
        dt = self.dt
        s0 = self._s
        self._ensure_road(dt)
        self._integrate(a * self.config["max_steer"], dt)
        self._t += dt
        self._steps += 1
        self._v = self._speed_at(self._t)

        hw = self.half_width
        off_road = abs(self._e) > hw
        if off_road:
            reward = -float(self.config["offroad_penalty"])
        else:
            progress = (self._s - s0) / (self.config["speed"] * self.config["dt"])
            ratio = self._e / hw
            reward = progress * (1.0 - ratio * ratio)
        truncated = (not off_road) and self._steps >= self.config["max_steps"]
        obs = self._observation()
        if self.render_mode == "human":  # pragma: no cover - not a declared mode
            self.render()
        return obs, float(reward), off_road, truncated, self._info(dt, off_road)

    # ------------------------------------------------------------------ dynamics
    def _speed_at(self, t: float) -> float:
        cfg = self.config
        var = cfg["speed_variation"]
        if var == 0.0:
            return float(cfg["speed"])
        return float(cfg["speed"]) * (
            1.0 + var * math.sin(2.0 * math.pi * t / cfg["speed_period"] + self._speed_phase)
        )

    def _ensure_road(self, dt: float) -> None:
        assert self.road is not None
        # The car covers at most 10 v dt (the road-frame speed is capped at 10 v).
        need = self._s + 10.0 * self._v * dt + self._lookahead + 10.0
        if need > self.road.length:
            # Grow in big pieces so that this happens rarely.
            self.road.ensure(need + 200.0)

    def _integrate(self, delta: float, dt: float) -> None:
        """Advance the kinematic bicycle in road coordinates by ``dt`` (RK2 sub-steps).

        With slip angle ``beta = atan(lr / (lf + lr) * tan(delta))``:
        ``s' = v cos(psi + beta) / (1 - kappa e)``, ``e' = v sin(psi + beta)``,
        ``psi' = v cos(beta) tan(delta) / (lf + lr) - kappa s'``.
        """
        road = self.road
        assert road is not None
        kl = road.kappa_list
        inv_ds = road.inv_ds
        off = road.offset
        s_min = 1.0 - road.behind  # keep a reversing car on the sampled road
        v = self._v
        lf, lr = self._lf, self._lr
        tan_d = math.tan(delta)
        beta = math.atan(lr / (lf + lr) * tan_d)
        yaw_rate = v * math.cos(beta) * tan_d / (lf + lr)
        n = max(1, int(math.ceil(dt / self.config["max_substep"] - 1e-9)))
        h = dt / n
        s, e, psi = self._s, self._e, self._psi
        for _ in range(n):
            k1 = kl[int(s * inv_ds + off)]
            a = psi + beta
            den = 1.0 - k1 * e
            if den < 0.1:  # far outside any road: keep the coordinates defined
                den = 0.1
            sd = v * math.cos(a) / den
            ed = v * math.sin(a)
            pd = yaw_rate - k1 * sd
            sm = s + 0.5 * h * sd
            em = e + 0.5 * h * ed
            pm = psi + 0.5 * h * pd
            k2 = kl[int(sm * inv_ds + off)] if sm > s_min else kl[0]
            a = pm + beta
            den = 1.0 - k2 * em
            if den < 0.1:
                den = 0.1
            sd = v * math.cos(a) / den
            s += h * sd
            e += h * v * math.sin(a)
            psi += h * (yaw_rate - k2 * sd)
            if s < s_min:
                s = s_min
        # Wrap the heading error to [-pi, pi).
        if psi >= math.pi or psi < -math.pi:
            psi = (psi + math.pi) % (2.0 * math.pi) - math.pi
        self._s, self._e, self._psi = s, e, psi

    # ------------------------------------------------------------------ observation
    def _state_vector(self) -> list[float]:
        road = self.road
        assert road is not None
        kl = road.kappa_list
        inv_ds = road.inv_ds
        base = self._s * inv_ds + road.offset
        e = self._e / self.half_width
        e = -2.0 if e < -2.0 else (2.0 if e > 2.0 else e)
        out = [e, self._psi, self._v / self.config["speed"]]
        for d in self._preview_offsets:
            k = kl[int(base + d * inv_ds)] * CURVATURE_SCALE
            out.append(-3.0 if k < -3.0 else (3.0 if k > 3.0 else k))
        return out

    def _observation(self) -> np.ndarray:
        return np.array(self._state_vector(), dtype=np.float32)

    def _info(self, dt: float, off_road: bool) -> dict[str, Any]:
        assert self.road is not None
        return {
            "s": self._s,
            "lateral_offset": self._e,
            "heading_error": self._psi,
            "speed": self._v,
            "curvature": self.road.curvature(self._s),
            "steering": self._steer,
            "dt": dt,
            "time": self._t,
            "off_road": off_road,
        }

    # ------------------------------------------------------------------ geometry
    def car_pose(self) -> tuple[float, float, float]:
        """World ``(x, y, heading)`` of the car."""
        assert self.road is not None
        x, y, th = self.road.pose(self._s, self._e)
        return x, y, th + self._psi

    # ------------------------------------------------------------------ rendering
    def render(self) -> np.ndarray | None:
        """Top-down, north-up view centred on the car: (render_size, render_size, 3) uint8."""
        if self.render_mode is None:
            gym.logger.warn(
                "LaneKeeping: render() called without a render_mode; "
                'use gymnasium.make(..., render_mode="rgb_array")'
            )
            return None
        if self.road is None:
            self.reset()
        assert self.road is not None
        if self._top_down is None:
            self._top_down = TopDownRenderer(
                self.config["render_size"], self.config["render_extent"], self.half_width
            )
        return self._top_down.render(self.road, self._s, *self.car_pose())
