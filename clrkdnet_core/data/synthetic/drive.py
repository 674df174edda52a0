"""Continuous drives for ``--sequence`` data: one road and weather, ego motion and traffic over time."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from clrkdnet_core.data.synthetic.sampler import (
    sample_camera,
    sample_layout,
    sample_palette,
    sample_shadows,
    sample_vehicles,
)
from clrkdnet_core.data.synthetic.scene import Road, Scene


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
