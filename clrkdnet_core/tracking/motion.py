"""Ego motion between two frames and the lane cubic re-expressed in the moved vehicle frame.

The ground frame travels with the vehicle (REP-103: x forward, y left). When the vehicle moves by (dx, dy) and
turns by dyaw, a lane that stays put on the road shifts back and rotates the other way in the new frame; its
cubic is sampled, moved and refitted (Apollo's motion-compensated history does the same with its points).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Points sampled along a curve for the refit (a cubic is determined by 4, more average the refit's error), as
# fractions of its range, and the powers of x of a cubic.
_GRID = np.linspace(0.0, 1.0, 12)
_POWERS = np.arange(4.0)


@dataclass(frozen=True)
class EgoMotion:
    """The vehicle's speed (m/s, forward positive) and yaw rate (rad/s, counter-clockwise positive)."""

    speed: float
    yaw_rate: float

    def valid(self) -> bool:
        """False when either value is NaN or infinite (bad odometry is ignored, not propagated)."""
        return math.isfinite(self.speed) and math.isfinite(self.yaw_rate)

    def displacement(self, dt: float) -> tuple[float, float, float]:
        """(dx, dy, dyaw) of the vehicle after ``dt`` s on a circular arc (constant speed and yaw rate)."""
        dyaw = self.yaw_rate * dt
        distance = self.speed * dt
        # sin(a)/a and (1-cos(a))/a, written so that a straight drive (a -> 0) is exact.
        if abs(dyaw) < 1e-6:
            return distance, distance * dyaw / 2.0, dyaw
        return distance * math.sin(dyaw) / dyaw, distance * (1.0 - math.cos(dyaw)) / dyaw, dyaw


def move_curve(
    coefficients: np.ndarray,
    dx: float,
    dy: float,
    dyaw: float,
    x_range: tuple[float, float] | tuple[np.ndarray, np.ndarray] = (0.0, 50.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Re-express ground cubics in the frame moved by (dx, dy) and rotated by dyaw.

    ``coefficients`` is one cubic (4,) or a stack (T, 4) with ranges (x_min, x_max) as arrays (T,): a tracker
    moves all its lanes in one call. Each curve is sampled over its range (extended to x = 0, where
    controllers read it), moved and refitted. Returns the new coefficients (..., 4) and the Jacobians
    (..., 4, 4) d(new)/d(old) for the covariance: a sample at x moves to x' = cos(dyaw)(x - dx) +
    sin(dyaw)(y - dy), y' = -sin(dyaw)(x - dx) + cos(dyaw)(y - dy); a change of the old curve's y shifts the
    new point along the new curve, so the refit sees (cos - sin * slope'(x')) times that change.
    """
    c = np.asarray(coefficients, dtype=np.float64)
    low = np.minimum(np.asarray(x_range[0], dtype=np.float64), 0.0)[..., None]
    high = np.maximum(np.asarray(x_range[1], dtype=np.float64), 1.0)[..., None]
    xs = low + (high - low) * _GRID  # (..., S)
    old_basis = xs[..., None] ** _POWERS  # (..., S, 4)
    ys = (old_basis @ c[..., None])[..., 0]
    cos, sin = math.cos(dyaw), math.sin(dyaw)
    x_new = cos * (xs - dx) + sin * (ys - dy)
    y_new = -sin * (xs - dx) + cos * (ys - dy)
    # Solved in x / scale: x^3 of a 50 m curve next to 1 would make the normal equations badly conditioned.
    scale = np.abs(x_new).max(axis=-1, keepdims=True)[..., None]  # (..., 1, 1)
    scaled = (x_new[..., None] / scale) ** _POWERS
    transposed = np.swapaxes(scaled, -1, -2)
    pseudo_inverse = np.linalg.solve(transposed @ scaled, transposed) / np.swapaxes(scale**_POWERS, -1, -2)
    moved = (pseudo_inverse @ y_new[..., None])[..., 0]
    slope = (x_new[..., None] ** _POWERS[:3] @ (moved[..., 1:] * _POWERS[1:])[..., None])[..., 0]
    jacobian = pseudo_inverse @ ((cos - sin * slope)[..., None] * old_basis)
    return moved, jacobian


def mean_motion(samples: list[EgoMotion] | tuple[EgoMotion, ...]) -> EgoMotion | None:
    """The constant motion that stands for several odometry samples spread evenly over one interval (their
    mean speed and yaw rate; invalid ones skipped), None when none is valid.

    A node that processes only the newest frame predicts across up to 0.8 s: with the newest odometry alone
    it turns the lanes by the yaw rate at the interval's end (a curve's entry, a lane change's end) for the
    whole interval, a metre off after 0.8 s; the interval's mean yaw rate turns them by the true angle.
    """
    valid = [sample for sample in samples if sample.valid()]
    if not valid:
        return None
    return EgoMotion(
        float(np.mean([sample.speed for sample in valid])),
        float(np.mean([sample.yaw_rate for sample in valid])),
    )
