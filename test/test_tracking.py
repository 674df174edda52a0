"""Lane tracking on constructed cases: Kalman filter, motion compensation, association, track management."""

import math

import numpy as np
import pytest

from clrkdnet_core.lane_curve import GroundCurve
from clrkdnet_core.tracking.association import associate, common_shift
from clrkdnet_core.tracking.kalman import CurveKalmanFilter, measurement_points
from clrkdnet_core.tracking.motion import EgoMotion, move_curve
from clrkdnet_core.tracking.tracker import LaneObservation, LaneTracker, TrackerConfig, detection_covariance

DT = 0.1
XS = np.linspace(5.0, 40.0, 30)


def _curve(coefficients, x_min=5.0, x_max=40.0, noise=0.0, rng=None) -> GroundCurve:
    """The least-squares curve of a cubic sampled over [x_min, x_max], with optional point noise."""
    xs = np.linspace(x_min, x_max, 30)
    ys = np.polynomial.polynomial.polyval(xs, coefficients)
    if noise:
        ys = ys + rng.normal(0.0, noise, xs.size)
    return GroundCurve.fit(np.stack([xs, ys], axis=1))


def _observations(offsets, noise=0.0, rng=None) -> list[LaneObservation]:
    return [
        LaneObservation(_curve([offset, 0.0, 0.0, 0.0], noise=noise, rng=rng), 0.9, i)
        for i, offset in enumerate(offsets)
    ]


def _run(tracker, frames, start=0.0, motion=None):
    """Feed a list of per-frame offset lists, DT apart; the outputs per frame."""
    return [
        tracker.update(_observations(offsets), start + k * DT, motion) for k, offsets in enumerate(frames)
    ]


# --- motion ----------------------------------------------------------------------------------------------


def test_ego_motion_validity_and_arc_displacement():
    assert EgoMotion(10.0, 0.1).valid()
    assert not EgoMotion(math.nan, 0.0).valid()
    assert not EgoMotion(1.0, math.inf).valid()
    assert EgoMotion(10.0, 0.0).displacement(0.5) == (5.0, 0.0, 0.0)
    dx, dy, dyaw = EgoMotion(10.0, 0.2).displacement(1.0)  # a 50 m radius arc, 10 m long
    assert dyaw == pytest.approx(0.2)
    assert dx == pytest.approx(50.0 * math.sin(0.2)) and dy == pytest.approx(50.0 * (1.0 - math.cos(0.2)))


def test_move_curve_forward_keeps_a_straight_lane_and_shifts_a_slanted_one():
    moved, jacobian = move_curve(np.array([1.75, 0.0, 0.0, 0.0]), 2.0, 0.0, 0.0, (5.0, 40.0))
    np.testing.assert_allclose(moved, [1.75, 0, 0, 0], atol=1e-9)
    np.testing.assert_allclose(jacobian[:, 0], [1, 0, 0, 0], atol=1e-9)  # an offset error stays one
    moved, _ = move_curve(np.array([1.0, 0.1, 0.0, 0.0]), 2.0, 0.0, 0.0, (5.0, 40.0))
    np.testing.assert_allclose(moved, [1.2, 0.1, 0, 0], atol=1e-9)  # y at the new x = 0 is y(2) before


def test_move_curve_turning_left_rotates_a_straight_lane_clockwise():
    moved, _ = move_curve(np.array([1.75, 0.0, 0.0, 0.0]), 0.0, 0.0, 0.05, (5.0, 40.0))
    assert moved[1] == pytest.approx(-math.tan(0.05), rel=1e-6)
    assert moved[0] == pytest.approx(1.75 / math.cos(0.05), rel=1e-6)


def test_move_curve_jacobian_matches_finite_differences():
    c = np.array([2.0, 0.01, 1e-3, -1e-5])
    args = (1.5, 0.2, 0.05, (5.0, 50.0))
    _, jacobian = move_curve(c, *args)
    numeric = np.zeros((4, 4))
    for k in range(4):
        step = np.zeros(4)
        step[k] = 1e-6 * 10.0**-k
        numeric[:, k] = (move_curve(c + step, *args)[0] - move_curve(c - step, *args)[0]) / (2 * step[k])
    # The analytic form drops the refit residual's own derivative (a cubic turned is no exact cubic): 1 %.
    np.testing.assert_allclose(jacobian, numeric, rtol=1e-2, atol=1e-9)


def test_prediction_follows_a_lane_around_a_curve_at_constant_speed_and_yaw_rate():
    # The vehicle drives along the centre of a lane bending left with radius 200 m; the boundary 1.75 m to
    # its left stays where it is in the vehicle frame, frame after frame, with no measurement at all.
    radius, speed = 200.0, 20.0
    xs = np.linspace(0.0, 60.0, 60)
    boundary = radius - np.sqrt((radius - 1.75) ** 2 - xs**2)  # circle of radius R - 1.75 round (0, R)
    start = np.polynomial.polynomial.polyfit(xs, boundary, 3)
    coefficients, x_range = start.copy(), (0.0, 60.0)
    dx, dy, dyaw = EgoMotion(speed, speed / radius).displacement(DT)
    for _ in range(15):  # 1.5 s, 30 m, 8.6 degrees of turn; the known range moves back with the road
        coefficients, _ = move_curve(coefficients, dx, dy, dyaw, x_range)
        x_range = (x_range[0] - dx, x_range[1] - dx)
    near = xs[xs <= x_range[1]]
    np.testing.assert_allclose(
        np.polynomial.polynomial.polyval(near, coefficients),
        np.polynomial.polynomial.polyval(near, start),
        atol=0.01,
    )


# --- Kalman filter ---------------------------------------------------------------------------------------


def test_kalman_converges_on_a_noisy_static_curve_and_its_variance_falls():
    rng = np.random.default_rng(0)
    truth = np.array([1.8, 0.02, 5e-4, -4e-6])
    kalman = CurveKalmanFilter(np.zeros(4), np.diag(np.square([1.0, 0.1, 2e-3, 5e-5])))
    variances = []
    for _ in range(60):
        kalman.predict(kalman.coefficients, None, np.diag(np.square([0.01, 1e-3, 1e-5, 1e-7])) * DT)
        kalman.update(*measurement_points(_curve(truth, noise=0.15, rng=rng), 8, 0.15, 0.01))
        variances.append(kalman.covariance[0, 0])
    assert abs(kalman.coefficients[0] - truth[0]) < 0.05
    assert abs(kalman.coefficients[1] - truth[1]) < 0.005
    at_20m = np.polynomial.polynomial.polyval(20.0, np.stack([kalman.coefficients, truth], axis=1))
    assert abs(at_20m[0] - at_20m[1]) < 0.03
    assert variances[-1] < variances[0] / 5
    assert np.all(np.linalg.eigvalsh(kalman.covariance) > 0)


def test_measurement_noise_grows_with_distance_and_residual():
    xs, ys, variances = measurement_points(_curve([1.0, 0, 0, 0]), 8, 0.1, 0.01)
    assert xs[0] == 5.0 and xs[-1] == 40.0 and np.all(np.diff(variances) > 0)
    np.testing.assert_allclose(ys, 1.0)
    _, _, noisy = measurement_points(_curve([1.0, 0, 0, 0]), 8, 0.1, 0.01, residual_rms=0.2)
    np.testing.assert_allclose(noisy - variances, 0.04)


# --- association -----------------------------------------------------------------------------------------


def test_association_matches_nearest_and_refuses_far_gaps():
    assert associate([5.2, 1.7, -1.8], [-1.9, 1.6, 9.0], max_gap=1.0) == [(1, 1), (2, 0)]
    assert associate([], [1.0], 1.0) == [] and associate([1.0], [], 1.0) == []
    assert associate([0.0], [1.01], 1.0) == []
    assert associate([0.0, np.nan], [0.1, 0.2], 1.0) == [(0, 0)]


def test_association_keeps_left_to_right_order():
    # Two tracks that converged onto one spot and two detections: they must not cross (ties included).
    pairs = associate([1.0, 1.0], [1.5, 0.5], max_gap=1.0)
    assert sorted(pairs) == [(0, 1), (1, 0)] or sorted(pairs) == [(0, 0), (1, 1)]
    tracks, detections = np.array([3.0, 0.0, -3.0]), np.array([-2.6, 0.4, 3.3])
    pairs = associate(tracks, detections, max_gap=1.0)
    assert pairs == [(0, 2), (1, 1), (2, 0)]
    # Crossing-free: sorting the pairs by track offset sorts them by detection offset too.
    rng = np.random.default_rng(1)
    for _ in range(200):
        t, d = rng.uniform(-6, 6, rng.integers(0, 6)), rng.uniform(-6, 6, rng.integers(0, 6))
        pairs = associate(t, d, max_gap=1.5)
        by_track = sorted(pairs, key=lambda p: t[p[0]])
        assert [d[j] for _, j in by_track] == sorted(d[j] for _, j in pairs)
        assert all(abs(t[i] - d[j]) <= 1.5 for i, j in pairs)


# --- track management ------------------------------------------------------------------------------------


def test_lanes_seen_from_the_first_frame_are_confirmed_by_the_third_with_ids_from_one():
    tracker = LaneTracker()
    outputs = _run(tracker, [[5.25, 1.75, -1.75]] * 3)
    assert outputs[0] == [] and outputs[1] == []
    assert [lane.track_id for lane in outputs[2]] == [1, 2, 3]
    assert [lane.position for lane in outputs[2]] == [-2, -1, 1]
    assert [lane.age for lane in outputs[2]] == [2, 2, 2]
    assert all(lane.measured for lane in outputs[2])
    assert [lane.index for lane in outputs[2]] == [0, 1, 2]


def test_a_missed_lane_survives_predicted_with_its_id_and_comes_back():
    tracker = LaneTracker()
    _run(tracker, [[5.25, 1.75, -1.75]] * 5)
    missed = tracker.update(_observations([5.25, -1.75]), 5 * DT)
    assert [lane.track_id for lane in missed] == [1, 2, 3]
    assert [lane.measured for lane in missed] == [True, False, True]
    assert missed[1].index is None and missed[1].curve.y_at(0.0) == pytest.approx(1.75, abs=0.05)
    assert missed[1].existence < missed[0].existence
    back = tracker.update(_observations([5.25, 1.75, -1.75]), 6 * DT)
    assert [lane.track_id for lane in back] == [1, 2, 3] and all(lane.measured for lane in back)
    assert back[1].existence > missed[1].existence


def test_a_new_lane_gets_a_new_id_and_ids_are_never_reused():
    config = TrackerConfig(max_misses=3)
    tracker = LaneTracker(config)
    _run(tracker, [[1.75, -1.75]] * 4)
    outputs = _run(tracker, [[1.75, -1.75, -5.25]] * 3, start=4 * DT)
    assert [lane.track_id for lane in outputs[-1]] == [1, 2, 3]
    outputs = _run(tracker, [[1.75, -1.75]] * 3, start=7 * DT)  # lane 3 missed 3 times: deleted
    assert [lane.track_id for lane in outputs[-1]] == [1, 2]
    outputs = _run(tracker, [[1.75, -1.75, -5.25]] * 3, start=10 * DT)
    assert [lane.track_id for lane in outputs[-1]] == [1, 2, 4]
    tracker.reset()
    outputs = _run(tracker, [[1.75]] * 3, start=20 * DT)
    assert [lane.track_id for lane in outputs[-1]] == [5]


def test_a_flickering_detection_is_never_confirmed():
    tracker = LaneTracker()
    frames = [[1.75, 8.0] if k % 3 == 0 else [1.75] for k in range(12)]
    outputs = _run(tracker, frames)
    assert all([lane.track_id for lane in out] == [1] for out in outputs[2:])


def test_a_confirmed_track_is_deleted_after_a_timeout_without_detections():
    tracker = LaneTracker(TrackerConfig(timeout_s=0.5))
    _run(tracker, [[1.75]] * 3)
    assert [lane.track_id for lane in tracker.update([], 0.6)] == [1]  # 0.4 s since its last hit
    assert tracker.update([], 0.8) == []


def test_time_going_backwards_resets_and_ids_keep_increasing():
    tracker = LaneTracker()
    _run(tracker, [[1.75, -1.75]] * 3, start=100.0)
    assert tracker.update(_observations([1.75, -1.75]), 10.0) == []  # a bag loop: fresh tentative tracks
    outputs = _run(tracker, [[1.75, -1.75]] * 2, start=10.1)
    assert [lane.track_id for lane in outputs[-1]] == [3, 4]


def test_nan_motion_is_ignored_as_no_motion():
    tracker = LaneTracker()
    frames = [[1.0 + 0.1 * np.sin(k), -2.5] for k in range(6)]
    with_nan = _run(tracker, frames, motion=EgoMotion(math.nan, 0.1))
    plain = _run(LaneTracker(), frames)
    for a, b in zip(with_nan[-1], plain[-1], strict=True):
        np.testing.assert_allclose(a.curve.coefficients, b.curve.coefficients)
        np.testing.assert_allclose(a.covariance, b.covariance)
    with pytest.raises(ValueError, match="finite"):
        tracker.update([], math.nan)


def test_odometry_keeps_a_missed_curved_lane_in_place_while_turning():
    # Lane bending left (radius 100 m) driven at 15 m/s: two missed frames are predicted with the motion.
    radius, speed = 100.0, 15.0
    xs = np.linspace(5.0, 40.0, 30)
    boundary = GroundCurve.fit(np.stack([xs, radius - np.sqrt((radius - 1.75) ** 2 - xs**2)], axis=1))
    observation = [LaneObservation(boundary, 0.9, 0)]
    motion = EgoMotion(speed, speed / radius)
    tracker = LaneTracker()
    for k in range(10):
        tracker.update(observation, k * DT, motion)
    for k in range(10, 13):
        (lane,) = tracker.update([], k * DT, motion)
    assert not lane.measured and lane.curve.x_max == pytest.approx(40.0 - 3 * speed * DT, abs=0.01)
    seen = xs[xs <= lane.curve.x_max]
    np.testing.assert_allclose(lane.curve.y_at(seen), boundary.y_at(seen), atol=0.05)
    # Without odometry the zero-motion model keeps the curve too (right on a steady bend), with more doubt.
    tracker = LaneTracker()
    for k in range(10):
        tracker.update(observation, k * DT)
    for k in range(10, 13):
        (static,) = tracker.update([], k * DT)
    assert np.abs(static.curve.y_at(seen) - boundary.y_at(seen)).max() < 0.05  # it stays put, as modelled ...
    assert static.covariance[0, 0] > lane.covariance[0, 0]  # ... but with more doubt


def test_odometry_turns_a_missed_straight_lane_when_the_vehicle_turns():
    tracker = LaneTracker()
    _run(tracker, [[1.75]] * 5, motion=EgoMotion(10.0, 0.0))
    for k in range(5, 8):  # turning left at 0.2 rad/s for 0.3 s: the lane now points 0.06 rad to the right
        (lane,) = tracker.update([], k * DT, EgoMotion(10.0, 0.2))
    assert lane.curve.heading_at(0.0) == pytest.approx(-0.06, abs=1e-3)
    assert lane.curve.curvature_at(0.0) == pytest.approx(0.0, abs=1e-4)


def test_positions_from_the_sign_of_y_at_the_vehicle():
    tracker = LaneTracker()
    lanes = _run(tracker, [[12.0, 8.5, 5.0, 1.5, -2.0, -5.5, -9.0, -12.5]] * 3)[-1]
    assert [lane.position for lane in lanes] == [0, -3, -2, -1, 1, 2, 3, 0]


def test_detection_covariance_is_one_update_of_the_prior():
    observation = _observations([1.75])[0]
    covariance = detection_covariance(observation)
    # One detection from 5 m on leaves the cubic's value at 0 m loose: +-0.3 m, far below the prior's 1 m.
    assert covariance.shape == (4, 4) and 0 < covariance[0, 0] < 0.35**2
    assert detection_covariance(observation, mode="image")[0, 0] < covariance[0, 0]  # no growth with distance


def test_image_mode_ignores_motion():
    tracker = LaneTracker(mode="image")
    frames = [[2.0, -2.0]] * 4
    moving = _run(tracker, frames, motion=EgoMotion(20.0, 0.3))
    for lane in moving[-1]:
        assert lane.curve.y_at(8.0) == pytest.approx(np.sign(lane.curve.y_at(8.0)) * 2.0, abs=1e-6)
    with pytest.raises(ValueError, match="mode"):
        LaneTracker(mode="pixels")


def test_a_lane_ridden_on_keeps_its_side_for_a_moment():
    # Precise detections: the filter follows them, so the lane is where each frame puts it.
    config = TrackerConfig(
        side_hold_s=0.5, side_margin=0.2, measurement_noise=1e-3, measurement_noise_growth=0
    )
    tracker = LaneTracker(config)
    _run(tracker, [[0.3]] * 5)
    sides = [
        tracker.update(_observations([y]), 0.5 + k * DT)[0].position for k, y in enumerate([-0.05, 0.05])
    ]
    assert sides == [1, 1]  # crossed at once, not back within 0.5 s ...
    assert tracker.update(_observations([0.6]), 0.7)[0].position == -1  # ... unless clearly back


def test_one_lane_detected_twice_is_published_once():
    tracker = LaneTracker(TrackerConfig(min_separation=1.0))
    outputs = _run(tracker, [[1.75, 2.25, -1.75]] * 8)
    assert all([lane.track_id for lane in out] == [1, 3] for out in outputs[2:])


# --- long gaps between processed frames --------------------------------------------------------------------


def test_common_shift_lays_the_lane_pattern_onto_the_detections():
    tracks = [5.25, 1.75, -1.75, -5.25]
    # The whole pattern 1.2 m off (beyond a 1 m per-lane gate), one lane missed, noise on each.
    detections = [6.47, 2.93, -4.03]
    assert common_shift(tracks, detections, shift_std=1.0, residual_std=0.1) == pytest.approx(1.2, abs=0.05)
    assert common_shift(tracks, [], 1.0, 0.1) == 0.0 and common_shift([], [1.0], 1.0, 0.1) == 0.0
    assert common_shift(tracks, [20.0], 1.0, 0.1) == 0.0  # nothing fits: no shift
    # Two tracks 3.5 m apart, three detections half a lane off: one lane either way fits alike.
    assert common_shift([1.75, -1.75], [3.5, 0.0, -3.5], shift_std=1.5, residual_std=0.1) is None
    # The pattern's end decides: four tracks, four detections one lane left fit only one way.
    assert common_shift(tracks, [d + 1.6 for d in tracks], 1.5, 0.1) == pytest.approx(1.6, abs=1e-9)


def test_a_long_gap_with_odometry_error_keeps_ids_by_the_lane_pattern():
    tracker = LaneTracker()
    _run(tracker, [[5.25, 1.75, -1.75, -5.25]] * 5, motion=EgoMotion(25.0, 0.0))
    # 0.8 s later the vehicle has turned 0.1 rad/s more than the odometry said: the lanes are 0.8 m right at
    # the vehicle and turned by 0.08 rad (1.4 m right at 8 m, beyond a 1 m per-lane gate).
    lanes = [
        LaneObservation(_curve([offset - 0.8, -0.08, 0.0, 0.0]), 0.9, i)
        for i, offset in enumerate([5.25, 1.75, -1.75, -5.25])
    ]
    out = tracker.update(lanes, 0.4 + 0.8, EgoMotion(25.0, 0.0))
    assert [lane.track_id for lane in out] == [1, 2, 3, 4] and all(lane.measured for lane in out)
    for lane, observation in zip(out, lanes, strict=True):  # followed at once, at the vehicle too
        assert lane.curve.y_at(0.0) == pytest.approx(observation.curve.y_at(0.0), abs=0.1)


def test_after_an_ambiguous_gap_the_lanes_start_afresh_confirmed_at_once():
    tracker = LaneTracker()
    _run(tracker, [[1.75, -1.75]] * 5)
    out = tracker.update(_observations([3.5, 0.0, -3.5]), 0.4 + 0.8)  # half a lane off: either way fits
    assert [lane.track_id for lane in out] == [3, 4, 5]  # no identity claimed, no lane lost from the output
    assert [lane.position for lane in out] == [-1, 1, 2]


def test_a_predicted_lane_never_changes_side():
    tracker = LaneTracker()
    _run(tracker, [[0.3, -3.2]] * 5)
    # Only predicted: turning left for 0.5 s moves the vehicle 0.75 m left, across the lane 0.3 m left of it.
    for k in range(5, 10):
        out = tracker.update([], k * DT, EgoMotion(20.0, 0.3))
    assert out[0].curve.y_at(0.0) < 0.0 and not out[0].measured
    assert [lane.position for lane in out] == [-1, 1]  # where it went unseen is no crossing
    seen = [LaneObservation(GroundCurve(t.curve.coefficients, 5.0, 30.0), 0.9, i) for i, t in enumerate(out)]
    assert [lane.position for lane in tracker.update(seen, 1.0)] == [1, 2]  # seen there: it crossed
