"""``liquid_rl/LaneKeepingPixels-v0``: the lane-keeping task seen through a camera.

The same car, roads, reward and termination as ``LaneKeepingEnv``; the observation is
a camera-like image of shape (image_height, image_width, 3), uint8 (HWC, so that
stable-baselines3's ``CnnPolicy`` and ``VecTransposeImage`` take it). This is the
set-up of the NCP lane-keeping experiment: conv head -> 19-neuron NCP -> steering.

Two views (``view``):

- ``"first_person"`` (default): a pinhole camera on the car, ``camera_height`` above
  the ground, pitched down by ``camera_pitch``, horizontal field of view ``fov``
  degrees. Sky above the horizon, ground beyond ``view_distance`` in haze colour.
- ``"top_down"``: an ego-centred bird's-eye view, car heading up, the car at the
  bottom quarter, ``top_down_size`` metres square.

Drawing is plain numpy, no OpenGL: the ground point of every pixel in the car frame is
computed once; per step only the road samples near the car are moved into the car
frame and each ground pixel is classified by its lateral offset from the nearest
sample (road, edge line or grass; grass has a 2 m checker texture fixed to the world
so that motion is visible).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces

from ._config import check_choice, check_number, fail
from .lane_keeping import LaneKeepingEnv
from .road import Road, lateral_offsets, road_frame

# Palette indices and colours (RGB).
SKY, HAZE, GRASS_A, GRASS_B, ROAD, LINE = range(6)
PALETTE = np.array(
    [
        (135, 185, 235),  # sky
        (150, 170, 150),  # haze beyond the view distance
        (70, 140, 60),  # grass
        (60, 120, 50),  # grass, other checker cell
        (95, 95, 95),  # road
        (235, 235, 235),  # edge line
    ],
    dtype=np.uint8,
)


class RoadCamera:
    """Renders the road around the car into an (H, W, 3) uint8 image.

    Args:
        height, width: image size in pixels.
        view: ``"first_person"`` or ``"top_down"``.
        camera_height: [m] height of the first-person camera above the ground.
        camera_pitch: [rad] downward pitch of the first-person camera.
        fov: [deg] horizontal field of view of the first-person camera.
        view_distance: [m] ground farther than this is drawn as haze.
        top_down_size: [m] side of the square shown by the top-down view.
        half_width: [m] half the road width.
        line_width: [m] width of the painted edge lines.
        sample_spacing: [m] spacing of the road samples used for the lateral offsets.
    """

    def __init__(
        self,
        height: int,
        width: int,
        view: str = "first_person",
        camera_height: float = 2.0,
        camera_pitch: float = 0.15,
        fov: float = 60.0,
        view_distance: float = 50.0,
        top_down_size: float = 24.0,
        half_width: float = 2.0,
        line_width: float = 0.25,
        sample_spacing: float = 4.0,
    ) -> None:
        self.height, self.width = int(height), int(width)
        self.view = view
        self.half_width = float(half_width)
        self.line_width = float(line_width)
        self.spacing = float(sample_spacing)
        labels = np.full(self.height * self.width, SKY, dtype=np.intp)
        if view == "first_person":
            # Pinhole camera: ray (x right, y down, z forward) rotated down by the pitch;
            # in the car frame (u forward, v left, w up):
            # u = cos p - y sin p, v = -x, w = -sin p - y cos p.
            f = 0.5 * self.width / math.tan(math.radians(fov) / 2.0)
            cols = (np.arange(self.width) + 0.5 - 0.5 * self.width) / f
            rows = (np.arange(self.height) + 0.5 - 0.5 * self.height) / f
            xr, yd = np.meshgrid(cols, rows)
            xr, yd = xr.ravel(), yd.ravel()
            cp, sp = math.cos(camera_pitch), math.sin(camera_pitch)
            ru = cp - yd * sp
            rv = -xr
            rw = -sp - yd * cp
            ground = rw < -1e-6
            t = camera_height / -rw[ground]
            gu, gv = t * ru[ground], t * rv[ground]
            far = np.hypot(gu, gv) > view_distance
            ground_idx = np.flatnonzero(ground)
            labels[ground_idx[far]] = HAZE
            self._idx = ground_idx[~far]
            self._pu, self._pv = gu[~far], gv[~far]
            self.reach_ahead, self.reach_behind = float(view_distance), 5.0
        elif view == "top_down":
            px = top_down_size / self.width
            self.line_width = max(self.line_width, px)  # thinner lines would flicker
            cols = (np.arange(self.width) + 0.5 - 0.5 * self.width) * px
            rows = (np.arange(self.height) + 0.5) * (top_down_size / self.height)
            # Row 0 is the far end; the car sits a quarter of the way up from the bottom.
            gu_rows = 0.75 * top_down_size - rows
            gu, gv = np.meshgrid(gu_rows, -cols, indexing="ij")
            self._idx = np.arange(self.height * self.width)
            self._pu, self._pv = gu.ravel(), gv.ravel()
            self.reach_ahead = float(np.hypot(0.75 * top_down_size, 0.5 * top_down_size)) + 2.0
            self.reach_behind = float(np.hypot(0.25 * top_down_size, 0.5 * top_down_size)) + 2.0
        else:
            raise ValueError(f"RoadCamera: unknown view {view!r}")
        self._base_labels = labels
        #: ground points of the drawn pixels, (2, N) float32: forward row, left row
        self._pts = np.array((self._pu, self._pv), dtype=np.float32)
        self._car_mask: np.ndarray | None = None
        if view == "top_down":
            car = (np.abs(self._pu) <= 2.25) & (np.abs(self._pv) <= 0.9)
            self._car_mask = self._idx[car]

    def render(self, road: Road, s: float, x: float, y: float, heading: float) -> np.ndarray:
        """Image seen from the car at world ``(x, y, heading)``, arc length ``s``."""
        idx = road.window(s - self.reach_behind - self.spacing,
                          s + self.reach_ahead + self.spacing, self.spacing)
        u, v, tu, tv, kappa = road_frame(road, idx, x, y, heading)
        pts = self._pts
        off, valid = lateral_offsets(pts, u, v, tu, tv, kappa, self.spacing)
        # Grass checker fixed to the world (2 m cells): world point = car + R(heading) p.
        c, sn = 0.5 * math.cos(heading), 0.5 * math.sin(heading)
        wx = pts[0] * c
        wx -= pts[1] * sn
        wx += 0.5 * x
        wy = pts[0] * sn
        wy += pts[1] * c
        wy += 0.5 * y
        np.floor(wx, out=wx)
        np.floor(wy, out=wy)
        wx += wy
        lab = wx.astype(np.intp)
        lab &= 1
        lab += GRASS_A
        np.abs(off, out=off)
        road_px = valid & (off <= self.half_width)
        lab[road_px] = ROAD
        lab[road_px & (off > self.half_width - self.line_width)] = LINE
        labels = self._base_labels.copy()
        labels[self._idx] = lab
        img = np.take(PALETTE, labels, axis=0)  # faster than PALETTE[labels]
        if self._car_mask is not None:
            img[self._car_mask] = (200, 30, 30)
        return img.reshape(self.height, self.width, 3)


class LaneKeepingPixelsEnv(LaneKeepingEnv):
    """Lane keeping from camera images: observation (H, W, 3) uint8 (see module doc)."""

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        cfg = super().default_config()
        cfg.update(
            {
                "image_height": 64,
                "image_width": 64,
                "view": "first_person",  # or "top_down"
                "camera_height": 2.0,  # [m]
                "camera_pitch": 0.15,  # [rad] down
                "fov": 60.0,  # [deg] horizontal
                "view_distance": 50.0,  # [m]
                "top_down_size": 24.0,  # [m]
            }
        )
        return cfg

    @classmethod
    def _validate_config(cls, cfg: dict[str, Any]) -> None:
        super()._validate_config(cfg)
        name = cls.__name__
        check_number(name, cfg, "image_height", low=8, high=1024, integer=True)
        check_number(name, cfg, "image_width", low=8, high=1024, integer=True)
        check_choice(name, cfg, "view", ("first_person", "top_down"))
        check_number(name, cfg, "camera_height", low=0.0, low_open=True)
        check_number(name, cfg, "camera_pitch", low=-1.2, high=1.5)
        check_number(name, cfg, "fov", low=1.0, high=170.0)
        check_number(name, cfg, "view_distance", low=1.0)
        check_number(name, cfg, "top_down_size", low=0.0, low_open=True)
        if cfg["view"] == "first_person":
            # The bottom row must look at the ground or nothing of the road is seen.
            half_v = math.atan(
                math.tan(math.radians(cfg["fov"]) / 2.0)
                * cfg["image_height"] / cfg["image_width"]
            )
            if cfg["camera_pitch"] + half_v <= 0.01:
                raise fail(name, "camera_pitch", cfg["camera_pitch"],
                           "the camera does not see the ground")

    def __init__(
        self,
        render_mode: str | None = None,
        config: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(render_mode=render_mode, config=config, **kwargs)
        cfg = self.config
        self.camera = RoadCamera(
            cfg["image_height"],
            cfg["image_width"],
            view=cfg["view"],
            camera_height=cfg["camera_height"],
            camera_pitch=cfg["camera_pitch"],
            fov=cfg["fov"],
            view_distance=cfg["view_distance"],
            top_down_size=cfg["top_down_size"],
            half_width=self.half_width,
        )
        # The camera sees farther than the state preview: keep that much road ahead.
        self._lookahead = max(self._lookahead, self.camera.reach_ahead + 2.0 * self.camera.spacing)

    def _make_observation_space(self) -> spaces.Box:
        cfg = self.config
        return spaces.Box(0, 255, shape=(cfg["image_height"], cfg["image_width"], 3),
                          dtype=np.uint8)

    def _observation(self) -> np.ndarray:
        assert self.road is not None
        x, y, heading = self.car_pose()
        return self.camera.render(self.road, self._s, x, y, heading)

    def render(self) -> np.ndarray | None:
        """Top-down view with the camera image in the top-left corner (scaled x2)."""
        frame = super().render()
        if frame is None:
            return None
        cam = self._observation()
        scale = max(1, min(frame.shape[0] // (2 * cam.shape[0]), 2))
        inset = np.repeat(np.repeat(cam, scale, axis=0), scale, axis=1)
        h = min(inset.shape[0], frame.shape[0])
        w = min(inset.shape[1], frame.shape[1])
        frame[:h, :w] = inset[:h, :w]
        return frame
