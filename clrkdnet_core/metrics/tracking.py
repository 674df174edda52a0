"""Tracking metrics of a lane tracker over a drive: lane identities, the ego lane's state against the truth.

Identities (CLEAR-MOT style, per GT lane boundary): every frame, the GT lanes (with their true ids) are
matched to the predicted lanes (with their track ids) by the official CULane matcher (:func:`match_image`:
lanes drawn 30 px wide on CULane's 1640x590 canvas, Kuhn-Munkres on the IoU); a pair counts as a match when
its IoU is above 0.5, as a CULane true positive. An *ID switch* is a GT lane matched to another track id than
at its previous match; a *fragmentation* is a GT lane whose matching stops while the lane is still in the GT
and later resumes. Both are also given per 1000 GT matches, so drives of any length compare.

Ego lane (the quantities of ``clrkdnet_msgs/EgoLane``): RMSE of offset, heading, curvature and width over the
frames where the estimate and the truth are both valid *and name the same lane*; a frame where they differ by
more than half a lane width (around a lane change, the estimate switches lanes a frame early or late) is a
lane mismatch, counted apart, because one such frame would otherwise outweigh hundreds of good ones and its
timing is scored by the lane-change delay. Jitter is the RMS over consecutive valid frames of the estimate's
frame-to-frame change of the offset minus the truth's change: the noise a controller sees, with the real
motion taken out. It is computed for the tracked and for an untracked estimate of the same detections, and
their ratio over the frame pairs both have. A true lane change is reported by the first estimated change of
the same direction within :data:`LANE_CHANGE_WINDOW` frames of it; its delay is that frame minus the true
frame. Frames are those the system answered: a live node processes only the newest frame, and a true lane
change in a frame it skipped (:meth:`EgoErrors.skip`) is due in the next answered frame (otherwise the event
would vanish from the scored frames and a correct report count as one false report plus one missed change).

Pure numpy: the bag tools, the benchmark and the tests feed it frame by frame.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from clrkdnet_core.data.formats import CULANE_IMAGE_SIZE
from clrkdnet_core.lane import Lane
from clrkdnet_core.metrics.culane import match_image

IOU_THRESHOLD = 0.5
# How far (frames) from a true lane change an estimated one still counts as reporting it.
LANE_CHANGE_WINDOW = 30
# Lane width assumed for the lane-mismatch test when the truth has none.
_DEFAULT_WIDTH_M = 3.5

LanePoints = np.ndarray | Lane


@dataclass(frozen=True)
class EgoValues:
    """One frame's ego lane state, estimated or true (field names as ``clrkdnet_msgs/EgoLane``)."""

    valid: bool
    lateral_offset: float = math.nan
    heading: float = math.nan
    curvature: float = math.nan
    width: float = math.nan
    # LANE_CHANGE_* of EgoLane: +1 left, -1 right, 0 none, in the frame the change happens.
    lane_change: int = 0

    @classmethod
    def of(cls, state) -> "EgoValues | None":
        """The values of anything with EgoLane's field names (the core's EgoLaneState, an EgoLane message, the
        synthetic truth); None stays None."""
        if state is None:
            return None
        return cls(
            valid=bool(state.valid),
            lateral_offset=float(state.lateral_offset),
            heading=float(state.heading),
            curvature=float(state.curvature),
            width=float(state.width),
            lane_change=int(getattr(state, "lane_change", 0)),
        )


@dataclass(frozen=True)
class FrameIdentity:
    """What one frame added to the identity counts."""

    gt_lanes: int
    matches: int
    id_switches: int
    fragmentations: int


class IdentityCounter:
    """ID switches and fragmentations of GT lanes, frame by frame."""

    def __init__(self, iou_threshold: float = IOU_THRESHOLD) -> None:
        self.iou_threshold = iou_threshold
        self.frames = 0
        self.gt_lanes = 0
        self.matches = 0
        self.id_switches = 0
        self.fragmentations = 0
        self._last_track: dict[int, int] = {}  # GT id -> track id of its last match
        self._interrupted: set[int] = set()  # GT ids present but unmatched since their last match

    def add(
        self,
        gt: Mapping[int, LanePoints],
        predicted: Mapping[int, LanePoints],
        image_size: tuple[int, int],
    ) -> FrameIdentity:
        """Count one frame: ``gt`` maps true lane ids and ``predicted`` track ids to (N, 2) x, y pixel points
        (or Lanes) of an image of ``image_size`` (width, height)."""
        gt_ids, track_ids = list(gt), list(predicted)
        match = match_image(
            [_culane_points(predicted[i], image_size) for i in track_ids],
            [_culane_points(gt[i], image_size) for i in gt_ids],
        )
        switches = fragmentations = matches = 0
        for gt_id, iou, partner in zip(gt_ids, match.matched_iou, match.partners, strict=True):
            if not iou > self.iou_threshold:  # NaN (no partner) included
                if gt_id in self._last_track:
                    self._interrupted.add(gt_id)
                continue
            matches += 1
            track = track_ids[partner]
            if gt_id in self._interrupted:
                fragmentations += 1
                self._interrupted.discard(gt_id)
            if self._last_track.get(gt_id, track) != track:
                switches += 1
            self._last_track[gt_id] = track
        # A GT lane that left the GT is not interrupted: its next appearance is a new stretch.
        self._interrupted &= set(gt_ids)
        self.frames += 1
        self.gt_lanes += len(gt_ids)
        self.matches += matches
        self.id_switches += switches
        self.fragmentations += fragmentations
        return FrameIdentity(len(gt_ids), matches, switches, fragmentations)

    def result(self) -> dict:
        """Counts, and switches and fragmentations per 1000 GT matches (None without matches)."""
        per_1000 = 1000.0 / self.matches if self.matches else None
        return {
            "frames": self.frames,
            "gt_lanes": self.gt_lanes,
            "gt_matches": self.matches,
            "match_rate": self.matches / self.gt_lanes if self.gt_lanes else None,
            "id_switches": self.id_switches,
            "fragmentations": self.fragmentations,
            "id_switches_per_1000_matches": self.id_switches * per_1000 if per_1000 else None,
            "fragmentations_per_1000_matches": self.fragmentations * per_1000 if per_1000 else None,
        }


class EgoErrors:
    """Errors, jitter and lane-change delays of ego lane estimates against the truth, frame by frame."""

    def __init__(self) -> None:
        self.truth: list[EgoValues | None] = []
        self.estimates: dict[str, list[EgoValues | None]] = {"tracked": [], "untracked": []}
        self._pending_change = 0  # a true lane change in a skipped frame, due in the next added one

    def skip(self, truth: EgoValues | None) -> None:
        """A frame the system never answered (a node under load skips frames): not scored, but a true lane
        change in it counts in the next frame :meth:`add` gets with a valid truth."""
        if truth is not None and truth.lane_change and not self._pending_change:
            self._pending_change = truth.lane_change

    def add(
        self,
        truth: EgoValues | None,
        tracked: EgoValues | None,
        untracked: EgoValues | None = None,
    ) -> EgoValues | None:
        """One frame's truth and estimates (None or ``valid`` False: unknown in this frame); returns the truth
        as scored (with a lane change carried from skipped frames)."""
        truth = self._carry_lane_change(truth)
        self.truth.append(truth)
        self.estimates["tracked"].append(tracked)
        self.estimates["untracked"].append(untracked)
        return truth

    def _carry_lane_change(self, truth: EgoValues | None) -> EgoValues | None:
        pending = self._pending_change
        if not pending or truth is None or not truth.valid:
            return truth  # an unknown truth scores no event: the pending one waits for a known frame
        self._pending_change = 0
        # A change of the frame's own wins (two changes in one gap are one event to a node that skipped it).
        return truth if truth.lane_change else replace(truth, lane_change=pending)

    def result(self) -> dict:
        """Per estimate (tracked, untracked when given): RMSEs, lane mismatches, jitter; the jitter ratio and
        the lane-change delays of the tracked estimate."""
        truth = _table(self.truth)
        out: dict = {"frames": len(self.truth), "truth_frames": int(truth["valid"].sum())}
        tables = {name: _table(values) for name, values in self.estimates.items()}
        for name, table in tables.items():
            if name == "untracked" and not table["valid"].any():
                out[name] = None
                continue
            out[name] = _errors(table, truth)
        out["jitter_ratio"] = _jitter_ratio(tables["tracked"], tables["untracked"], truth)
        out["lane_change"] = _lane_changes(truth["lane_change"], tables["tracked"]["lane_change"])
        return out


def _culane_points(points: LanePoints, image_size: tuple[int, int]) -> np.ndarray:
    """(N, 2) points scaled to CULane's canvas, bottom to top as its files list them (the spline depends on
    the direction)."""
    points = np.asarray(getattr(points, "points", points), dtype=np.float32).reshape(-1, 2)
    scale = np.array([CULANE_IMAGE_SIZE[0] / image_size[0], CULANE_IMAGE_SIZE[1] / image_size[1]], np.float32)
    points = points * scale
    return points[::-1] if len(points) > 1 and points[0, 1] < points[-1, 1] else points


_FIELDS = ("lateral_offset", "heading", "curvature", "width")


def _table(values: list[EgoValues | None]) -> dict[str, np.ndarray]:
    """Columns of a sequence of states: NaN floats where unknown, ``valid`` only where the offset is known."""
    known = [value if value is not None and value.valid else None for value in values]
    table = {
        field: np.array([math.nan if v is None else getattr(v, field) for v in known], dtype=float)
        for field in _FIELDS
    }
    table["valid"] = np.isfinite(table["lateral_offset"])
    table["lane_change"] = np.array([0 if v is None else v.lane_change for v in known], dtype=int)
    return table


def _same_lane(estimate: dict, truth: dict) -> np.ndarray:
    """Frames where both are valid and the estimate names the true lane (offsets within half a width)."""
    width = np.where(np.isfinite(truth["width"]), truth["width"], _DEFAULT_WIDTH_M)
    both = estimate["valid"] & truth["valid"]
    gap = np.nan_to_num(estimate["lateral_offset"] - truth["lateral_offset"], nan=np.inf)
    close = np.abs(gap) < width / 2
    return both & close


def _rmse(errors: np.ndarray) -> float | None:
    errors = errors[np.isfinite(errors)]
    return float(np.sqrt(np.mean(errors**2))) if errors.size else None


def _errors(estimate: dict, truth: dict) -> dict:
    """RMSEs over same-lane frames, coverage and mismatches, and the offset jitter of one estimate."""
    same = _same_lane(estimate, truth)
    both = estimate["valid"] & truth["valid"]
    heading = _rmse(estimate["heading"][same] - truth["heading"][same])
    return {
        "frames_valid": int(estimate["valid"].sum()),
        # Of the frames with a true ego lane, the share the estimate covers (predicted frames included).
        "coverage": float(both.sum() / truth["valid"].sum()) if truth["valid"].any() else None,
        "frames_scored": int(same.sum()),
        "lane_mismatch_frames": int((both & ~same).sum()),
        "lateral_offset_rmse_m": _rmse(estimate["lateral_offset"][same] - truth["lateral_offset"][same]),
        "heading_rmse_deg": None if heading is None else math.degrees(heading),
        "curvature_rmse_per_m": _rmse(estimate["curvature"][same] - truth["curvature"][same]),
        "width_rmse_m": _rmse(estimate["width"][same] - truth["width"][same]),
        "lateral_offset_jitter_m": _rmse(_jitter_terms(estimate, truth, same)),
    }


def _jitter_terms(estimate: dict, truth: dict, same: np.ndarray) -> np.ndarray:
    """Per consecutive pair of scored frames: the estimate's offset change minus the truth's (else NaN)."""
    pairs = same[1:] & same[:-1]
    change = np.diff(estimate["lateral_offset"]) - np.diff(truth["lateral_offset"])
    return np.where(pairs, change, np.nan)


def _jitter_ratio(tracked: dict, untracked: dict, truth: dict) -> float | None:
    """Tracked jitter / untracked jitter over the frame pairs both have (None without such pairs)."""
    if not untracked["valid"].any():
        return None
    same = _same_lane(tracked, truth) & _same_lane(untracked, truth)
    tracked_jitter = _rmse(_jitter_terms(tracked, truth, same))
    untracked_jitter = _rmse(_jitter_terms(untracked, truth, same))
    if tracked_jitter is None or not untracked_jitter:
        return None
    return tracked_jitter / untracked_jitter


def _lane_changes(true_events: np.ndarray, estimated_events: np.ndarray) -> dict:
    """Each true lane change paired with the nearest unused estimated change of its direction within the
    window; delays in frames (positive: reported late), misses and unpaired (false) reports."""
    used: set[int] = set()
    delays = []
    missed = 0
    reported = np.flatnonzero(estimated_events)
    for frame in np.flatnonzero(true_events):
        candidates = [
            int(r)
            for r in reported
            if r not in used
            and estimated_events[r] == true_events[frame]
            and abs(int(r) - int(frame)) <= LANE_CHANGE_WINDOW
        ]
        if not candidates:
            missed += 1
            continue
        best = min(candidates, key=lambda r: abs(r - int(frame)))
        used.add(best)
        delays.append(best - int(frame))
    return {
        "true": int(np.count_nonzero(true_events)),
        "reported": int(reported.size),
        "delays_frames": delays,
        "max_abs_delay_frames": max((abs(d) for d in delays), default=None),
        "missed": missed,
        "false_reports": int(reported.size) - len(used),
    }
