"""Continuous drives for ``--sequence`` data: one road and weather, ego motion and traffic over time.

A drive can ask for the manoeuvres a lane tracker must handle: a lane change (:class:`LaneChange`) and a curve
(:class:`Curve`), both deterministic. Detector dropouts are not the renderer's business: an evaluation makes
them by dropping a frame's detections, so every frame here is rendered.

The drive is kinematically consistent at the vehicle: the road's lateral offset changes at ``speed × heading``
and its heading at ``speed × curvature + yaw rate`` (:meth:`Drive.motion_at` gives the yaw rate that makes it
so), so odometry predicts how the road moves between frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from clrkdnet_core.data.synthetic.sampler import (
    sample_camera,
    sample_layout,
    sample_palette,
    sample_shadows,
    sample_vehicles,
)
from clrkdnet_core.data.synthetic.scene import Road, Scene
from clrkdnet_core.errors import DatasetError

LANE_CHANGE_DIRECTIONS = ("auto", "left", "right")
MAX_CURVE_CURVATURE = 1.0 / 150.0  # 1/m: the sharpest curve scenes the sampler draws


@dataclass(frozen=True)
class LaneChange:
    """The ego drifts across a marking into the adjacent lane, starting ``at`` seconds into the drive.

    The lateral motion is a minimum-jerk profile over ``duration`` seconds (zero lateral speed and
    acceleration at both ends, as a comfortable driver). ``direction`` "auto" goes left when there is a lane
    on the left.
    """

    at: float
    direction: str = "auto"
    duration: float = 2.5

    def __post_init__(self) -> None:
        if self.direction not in LANE_CHANGE_DIRECTIONS:
            raise DatasetError(
                f"unknown lane change direction {self.direction!r}; expected one of "
                f"{', '.join(LANE_CHANGE_DIRECTIONS)}"
            )
        if not (self.at >= 0.0 and self.duration > 0.0):
            raise DatasetError(
                f"a lane change needs a start >= 0 s and a duration > 0 s, got {self.at} and {self.duration}"
            )


@dataclass(frozen=True)
class Curve:
    """A curved stretch entered ``at`` seconds into the drive and left ``duration`` seconds later.

    The curvature (1/m, positive bending left, as REP-103) ramps in and out along raised-cosine clothoids over
    the first and last third of the stretch, so its rate (the cubic term the renderer draws) is exact. The
    renderer draws the road ahead as its cubic expansion at the vehicle, so where the curvature changes the
    far road is not quite rigid between frames: for the defaults at 10 fps, under 3 cm at 30 m and 10 cm at
    50 m per frame. The stretch blends the drive's own gentle curvature wave into its curvature and back.
    """

    at: float
    curvature: float = 1.0 / 250.0
    duration: float = 12.0

    def __post_init__(self) -> None:
        if not (self.at >= 0.0 and self.duration > 0.0):
            raise DatasetError(
                f"a curve needs a start >= 0 s and a duration > 0 s, got {self.at} and {self.duration}"
            )
        if not abs(self.curvature) <= MAX_CURVE_CURVATURE:
            raise DatasetError(
                f"curve curvature {self.curvature} 1/m is beyond ±{MAX_CURVE_CURVATURE:.4f} "
                f"(a radius under {1 / MAX_CURVE_CURVATURE:.0f} m)"
            )


@dataclass(frozen=True)
class _Lateral:
    """The road's lateral offset change (m, right positive) and its first two time derivatives."""

    value: float
    rate: float
    acceleration: float


class Drive:
    """One continuous drive for ``--sequence`` data: fixed road layout and weather, smoothly varying curvature
    and lateral position, dashes and shadows moving past at the driving speed, traffic with its own speeds.

    ``scene_at(i)`` depends only on (seed, options, i), so frames can be rendered in any order. Without
    ``lane_change`` and ``curve`` a seed renders exactly as it always has.
    """

    def __init__(
        self,
        seed: int,
        width: int,
        height: int,
        fps: float = 10.0,
        lane_change: LaneChange | None = None,
        curve: Curve | None = None,
    ):
        if not fps > 0.0:
            raise DatasetError(f"frames per second must be positive, got {fps}")
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
        self.lane_change, self.curve = lane_change, curve
        # Road-frame shift (m, right positive) of the ego lane centre at the end of the lane change.
        self.lane_change_shift = self._lane_change_shift() if lane_change is not None else 0.0

    def _lane_change_shift(self) -> float:
        lane = self.centres.index(self.ego)
        left, right = lane > 0, lane < len(self.centres) - 1
        direction = self.lane_change.direction
        if direction == "auto":
            direction = "left" if left else "right"
        if not (left if direction == "left" else right):
            raise DatasetError(
                f"the drive of seed {self.seed} has no lane {direction} of the ego lane "
                f"({len(self.centres)} lane(s)); choose another direction or seed"
            )
        step = self.centres[1] - self.centres[0]
        return -step if direction == "left" else step

    def scene_at(self, index: int) -> Scene:
        rng = np.random.default_rng([self.seed, index])
        t = index / self.fps
        s = self.speed * t
        curvature, rate = self._road_curvature(s)
        lateral = self._lateral(t)
        markings = tuple(replace(m, phase=(m.phase - s) % (m.dash + m.gap)) for m in self.markings)
        vehicles = []
        for v, dv in zip(self.vehicles, self.vehicle_speeds, strict=True):
            z = 6.0 + (v.z - 6.0 + dv * t) % 110.0
            vehicles.append(replace(v, z=float(z)))
        shadows = tuple(p - np.array([0.0, s]) for p in self.shadows if -20.0 < p[:, 1].min() - s < 200.0)
        arrows = ()
        if self.arrow_spacing is not None:
            first = self.arrow_spacing - s % self.arrow_spacing
            arrows = tuple(
                (self._lane_centre_at(s + z), z)
                for z in (first, first + self.arrow_spacing)
                if 4.0 < z < 60.0
            )
        camera = replace(
            self.camera,
            pitch=self.camera.pitch + 0.002 * np.sin(2 * np.pi * t / 1.7) + rng.normal(0.0, 0.0005),
            roll=self.camera.roll + 0.003 * np.sin(2 * np.pi * t / 2.9) + rng.normal(0.0, 0.0005),
        )
        return Scene(
            camera=camera,
            road=Road(-self.ego + lateral.value, lateral.rate / self.speed, float(curvature), float(rate)),
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

    def motion_at(self, index: int) -> tuple[float, float]:
        """(speed m/s, yaw rate rad/s counter-clockwise positive) of the ego vehicle at frame ``index``.

        The road's heading relative to the vehicle (right positive, ``lateral rate / speed``) changes at
        ``speed × curvature + yaw rate``; solved for the yaw rate, that is what an odometry would report.
        """
        t = index / self.fps
        curvature, _ = self._road_curvature(self.speed * t)
        heading_rate = self._lateral(t).acceleration / self.speed
        return float(self.speed), float(heading_rate - self.speed * curvature)

    def _road_curvature(self, s: float) -> tuple[float, float]:
        """Curvature (1/m, right positive as the road frame) and its rate along the road at distance ``s``."""
        lengths, phases = self.curve_waves
        k = 2 * np.pi / lengths[0]
        # The wave's rate omits the derivative of its slow envelope: kept so existing drives render unchanged.
        curvature = (
            self.curve_amplitude * np.sin(k * s + phases[0]) * np.cos(2 * np.pi * s / lengths[1] + phases[1])
        )
        rate = (
            self.curve_amplitude
            * k
            * np.cos(k * s + phases[0])
            * np.cos(2 * np.pi * s / lengths[1] + phases[1])
        )
        if self.curve is not None:
            # The stretch replaces the wave where it is on: its plateau has exactly the curvature asked for.
            window, slope = _tukey(s - self.curve.at * self.speed, self.curve.duration * self.speed)
            target = -self.curve.curvature  # the option is left positive, the road frame right positive
            rate = rate * (1.0 - window) + (target - curvature) * slope
            curvature = curvature * (1.0 - window) + target * window
        return float(curvature), float(rate)

    def _lateral(self, t: float) -> _Lateral:
        """The road's lateral drift (a slow sway in the lane) plus the lane change, at time ``t``."""
        amp, period, phase = self.drift
        # Written as the drive always computed them, so that existing drives stay byte-identical.
        value = amp * np.sin(2 * np.pi * t / period + phase)
        rate = amp * 2 * np.pi / period * np.cos(2 * np.pi * t / period + phase)
        acceleration = -amp * (2 * np.pi / period) ** 2 * np.sin(2 * np.pi * t / period + phase)
        if self.lane_change is not None:
            duration = self.lane_change.duration
            f, df, ddf = _minimum_jerk((t - self.lane_change.at) / duration)
            # The road moves opposite to the ego: a change to the left shifts the markings right.
            shift = -self.lane_change_shift
            value += shift * f
            rate += shift * df / duration
            acceleration += shift * ddf / duration**2
        return _Lateral(value, rate, acceleration)

    def _lane_centre_at(self, s: float) -> float:
        """Road-frame offset of the ego lane's centre where the ego is at road distance ``s``."""
        if self.lane_change is None:
            return self.ego
        middle = (self.lane_change.at + self.lane_change.duration / 2.0) * self.speed
        return self.ego + (self.lane_change_shift if s >= middle else 0.0)


def _minimum_jerk(tau: float) -> tuple[float, float, float]:
    """10τ³ − 15τ⁴ + 6τ⁵ on [0, 1] (0 before, 1 after) and its first two derivatives in τ."""
    if tau <= 0.0:
        return 0.0, 0.0, 0.0
    if tau >= 1.0:
        return 1.0, 0.0, 0.0
    return (
        tau**3 * (10.0 - 15.0 * tau + 6.0 * tau**2),
        30.0 * tau**2 * (1.0 - tau) ** 2,
        60.0 * tau * (1.0 - tau) * (1.0 - 2.0 * tau),
    )


def _tukey(u: float, length: float) -> tuple[float, float]:
    """A plateau of 1 over [0, length], raised-cosine ramps over its first and last third; and its slope.

    0 outside; the ramps make a clothoid-like entry and exit whose curvature rate is continuous.
    """
    ramp = length / 3.0
    if u <= 0.0 or u >= length:
        return 0.0, 0.0
    if ramp <= u <= length - ramp:
        return 1.0, 0.0
    into = u if u < ramp else length - u
    sign = 1.0 if u < ramp else -1.0
    phase = math.pi * into / ramp
    return 0.5 * (1.0 - math.cos(phase)), sign * 0.5 * math.pi / ramp * math.sin(phase)
