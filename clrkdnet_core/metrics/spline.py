"""The natural cubic spline of the official CULane evaluator (SCNN ``Spline::splineInterpTimes``).

The official tool stores lane points as ``cv::Point2f`` (float32) and fits x(t) and y(t) separately over the
cumulative chord length t, with a tridiagonal (Thomas) solve and zero second derivatives at both ends. This
module reproduces that arithmetic operation by operation, including where it happens in float32, so that the
sampled points round to the same pixels: coordinate differences are float32 subtractions, everything else is
double, and the samples are stored back as float32.
"""

import math

import numpy as np


def natural_spline_samples(points: np.ndarray, times: int = 50) -> np.ndarray:
    """Sample the official natural cubic spline through ``points`` (N >= 3, float32 (x, y)).

    Every segment between two consecutive points is sampled at ``times`` equal steps of its chord length,
    starting at the segment's first point; the last original point is appended, giving ``(N - 1) * times + 1``
    float32 points. Two equal consecutive points give a zero-length segment: the official division by zero
    makes every sample NaN (only the appended last point stays finite), and so does this function.
    """
    points = np.asarray(points, dtype=np.float32)
    n = len(points)
    if n < 3:
        raise ValueError(f"natural_spline_samples needs at least 3 points, got {n}")
    with np.errstate(all="ignore"):
        # float32 differences, as `point_v[i+1].x - point_v[i].x` on two floats in the C++.
        diffs = np.diff(points, axis=0).astype(np.float64)
        dx = diffs[:, 0].tolist()
        dy = diffs[:, 1].tolist()
        h = [math.sqrt(ex * ex + ey * ey) for ex, ey in zip(dx, dy, strict=True)]
        mx, my = _second_derivatives(dx, dy, h)

        h_arr = np.array(h)
        dx_arr, dy_arr = np.array(dx), np.array(dy)
        m_x, m_y = np.array(mx), np.array(my)
        start = points[:-1].astype(np.float64)
        b_x = dx_arr / h_arr - (2 * h_arr * m_x[:-1] + h_arr * m_x[1:]) / 6
        b_y = dy_arr / h_arr - (2 * h_arr * m_y[:-1] + h_arr * m_y[1:]) / 6
        c_x, c_y = m_x[:-1] / 2, m_y[:-1] / 2
        d_x = (m_x[1:] - m_x[:-1]) / (6 * h_arr)
        d_y = (m_y[1:] - m_y[:-1]) / (6 * h_arr)

        t = (h_arr / times)[:, None] * np.arange(times, dtype=np.float64)
        t2 = t * t
        # The C++ calls pow(t, 3); t2 * t can differ from it in the last bit of a double, which moves a
        # float32 sample (and then, only at a .5 boundary, a pixel) about once in 1e13 samples: far below one
        # pixel on the whole CULane test set, at a third of the cost of the C library's pow per sample.
        t3 = t2 * t
        # Same evaluation order as `a + b*t + c*pow(t,2) + d*pow(t,3)`.
        xs = start[:, 0, None] + b_x[:, None] * t + c_x[:, None] * t2 + d_x[:, None] * t3
        ys = start[:, 1, None] + b_y[:, None] * t + c_y[:, None] * t2 + d_y[:, None] * t3
        samples = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)
    return np.concatenate([samples, points[-1:]], axis=0)


def _second_derivatives(dx: list[float], dy: list[float], h: list[float]) -> tuple[list[float], list[float]]:
    """Second derivatives M of x(t) and y(t): the official TDMA, with M_0 = M_{n-1} = 0."""
    n = len(h) + 1
    a = h[:-1]
    b = [2 * (h[i] + h[i + 1]) for i in range(n - 2)]
    c = h[1:]
    rx = [6 * (_div(dx[i + 1], h[i + 1]) - _div(dx[i], h[i])) for i in range(n - 2)]
    ry = [6 * (_div(dy[i + 1], h[i + 1]) - _div(dy[i], h[i])) for i in range(n - 2)]

    c[0] = _div(c[0], b[0])
    rx[0] = _div(rx[0], b[0])
    ry[0] = _div(ry[0], b[0])
    for i in range(1, n - 2):
        pivot = b[i] - a[i] * c[i - 1]
        c[i] = _div(c[i], pivot)
        rx[i] = _div(rx[i] - a[i] * rx[i - 1], pivot)
        ry[i] = _div(ry[i] - a[i] * ry[i - 1], pivot)

    mx = [0.0] * n
    my = [0.0] * n
    mx[n - 2] = rx[n - 3]
    my[n - 2] = ry[n - 3]
    for i in range(n - 4, -1, -1):
        mx[i + 1] = rx[i] - c[i] * mx[i + 2]
        my[i + 1] = ry[i] - c[i] * my[i + 2]
    mx[0] = mx[n - 1] = 0.0
    my[0] = my[n - 1] = 0.0
    return mx, my


def _div(num: float, den: float) -> float:
    """IEEE double division (x/0 -> +-inf, 0/0 -> NaN) where Python would raise, as the C++ computes it."""
    if den != 0.0:
        return num / den
    if num != num or num == 0.0:
        return math.nan
    return math.copysign(math.inf, num) * math.copysign(1.0, den)
