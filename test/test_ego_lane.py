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


# --- long gaps: a node that processes only the newest frame -----------------------------------------------

GAP_FPS = 30.0


def _drive_truths(first, last, **manoeuvres):
    """The truth of frames [first, last) of the demo's drive (seed 7, 30 fps) with the given manoeuvres."""
    from clrkdnet_core.data.synthetic.drive import Drive
    from clrkdnet_core.data.synthetic.truth import drive_truth

    drive = Drive(7, 1640, 590, GAP_FPS, **manoeuvres)
    return [drive_truth(drive, index) for index in range(first, last)]


def _run_with_gap(truths, gap, odometry, seed=0):
    """Track the drive's true lanes (+ detector noise), skipping the frames ``gap`` (a range) entirely: no
    update, as a busy node. ``odometry``: "mean" (the bag's samples averaged over each interval, skipped
    frames included), "newest" (the newest sample only, as a node keeping one) or "none". Per processed frame:
    (truth, tracked lanes, ego state)."""
    from clrkdnet_core.tracking.motion import EgoMotion, mean_motion

    rng = np.random.default_rng(seed)
    tracker, estimator = LaneTracker(), EgoLaneEstimator()
    xs = np.linspace(5.0, 40.0, 30)
    out, interval = [], []
    for truth in truths:
        interval.append(EgoMotion(truth.speed, truth.yaw_rate))
        if truth.index in gap:
            continue
        motion = {"mean": mean_motion(interval), "newest": interval[-1]}.get(odometry)
        interval = []
        observations = []
        for index, lane in enumerate(truth.lanes):
            ys = lane.curve.y_at(xs) + rng.normal(0.0, 0.05) + rng.normal(0.0, 0.03, xs.size)
            observations.append(LaneObservation(GroundCurve.fit(np.stack([xs, ys], axis=1)), 0.9, index))
        lanes = tracker.update(observations, truth.time, motion)
        out.append((truth, lanes, estimator.update(lanes, truth.time)))
    return out


def _ids_by_true_lane(frames):
    """Per true lane id, the set of track ids that published it (nearest track within 0.5 m at x = 8 m)."""
    ids: dict[int, set[int]] = {}
    for truth, lanes, _ in frames:
        for lane in truth.lanes:
            y = lane.curve.y_at(8.0)
            near = [t for t in lanes if abs(t.curve.y_at(8.0) - y) < 0.5]
            if near:
                ids.setdefault(lane.id, set()).add(near[0].track_id)
    return ids


@pytest.mark.parametrize("odometry", ["mean", "newest", "none"])
def test_a_long_gap_as_a_curve_begins_keeps_the_ego_lane_and_reports_no_lane_change(odometry):
    from clrkdnet_core.data.synthetic.drive import Curve

    # The demo's curve (radius 250 m, entered at 5 s over 4 s) and 0.8 s with no processed frame from 5 s on.
    truths = _drive_truths(120, 200, curve=Curve(5.0, 1 / 250, 4.0))
    gap = range(150, 174)
    frames = _run_with_gap(truths, gap, odometry)
    after = [(truth, lanes, ego) for truth, lanes, ego in frames if truth.index >= gap.stop]
    assert all(ego.lane_change == LANE_CHANGE_NONE for _, _, ego in frames)
    for truth, _, ego in after:  # right after the gap: the true ego lane, to a few centimetres
        assert ego.valid and ego.lateral_offset == pytest.approx(truth.ego.lateral_offset, abs=0.1)
        assert ego.width == pytest.approx(truth.ego.width, abs=0.15)
    if odometry == "mean":  # the motion across the gap known: every lane keeps its track id
        assert all(len(ids) == 1 for ids in _ids_by_true_lane(frames).values())
        (before,) = [ego for truth, _, ego in frames if truth.index == gap.start - 1]
        assert (after[0][2].left_id, after[0][2].right_id) == (before.left_id, before.right_id)


@pytest.mark.parametrize("odometry", ["mean", "newest", "none"])
def test_a_long_gap_across_a_lane_change_reports_it_once(odometry):
    from clrkdnet_core.data.synthetic.drive import LaneChange

    truths = _drive_truths(60, 180, lane_change=LaneChange(3.0))
    crossing = next(truth.index for truth in truths if truth.ego.lane_change)
    gap = range(crossing - 12, crossing + 12)  # 0.8 s without output, the crossing in its middle
    frames = _run_with_gap(truths, gap, odometry)
    direction = next(truth.ego.lane_change for truth in truths if truth.ego.lane_change)
    events = [(truth.index, ego.lane_change) for truth, _, ego in frames if ego.lane_change]
    assert events == [(gap.stop, direction)]  # the first processed frame after it
    for truth, _, ego in frames[3:]:  # confirmed from the third frame on
        assert ego.lateral_offset == pytest.approx(truth.ego.lateral_offset, abs=0.15)
    if odometry == "mean":  # the boundary crossed is the same track, now on the other side
        (before,) = [ego for truth, _, ego in frames if truth.index == gap.start - 1]
        first_after = next(ego for truth, _, ego in frames if truth.index == gap.stop)
        if direction == LANE_CHANGE_LEFT:
            assert first_after.right_id == before.left_id
        else:
            assert first_after.left_id == before.right_id
        assert all(len(ids) == 1 for ids in _ids_by_true_lane(frames).values())
