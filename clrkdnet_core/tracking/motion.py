"""Ego motion between two frames and the lane cubic re-expressed in the moved vehicle frame.

The ground frame travels with the vehicle (REP-103: x forward, y left). When the vehicle moves by (dx, dy) and
turns by dyaw, a lane that stays put on the road shifts back and rotates the other way in the new frame; its
cubic is sampled, moved and refitted (Apollo's motion-compensated history does the same with its points).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Points sampled along a curve for the refit: a cubic is determined by 4, more average the refit's error.
_MOVE_SAMPLES = 12


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
    x_range: tuple[float, float] = (0.0, 50.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Re-express a ground cubic in the frame moved by (dx, dy) and rotated by dyaw.

    The curve is sampled over ``x_range`` (extended to x = 0, where controllers read it), moved and refitted.
    Returns the new coefficients (4,) and the Jacobian (4, 4) d(new)/d(old) for the covariance: a sample at x
    moves to x' = cos(dyaw)(x - dx) + sin(dyaw)(y - dy), y' = -sin(dyaw)(x - dx) + cos(dyaw)(y - dy); a
    change of the old curve's y by dy shifts the new point along the new curve, so the refit sees
    (cos - sin * slope'(x')) dy.
    """
    c = np.asarray(coefficients, dtype=np.float64)
    xs = np.linspace(min(x_range[0], 0.0), max(x_range[1], 1.0), _MOVE_SAMPLES)
    old_basis = np.vander(xs, 4, increasing=True)
    ys = old_basis @ c
    cos, sin = math.cos(dyaw), math.sin(dyaw)
    x_new = cos * (xs - dx) + sin * (ys - dy)
    y_new = -sin * (xs - dx) + cos * (ys - dy)
    new_basis = np.vander(x_new, 4, increasing=True)
    # Solved in x / scale: x^3 of a 50 m curve next to 1 would make the basis badly conditioned.
    scale = max(abs(x_new[0]), abs(x_new[-1]), 1.0)
    powers = scale ** np.arange(4.0)
    pseudo_inverse = np.linalg.pinv(new_basis / powers) / powers[:, None]
    moved = pseudo_inverse @ y_new
    slope = new_basis[:, :3] @ (moved[1:] * (1.0, 2.0, 3.0))
    jacobian = pseudo_inverse @ ((cos - sin * slope)[:, None] * old_basis)
    return moved, jacobian
