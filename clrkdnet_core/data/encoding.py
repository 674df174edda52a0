"""Ground-truth lane encoding for training (MODEL.md 4.1), in the rows the head predicts (``lane_format``).

A lane becomes one 78-value row: [0, 1, start_y, start_x, theta, length, x at the 72 row heights]. xs are
in pixels of the network input (800×320), row 0 is the bottom (y = 320); start_x is a pixel value and length
a row count, as in the reference (the head's outputs are normalised, the loss converts). Invalid rows are
[1, 0, −1e5, …].
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.interpolate import InterpolatedUnivariateSpline

from clrkdnet_core.lane_format import (
    LENGTH,
    NEGATIVE_LOGIT,
    NUM_STRIPS,
    POSITIVE_LOGIT,
    ROW_WIDTH,
    START_X,
    START_Y,
    THETA,
    XS,
)

INVALID = -1e5


class EncodingError(ValueError):
    """A lane that the reference cannot encode either (it then retries the augmentation)."""


class _NoRowInside(ValueError):
    """No sample row within the lane's y-range: the reference skips such a lane."""


def row_ys(img_h: int = 320) -> np.ndarray:
    """The 72 row heights in pixels, bottom (img_h) to top (0), exactly as the reference computes them.

    The reference samples targets at these float64 heights, not at ``img_h * prior_ys``, which differ in the
    last bits.
    """
    return np.arange(img_h, -1, -img_h / NUM_STRIPS)


def sample_lane(points: np.ndarray, sample_ys: np.ndarray, img_w: int) -> tuple[np.ndarray, np.ndarray]:
    """x of a lane at ``sample_ys`` split into (outside the image width, inside it).

    ``points`` are sorted bottom to top (y strictly decreasing). Inside the annotated y-range a spline of
    degree min(3, n − 1) interpolates; below it a straight line through the two bottom-most points
    extrapolates; above it nothing is sampled.
    """
    if len(points) < 2:
        raise EncodingError("a lane needs two points with different y")
    x, y = points[:, 0], points[:, 1]
    spline = InterpolatedUnivariateSpline(y[::-1], x[::-1], k=min(3, len(points) - 1))
    inside_domain = sample_ys[(sample_ys >= y.min()) & (sample_ys <= y.max())]
    if len(inside_domain) == 0:
        raise _NoRowInside("no sample row inside the lane's y-range")
    line = np.polyfit(points[:2, 1], points[:2, 0], deg=1)
    below = sample_ys[sample_ys > y.max()]
    all_xs = np.hstack((np.polyval(line, below), spline(inside_domain)))
    inside = (all_xs >= 0) & (all_xs < img_w)
    return all_xs[~inside], all_xs[inside]


def prepare_lanes(lanes: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Lanes with ≥ 2 points, sorted bottom to top, keeping the first point of each y (reference order)."""
    prepared = []
    for lane in lanes:
        lane = np.asarray(lane, dtype=np.float64).reshape(-1, 2)
        if len(lane) < 2:
            continue
        lane = lane[np.argsort(-lane[:, 1], kind="stable")]
        _, first = np.unique(lane[:, 1], return_index=True)
        prepared.append(lane[np.sort(first)])
    return prepared


def encode_lanes(
    lanes: Sequence[np.ndarray], max_lanes: int, img_w: int = 800, img_h: int = 320
) -> np.ndarray:
    """Encode lanes given as (N, 2) (x, y) network-input pixels into a (max_lanes, 78) float32 array.

    Row i belongs to the i-th lane that has at least 2 points; a lane left with one point once duplicate ys
    are removed (all its points share one y) or whose samples leave fewer than 2 points inside the image
    keeps an invalid row, and lanes beyond ``max_lanes`` are dropped, as in the reference.
    """
    strip_size = img_h / NUM_STRIPS
    ys = row_ys(img_h)
    out = np.full((max_lanes, ROW_WIDTH), INVALID, dtype=np.float32)
    out[:, NEGATIVE_LOGIT], out[:, POSITIVE_LOGIT] = 1, 0
    for index, lane in enumerate(prepare_lanes(lanes)):
        if index >= max_lanes:
            break
        if len(lane) < 2:
            continue  # the reference's sample_lane asserts two points; the assertion skips the lane
        try:
            outside, inside = sample_lane(lane, ys, img_w)
        except _NoRowInside:
            continue
        if len(inside) <= 1:
            continue
        all_xs = np.hstack((outside, inside))
        thetas = []
        for i in range(1, len(inside)):
            theta = math.atan(i * strip_size / (inside[i] - inside[0] + 1e-5)) / math.pi
            thetas.append(theta if theta > 0 else 1 - abs(theta))
        row = out[index]
        row[NEGATIVE_LOGIT], row[POSITIVE_LOGIT] = 0, 1
        row[START_Y] = len(outside) / NUM_STRIPS
        row[START_X] = inside[0]
        row[THETA] = sum(thetas) / len(thetas)
        row[LENGTH] = len(inside)
        row[XS][: len(all_xs)] = all_xs
    return out


def decode_target(row: np.ndarray, img_w: int = 800, img_h: int = 320) -> np.ndarray:
    """Points (N, 2) float32 (x, y) of one encoded row inside the image, top to bottom (empty if invalid)."""
    if row[POSITIVE_LOGIT] != 1:
        return np.zeros((0, 2), np.float32)
    xs = np.asarray(row[XS], dtype=np.float64)
    ys = row_ys(img_h)
    valid = (xs >= 0) & (xs < img_w)
    return np.stack([xs[valid], ys[valid]], axis=1)[::-1].astype(np.float32)
