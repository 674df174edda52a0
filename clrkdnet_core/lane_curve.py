"""A lane on the road as a cubic in the ground frame (REP-103: x forward, y left, metres).

y = c0 + c1 x + c2 x^2 + c3 x^3 over the measured range [x_min, x_max]: c0 is the lateral offset at x = 0, c1
the slope (heading), 2 c2 the curvature and 6 c3 its rate there: what a lateral controller reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A cubic's higher terms are only observable over a long enough stretch: fitted to a few metres of noisy
# points they swing wildly outside them. Below these spans (m) and point counts the degree is lowered.
MIN_SPAN_FOR_DEGREE = {1: 0.0, 2: 8.0, 3: 20.0}
MIN_POINTS_FOR_DEGREE = {1: 2, 2: 5, 3: 8}


@dataclass(frozen=True, eq=False)
class GroundCurve:
    """y(x) = c0 + c1 x + c2 x^2 + c3 x^3 in the ground frame, valid for x in [x_min, x_max]."""

    coefficients: np.ndarray  # (4,) float64, c0 first
    x_min: float
    x_max: float

    def __post_init__(self) -> None:
        coefficients = np.zeros(4, dtype=np.float64)
        given = np.asarray(self.coefficients, dtype=np.float64).ravel()[:4]
        coefficients[: len(given)] = given
        coefficients.flags.writeable = False  # frozen means frozen: no silent edits through the array
        object.__setattr__(self, "coefficients", coefficients)
        object.__setattr__(self, "x_min", float(self.x_min))
        object.__setattr__(self, "x_max", float(self.x_max))

    @classmethod
    def fit(
        cls, points_xy: np.ndarray, max_degree: int = 3, weights: np.ndarray | None = None
    ) -> GroundCurve | None:
        """Least-squares fit to ground points (N, 2) x, y; non-finite rows are skipped.

        Returns None for fewer than two points or no x extent. The degree is lowered for few points or a short
        x span (:data:`MIN_SPAN_FOR_DEGREE`, :data:`MIN_POINTS_FOR_DEGREE`) so a short stub gets a line, not
        a wild cubic; the missing coefficients are 0. ``weights`` (N,) are 1 / the standard deviation of each
        point's y, as numpy's ``polyfit`` takes them: 1 / x suits points projected from a camera, whose
        lateral error grows with the distance.
        """
        points = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
        finite = np.isfinite(points).all(axis=1)
        if weights is not None:
            weights = np.asarray(weights, dtype=np.float64).ravel()
            finite &= np.isfinite(weights)
            weights = weights[finite]
        points = points[finite]
        if len(points) < 2:
            return None
        x, y = points[:, 0], points[:, 1]
        x_min, x_max = float(x.min()), float(x.max())
        span = x_max - x_min
        if span <= 0.0:
            return None
        degree = max(
            (
                d
                for d in range(1, min(max_degree, 3) + 1)
                if span >= MIN_SPAN_FOR_DEGREE[d] and len(points) >= MIN_POINTS_FOR_DEGREE[d]
            ),
            default=1,
        )
        # numpy's polyfit scales the Vandermonde columns, so x^3 ~ 1e6 next to 1 stays well conditioned.
        coefficients = np.polynomial.polynomial.polyfit(x, y, degree, w=weights)
        return cls(coefficients, x_min, x_max)

    def y_at(self, x: np.ndarray | float) -> np.ndarray:
        """Lateral position y (m, left positive) at ``x``."""
        c0, c1, c2, c3 = self.coefficients
        x = np.asarray(x, dtype=np.float64)
        return c0 + x * (c1 + x * (c2 + x * c3))

    def slope_at(self, x: np.ndarray | float) -> np.ndarray:
        """dy/dx at ``x``."""
        _, c1, c2, c3 = self.coefficients
        x = np.asarray(x, dtype=np.float64)
        return c1 + x * (2.0 * c2 + x * 3.0 * c3)

    def heading_at(self, x: np.ndarray | float) -> np.ndarray:
        """Direction of the curve (rad, counter-clockwise from the x axis) at ``x``."""
        return np.arctan(self.slope_at(x))

    def _second_derivative(self, x: np.ndarray) -> np.ndarray:
        return 2.0 * self.coefficients[2] + 6.0 * self.coefficients[3] * x

    def curvature_at(self, x: np.ndarray | float) -> np.ndarray:
        """Signed curvature (1/m, positive bending left): y'' / (1 + y'^2)^1.5."""
        x = np.asarray(x, dtype=np.float64)
        return self._second_derivative(x) / (1.0 + self.slope_at(x) ** 2) ** 1.5

    def curvature_rate_at(self, x: np.ndarray | float) -> np.ndarray:
        """d(curvature)/dx (1/m^2) at ``x``."""
        x = np.asarray(x, dtype=np.float64)
        d1, d2, d3 = self.slope_at(x), self._second_derivative(x), 6.0 * self.coefficients[3]
        q = 1.0 + d1**2
        return d3 / q**1.5 - 3.0 * d1 * d2**2 / q**2.5

    def sample(self, xs: np.ndarray) -> np.ndarray:
        """Points (N, 2) x, y of the curve at ``xs``."""
        xs = np.asarray(xs, dtype=np.float64).ravel()
        return np.stack([xs, self.y_at(xs)], axis=-1)
