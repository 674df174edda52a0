"""Rasterise a :class:`~clrkdnet_core.data.synthetic.scene.Scene` into a BGR uint8 image.

Everything on the ground is a road-frame polygon projected with the scene camera and filled with OpenCV's
antialiased polygon fill (sub-pixel vertices), so the painted markings line up with the labels to a fraction
of a pixel. Textures come from a fixed noise bank (random windows per scene) and low-resolution noise
upsampled with OpenCV, which keeps a 1640×590 frame at a few tens of milliseconds on one core.
"""

from __future__ import annotations

import functools
import math
from dataclasses import replace

import cv2
import numpy as np

from clrkdnet_core.data.synthetic.sampler import sample_scene
from clrkdnet_core.data.synthetic.scene import WHITE_PAINT, Scene

NEAR_DISTANCE = 1.0  # m: nearest ground point drawn (below the image bottom for every camera used here)
FAR_DISTANCE = 400.0  # m: the road ends here (a few pixels under the horizon)
_SHIFT = 4  # fractional bits of polygon vertices
_SCALE = float(1 << _SHIFT)
_BANK_SHAPE = (1024, 2048)


@functools.cache
def _noise_bank() -> np.ndarray:
    return np.random.default_rng(20250101).standard_normal(_BANK_SHAPE, dtype=np.float32)


def _noise_window(height: int, width: int, offset: tuple[int, int]) -> np.ndarray:
    """A (height, width) window of unit Gaussian noise taken from the bank at ``offset``."""
    bank = _noise_bank()
    oy, ox = offset
    reps = (-(-(height + oy) // bank.shape[0]), -(-(width + ox) // bank.shape[1]))
    if reps != (1, 1):
        bank = np.tile(bank, reps)
    return bank[oy : oy + height, ox : ox + width]


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Unit-ish Gaussian noise with features about ``cell`` pixels large."""
    small = rng.standard_normal((height // cell + 3, width // cell + 3)).astype(np.float32)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


class _Painter:
    """Projects road-frame geometry of a scene to fixed-point polygons (image rows from row_offset)."""

    def __init__(self, scene: Scene, scale: float = 1.0, row_offset: int = 0):
        self.scene = scene
        self.scale = scale
        self.row_offset = row_offset

    def _fixed(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        points = np.stack([u, v - self.row_offset], axis=-1) * (_SCALE * self.scale)
        return np.round(points).astype(np.int32)

    def ground(self, d: np.ndarray, z: np.ndarray, up: float | np.ndarray = 0.0) -> np.ndarray:
        cam, road = self.scene.camera, self.scene.road
        return self._fixed(*cam.project(road.lateral(z, d), z, up))

    def flat(self, xz: np.ndarray) -> np.ndarray:
        """Polygon of ground points given in camera ground coordinates (x, z) rather than the road frame."""
        return self._fixed(*self.scene.camera.project(xz[:, 0], xz[:, 1]))

    def strip(self, d0: float, d1: float, z0: float, z1: float, samples: int) -> np.ndarray:
        """Polygon of the ground strip between offsets d0 < d1 from z0 to z1 (geometric sampling in z)."""
        z = np.geomspace(z0, z1, samples)
        return np.concatenate(
            [self.ground(np.full_like(z, d0), z), self.ground(np.full_like(z, d1), z[::-1])]
        )

    def fill(self, mask: np.ndarray, polygons: list[np.ndarray], value: float = 255.0) -> None:
        for polygon in polygons:
            cv2.fillPoly(mask, [polygon], value, lineType=cv2.LINE_AA, shift=_SHIFT)


def _marking_polygons(painter: _Painter) -> list[tuple[list[np.ndarray], tuple[float, float, float]]]:
    """Paint polygons grouped by colour: lane markings, arrows and the zebra crossing."""
    scene = painter.scene
    groups: dict[tuple[float, float, float], list[np.ndarray]] = {}
    for m in scene.markings:
        out = groups.setdefault(m.color, [])
        if m.style == "double":
            for side in (-1.0, 1.0):
                centre = m.offset + side * (0.07 + m.width / 2)
                out.append(
                    painter.strip(centre - m.width / 2, centre + m.width / 2, NEAR_DISTANCE, 250.0, 96)
                )
        elif m.style == "solid":
            out.append(
                painter.strip(m.offset - m.width / 2, m.offset + m.width / 2, NEAR_DISTANCE, 250.0, 96)
            )
        else:
            period = m.dash + m.gap
            starts = m.phase % period - period + period * np.arange(int(250.0 / period) + 2)
            z0 = np.maximum(starts, NEAR_DISTANCE)
            z1 = np.minimum(starts + m.dash, 250.0)
            keep = z1 > z0
            z = z0[keep, None] + (z1 - z0)[keep, None] * np.linspace(0.0, 1.0, 6)
            left = painter.ground(np.full_like(z, m.offset - m.width / 2), z)
            right = painter.ground(np.full_like(z, m.offset + m.width / 2), z[:, ::-1])
            out.extend(np.concatenate([left, right], axis=1))
    white = groups.setdefault(WHITE_PAINT, [])
    for centre, z in scene.arrows:
        white.append(_arrow(painter, centre, z))
    if scene.crosswalk is not None:
        z = scene.crosswalk
        left, right = scene.road_edges
        white.append(painter.strip(left + 0.3, right - 0.3, z - 1.5, z - 1.1, 4))  # stop line
        for d in np.arange(left + 0.5, right - 0.5, 1.0):
            white.append(painter.strip(d, d + 0.5, z, z + 3.5, 6))
    return [(polygons, color) for color, polygons in groups.items() if polygons]


def _arrow(painter: _Painter, centre: float, z: float) -> np.ndarray:
    """A straight-ahead arrow 5 m long with its tail ``z`` metres ahead."""
    shaft, head, length, neck = 0.12, 0.45, 5.0, 3.2
    d = centre + np.array([-shaft, shaft, shaft, head, 0.0, -head, -shaft])
    zz = z + np.array([0.0, 0.0, neck, neck, length, neck, neck])
    return painter.ground(d, zz)


def _colorize(tone: np.ndarray, color) -> np.ndarray:
    """(H, W) float32 tone × BGR colour → (H, W, 3) float32."""
    return cv2.transform(tone, np.asarray(color, np.float32).reshape(3, 1))


def _sky_and_ground(scene: Scene, rng: np.random.Generator, grain: np.ndarray, r0: int) -> np.ndarray:
    cam, pal = scene.camera, scene.palette
    h, w = cam.height, cam.width
    img = np.empty((h, w, 3), np.float32)
    t = (np.arange(r0, dtype=np.float32) / max(r0, 1))[:, None]
    sky = np.asarray(pal.sky_top, np.float32) * (1 - t) + np.asarray(pal.sky_horizon, np.float32) * t
    img[:r0] = sky[:, None, :]
    if not scene.night and r0 > 0:
        clouds = cv2.max(_smooth_noise(rng, r0, w, 48), 0.0) * rng.uniform(0, 25)
        img[:r0] += clouds[..., None]
    tone = cv2.addWeighted(_smooth_noise(rng, h - r0, w, 24), 0.12, grain[r0:], 0.05, 1.0)
    img[r0:] = _colorize(tone, pal.ground)
    return img


def _treeline(img: np.ndarray, scene: Scene, rng: np.random.Generator) -> None:
    """Distant trees and buildings on the horizon (drawn before the road, which covers their feet)."""
    cam, pal = scene.camera, scene.palette
    w = cam.width
    xs = np.linspace(-10, w + 10, 80)
    heights = np.abs(np.cumsum(rng.normal(0, 1.5, xs.size))) + rng.uniform(2, 14)
    heights *= cam.height / 590.0
    blocks = rng.random(xs.size) < 0.15
    heights[blocks] += rng.uniform(5, 25) * cam.height / 590.0
    base = cam.horizon + 0.012 * cam.height
    top = np.stack([xs, base - heights], axis=1)
    polygon = np.concatenate([top, [[w + 10, base], [-10, base]]])
    color = 0.55 * np.asarray(pal.treeline) + 0.45 * np.asarray(pal.sky_horizon)
    if scene.night:
        color *= 0.35
    cv2.fillPoly(img, [np.round(polygon * _SCALE).astype(np.int32)], color.tolist(), cv2.LINE_8, _SHIFT)


def _draw_ground(img: np.ndarray, scene: Scene, rng: np.random.Generator, grain: np.ndarray, r0: int) -> None:
    """Asphalt, repairs and paint on the ground rows (r0:) of ``img``."""
    cam, pal = scene.camera, scene.palette
    h, w = cam.height, cam.width
    painter = _Painter(scene, row_offset=r0)
    left, right = scene.road_edges
    road = np.zeros((h - r0, w), np.uint8)
    painter.fill(road, [painter.strip(left, right, NEAR_DISTANCE, FAR_DISTANCE, 128)])
    if scene.crosswalk is not None:
        z = scene.crosswalk + 4.0
        band = np.array([[-80.0, z], [80.0, z], [80.0, z + 12.0], [-80.0, z + 12.0]])
        painter.fill(road, [painter.flat(band)])
    tone = cv2.addWeighted(_smooth_noise(rng, h - r0, w, 16), 0.06, grain[r0:], 0.07, 1.0)
    if scene.patches:
        patches = np.zeros((h - r0, w), np.uint8)
        painter.fill(patches, [painter.ground(p[:, 0], p[:, 1]) for p in scene.patches])
        tone = cv2.scaleAdd(patches.astype(np.float32), -0.18 / 255.0, tone)
    alpha = road.astype(np.float32) * (1.0 / 255.0)
    sub = img[r0:]
    sub[:] = cv2.blendLinear(_colorize(tone, pal.asphalt), sub, alpha, 1.0 - alpha)

    wear = _smooth_noise(rng, h - r0, w, 12)
    for polygons, color in _marking_polygons(painter):
        paint = np.zeros((h - r0, w), np.uint8)
        painter.fill(paint, polygons)
        x, y, bw, bh = cv2.boundingRect(paint)
        if bw == 0:
            continue
        box = (slice(y, y + bh), slice(x, x + bw))
        opacity = 0.92 - scene.wear * (1.0 + 0.7 * (wear[box] + 0.6 * grain[r0:][box]))
        alpha = paint[box].astype(np.float32) * (1.0 / 255.0) * np.clip(opacity, 0.0, 1.0)
        sub[box] = cv2.blendLinear(np.full((bh, bw, 3), color, np.float32), sub[box], alpha, 1.0 - alpha)


def _shadows(img: np.ndarray, scene: Scene, r0: int) -> None:
    """Darken the ground under cast shadows and vehicles (soft edges from a quarter-resolution mask)."""
    polygons_strength = []
    painter = _Painter(scene, scale=0.25)
    polygons = [painter.ground(p[:, 0], p[:, 1]) for p in scene.shadows]
    if polygons:
        polygons_strength.append((polygons, scene.shadow_darkness))
    under = []
    for v in scene.vehicles:
        under.append(
            painter.strip(
                v.offset - v.width / 2 - 0.1, v.offset + v.width / 2 + 0.1, v.z - 0.4, v.z + v.length, 4
            )
        )
    if under:
        polygons_strength.append((under, 0.7))
    if not polygons_strength:
        return
    h, w = scene.camera.height, scene.camera.width
    small = np.zeros((h // 4 + 1, w // 4 + 1), np.float32)
    for polys, strength in polygons_strength:
        layer = np.zeros_like(small)
        for polygon in polys:
            cv2.fillPoly(layer, [polygon], 1.0, cv2.LINE_8, _SHIFT)
        np.maximum(small, layer * strength, out=small)
    small = cv2.GaussianBlur(small, (5, 5), 0)
    shade = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)[r0:]
    img[r0:] *= (1.0 - shade)[..., None]


def _haze(img: np.ndarray, scene: Scene, dist: np.ndarray, r0: int) -> None:
    fog = (1.0 - np.exp(-dist[r0:] / scene.palette.haze_distance)).astype(np.float32)[:, None, None]
    sub = img[r0:]
    sub *= 1.0 - fog
    sub += fog * np.asarray(scene.palette.sky_horizon, np.float32)


def _draw_vehicles(img: np.ndarray, scene: Scene) -> list[tuple[float, float, float]]:
    """Draw the vehicles far to near on the uint8 image; returns tail-light positions (u, v, radius)."""
    cam, road, pal = scene.camera, scene.road, scene.palette
    lights = []
    haze_color = np.asarray(pal.sky_horizon)

    def poly(x: np.ndarray, z: np.ndarray, up: np.ndarray) -> np.ndarray:
        u, v = cam.project(x, z, up)
        return np.round(np.stack([u, v], axis=1) * _SCALE).astype(np.int32)

    def fill(points: np.ndarray, color: np.ndarray) -> None:
        cv2.fillPoly(img, [points], np.clip(color, 0, 255).tolist(), cv2.LINE_AA, _SHIFT)

    for v in scene.vehicles:
        if v.z < 2.0:
            continue
        fog = 1.0 - math.exp(-v.z / pal.haze_distance)
        base = np.asarray(v.color) * (1 - fog) + haze_color * fog
        x = float(road.lateral(np.array(v.z), v.offset))
        x0, x1, z0, z1 = x - v.width / 2, x + v.width / 2, v.z, v.z + v.length
        body = 0.3
        for flank, faces_camera in ((x0, x0 > 0), (x1, x1 < 0)):
            if faces_camera:
                fill(
                    poly(
                        np.full(4, flank),
                        np.array([z0, z1, z1, z0]),
                        np.array([body, body, v.height, v.height]),
                    ),
                    base * 0.7,
                )
        if cam.mount_height > v.height:
            fill(
                poly(np.array([x0, x1, x1, x0]), np.array([z0, z0, z1, z1]), np.full(4, v.height)),
                base * 1.12,
            )
        for wx in (x0 + 0.1, x1 - 0.45):  # wheels
            fill(
                poly(
                    np.array([wx, wx + 0.35, wx + 0.35, wx]),
                    np.full(4, z0 + 0.05),
                    np.array([0, 0, body + 0.1, body + 0.1]),
                ),
                np.full(3, 20.0),
            )
        fill(
            poly(np.array([x0, x1, x1, x0]), np.full(4, z0), np.array([body, body, v.height, v.height])), base
        )
        glass = v.height - 0.1, v.height * 0.62 + 0.15
        fill(
            poly(
                np.array([x0 + 0.15, x1 - 0.15, x1 - 0.15, x0 + 0.15]),
                np.full(4, z0 - 0.01),
                np.array([glass[1], glass[1], glass[0], glass[0]]),
            ),
            np.array([50.0, 45.0, 40.0]) * (1 - fog) + haze_color * fog,
        )
        fill(
            poly(
                np.array([x0, x1, x1, x0]),
                np.full(4, z0 - 0.01),
                np.array([body, body, body + 0.18, body + 0.18]),
            ),
            base * 0.45,
        )
        for lx in (x0 + 0.08, x1 - 0.33):
            light = poly(
                np.array([lx, lx + 0.25, lx + 0.25, lx]),
                np.full(4, z0 - 0.02),
                np.array([0.75, 0.75, 0.92, 0.92]),
            )
            fill(light, np.array([30.0, 30.0, 190.0]) * (1 - fog) + haze_color * fog)
            centre = light.mean(axis=0) / _SCALE
            lights.append((float(centre[0]), float(centre[1]), cam.focal * 0.2 / v.z))
        fill(
            poly(
                np.array([x - 0.25, x + 0.25, x + 0.25, x - 0.25]),
                np.full(4, z0 - 0.02),
                np.array([0.45, 0.45, 0.58, 0.58]),
            ),
            np.array([225.0, 225.0, 225.0]) * (1 - fog) + haze_color * fog,
        )
    return lights


def _night(img: np.ndarray, scene: Scene, rng: np.random.Generator, lights: list, r0: int) -> None:
    """Dim the ground to an ambient level, light the road with the ego headlights, add glowing tail lights
    and the headlights of oncoming traffic beyond the left road edge."""
    cam = scene.camera
    h, w = cam.height, cam.width
    cell = 8
    hs, ws = h // cell + 1, w // cell + 1
    v = np.arange(hs, dtype=np.float64)[:, None] * cell
    u = np.arange(ws, dtype=np.float64)[None, :] * cell
    below = v > cam.horizon + 1
    z = np.where(below, cam.ground_distance(np.maximum(v, cam.horizon + 1)), 1e6)
    x = (u - cam.cx) * z / cam.focal
    beam = (
        np.exp(-((x / (1.6 + 0.1 * z)) ** 2)) * np.exp(-z / rng.uniform(25.0, 45.0)) * rng.uniform(1.2, 2.0)
    )
    light = rng.uniform(0.12, 0.25) + np.where(below, beam, 0.0)
    for _ in range(int(rng.integers(0, 3))):  # street lamps
        lx, lz = rng.choice([-1, 1]) * rng.uniform(5, 12), rng.uniform(10, 60)
        light = light + np.where(below, 0.8 * np.exp(-((x - lx) ** 2 + (z - lz) ** 2) / 60.0), 0.0)
    light = cv2.resize(light.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    tint = np.array([0.85, 0.95, 1.08], np.float32)
    img[r0:] *= light[r0:, :, None] * tint
    oncoming = []
    for z_car in rng.uniform(15.0, 150.0, size=int(rng.integers(0, 4))):
        x_car = scene.road.lateral(np.array(z_car), scene.road_edges[0] - 2.5)
        for side in (-0.7, 0.7):
            lu, lv = cam.project(x_car + side, np.array(z_car), 0.7)
            oncoming.append((float(lu), float(lv), cam.focal * 0.25 / z_car))
    yy, xx = np.ogrid[:hs, :ws]
    for sources, color in ((lights, (10.0, 10.0, 70.0)), (oncoming, (200.0, 220.0, 235.0))):
        if not sources:
            continue
        glow = np.zeros((hs, ws), np.float32)
        for lu, lv, radius in sources:
            r = max(radius * 1.5, cell) / cell
            glow += np.exp(-((xx - lu / cell) ** 2 + (yy - lv / cell) ** 2) / (2 * r * r)).astype(np.float32)
        glow = cv2.resize(glow, (w, h), interpolation=cv2.INTER_LINEAR)
        img += glow[..., None] * np.array(color, np.float32)


def _glare(img: np.ndarray, scene: Scene, rng: np.random.Generator) -> None:
    """A blinding light: a saturated bloom with a horizontal streak that washes out the markings around it."""
    cam = scene.camera
    h, w = cam.height, cam.width
    cu, cv_, radius = scene.glare
    cell = 4
    yy, xx = np.ogrid[: h // cell + 1, : w // cell + 1]
    dx, dy = (xx * cell - cu) / radius, (yy * cell - cv_) / radius
    bloom = np.exp(-(dx * dx + dy * dy) * 1.5) * 1.4 + np.exp(-np.abs(dx) * 0.8 - (dy * 6) ** 2) * 0.5
    bloom = cv2.resize(bloom.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    color = np.array([210.0, 235.0, 255.0], np.float32) * rng.uniform(0.9, 1.2)
    img += (color - img * 0.6) * np.clip(bloom, 0.0, 1.0)[..., None]


def draw_scene(scene: Scene) -> np.ndarray:
    """Render ``scene`` to an (H, W, 3) BGR uint8 image.

    A rolled camera is rendered unrolled on a canvas with a margin and then rotated, so that no border has to
    be invented; the labels (:meth:`Scene.label_polylines`) apply the same rotation.
    """
    cam = scene.camera
    h, w = cam.height, cam.width
    margin = math.ceil(abs(math.sin(cam.roll)) * max(h, w) / 2) + 2 if cam.roll else 0
    canvas = replace(
        scene,
        camera=replace(
            cam, width=w + 2 * margin, height=h + 2 * margin, cx=cam.cx + margin, cy=cam.cy + margin
        ),
    )
    image = _draw_unrolled(canvas)
    if not margin:
        return image
    rotation = cam.roll_matrix()
    rotation[:, 2] -= rotation[:, :2] @ np.array([margin, margin], np.float64)
    return cv2.warpAffine(image, rotation, (w, h), flags=cv2.INTER_LINEAR)


def render_scene(
    rng: np.random.Generator, width: int, height: int, category: str | None = None
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Render one random road scene.

    Returns the BGR uint8 image and the label of every painted marking, left to right, as (N, 2) float32
    (x, y) pixel polylines sampled at every image row, top to bottom (only where the lane is visible).
    """
    scene = sample_scene(rng, width, height, category)
    ys = np.arange(height, dtype=np.float64)
    lanes = []
    for xs in scene.sample_lanes(ys):
        ok = ~np.isnan(xs)
        if ok.sum() >= 2:
            lanes.append(np.stack([xs[ok], ys[ok]], axis=1).astype(np.float32))
    return draw_scene(scene), lanes


def _draw_unrolled(scene: Scene) -> np.ndarray:
    cam = scene.camera
    h, w = cam.height, cam.width
    rng = np.random.default_rng(scene.texture_seed)
    r0 = int(np.clip(math.ceil(cam.horizon + 0.5), 0, h))
    rows = np.arange(h, dtype=np.float64)
    dist = np.where(rows >= r0, cam.ground_distance(np.maximum(rows, cam.horizon + 0.5)), np.inf)
    grain = _noise_window(h, w, (scene.texture_seed % 128, (scene.texture_seed >> 8) % 128))

    img = _sky_and_ground(scene, rng, grain, r0)
    _treeline(img, scene, rng)
    _draw_ground(img, scene, rng, grain, r0)
    _shadows(img, scene, r0)
    _haze(img, scene, dist, r0)
    out = cv2.convertScaleAbs(img)  # values are ≥ 0: a saturating float → uint8 conversion
    lights = _draw_vehicles(out, scene)
    if scene.night or scene.glare is not None:
        img = out.astype(np.float32)
        if scene.night:
            _night(img, scene, rng, lights, r0)
        if scene.glare is not None:
            _glare(img, scene, rng)
        out = cv2.convertScaleAbs(cv2.max(img, 0.0))
    brighter, darker = _sensor_noise(h, w, scene.noise_offset, 5.0 if scene.night else 2.5)
    return cv2.subtract(cv2.add(out, brighter), darker)


@functools.cache
def _noise_levels(sigma: float) -> tuple[np.ndarray, np.ndarray]:
    noise = np.round(_noise_bank() * sigma)
    positive = np.clip(noise, 0, 255).astype(np.uint8)
    negative = np.clip(-noise, 0, 255).astype(np.uint8)
    return np.repeat(positive[..., None], 3, axis=2), np.repeat(negative[..., None], 3, axis=2)


def _sensor_noise(
    height: int, width: int, offset: tuple[int, int], sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel luma noise as (brighten, darken) uint8 images for saturating add/subtract."""
    positive, negative = _noise_levels(sigma)
    oy, ox = offset
    if height + oy > positive.shape[0] or width + ox > positive.shape[1]:
        noise = np.round(_noise_window(height, width, offset) * sigma)[..., None].repeat(3, axis=2)
        return np.clip(noise, 0, 255).astype(np.uint8), np.clip(-noise, 0, 255).astype(np.uint8)
    return positive[oy : oy + height, ox : ox + width], negative[oy : oy + height, ox : ox + width]
