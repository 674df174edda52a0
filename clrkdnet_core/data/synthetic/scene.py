"""Procedural road scenes: a pinhole camera over a flat road with lane markings defined in a road frame.

A marking is a lateral offset ``d`` (metres, right positive) from the road's reference line; the
reference line follows a clothoid (offset + heading·z + curvature·z²/2 + curvature_rate·z³/6), so every
marking is placed on the ground and projected with the camera, and all lanes converge to one vanishing point
like real roads. The labels are the projected marking centre lines, the same curves the renderer paints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

CATEGORIES = ("normal", "crowd", "hlight", "shadow", "noline", "arrow", "curve", "cross", "night")
# Most specific attribute first: a night scene with glare is "hlight", a curved road in traffic "curve".
_CATEGORY_WEIGHTS = (0.2, 0.14, 0.06, 0.1, 0.1, 0.07, 0.12, 0.06, 0.15)
CURVE_CURVATURE = 1.0 / 600.0  # 1/m: roads bending more than this within 40 m are "curve" scenes
CROWD_VEHICLES = 3
WORN_PAINT = 0.5
VISIBLE_VEHICLE_DISTANCE = 100.0
NEAR_DISTANCE = 1.0  # m: nearest ground point drawn (below the image bottom for every camera used here)
FAR_DISTANCE = 400.0  # m: the road ends here (a few pixels under the horizon)


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


# Sampling


def sample_category(rng: np.random.Generator, allowed: tuple[str, ...] = CATEGORIES) -> str:
    """A random scene category among ``allowed``, with the generator's category frequencies."""
    weights = np.array([w for c, w in zip(CATEGORIES, _CATEGORY_WEIGHTS, strict=True) if c in allowed])
    return str(rng.choice([c for c in CATEGORIES if c in allowed], p=weights / weights.sum()))


def sample_scene(rng: np.random.Generator, width: int, height: int, category: str | None = None) -> Scene:
    """Draw a random scene; ``category`` (one of :data:`CATEGORIES`) forces the CULane category it has."""
    if category is None:
        category = sample_category(rng)
    elif category not in CATEGORIES:
        raise ValueError(f"unknown scene category {category!r}; expected one of {', '.join(CATEGORIES)}")
    night = category == "night" or (category == "hlight" and rng.random() < 0.5)
    markings, edges, centres = sample_layout(rng)
    if category == "cross":
        markings = ()
    if category == "curve":
        curvature = rng.choice([-1.0, 1.0]) * rng.uniform(1 / 450, 1 / 150)
        rate = rng.normal(0.0, 2e-5)
    else:
        curvature = float(np.clip(rng.normal(0.0, 1 / 4000), -1 / 1500, 1 / 1500))
        rate = float(np.clip(rng.normal(0.0, 2e-6), -4e-6, 4e-6))
    lane_width = centres[1] - centres[0] if len(centres) > 1 else 3.6
    ego = centres[int(rng.integers(len(centres)))]
    road = Road(
        offset=-ego + rng.normal(0.0, 0.25 * lane_width / 3.6),
        heading=rng.normal(0.0, 0.012),
        curvature=float(curvature),
        curvature_rate=float(rate),
    )
    camera = sample_camera(rng, width, height)
    n_vehicles = int(rng.integers(CROWD_VEHICLES, 8)) if category == "crowd" else int(rng.integers(0, 3))
    shadows = sample_shadows(rng, edges, rng.uniform(4.0, 45.0), int(rng.integers(2, 6)))
    glare = None
    if category == "hlight":
        glare = (
            rng.uniform(0.15, 0.85) * width,
            camera.horizon + rng.uniform(-0.06, 0.04) * height,
            rng.uniform(0.08, 0.2) * width,
        )
    return Scene(
        camera=camera,
        road=road,
        markings=markings,
        road_edges=edges,
        vehicles=sample_vehicles(rng, centres, ego, n_vehicles),
        shadows=shadows if category == "shadow" else (),
        patches=sample_patches(rng, edges, int(rng.integers(0, 3))),
        arrows=tuple((ego, z) for z in rng.uniform(7.0, 22.0, size=int(rng.integers(1, 3))).cumsum())
        if category == "arrow"
        else (),
        crosswalk=float(rng.uniform(9.0, 20.0)) if category == "cross" else None,
        night=night,
        glare=glare,
        wear=float(rng.uniform(0.55, 0.85) if category == "noline" else rng.uniform(0.0, 0.3)),
        shadow_darkness=float(rng.uniform(0.35, 0.6)),
        label_distance=float(rng.uniform(50.0, 110.0)),
        palette=sample_palette(rng, night),
        texture_seed=int(rng.integers(2**31)),
        noise_offset=(int(rng.integers(0, 256)), int(rng.integers(0, 256))),
    )


def sample_camera(rng: np.random.Generator, width: int, height: int) -> Camera:
    """A dash-camera: horizon at ~43 % (wide CULane frames) or ~35 % (TuSimple) of the height; jitter."""
    focal = width * rng.uniform(0.66, 0.78)
    horizon = height * (0.435 if width / height > 2.0 else 0.35) + rng.normal(0.0, 0.012 * height)
    cy = (height - 1) / 2.0
    return Camera(
        width=width,
        height=height,
        focal=focal,
        cx=(width - 1) / 2.0 + rng.normal(0.0, 0.01 * width),
        cy=cy,
        mount_height=rng.uniform(1.3, 1.8),
        pitch=math.atan((cy - horizon) / focal),
        roll=float(np.clip(rng.normal(0.0, 0.012), -0.035, 0.035)),
    )


_WHITE = (235.0, 238.0, 240.0)
_YELLOW = (60.0, 190.0, 225.0)


def sample_layout(rng: np.random.Generator) -> tuple[tuple[Marking, ...], tuple[float, float], list[float]]:
    """2 to 5 markings one lane width apart; returns (markings, asphalt edges, lane centres)."""
    n = int(rng.choice([2, 3, 4, 5], p=[0.15, 0.3, 0.35, 0.2]))
    lane_width = rng.uniform(3.0, 3.9)
    dash, gap = rng.uniform(2.0, 4.0), rng.uniform(4.0, 10.0)
    markings = []
    for k in range(n):
        outer = k in (0, n - 1)
        r = rng.random()
        if outer:
            style = "solid" if r < 0.7 else "dashed"
        else:
            style = "dashed" if r < 0.8 else ("solid" if r < 0.9 else "double")
        yellow = style == "double" or (k == 0 and rng.random() < 0.2)
        tint = rng.uniform(-12.0, 8.0)
        color = tuple(float(c + tint) for c in (_YELLOW if yellow else _WHITE))
        markings.append(
            Marking(
                offset=k * lane_width,
                style=style,
                color=color,
                width=rng.uniform(0.12, 0.2),
                dash=dash,
                gap=gap,
                phase=rng.uniform(0.0, dash + gap),
            )
        )
    edges = (-rng.uniform(0.3, 2.5), (n - 1) * lane_width + rng.uniform(0.3, 2.5))
    centres = [(k + 0.5) * lane_width for k in range(n - 1)]
    return tuple(markings), edges, centres


_CAR_COLORS = (
    (235, 235, 235),
    (180, 180, 185),
    (40, 40, 45),
    (30, 30, 160),
    (140, 80, 30),
    (110, 110, 110),
    (60, 90, 60),
    (200, 210, 220),
)


def sample_vehicles(
    rng: np.random.Generator, centres: list[float], ego: float, count: int
) -> tuple[Vehicle, ...]:
    """Up to ``count`` vehicles in the lanes, never closer than 10 m to another one in the same lane."""
    vehicles: list[Vehicle] = []
    for _ in range(count * 4):
        if len(vehicles) == count:
            break
        lane = centres[int(rng.integers(len(centres)))]
        z = rng.uniform(11.0 if lane == ego else 6.0, 80.0)
        if any(abs(v.offset - lane) < 1.0 and abs(v.z - z) < 10.0 for v in vehicles):
            continue
        truck = rng.random() < 0.15
        base = np.array(_CAR_COLORS[int(rng.integers(len(_CAR_COLORS)))], dtype=np.float64)
        color = np.clip(base * rng.uniform(0.85, 1.1), 0, 255)
        vehicles.append(
            Vehicle(
                offset=lane + rng.normal(0.0, 0.2),
                z=float(z),
                width=rng.uniform(2.3, 2.5) if truck else rng.uniform(1.7, 1.95),
                height=rng.uniform(2.8, 3.6) if truck else rng.uniform(1.35, 1.7),
                length=rng.uniform(8.0, 12.0) if truck else rng.uniform(4.0, 5.0),
                color=(float(color[0]), float(color[1]), float(color[2])),
            )
        )
    return tuple(sorted(vehicles, key=lambda v: -v.z))


def _blob(rng: np.random.Generator, d: float, z: float, rd: float, rz: float) -> np.ndarray:
    angles = np.linspace(0.0, 2 * np.pi, 14, endpoint=False)
    radius = rng.uniform(0.7, 1.2, size=angles.size)
    return np.stack([d + rd * radius * np.cos(angles), z + rz * radius * np.sin(angles)], axis=1)


def sample_shadows(
    rng: np.random.Generator, edges: tuple[float, float], z0: float, count: int
) -> tuple[np.ndarray, ...]:
    """Cast shadows starting ``z0`` metres ahead: building bands across the road and tree blobs."""
    polygons = []
    z = z0
    for _ in range(count):
        if rng.random() < 0.4:
            length = rng.uniform(3.0, 15.0)
            left = rng.uniform(edges[0] - 3.0, edges[1] - 2.0)
            right = rng.uniform(left + 2.0, edges[1] + 3.0)
            skew = rng.normal(0.0, 1.5)
            polygons.append(
                np.array([[left, z], [right, z + skew], [right, z + skew + length], [left, z + length]])
            )
            z += length + rng.uniform(2.0, 12.0)
        else:
            rz = rng.uniform(1.5, 6.0)
            polygons.append(_blob(rng, rng.uniform(*edges), z + rz, rng.uniform(1.0, 3.5), rz))
            z += rng.uniform(1.0, 2.5) * rz
    return tuple(polygons)


def sample_patches(
    rng: np.random.Generator, edges: tuple[float, float], count: int
) -> tuple[np.ndarray, ...]:
    """Rectangles of repaired asphalt."""
    patches = []
    for _ in range(count):
        d = rng.uniform(*edges)
        z = rng.uniform(5.0, 60.0)
        wd, lz = rng.uniform(0.5, 3.0), rng.uniform(1.0, 8.0)
        patches.append(np.array([[d, z], [d + wd, z], [d + wd, z + lz], [d, z + lz]]))
    return tuple(patches)


def sample_palette(rng: np.random.Generator, night: bool) -> Palette:
    """Colours of sky, asphalt and surroundings (albedos at night: the renderer applies the night light)."""
    if night:
        top = rng.uniform(4, 14)
        sky_top = (top + 6, top + 2, top)
        sky_horizon = tuple(float(c) for c in rng.uniform(25, 55) * np.array([0.8, 0.9, 1.0]))
    elif rng.random() < 0.6:
        sky_top = (rng.uniform(190, 240), rng.uniform(150, 200), rng.uniform(100, 160))
        sky_horizon = tuple(float(c) for c in rng.uniform(215, 250, size=3))
    else:
        grey = rng.uniform(160, 215)
        sky_top = (grey + 5, grey, grey - 5)
        sky_horizon = (grey + 25, grey + 22, grey + 18)
    asphalt = rng.uniform(70, 130) + rng.uniform(-6, 6, size=3)
    ground_kind = rng.random()
    if ground_kind < 0.5:
        ground = (rng.uniform(40, 70), rng.uniform(90, 130), rng.uniform(60, 95))  # grass
    elif ground_kind < 0.8:
        ground = (rng.uniform(70, 100), rng.uniform(100, 130), rng.uniform(120, 150))  # dirt
    else:
        ground = tuple(float(c) for c in rng.uniform(120, 170) + rng.uniform(-5, 5, size=3))  # concrete
    treeline = (rng.uniform(30, 70), rng.uniform(50, 100), rng.uniform(35, 80))
    return Palette(
        sky_top=tuple(float(c) for c in sky_top),
        sky_horizon=tuple(float(c) for c in sky_horizon),
        asphalt=tuple(float(c) for c in asphalt),
        ground=tuple(float(c) for c in ground),
        treeline=tuple(float(c) for c in treeline),
        haze_distance=float(rng.uniform(180.0, 600.0)),
    )


class Drive:
    """One continuous drive for ``--sequence`` data: fixed road layout and weather, smoothly varying curvature
    and lateral position, dashes and shadows moving past at the driving speed, traffic with its own speeds.

    ``scene_at(i)`` depends only on (seed, i), so frames can be rendered in any order.
    """

    def __init__(self, seed: int, width: int, height: int, fps: float = 10.0):
        rng = np.random.default_rng([seed, 0x5EED])
        self.seed, self.width, self.height, self.fps = seed, width, height, fps
        self.speed = rng.uniform(18.0, 30.0)
        self.night = bool(rng.random() < 0.25)
        self.markings, self.edges, self.centres = sample_layout(rng)
        self.ego = self.centres[int(rng.integers(len(self.centres)))]
        self.camera = sample_camera(rng, width, height)
        self.palette = sample_palette(rng, self.night)
        self.wear = float(rng.uniform(0.55, 0.8) if rng.random() < 0.15 else rng.uniform(0.0, 0.3))
        self.curve_amplitude = rng.uniform(0.0, 1 / 250)
        self.curve_waves = rng.uniform(300.0, 1500.0, size=2), rng.uniform(0, 2 * np.pi, size=2)
        self.drift = rng.uniform(0.1, 0.5), rng.uniform(6.0, 20.0), rng.uniform(0, 2 * np.pi)
        self.vehicles = sample_vehicles(rng, self.centres, self.ego, int(rng.integers(0, 6)))
        self.vehicle_speeds = rng.uniform(-4.0, 4.0, size=len(self.vehicles))
        self.shadows = sample_shadows(rng, self.edges, 20.0, 200) if rng.random() < 0.3 else ()
        self.arrow_spacing = rng.uniform(80.0, 200.0) if rng.random() < 0.3 else None
        self.texture_seed = int(rng.integers(2**31))

    def scene_at(self, index: int) -> Scene:
        rng = np.random.default_rng([self.seed, index])
        t = index / self.fps
        s = self.speed * t
        lengths, phases = self.curve_waves
        k = 2 * np.pi / lengths[0]
        curvature = (
            self.curve_amplitude * np.sin(k * s + phases[0]) * np.cos(2 * np.pi * s / lengths[1] + phases[1])
        )
        rate = (
            self.curve_amplitude
            * k
            * np.cos(k * s + phases[0])
            * np.cos(2 * np.pi * s / lengths[1] + phases[1])
        )
        amp, period, phase = self.drift
        lateral = amp * np.sin(2 * np.pi * t / period + phase)
        heading = amp * 2 * np.pi / period * np.cos(2 * np.pi * t / period + phase) / self.speed
        markings = tuple(replace(m, phase=(m.phase - s) % (m.dash + m.gap)) for m in self.markings)
        vehicles = []
        for v, dv in zip(self.vehicles, self.vehicle_speeds, strict=True):
            z = 6.0 + (v.z - 6.0 + dv * t) % 110.0
            vehicles.append(replace(v, z=float(z)))
        shadows = tuple(p - np.array([0.0, s]) for p in self.shadows if -20.0 < p[:, 1].min() - s < 200.0)
        arrows = ()
        if self.arrow_spacing is not None:
            first = self.arrow_spacing - s % self.arrow_spacing
            arrows = tuple((self.ego, z) for z in (first, first + self.arrow_spacing) if 4.0 < z < 60.0)
        camera = replace(
            self.camera,
            pitch=self.camera.pitch + 0.002 * np.sin(2 * np.pi * t / 1.7) + rng.normal(0.0, 0.0005),
            roll=self.camera.roll + 0.003 * np.sin(2 * np.pi * t / 2.9) + rng.normal(0.0, 0.0005),
        )
        return Scene(
            camera=camera,
            road=Road(-self.ego + lateral, heading, float(curvature), float(rate)),
            markings=markings,
            road_edges=self.edges,
            vehicles=tuple(sorted(vehicles, key=lambda v: -v.z)),
            shadows=shadows,
            patches=(),
            arrows=arrows,
            crosswalk=None,
            night=self.night,
            glare=None,
            wear=self.wear,
            shadow_darkness=0.45,
            label_distance=90.0,
            palette=self.palette,
            texture_seed=self.texture_seed,
            noise_offset=(int(rng.integers(0, 256)), int(rng.integers(0, 256))),
        )
