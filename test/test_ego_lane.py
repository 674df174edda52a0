"""The ego lane's state from tracked boundaries: geometry, reconstruction, lateral velocity, lane changes."""

import math

import numpy as np
import pytest

from clrkdnet_core.lane_curve import GroundCurve
from clrkdnet_core.tracking.ego_lane import (
    LANE_CHANGE_LEFT,
    LANE_CHANGE_NONE,
    LANE_CHANGE_RIGHT,
    NO_TRACK,
    SOURCE_MEASURED,
    SOURCE_NONE,
    SOURCE_PREDICTED,
    SOURCE_RECONSTRUCTED,
    EgoLaneEstimator,
    EgoLaneState,
)
from clrkdnet_core.tracking.tracker import LaneObservation, LaneTracker, TrackedLane

DT = 1.0 / 30.0
COVARIANCE = np.diag([0.01, 1e-4, 1e-8, 1e-12])


def _track(track_id, coefficients, position, measured=True, existence=0.9) -> TrackedLane:
    return TrackedLane(
        track_id=track_id,
        age=10,
        measured=measured,
        existence=existence,
        curve=GroundCurve(coefficients, 5.0, 40.0),
        covariance=COVARIANCE,
        index=0 if measured else None,
        score=0.8,
        position=position,
    )


def test_geometry_of_constructed_boundaries():
    left = _track(3, [1.6, 0.02, 5e-4, 1e-6], -1)
    right = _track(4, [-1.9, 0.02, 5e-4, 1e-6], 1, measured=False)
    state = EgoLaneEstimator().update([_track(2, [5.1, 0.02, 5e-4, 1e-6], -2), left, right], 0.0)
    assert state.valid
    assert state.lateral_offset == pytest.approx(-0.15, abs=1e-12)
    assert state.heading == pytest.approx(math.atan(0.02), abs=1e-12)
    assert state.curvature == pytest.approx(1e-3 / (1 + 0.02**2) ** 1.5, rel=1e-9)
    q = 1 + 0.02**2
    assert state.curvature_rate == pytest.approx(6e-6 / q**1.5 - 3 * 0.02 * 1e-3**2 / q**2.5, rel=1e-9)
    assert state.width == pytest.approx(3.5, abs=1e-12)
    assert (state.left_distance, state.right_distance) == pytest.approx((1.6, 1.9), abs=1e-12)
    assert (state.left_id, state.right_id) == (3, 4)
    assert (state.left_source, state.right_source) == (SOURCE_MEASURED, SOURCE_PREDICTED)
    assert state.lane_change == LANE_CHANGE_NONE
    assert state.confidence == pytest.approx((0.9 + 0.7 * 0.9) / 2)
    # Independent boundaries: the centre (mean) has half their variance, the width (difference) twice.
    assert state.lateral_offset_variance == pytest.approx(0.005)
    assert state.width_variance == pytest.approx(0.02)
    assert state.heading_variance == pytest.approx(0.5e-4 / q**2, rel=1e-6)
    assert state.curvature_variance > 0
    np.testing.assert_allclose(state.center_line.coefficients, [-0.15, 0.02, 5e-4, 1e-6])
    assert state.left_time_to_crossing == math.inf and state.right_time_to_crossing == math.inf


def test_no_ego_boundary_is_invalid_with_nans():
    state = EgoLaneEstimator().update([_track(1, [5.0, 0, 0, 0], -2)], 0.0)
    assert not state.valid
    assert math.isnan(state.lateral_offset) and math.isnan(state.width) and math.isnan(state.confidence)
    assert (state.left_id, state.right_id) == (NO_TRACK, NO_TRACK)
    assert (state.left_source, state.right_source) == (SOURCE_NONE, SOURCE_NONE)
    assert state.center_line is None and state.lane_change == LANE_CHANGE_NONE
    assert math.isnan(EgoLaneState.invalid().curvature_variance)


def test_a_missing_side_is_reconstructed_from_the_filtered_width():
    estimator = EgoLaneEstimator()
    lone = estimator.update([_track(7, [-1.5, 0.01, 0, 0], 1)], 0.0)
    assert lone.left_source == SOURCE_RECONSTRUCTED and lone.left_id == NO_TRACK
    assert lone.width == pytest.approx(3.5)  # the default before any width was measured
    assert lone.left_distance == pytest.approx(2.0)
    for k in range(1, 90):  # 3 s of a 3.2 m lane
        estimator.update([_track(6, [1.7, 0.01, 0, 0], -1), _track(7, [-1.5, 0.01, 0, 0], 1)], k * DT)
    state = estimator.update([_track(6, [1.7, 0.01, 0, 0], -1, measured=False)], 90 * DT)
    assert state.right_source == SOURCE_RECONSTRUCTED and state.left_source == SOURCE_PREDICTED
    assert state.width == pytest.approx(3.2, abs=0.01)
    assert state.right_distance == pytest.approx(1.5, abs=0.01)
    assert state.lateral_offset == pytest.approx(0.1, abs=0.01)
    assert state.lateral_offset_variance > 0.01  # one track's variance plus a quarter of the width's
    assert state.confidence == pytest.approx((0.7 * 0.9 + 0.3 * 0.9) / 2)
    # A width outside [min_width, max_width] is a wrong pair, not a lane: the filtered width keeps 3.2 m.
    estimator.update([_track(6, [1.7, 0, 0, 0], -1), _track(9, [-8.0, 0, 0, 0], 1)], 91 * DT)
    assert estimator.update([_track(6, [1.7, 0, 0, 0], -1)], 92 * DT).width == pytest.approx(3.2, abs=0.01)


def test_lateral_velocity_and_time_to_crossing():
    estimator = EgoLaneEstimator()
    for k in range(60):  # the vehicle drifts left at 0.3 m/s: the lanes move right
        shift = -0.3 * k * DT
        state = estimator.update(
            [_track(1, [1.75 + shift, 0, 0, 0], -1), _track(2, [-1.75 + shift, 0, 0, 0], 1)], k * DT
        )
    assert state.lateral_velocity == pytest.approx(0.3, abs=0.02)
    assert state.left_time_to_crossing == pytest.approx(state.left_distance / state.lateral_velocity)
    assert state.left_time_to_crossing == pytest.approx((1.75 - 0.3 * 59 * DT) / 0.3, rel=0.1)
    assert state.right_time_to_crossing == math.inf


def test_time_going_backwards_resets_the_filters():
    estimator = EgoLaneEstimator()
    for k in range(60):
        estimator.update([_track(1, [1.6, 0, 0, 0], -1), _track(2, [-1.6, 0, 0, 0], 1)], 100 + k * DT)
    state = estimator.update([_track(1, [1.6, 0, 0, 0], -1)], 5.0)
    assert state.width == pytest.approx(3.5)  # back to the default


def _drive(offset_of_frame, frames, rng, noise=0.1, boundaries=(-5.25, -1.75, 1.75, 5.25, 8.75)):
    """Per frame: detections of lane boundaries at fixed road positions, seen from an ego whose lateral
    position (left positive) is ``offset_of_frame(k)``; each detection has its own offset noise."""
    xs = np.linspace(5.0, 40.0, 30)
    for k in range(frames):
        ego = offset_of_frame(k)
        observations = []
        for index, boundary in enumerate(boundaries):
            ys = boundary - ego + rng.normal(0.0, noise) + rng.normal(0.0, 0.05, xs.size)
            observations.append(LaneObservation(GroundCurve.fit(np.stack([xs, ys], axis=1)), 0.9, index))
        yield k, observations


@pytest.mark.parametrize(("direction", "event"), [(1.0, LANE_CHANGE_LEFT), (-1.0, LANE_CHANGE_RIGHT)])
def test_lane_change_is_reported_within_five_frames_and_the_ids_shift_sides(direction, event):
    rng = np.random.default_rng(3)
    speed = 1.0  # m/s lateral: a 3 s lane change
    tracker, estimator = LaneTracker(), EgoLaneEstimator()
    crossing = 30 + math.ceil(1.75 / (speed * DT))  # the first frame with the ego beyond the boundary
    states = []
    for k, observations in _drive(lambda k: direction * speed * DT * max(k - 30, 0), crossing + 60, rng):
        states.append(estimator.update(tracker.update(observations, k * DT), k * DT))
    events = [(k, s.lane_change) for k, s in enumerate(states) if s.lane_change != LANE_CHANGE_NONE]
    assert len(events) == 1 and events[0][1] == event
    assert abs(events[0][0] - crossing) <= 5
    before, after = states[crossing - 10], states[crossing + 10]
    if event == LANE_CHANGE_LEFT:
        assert after.right_id == before.left_id
    else:
        assert after.left_id == before.right_id
    assert after.lateral_offset == pytest.approx(direction * (1.75 - 10 * speed * DT), abs=0.15)
    assert states[crossing - 5].lateral_velocity == pytest.approx(direction * speed, abs=0.3)


def test_untracked_lane_change_from_the_offset_jump():
    estimator = EgoLaneEstimator(persistent_ids=False)
    events = []
    for k in range(60):
        ego = 0.04 * k  # crosses the boundary at 1.75 m in frame 44
        boundaries = [b - ego for b in (-1.75, 1.75, 5.25)]
        left = min(b for b in boundaries if b > 0)
        right = max(b for b in boundaries if b <= 0)
        state = estimator.update([_track(0, [left, 0, 0, 0], -1), _track(1, [right, 0, 0, 0], 1)], k * DT)
        events += [(k, state.lane_change)] if state.lane_change else []
        assert (state.left_id, state.right_id) == (NO_TRACK, NO_TRACK)  # indices are no identities
    assert events == [(44, LANE_CHANGE_LEFT)]


def test_tracking_halves_the_ego_offset_jitter():
    rng = np.random.default_rng(5)
    tracker, tracked_ego, raw_ego = LaneTracker(), EgoLaneEstimator(), EgoLaneEstimator(persistent_ids=False)
    tracked, untracked = [], []
    for k, observations in _drive(lambda k: 0.3 * math.sin(k * DT), 200, rng):
        tracked.append(tracked_ego.update(tracker.update(observations, k * DT), k * DT).lateral_offset)
        per_frame = [
            TrackedLane(i, 0, True, o.score, o.curve, COVARIANCE, i, o.score, position)
            for i, (o, position) in enumerate(zip(observations, [-2, -1, 1, 2, 3], strict=True))
        ]
        untracked.append(raw_ego.update(per_frame, k * DT).lateral_offset)
    tracked, untracked = np.array(tracked[10:]), np.array(untracked[10:])
    truth = -0.3 * np.sin(np.arange(10, 200) * DT)
    assert np.std(np.diff(tracked)) <= 0.5 * np.std(np.diff(untracked))
    assert np.sqrt(np.mean((tracked - truth) ** 2)) < np.sqrt(np.mean((untracked - truth) ** 2))
