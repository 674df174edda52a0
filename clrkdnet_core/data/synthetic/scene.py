"""Procedural road scenes: a pinhole camera over a flat road with lane markings defined in a road frame.

A marking is a lateral offset ``d`` (metres, right positive) from the road's reference line; the
reference line follows a clothoid (offset + heading·z + curvature·z²/2 + curvature_rate·z³/6), so every
marking is placed on the ground and projected with the camera, and all lanes converge to one vanishing point
like real roads. The labels are the projected marking centre lines, the same curves the renderer paints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from clrkdnet_core.data.formats import CULANE_CATEGORIES

CATEGORIES = CULANE_CATEGORIES  # a scene's category is one of CULane's 9 test categories
CURVE_CURVATURE = 1.0 / 600.0  # 1/m: roads bending more than this within 40 m are "curve" scenes
CROWD_VEHICLES = 3
WORN_PAINT = 0.5
VISIBLE_VEHICLE_DISTANCE = 100.0
WHITE_PAINT = (235.0, 238.0, 240.0)  # BGR road paint; each marking adds a small tint of its own
YELLOW_PAINT = (60.0, 190.0, 225.0)


@dataclass(frozen=True)
class Camera:
    """Pinhole camera at ``mount_height`` over flat ground, pitched down and rolled about its optical axis."""

    width: int
    height: int
    focal: float
    cx: float
    cy: float
    mount_height: float
    pitch: float  # radians, positive looks down
    roll: float  # radians, positive rotates the image counter-clockwise

    @property
    def horizon(self) -> float:
        """Image row of the vanishing line before the roll is applied."""
        return self.cy - self.focal * math.tan(self.pitch)

    def project(
        self, x: np.ndarray, z: np.ndarray, up: float | np.ndarray = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Project points (lateral x, height ``up``, distance z in metres) to unrolled image pixels (u, v)."""
        s, c = math.sin(self.pitch), math.cos(self.pitch)
        below = self.mount_height - np.asarray(up)
        y_cam = below * c - z * s
        z_cam = below * s + z * c
        return self.cx + self.focal * x / z_cam, self.cy + self.focal * y_cam / z_cam

    def ground_distance(self, v: np.ndarray) -> np.ndarray:
        """Distance z of the ground point seen at unrolled image row ``v`` (rows below the horizon only)."""
        s, c = math.sin(self.pitch), math.cos(self.pitch)
        t = (np.asarray(v, dtype=np.float64) - self.cy) / self.focal
        return self.mount_height * (c - t * s) / (s + t * c)

    def roll_matrix(self) -> np.ndarray:
        """2×3 affine matrix applying the roll to unrolled pixel coordinates (and to the rendered image)."""
        centre = ((self.width - 1) / 2.0, (self.height - 1) / 2.0)
        return cv2.getRotationMatrix2D(centre, math.degrees(self.roll), 1.0)


@dataclass(frozen=True)
class Road:
    """Reference line of the road in camera-centred ground coordinates."""

    offset: float  # lateral position at z = 0 (m)
    heading: float  # dx/dz at z = 0
    curvature: float  # 1/m at z = 0
    curvature_rate: float  # 1/m², clothoid term

    def lateral(self, z: np.ndarray, d: float | np.ndarray) -> np.ndarray:
        """Lateral ground position of the road-frame point (d, z)."""
        return (
            self.offset + d + z * (self.heading + z * (self.curvature / 2.0 + z * self.curvature_rate / 6.0))
        )

    def max_curvature(self, z_max: float = 40.0) -> float:
        return max(abs(self.curvature), abs(self.curvature + self.curvature_rate * z_max))


@dataclass(frozen=True)
class Marking:
    """One painted lane line; ``offset`` is its centre in the road frame."""

    offset: float
    style: str  # "solid", "dashed" or "double"
    color: tuple[float, float, float]  # BGR
    width: float = 0.15
    dash: float = 3.0
    gap: float = 9.0
    phase: float = 0.0  # z of a dash start, any multiple of dash + gap away also starts a dash


@dataclass(frozen=True)
class Vehicle:
    """A box-shaped vehicle driving along the road; ``z`` is the distance of its rear face."""

    offset: float
    z: float
    width: float
    height: float
    length: float
    color: tuple[float, float, float]


@dataclass(frozen=True)
class Palette:
    sky_top: tuple[float, float, float]
    sky_horizon: tuple[float, float, float]
    asphalt: tuple[float, float, float]
    ground: tuple[float, float, float]
    treeline: tuple[float, float, float]
    haze_distance: float


@dataclass(frozen=True, eq=False)
class Scene:
    """Everything needed to render one frame and to label it."""

    camera: Camera
    road: Road
    markings: tuple[Marking, ...]  # sorted left to right
    road_edges: tuple[float, float]  # road-frame offsets of the asphalt edges
    vehicles: tuple[Vehicle, ...]
    shadows: tuple[np.ndarray, ...]  # (K, 2) ground polygons (d, z) of cast shadows
    patches: tuple[np.ndarray, ...]  # (K, 2) ground polygons of repaired asphalt
    arrows: tuple[tuple[float, float], ...]  # (lane-centre offset, z of the arrow tail)
    crosswalk: float | None  # z of the zebra crossing of a junction; such a scene has no lane markings
    night: bool
    glare: tuple[float, float, float] | None  # (u, v, radius) of a blinding light in unrolled pixels
    wear: float  # 0 = fresh paint, 1 = invisible
    shadow_darkness: float
    label_distance: float  # m; annotators stop labelling before the vanishing point
    palette: Palette
    texture_seed: int  # static textures (asphalt, clouds, paint wear)
    noise_offset: tuple[int, int]  # per-frame sensor noise window

    @property
    def category(self) -> str:
        """CULane test category implied by the scene's attributes (most specific first)."""
        if self.crosswalk is not None:
            return "cross"
        if self.glare is not None:
            return "hlight"
        if self.night:
            return "night"
        if self.wear >= WORN_PAINT:
            return "noline"
        if self.shadows:
            return "shadow"
        if self.arrows:
            return "arrow"
        if self.road.max_curvature() >= CURVE_CURVATURE:
            return "curve"
        if sum(v.z < VISIBLE_VEHICLE_DISTANCE for v in self.vehicles) >= CROWD_VEHICLES:
            return "crowd"
        return "normal"

    def lateral_positions(self, z: float = 6.0) -> np.ndarray:
        """Lateral ground position (m, camera at 0) of every marking ``z`` metres ahead."""
        offsets = np.array([m.offset for m in self.markings], dtype=np.float64)
        return self.road.lateral(np.full_like(offsets, z), offsets)

    def label_polylines(self) -> list[np.ndarray]:
        """Dense label curve of every marking in final (rolled) image pixels, (N, 2) x, y from the bottom up.

        Rows are 1 px apart before the roll, from below the image bottom to ``label_distance``; the part after
        which the curve stops rising (possible only after a roll on a sharp bend) is dropped.
        """
        cam = self.camera
        v_far = float(cam.project(np.zeros(1), np.array([self.label_distance]))[1][0])
        v = np.arange(cam.height + 64.0, v_far, -1.0)
        z = cam.ground_distance(v)
        rot = cam.roll_matrix()
        curves = []
        for marking in self.markings:
            u, _ = cam.project(self.road.lateral(z, marking.offset), z)
            x = rot[0, 0] * u + rot[0, 1] * v + rot[0, 2]
            y = rot[1, 0] * u + rot[1, 1] * v + rot[1, 2]
            rising = np.flatnonzero(np.diff(y) >= 0)
            end = rising[0] + 1 if rising.size else len(y)
            curves.append(np.stack([x[:end], y[:end]], axis=1))
        return curves

    def sample_lanes(self, ys: np.ndarray) -> np.ndarray:
        """x of every marking's label at image rows ``ys`` (n_markings, len(ys)); NaN where not visible.

        A lane is visible where its label lies inside the image width and before ``label_distance``; only the
        longest run of consecutive visible rows is kept, so every lane is one unbroken polyline.
        """
        ys = np.asarray(ys, dtype=np.float64)
        out = np.full((len(self.markings), len(ys)), np.nan)
        for i, curve in enumerate(self.label_polylines()):
            if len(curve) < 2:
                continue
            x = np.interp(ys, curve[::-1, 1], curve[::-1, 0], left=np.nan, right=np.nan)
            visible = (x >= 0) & (x < self.camera.width)
            out[i] = np.where(_longest_run(visible), x, np.nan)
        return out


def _longest_run(mask: np.ndarray) -> np.ndarray:
    """The longest run of consecutive True values of ``mask`` (earliest on ties)."""
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    keep = np.zeros_like(mask)
    if edges.size:
        starts, ends = edges[::2], edges[1::2]
        k = int(np.argmax(ends - starts))
        keep[starts[k] : ends[k]] = True
    return keep
