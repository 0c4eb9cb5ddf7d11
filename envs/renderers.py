"""Drawing of the lane-keeping road: the top-down view and the car's camera.

Plain numpy, no OpenGL. Both renderers classify ground points by their lateral offset
from the nearest road sample (``road.lateral_offsets``): road, edge line or grass.

- ``TopDownRenderer``: the north-up overview centred on the car that ``render()`` of
  both lane-keeping envs returns.
- ``RoadCamera``: the observation of ``LaneKeepingPixels-v0``, a first-person pinhole
  camera or an ego-centred bird's-eye view. The ground point of every pixel in the car
  frame is computed once; per step only the road samples near the car are moved into
  the car frame.
- ``with_inset``: a frame with an image pasted into its top-left corner.

The physics (``lane_keeping``) knows nothing of these; the envs call them with the road
and the car's pose.
"""

from __future__ import annotations

import math

import numpy as np

from .road import Road, lateral_offsets, road_frame

__all__ = ["PALETTE", "SKY", "HAZE", "GRASS_A", "GRASS_B", "ROAD", "LINE", "CAR",
           "RoadCamera", "TopDownRenderer", "with_inset"]

# Palette indices and colours (RGB) of the camera.
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
#: colour of the car in both views
CAR = (200, 30, 30)


class TopDownRenderer:
    """North-up view of ``extent`` metres square centred on the car, (size, size, 3) uint8.

    Args:
        size: image side in pixels.
        extent: [m] side of the shown square.
        half_width: [m] half the road width.
    """

    #: colours of the overview (it has no checker texture or sky)
    GRASS = (70, 140, 60)
    ROAD = (90, 90, 90)
    LINE = (240, 240, 240)
    CENTRE = (200, 180, 60)
    CAR_FRONT = (250, 200, 200)
    #: pixels classified per chunk; bounds the (pixels, samples) buffer
    CHUNK = 16384

    def __init__(self, size: int, extent: float, half_width: float) -> None:
        self.size = int(size)
        self.extent = float(extent)
        self.half_width = float(half_width)
        px = (np.arange(self.size) + 0.5) / self.size * self.extent - 0.5 * self.extent
        self._gx, self._gy = np.meshgrid(px, -px)  # image rows go north to south
        self._pts = np.array((self._gx.ravel(), self._gy.ravel()), dtype=np.float32)

    def render(self, road: Road, s: float, x: float, y: float, heading: float) -> np.ndarray:
        """Frame around the car at world ``(x, y, heading)``, arc length ``s``."""
        size = self.size
        spacing = 2.0
        reach = 0.75 * self.extent
        idx = road.window(s - reach, s + reach, spacing)
        u, v, tu, tv, kappa = road_frame(road, idx, x, y, 0.0)
        hw = self.half_width
        img = np.empty((size * size, 3), dtype=np.uint8)
        img[:] = self.GRASS
        for start in range(0, size * size, self.CHUNK):
            sl = slice(start, start + self.CHUNK)
            off, valid = lateral_offsets(self._pts[:, sl], u, v, tu, tv, kappa, spacing)
            a = np.abs(off)
            part = img[sl]
            part[valid & (a <= hw)] = self.ROAD
            part[valid & (a <= hw) & (a >= hw - 0.25)] = self.LINE
            part[valid & (a <= 0.08)] = self.CENTRE
            img[sl] = part
        img = img.reshape(size, size, 3)
        # The car: a rotated 4.5 m x 1.8 m rectangle at the centre.
        c, sn = math.cos(heading), math.sin(heading)
        gx, gy = self._gx, self._gy
        fu = gx * c + gy * sn
        fv = -gx * sn + gy * c
        car = (np.abs(fu) <= 2.25) & (np.abs(fv) <= 0.9)
        img[car] = CAR
        img[car & (fu > 1.2)] = self.CAR_FRONT
        return img


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
            raise ValueError(f"RoadCamera: unknown view {view!r}; allowed: first_person, top_down")
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
            img[self._car_mask] = CAR
        return img.reshape(self.height, self.width, 3)


def with_inset(frame: np.ndarray, image: np.ndarray) -> np.ndarray:
    """``frame`` (H, W, 3) with ``image`` (h, w, 3) in its top-left corner, scaled x2 if it fits.

    Writes into ``frame`` and returns it.
    """
    scale = max(1, min(frame.shape[0] // (2 * image.shape[0]), 2))
    inset = np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)
    h = min(inset.shape[0], frame.shape[0])
    w = min(inset.shape[1], frame.shape[1])
    frame[:h, :w] = inset[:h, :w]
    return frame
