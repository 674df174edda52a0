"""Tracking metrics on constructed sequences: ID switches, fragmentations, ego errors, jitter, lane change."""

import math

import numpy as np
import pytest

from clrkdnet_core.lane import Lane
from clrkdnet_core.metrics.tracking import (
    LANE_CHANGE_WINDOW,
    EgoErrors,
    EgoValues,
    IdentityCounter,
)

SIZE = (820, 295)


def lane(bottom_x: float) -> np.ndarray:
    """A straight lane from the bottom row towards the middle of the image, (N, 2) x, y top to bottom."""
    ys = np.linspace(120, SIZE[1] - 1, 12, dtype=np.float32)
    xs = bottom_x + (ys - (SIZE[1] - 1)) * (bottom_x - 410) / 300
    return np.stack([xs, ys], axis=1)


LEFT, RIGHT, FAR = lane(200), lane(620), lane(40)


def count(frames: list[tuple[dict, dict]]) -> dict:
    counter = IdentityCounter()
    for gt, predicted in frames:
        counter.add(gt, predicted, SIZE)
    return counter.result()


def test_stable_tracks_have_no_switch_or_fragmentation():
    result = count([({1: LEFT, 2: RIGHT}, {7: LEFT, 9: Lane(RIGHT, 0.9)})] * 5)
    assert result["gt_matches"] == 10 and result["gt_lanes"] == 10 and result["match_rate"] == 1.0
    assert result["id_switches"] == 0 and result["fragmentations"] == 0
    assert result["id_switches_per_1000_matches"] == 0.0


def test_index_ids_switch_when_a_lane_is_missed():
    """Untracked ids are indices: missing the left lane renumbers the right one (1 switch; 1 fragmentation of
    the left lane, which resumes; the right lane switches back when the left returns)."""
    frames = [
        ({1: LEFT, 2: RIGHT}, {0: LEFT, 1: RIGHT}),
        ({1: LEFT, 2: RIGHT}, {0: RIGHT}),
        ({1: LEFT, 2: RIGHT}, {0: LEFT, 1: RIGHT}),
    ]
    result = count(frames)
    assert result["gt_matches"] == 5
    assert result["id_switches"] == 2
    assert result["fragmentations"] == 1
    assert result["id_switches_per_1000_matches"] == pytest.approx(400.0)
    assert result["fragmentations_per_1000_matches"] == pytest.approx(200.0)


def test_a_track_bridging_a_missed_frame_counts_nothing_and_a_far_prediction_is_no_match():
    frames = [
        ({1: LEFT}, {3: LEFT}),
        ({1: LEFT}, {3: LEFT}),  # predicted through the miss: still the same id
        ({1: LEFT}, {3: FAR}),  # a prediction elsewhere: no match (IoU 0), the GT lane is interrupted
        ({1: LEFT}, {3: LEFT}),
    ]
    result = count(frames)
    assert result["gt_matches"] == 3
    assert result["id_switches"] == 0 and result["fragmentations"] == 1


def test_a_lane_leaving_the_ground_truth_is_not_a_fragmentation():
    frames = [({1: LEFT, 2: RIGHT}, {5: LEFT, 6: RIGHT}), ({2: RIGHT}, {6: RIGHT}), ({1: LEFT}, {5: LEFT})]
    result = count(frames)
    assert result["fragmentations"] == 0 and result["id_switches"] == 0


def test_a_new_track_id_on_the_same_lane_is_one_switch():
    result = count([({1: LEFT}, {5: LEFT}), ({1: LEFT}, {8: LEFT}), ({1: LEFT}, {8: LEFT})])
    assert result["id_switches"] == 1


def test_identity_scaling_and_empty_frames():
    """Frames of another size are matched on CULane's canvas; empty frames count no match."""
    counter = IdentityCounter()
    big = (1640, 590)
    frame = counter.add({1: LEFT * 2}, {4: LEFT * 2}, big)
    assert frame.matches == 1
    assert counter.add({}, {}, big).matches == 0
    assert counter.add({1: LEFT * 2}, {}, big).matches == 0
    assert IdentityCounter().result()["id_switches_per_1000_matches"] is None


def ego(offset, heading=0.0, curvature=0.0, width=3.5, change=0, valid=True) -> EgoValues:
    return EgoValues(valid, offset, heading, curvature, width, change)


def drive(frames: int = 60, change_at: int = 30) -> list[EgoValues]:
    """A truth drifting left 2 cm a frame and changing into the left lane at ``change_at``."""
    truth = []
    for t in range(frames):
        offset = 1.0 - 0.02 * t if t < change_at else 1.0 - 0.02 * t + 3.5
        truth.append(ego(offset, heading=0.01, curvature=1e-3, change=int(t == change_at)))
    return truth


def test_ego_rmse_jitter_and_lane_change_delay():
    rng = np.random.default_rng(0)
    truth = drive()
    errors = EgoErrors()
    for t, true in enumerate(truth):
        noise = rng.normal(0, 0.05)
        # The tracked estimate is smoother (a tenth of the noise) and reports the change 2 frames late; on the
        # 2 frames in between it still names the old lane (offsets a lane width off).
        late = 30 <= t < 32
        tracked_offset = true.lateral_offset - (3.5 if late else 0.0) + 0.1 * noise
        tracked = ego(tracked_offset, 0.01 + math.radians(0.2), 1e-3, 3.6, change=int(t == 32))
        untracked = ego(true.lateral_offset + noise, 0.01, 1e-3, 3.5) if t % 10 else ego(0, valid=False)
        errors.add(true, tracked, untracked)
    result = errors.result()
    tracked = result["tracked"]
    assert result["frames"] == 60 and result["truth_frames"] == 60
    assert tracked["lane_mismatch_frames"] == 2 and tracked["frames_scored"] == 58
    assert tracked["coverage"] == 1.0
    assert tracked["lateral_offset_rmse_m"] == pytest.approx(0.005, abs=0.003)
    assert tracked["heading_rmse_deg"] == pytest.approx(0.2)
    assert tracked["width_rmse_m"] == pytest.approx(0.1)
    assert tracked["curvature_rmse_per_m"] == pytest.approx(0.0)
    untracked = result["untracked"]
    assert untracked["coverage"] == pytest.approx(54 / 60)
    assert untracked["lateral_offset_jitter_m"] == pytest.approx(0.05 * math.sqrt(2), rel=0.35)
    assert result["jitter_ratio"] == pytest.approx(0.1, rel=0.05)
    assert result["lane_change"] == {
        "true": 1,
        "reported": 1,
        "delays_frames": [2],
        "max_abs_delay_frames": 2,
        "missed": 0,
        "false_reports": 0,
    }


def test_lane_change_missed_wrong_direction_and_false_reports():
    truth = drive(frames=100, change_at=10)
    errors = EgoErrors()
    for t, true in enumerate(truth):
        # A change to the right near the true (left) one, and a left one far beyond the window.
        change = -1 if t == 11 else (1 if t == 10 + LANE_CHANGE_WINDOW + 5 else 0)
        errors.add(true, ego(true.lateral_offset, change=change))
    result = errors.result()["lane_change"]
    assert result["missed"] == 1 and result["false_reports"] == 2 and result["delays_frames"] == []
    assert result["max_abs_delay_frames"] is None


def _live(truth: list[EgoValues], skipped: set[int], carry: bool) -> dict:
    """A node that answers only the frames not in ``skipped`` and reports the change in its first answer after
    it (the offset's jump, a lane width, shows there). ``carry``: skipped frames go to EgoErrors.skip."""
    errors = EgoErrors()
    reported = False
    for t, true in enumerate(truth):
        if t in skipped:
            if carry:
                errors.skip(true)
            continue
        change = int(t >= 30 and not reported)
        reported |= bool(change)
        scored = errors.add(true, ego(true.lateral_offset, change=change))
        assert scored.lane_change == (change if carry else 0)  # the truth as scored
    return errors.result()["lane_change"]


def test_a_lane_change_in_a_skipped_frame_counts_in_the_next_answered_frame():
    """The true change (frame 30) falls in frames a busy node never answered (28-33): reported in its next
    answer, frame 34, it is one change with no delay, not one false report plus one missed change."""
    truth = drive()
    skipped = set(range(28, 34))
    assert _live(truth, skipped, carry=True) == {
        "true": 1,
        "reported": 1,
        "delays_frames": [0],
        "max_abs_delay_frames": 0,
        "missed": 0,
        "false_reports": 0,
    }
    uncarried = _live(truth, skipped, carry=False)
    assert (uncarried["true"], uncarried["missed"], uncarried["false_reports"]) == (0, 0, 1)


def test_a_carried_lane_change_waits_for_a_known_truth_and_a_frames_own_change_wins():
    errors = EgoErrors()
    errors.skip(ego(0.0, change=1))
    errors.skip(ego(0.0, change=-1))  # two changes in one gap: the first is carried
    assert errors.add(ego(0.0, valid=False), ego(0.0)).lane_change == 0  # unknown truth: still pending
    assert errors.add(None, ego(0.0)) is None
    assert errors.add(ego(0.1), ego(0.1)).lane_change == 1
    assert errors.add(ego(0.2), ego(0.2)).lane_change == 0  # carried once
    errors.skip(ego(0.3, change=1))
    assert errors.add(ego(0.4, change=-1), ego(0.4)).lane_change == -1
    assert errors.add(ego(0.5), ego(0.5)).lane_change == 0
    errors.skip(None)
    errors.skip(ego(0.6, valid=False))
    assert errors.result()["lane_change"]["true"] == 2


def test_the_bag_scorer_carries_a_skipped_frames_lane_change():
    """bag replay's scorer: a frame the node dropped (Scorer.skip) passes its lane change on."""
    from types import SimpleNamespace

    from clrkdnet_ros.bag.evaluate import FrameOutput, FrameResult, TrackingScorer

    scorer = TrackingScorer(enabled=True, projection="test")
    truth = drive(frames=4, change_at=1)
    outputs = [
        FrameOutput([], [], [], [], ego=ego(t.lateral_offset, change=int(i == 2)))
        for i, t in enumerate(truth)
    ]
    for index, (true, output) in enumerate(zip(truth, outputs, strict=True)):
        frame = SimpleNamespace(ego_truth=true, gt_ids=None, gt_lanes=None)
        if index == 1:
            scorer.skip(frame)
        else:
            scorer.add(frame, output, SIZE, FrameResult(index, index, 0.0, 0))
    changes = scorer.summary()["ego"]["lane_change"]
    assert (changes["true"], changes["delays_frames"], changes["false_reports"]) == (1, [0], 0)


def test_ego_without_estimates_or_truth():
    errors = EgoErrors()
    errors.add(None, None, None)
    errors.add(ego(0.0, valid=False), ego(0.1), None)
    result = errors.result()
    assert result["truth_frames"] == 0 and result["untracked"] is None and result["jitter_ratio"] is None
    assert result["tracked"]["frames_valid"] == 1 and result["tracked"]["coverage"] is None
    assert result["tracked"]["lateral_offset_rmse_m"] is None


def test_ego_values_read_any_object_with_egolane_names():
    class State:
        valid, lateral_offset, heading, curvature, width, lane_change = True, 0.2, 0.01, 0.0, 3.4, -1

    assert EgoValues.of(State()) == EgoValues(True, 0.2, 0.01, 0.0, 3.4, -1)
    assert EgoValues.of(None) is None


def test_the_tracking_benchmark_runs_a_short_drive_end_to_end(tmp_path):
    """benchmarks.tracking on 12 frames: its block has the goal table, the tracked/untracked table and the
    command; BENCHMARKS.md's other blocks are kept."""
    from benchmarks import tracking

    out = tmp_path / "BENCHMARKS.md"
    out.write_text("# Benchmarks\n\n<!-- other:begin -->\nkept\n<!-- other:end -->\n")
    assert tracking.main(["--frames", "12", "--out", str(out), "--work", str(tmp_path / "work")]) == 0
    text = out.read_text()
    assert "<!-- other:begin -->\nkept\n<!-- other:end -->" in text
    assert "<!-- tracking:begin -->\n## Tracking" in text
    assert "python -m benchmarks.tracking --frames 12" in text
    for goal in ("ID switches per 1000 GT matches", "ego lateral offset RMSE", "lane change reported within"):
        assert f"| {goal} |" in text
    assert "| GT lane matches / GT lanes |" in text and "the detections of 1 frames (10%, fixed)" in text
