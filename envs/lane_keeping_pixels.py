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

The drawing is ``renderers.RoadCamera``; this class only configures it and returns
its image as the observation.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces

from ._config import check_choice, check_number, fail
from .lane_keeping import LaneKeepingEnv
from .renderers import RoadCamera, with_inset


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
        return with_inset(frame, self._observation())
