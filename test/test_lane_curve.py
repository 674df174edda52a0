"""GroundCurve: fitting, degree lowering and the derivatives a lateral controller reads."""

import numpy as np
import pytest

from clrkdnet_core.lane_curve import GroundCurve


def test_fit_recovers_a_cubic():
    truth = np.array([1.8, 0.02, 1e-3, -5e-6])
    x = np.linspace(5.0, 60.0, 40)
    curve = GroundCurve.fit(np.stack([x, np.polynomial.polynomial.polyval(x, truth)], axis=1))
    np.testing.assert_allclose(curve.coefficients, truth, rtol=1e-6, atol=1e-9)
    assert (curve.x_min, curve.x_max) == (5.0, 60.0)
    assert curve.coefficients.dtype == np.float64 and curve.coefficients.shape == (4,)


def test_fit_skips_nan_rows_and_refuses_too_few_points():
    assert GroundCurve.fit(np.zeros((0, 2))) is None
    assert GroundCurve.fit(np.array([[5.0, 1.0]])) is None
    assert GroundCurve.fit(np.array([[5.0, 1.0], [np.nan, np.nan]])) is None
    assert GroundCurve.fit(np.array([[5.0, 1.0], [5.0, 1.2]])) is None  # no x extent
    curve = GroundCurve.fit(np.array([[5.0, 1.0], [np.nan, 0.0], [10.0, 2.0]]))
    np.testing.assert_allclose(curve.coefficients, [0.0, 0.2, 0.0, 0.0], atol=1e-12)


def test_short_or_sparse_stub_gets_a_line_not_a_wild_cubic():
    rng = np.random.default_rng(0)
    x = np.linspace(10.0, 15.0, 20)
    y = 1.5 + 0.01 * x + rng.normal(0.0, 0.03, x.size)
    curve = GroundCurve.fit(np.stack([x, y], axis=1))
    assert curve.coefficients[2] == 0.0 and curve.coefficients[3] == 0.0
    assert abs(curve.y_at(40.0) - 1.9) < 0.5  # a cubic through this noise would be metres off
    four = GroundCurve.fit(np.array([[5.0, 0.0], [20.0, 1.0], [35.0, 0.0], [50.0, 2.0]]))
    assert four.coefficients[2] == four.coefficients[3] == 0.0
    assert GroundCurve.fit(np.stack([x, y], axis=1), max_degree=1).coefficients[2] == 0.0


def test_derivatives_of_a_clothoid_like_cubic():
    curve = GroundCurve(np.array([0.5, 0.1, 2e-3, 1e-5]), 0.0, 50.0)
    x = np.array([0.0, 10.0, 30.0])
    slope = 0.1 + 2 * 2e-3 * x + 3 * 1e-5 * x**2
    second = 2 * 2e-3 + 6 * 1e-5 * x
    np.testing.assert_allclose(curve.slope_at(x), slope)
    np.testing.assert_allclose(curve.heading_at(x), np.arctan(slope))
    np.testing.assert_allclose(curve.curvature_at(x), second / (1 + slope**2) ** 1.5)
    h = 1e-4
    numeric = (curve.curvature_at(x + h) - curve.curvature_at(x - h)) / (2 * h)
    np.testing.assert_allclose(curve.curvature_rate_at(x), numeric, rtol=1e-6)
    np.testing.assert_allclose(curve.sample([0.0, 10.0]), [[0.0, 0.5], [10.0, 0.5 + 1.0 + 0.2 + 0.01]])


def test_bending_left_is_positive_curvature():
    assert GroundCurve(np.array([0.0, 0.0, 1e-3, 0.0]), 0.0, 40.0).curvature_at(0.0) > 0.0


def test_coefficients_are_frozen_and_padded():
    curve = GroundCurve([1.0, 2.0], 0.0, 1.0)
    np.testing.assert_array_equal(curve.coefficients, [1.0, 2.0, 0.0, 0.0])
    with pytest.raises(ValueError):
        curve.coefficients[0] = 3.0


def test_weights_let_near_points_count_more():
    x = np.linspace(5.0, 80.0, 60)
    errors = []
    for seed in range(50):
        # lateral noise growing with the distance, as for points projected from a camera
        y = 1.7 + 0.01 * x + np.random.default_rng(seed).normal(0.0, 0.004, x.size) * x
        plain = GroundCurve.fit(np.stack([x, y], axis=1))
        weighted = GroundCurve.fit(np.stack([x, y], axis=1), weights=1.0 / x)
        errors.append((plain.y_at(0.0) - 1.7, weighted.y_at(0.0) - 1.7))
    rms_plain, rms_weighted = np.sqrt(np.mean(np.square(errors), axis=0))
    assert rms_weighted < 0.6 * rms_plain
    points = np.array([[5.0, 1.0], [10.0, 2.0], [np.nan, 0.0], [15.0, 100.0]])
    only_two = GroundCurve.fit(points, weights=[1.0, 1.0, 1.0, np.nan])  # a NaN weight drops its point
    np.testing.assert_allclose(only_two.coefficients, [0.0, 0.2, 0.0, 0.0], atol=1e-12)
