"""Ground-truth encoding (MODEL.md 4.1) on hand-computed lanes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clrkdnet_core.data.encoding import (
    INVALID,
    EncodingError,
    decode_target,
    encode_lanes,
    prepare_lanes,
    row_ys,
    sample_lane,
)

STRIP = 320 / 71


def test_row_heights():
    ys = row_ys()
    assert len(ys) == 72
    assert ys[0] == 320 and abs(ys[-1]) < 1e-9
    np.testing.assert_allclose(np.diff(ys), -STRIP)


def test_vertical_lane_fully_inside():
    lane = np.array([[400.0, 0.0], [400.0, 160.0], [400.0, 320.0]])
    row = encode_lanes([lane], max_lanes=4)[0]
    assert row[0] == 0 and row[1] == 1
    assert row[2] == 0  # no row outside the image
    assert row[3] == pytest.approx(400.0)  # start_x in pixels
    assert row[4] == pytest.approx(0.5, abs=1e-6)  # vertical: atan(+inf)/pi
    # the top row height is 320 − 71·(320/71) computed in floating point, a hair below 0, so a lane ending at
    # y = 0 does not reach it (as in the reference, which builds the rows with the same np.arange)
    sampled = int(np.sum(row_ys() >= 0))
    assert row[5] == sampled  # length in rows
    np.testing.assert_allclose(row[6 : 6 + sampled], 400.0, atol=1e-4)


def test_slanted_lane_theta_and_extrapolation():
    # x = 100 + 0.5·(320 − y) annotated only for y in [100, 200]: rows below 200 come from the straight line
    # through the two bottom-most points, rows above 100 are not sampled.
    ys = np.array([200.0, 150.0, 100.0])
    lane = np.stack([100 + 0.5 * (320 - ys), ys], axis=1)
    row = encode_lanes([lane], max_lanes=1)[0]
    expected_rows = row_ys()[row_ys() >= 100]
    n = len(expected_rows)
    assert row[5] == n
    np.testing.assert_allclose(row[6 : 6 + n], 100 + 0.5 * (320 - expected_rows), atol=1e-3)
    assert np.all(row[6 + n :] == INVALID)
    theta = math.atan(STRIP / 0.5 / STRIP) / math.pi  # Δy / Δx = 1 / 0.5 → atan(2)/π for every i
    assert row[4] == pytest.approx(theta, abs=1e-5)


def test_lane_leaning_left_maps_negative_angles():
    ys = np.array([320.0, 0.0])
    lane = np.stack([700 - 0.5 * (320 - ys), ys], axis=1)
    row = encode_lanes([lane], max_lanes=1)[0]
    assert row[4] == pytest.approx(1 - math.atan(2) / math.pi, abs=1e-5)


def test_part_outside_the_image_counts_as_start_offset():
    # Enters the image from the left at y = 320 − 2·50 = 220: rows with x < 0 are "outside" (start_y).
    ys = np.array([320.0, 0.0])
    lane = np.stack([-50 + 0.5 * (320 - ys), ys], axis=1)
    row = encode_lanes([lane], max_lanes=1)[0]
    xs = -50 + 0.5 * (320 - row_ys())
    outside = int(np.sum(xs < 0))
    assert row[2] == pytest.approx(outside / 71)
    assert row[3] == pytest.approx(xs[outside], abs=1e-3)
    sampled = int(np.sum(row_ys() >= 0))
    assert row[5] == sampled - outside
    np.testing.assert_allclose(row[6 : 6 + sampled], xs[:sampled], atol=1e-3)


def test_invalid_rows_order_and_limits():
    good = np.array([[400.0, 0.0], [400.0, 320.0]])
    single = np.array([[10.0, 10.0]])  # < 2 points: dropped before indexing
    outside = np.array([[900.0, 0.0], [950.0, 320.0]])  # no point inside: keeps an invalid row
    out = encode_lanes([single, outside, good, good, good], max_lanes=3)
    assert out.shape == (3, 78) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0, :6], [1, 0, INVALID, INVALID, INVALID, INVALID])
    assert out[1, 1] == 1 and out[2, 1] == 1
    empty = encode_lanes([], max_lanes=2)
    assert np.all(empty[:, 0] == 1) and np.all(empty[:, 1] == 0) and np.all(empty[:, 2:] == INVALID)


def test_prepare_sorts_bottom_up_and_keeps_first_duplicate_y():
    lane = np.array([[1.0, 10.0], [2.0, 300.0], [3.0, 10.0], [4.0, 100.0]])
    (prepared,) = prepare_lanes([lane])
    np.testing.assert_array_equal(prepared, [[2, 300], [4, 100], [1, 10]])


def test_same_y_lane_keeps_an_invalid_row():
    # One point is left after removing duplicate ys: the reference's assertion skips the lane (no retry).
    flat = np.array([[10.0, 50.0], [20.0, 50.0]])
    vertical = np.array([[400.0, 320.0], [400.0, 100.0]])
    out = encode_lanes([flat, vertical], max_lanes=3)
    assert out[0, 1] == 0 and out[1, 1] == 1 and out[2, 1] == 0
    with pytest.raises(EncodingError):
        sample_lane(flat[:1], row_ys(), 800)


def test_curved_lane_decodes_back():
    ys = np.linspace(320, 40, 15)
    lane = np.stack([400 + 0.004 * (320 - ys) ** 2 - 0.5 * (320 - ys), ys], axis=1)
    row = encode_lanes([lane], max_lanes=2)[0]
    points = decode_target(row)
    assert np.all(np.diff(points[:, 1]) > 0)  # top to bottom
    expected = np.interp(points[:, 1], ys[::-1], lane[::-1, 0])
    np.testing.assert_allclose(points[:, 0], expected, atol=0.5)
    assert decode_target(encode_lanes([], 1)[0]).shape == (0, 2)
