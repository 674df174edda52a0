"""Kalman filter on a lane cubic's four coefficients [c0, c1, c2, c3] (y = c0 + c1 x + c2 x^2 + c3 x^3).

The state is the cubic itself, so every consumer reads the filtered lane directly. A detection is measured as
lateral positions sampled along its fitted curve, each with a noise that grows with the distance (a pixel of
detector error is more metres far away) and with the fit's residual: the filter then trusts the near part of a
lane, where a controller reads it, more than its far end.
"""

from __future__ import annotations

import numpy as np

from clrkdnet_core.lane_curve import GroundCurve

_POWERS = np.arange(4.0)  # of x in a cubic


def measurement_points(
    curve: GroundCurve,
    samples: int,
    near_sigma: float,
    sigma_growth: float,
    residual_rms: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A detection as ``samples`` measurements: x (S,), measured y (S,) and each one's variance (S,).

    A fixed number of samples (not every detector point) keeps the information of one detection bounded: the
    detector's points along one lane share most of their error, so counting 70 of them as independent would
    make the filter trust a single frame far too much.
    """
    xs = curve.x_min + (curve.x_max - curve.x_min) * (np.arange(samples) / (samples - 1))
    sigma = near_sigma + sigma_growth * np.abs(xs)
    return xs, curve.y_at(xs), sigma**2 + residual_rms**2


class CurveKalmanFilter:
    """Mean (4,) and covariance (4, 4) of a lane cubic's coefficients: predict with motion, update with
    samples."""

    def __init__(self, coefficients: np.ndarray, covariance: np.ndarray) -> None:
        self.coefficients = np.array(coefficients, dtype=np.float64)
        self.covariance = np.array(covariance, dtype=np.float64)

    def predict(
        self, coefficients: np.ndarray, jacobian: np.ndarray | None, process_covariance: np.ndarray
    ) -> None:
        """Move to the predicted mean; P <- J P J^T + Q (J = identity for ``jacobian=None``)."""
        self.coefficients = np.asarray(coefficients, dtype=np.float64)
        if jacobian is not None:
            self.covariance = jacobian @ self.covariance @ jacobian.T
        self.covariance = self.covariance + process_covariance

    def update(self, xs: np.ndarray, ys: np.ndarray, variances: np.ndarray) -> None:
        """Fuse lateral positions ``ys`` measured at ``xs``, each with its variance.

        Joseph form: the covariance stays symmetric positive definite even when a measurement is far more
        precise than the state (a fresh track's broad prior).
        """
        h = xs[:, None] ** _POWERS
        innovation = ys - h @ self.coefficients
        ph = self.covariance @ h.T
        s = h @ ph + np.diag(variances)
        gain = np.linalg.solve(s, ph.T).T
        self.coefficients = self.coefficients + gain @ innovation
        a = np.eye(4) - gain @ h
        covariance = a @ self.covariance @ a.T + (gain * variances) @ gain.T
        self.covariance = (covariance + covariance.T) / 2.0
