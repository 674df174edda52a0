"""Random scene parameters: camera, lane layout, traffic, shadows, repairs and colours of one frame.

Every draw comes from the caller's generator in a fixed order, so a seed always gives the same scene.
"""

from __future__ import annotations

import math

import numpy as np

from clrkdnet_core.data.synthetic.scene import (
    CATEGORIES,
    CROWD_VEHICLES,
    WHITE_PAINT,
    YELLOW_PAINT,
    Camera,
    Marking,
    Palette,
    Road,
    Scene,
    Vehicle,
)

# Frequencies of CATEGORIES; a scene counts as its most specific attribute (night with glare is "hlight").
_CATEGORY_WEIGHTS = (0.2, 0.14, 0.06, 0.1, 0.1, 0.07, 0.12, 0.06, 0.15)


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
        color = tuple(float(c + tint) for c in (YELLOW_PAINT if yellow else WHITE_PAINT))
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
