"""Roads for the lane-keeping tasks: a centreline sampled along its arc length.

A road is a sequence of segments of constant curvature (straights, gentle and sharp
bends to either side), joined by short linear curvature ramps (clothoid-like), so the
heading of the road is continuous. The centreline is sampled every ``ds`` metres:

- ``s``      (n,) arc length [m]
- ``kappa``  (n,) signed curvature [1/m], positive = bend to the left
- ``theta``  (n,) heading of the road [rad]
- ``x, y``   (n,) position of the centreline [m]

Sample ``i`` is at arc length ``s_i = i * ds - behind``: the road starts with a straight
of ``behind`` metres before ``s = 0``, where the car starts, so that there is road
behind the car to draw. The car is simulated in road (Frenet) coordinates (arc length
``s``, lateral offset ``e``), which needs only ``kappa(s)``; the world positions are
needed for drawing. The road grows on demand (``ensure``), so any episode length and
time step work.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SEGMENT_KINDS = ("straight", "gentle", "sharp")


@dataclass(frozen=True)
class RoadParams:
    """How random roads are drawn (see ``LaneKeepingEnv.default_config``)."""

    ds: float = 0.25
    behind: float = 30.0
    lead_in: float = 20.0
    segment_length: tuple[float, float] = (20.0, 80.0)
    gentle_radius: tuple[float, float] = (60.0, 200.0)
    sharp_radius: tuple[float, float] = (18.0, 40.0)
    segment_probs: tuple[float, float, float] = (0.3, 0.4, 0.3)
    transition_length: float = 8.0
    profile: tuple[tuple[float, float], ...] | None = None


class Road:
    """An arc-length sampled road centreline that grows on demand.

    Args:
        params: generation parameters.
        rng: the generator that draws the random segments (a road is a function of it
            only, not of the car's actions, so the same seed gives the same road).
    """

    def __init__(self, params: RoadParams, rng: np.random.Generator) -> None:
        self.params = params
        self.ds = float(params.ds)
        self.inv_ds = 1.0 / self.ds
        self._rng = rng
        self._profile = list(params.profile) if params.profile is not None else None
        self._last_kappa = 0.0
        # Pieces of curvature samples, concatenated lazily.
        self.kappa = np.zeros(1)
        self.theta = np.zeros(1)
        self.x = np.zeros(1)
        self.y = np.zeros(1)
        self.s = np.zeros(1)
        #: curvature samples as a Python list: indexing a list is several times faster
        #: than indexing a numpy array with a Python int, and the car model does that
        #: a few times per step.
        self.kappa_list: list[float] = [0.0]
        self._first = True
        #: index of the sample at s = 0, and the same as a float for fast lookups
        self.i0 = self._n(params.behind) if params.behind > 0 else 0
        self.offset = float(self.i0)
        self.behind = self.i0 * self.ds
        first = [np.zeros(self.i0)] if self.i0 > 0 else []
        if self._profile is None and params.lead_in > 0:
            first.append(np.zeros(self._n(params.lead_in)))
        self._cum_probs = np.cumsum(np.asarray(params.segment_probs, dtype=float)).tolist()
        self._grow(200.0, first)

    # ------------------------------------------------------------------ generation
    def _n(self, length: float) -> int:
        return max(1, int(round(length * self.inv_ds)))

    def _next_segment(self) -> np.ndarray:
        """Curvature samples of the next segment (ramp from the previous curvature)."""
        p = self.params
        if self._profile is not None:
            if self._profile:
                length, kappa = self._profile.pop(0)
                self._last_kappa = float(kappa)
                return np.full(self._n(float(length)), float(kappa))
            # Past the end of a given profile the road goes on straight.
            self._last_kappa = 0.0
            return np.zeros(self._n(100.0))
        rng = self._rng
        u = rng.random()  # (Generator.choice with p= is slow)
        c = self._cum_probs
        kind = SEGMENT_KINDS[0 if u < c[0] else (1 if u < c[1] else 2)]
        length = float(rng.uniform(*p.segment_length))
        if kind == "straight":
            kappa = 0.0
        else:
            lo, hi = p.gentle_radius if kind == "gentle" else p.sharp_radius
            radius = float(rng.uniform(lo, hi))
            kappa = (1.0 if rng.random() < 0.5 else -1.0) / radius
        n = self._n(length)
        seg = np.full(n, kappa)
        n_ramp = min(self._n(p.transition_length), n // 2)
        if n_ramp > 0 and kappa != self._last_kappa:
            seg[:n_ramp] = np.linspace(self._last_kappa, kappa, n_ramp + 1)[1:]
        self._last_kappa = kappa
        return seg

    def _append(self, kappa_new: np.ndarray) -> None:
        """Append curvature samples and integrate heading and position.

        Sample ``i`` holds the curvature of the interval ``[s_i, s_i + ds)``, the same
        convention as ``curvature(s)``, so the drawn road and the car model agree.
        """
        if self._first:
            # The initial sample at s = 0 is a placeholder: it takes the first curvature.
            self.kappa[0] = kappa_new[0]
            self.kappa_list[0] = float(kappa_new[0])
            self._first = False
        k_left = np.concatenate(([self.kappa[-1]], kappa_new[:-1]))
        dtheta = k_left * self.ds
        theta = self.theta[-1] + np.cumsum(dtheta)
        # Midpoint heading of each interval: exact to second order on an arc.
        mid = theta - 0.5 * dtheta
        x = self.x[-1] + np.cumsum(self.ds * np.cos(mid))
        y = self.y[-1] + np.cumsum(self.ds * np.sin(mid))
        self.kappa = np.concatenate((self.kappa, kappa_new))
        self.theta = np.concatenate((self.theta, theta))
        self.x = np.concatenate((self.x, x))
        self.y = np.concatenate((self.y, y))
        self.s = np.arange(len(self.kappa)) * self.ds - self.behind
        self.kappa_list.extend(kappa_new.tolist())

    def _grow(self, s_max: float, pieces: list[np.ndarray]) -> None:
        # One concatenation for all new segments: appending is the costly part.
        n_total = len(self.kappa) + sum(len(p) for p in pieces)
        n_need = (s_max + self.behind) * self.inv_ds + 1
        while n_total < n_need:
            seg = self._next_segment()
            pieces.append(seg)
            n_total += len(seg)
        if pieces:
            self._append(np.concatenate(pieces))

    def ensure(self, s_max: float) -> None:
        """Make sure that the road is sampled at least up to arc length ``s_max``."""
        if self.length < s_max:
            self._grow(s_max, [])

    @property
    def length(self) -> float:
        """Arc length of the sampled part ahead of ``s = 0`` [m]."""
        return (len(self.kappa) - 1) * self.ds - self.behind

    # ---------------------------------------------------------------------- queries
    def curvature(self, s: float) -> float:
        """Curvature at arc length ``s`` (the sample at or before it)."""
        i = int(s * self.inv_ds + self.offset)
        return self.kappa_list[min(max(i, 0), len(self.kappa_list) - 1)]

    def pose(self, s: float, e: float) -> tuple[float, float, float]:
        """World ``(x, y, road heading)`` of the point at arc length ``s``, offset ``e``."""
        f = s * self.inv_ds + self.offset
        i = min(max(int(f), 0), len(self.kappa) - 2)
        t = f - i
        x = self.x[i] + t * (self.x[i + 1] - self.x[i])
        y = self.y[i] + t * (self.y[i + 1] - self.y[i])
        th = self.theta[i] + t * (self.theta[i + 1] - self.theta[i])
        return float(x - e * math.sin(th)), float(y + e * math.cos(th)), float(th)

    def window(self, s_lo: float, s_hi: float, spacing: float) -> np.ndarray:
        """Indices of samples every ``spacing`` metres in ``[s_lo, s_hi]`` (clipped)."""
        step = max(1, int(round(spacing * self.inv_ds)))
        i0 = max(0, int(s_lo * self.inv_ds + self.offset))
        i1 = min(len(self.kappa) - 1, int(math.ceil(s_hi * self.inv_ds + self.offset)))
        return np.arange(i0, i1 + 1, step)


def road_frame(
    road: Road,
    idx: np.ndarray,
    origin_x: float,
    origin_y: float,
    heading: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Road samples ``idx`` in a frame at ``origin`` rotated by ``heading``.

    Returns ``(u, v, tu, tv, kappa)``, float32 arrays of shape (M,): sample positions
    (forward, left) and unit tangents in that frame, and the curvature there.
    """
    c, sn = math.cos(heading), math.sin(heading)
    dx = road.x[idx] - origin_x
    dy = road.y[idx] - origin_y
    u = dx * c + dy * sn
    v = -dx * sn + dy * c
    rel = road.theta[idx] - heading
    f32 = np.float32
    return (u.astype(f32), v.astype(f32), np.cos(rel).astype(f32), np.sin(rel).astype(f32),
            road.kappa[idx].astype(f32))


def lateral_offsets(
    pts: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    tu: np.ndarray,
    tv: np.ndarray,
    kappa: np.ndarray,
    spacing: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Signed lateral offset of points from a sampled centreline, and a validity mask.

    ``pts`` (2, N) holds the points (forward row, left row) and ``u, v, tu, tv, kappa``
    (M,) the centreline samples, their unit tangents and curvatures, in the same frame
    (float32 is fastest). Each point is taken relative to its nearest sample (along
    ``a``, across ``b``); the offset from an arc of the sample's curvature is
    ``b - kappa a^2 / 2`` to second order, so samples a few metres apart give
    centimetre accuracy. The nearest sample minimises ``|c|^2 - 2 p.c``, an
    (N, 2) @ (2, M) product, which is much cheaper than forming all the differences.

    Returns ``(offset, valid)``, each (N,); ``valid`` is False for points that project
    beyond the ends of the sampled window (they are not beside this piece of road).
    """
    score = pts.T @ np.array((u, v))
    score *= -2.0
    score += u * u + v * v
    j = score.argmin(axis=1)
    # One gather for the five (N,) rows; np.take is several times faster than [:, j].
    g = np.take(np.array((u, v, tu, tv, kappa)), j, axis=1)
    du = pts[0] - g[0]
    dv = pts[1] - g[1]
    along = du * g[2] + dv * g[3]
    offset = dv * g[2] - du * g[3] - 0.5 * g[4] * along * along
    valid = np.abs(along) <= spacing
    return offset, valid


def as_profile(value: Sequence[Sequence[float]] | None) -> tuple[tuple[float, float], ...] | None:
    """Normalise a ``[[length, curvature], ...]`` road profile (or None)."""
    if value is None:
        return None
    return tuple((float(a), float(b)) for a, b in value)
