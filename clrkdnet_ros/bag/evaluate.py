"""``bag eval``: run a lane detector over a bag's images and score it against the bag's GT lanes.

The metric follows the frame size: TuSimple's official metric for 1280x720 frames, otherwise the official
CULane metric (frames of another size are scaled to CULane's 1640x590 first, where its 30-px line width is
defined). Both score through the one in-memory scorer (:mod:`clrkdnet_core.metrics.scorer`), so a bag made
from a dataset scores as ``evaluate model`` scores that dataset: offline, F1 is the detector's own. Latency is
the wall time of ``detector.detect`` per frame, measured in the same loop after one untimed warm-up call on
the first frame.

The detections then go through :class:`~clrkdnet_core.perception.LanePerception` as the node runs it: the
ground projection from the bag's camera_info and static transform (when it has both), prediction from its
odometry, tracking on unless turned off. Its output (track ids, the ego lane) is scored by
:mod:`clrkdnet_core.metrics.tracking` when the bag has the truth (lane ids, the ego lane's state: synthetic
drives); a second, untracked perception of the same detections gives the jitter the tracking is compared with.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy.spatial.transform import Rotation
from tqdm import tqdm

from clrkdnet_core.camera_model import CameraIntrinsics, CameraPose, GroundProjector
from clrkdnet_core.data.formats import CULANE_IMAGE_SIZE, TUSIMPLE_H_SAMPLES, TUSIMPLE_IMAGE_SIZE
from clrkdnet_core.errors import InputError
from clrkdnet_core.lane import Lane
from clrkdnet_core.metrics.results import culane_summary
from clrkdnet_core.metrics.scorer import CULaneScorer, TuSimpleScorer
from clrkdnet_core.metrics.tracking import EgoErrors, EgoValues, IdentityCounter
from clrkdnet_core.perception import LanePerception
from clrkdnet_core.timing import percentile
from clrkdnet_ros.bag.bagfile import BagFrame, LaneBag


class Detector(Protocol):
    def detect(self, image: np.ndarray) -> list[Lane]: ...


@dataclass(frozen=True)
class FrameOutput:
    """What the system said about one frame: offline the detector's lanes and the perception of them, live the
    node's ``lanes`` and ``ego_lane``.

    ``detections`` are scored for F1; ``lanes`` with their ``ids`` (Lane.id: track ids with tracking, indices
    without) and ``measured`` flags are what is published; ``ego`` has EgoLane's field names (the core's
    EgoLaneState or the message; None without a ground projection); ``untracked_ego`` is the untracked
    estimate of the same detections (offline only) and ``tracking_ms`` what the perception step cost.
    """

    detections: list[Lane]
    lanes: list[Lane]
    ids: list[int]
    measured: list[bool]
    ego: object | None = None
    untracked_ego: object | None = None
    tracking_ms: float | None = None


@dataclass
class FrameResult:
    """One row of the per-frame CSV; the metric columns are None without GT, the ego ones without an ego
    lane."""

    index: int
    stamp_ns: int
    latency_ms: float
    num_pred: int
    num_gt: int | None = None
    tp: int | None = None
    fp: int | None = None
    fn: int | None = None
    f1: float | None = None
    accuracy: float | None = None
    category: str | None = None
    track_ids: str = ""
    id_switches: int | None = None
    lateral_offset: float | None = None
    lateral_offset_untracked: float | None = None
    lateral_offset_truth: float | None = None
    heading: float | None = None
    width: float | None = None
    lane_change: int | None = None


class Scorer:
    """Scores frames one at a time against their GT and sums them up into the report's summary."""

    def __init__(self, bag: LaneBag, tracking: bool | None = True, projection: str | None = None) -> None:
        self.bag = bag
        self.rows: list[FrameResult] = []
        self.metric: str | None = None
        self.image_size: list[int] | None = None
        self._culane = CULaneScorer()
        self._tusimple = TuSimpleScorer()
        self.tracking = TrackingScorer(tracking, projection)

    def add(self, frame: BagFrame, output: FrameOutput, latency_ms: float) -> FrameResult:
        """Score one frame's ``output`` (its detections found in ``latency_ms``)."""
        lanes = output.detections
        row = FrameResult(frame.index, frame.stamp_ns, latency_ms, len(lanes), category=frame.category)
        height, width = frame.image.shape[:2]
        if self.metric is None:
            self.image_size = [width, height]
            self.metric = "tusimple" if (width, height) == TUSIMPLE_IMAGE_SIZE else "culane"
        if frame.gt_lanes is not None:
            row.num_gt = len(frame.gt_lanes)
            if self.metric == "tusimple":
                self._add_tusimple(frame, lanes, row)
            else:
                self._add_culane(frame, lanes, row)
        self.tracking.add(frame, output, (width, height), row)
        self.rows.append(row)
        return row

    def skip(self, frame: BagFrame) -> None:
        """A frame the system did not answer (a live node skips frames under load): no row, no F1, but a true
        lane change in it is due in the next scored frame."""
        self.tracking.skip(frame)

    def _add_culane(self, frame: BagFrame, lanes: list[Lane], row: FrameResult) -> None:
        height, width = frame.image.shape[:2]
        scale = np.array([CULANE_IMAGE_SIZE[0] / width, CULANE_IMAGE_SIZE[1] / height], dtype=np.float32)
        scaled = [Lane(lane.points * scale, lane.score) for lane in lanes]
        # GT as its .lines.txt lists it, bottom to top: the official spline depends on the direction.
        gt = [(lane.points * scale)[::-1] for lane in frame.gt_lanes]
        match = self._culane.add(_frame_name(frame), scaled, gt, CULANE_IMAGE_SIZE)
        row.tp, row.fp, row.fn = match.counts(0.5)
        row.f1 = f1_score(row.tp, row.fp, row.fn)

    def _add_tusimple(self, frame: BagFrame, lanes: list[Lane], row: FrameResult) -> None:
        gt_xs = [sample_at_rows(lane, TUSIMPLE_H_SAMPLES) for lane in frame.gt_lanes]
        gt_xs = [xs for xs in gt_xs if any(x >= 0 for x in xs)]
        # Run time 0 (the default): the official 200 ms rule would score every CPU frame as a miss; latency is
        # reported apart.
        name = _frame_name(frame)
        row.accuracy, _, _ = self._tusimple.add(name, lanes, gt_xs, TUSIMPLE_H_SAMPLES, TUSIMPLE_IMAGE_SIZE)

    def summary(self) -> dict:
        """Bag, topics, frame count, latency statistics and the metrics (or why they were skipped)."""
        latency = latency_stats([row.latency_ms for row in self.rows])
        summary = {
            "bag": str(self.bag.path),
            "image_topic": self.bag.image_topic,
            "gt_topic": self.bag.gt_topic,
            "image_size": self.image_size,
            "frames": len(self.rows),
            "latency_ms": latency,
            "fps": 1000.0 / latency["mean"] if self.rows else None,
            "metric": None,
            "metrics": None,
            "metrics_skipped": None,
            "per_category": None,
            "tracking": self.tracking.summary(),
        }
        if self.bag.gt_topic is None:
            summary["metrics_skipped"] = (
                "the bag has no clrkdnet_msgs/LaneArray ground-truth topic (lanes_gt)"
            )
        elif not self.rows:
            summary["metrics_skipped"] = "no frame was scored"
        elif self.metric == "tusimple":
            summary.update(metric=self.metric, metrics=self._tusimple.result())
        else:
            summary.update(
                metric=self.metric,
                metrics=culane_summary(self._culane.result()),
                per_category=self._per_category(),
            )
        return summary

    def _per_category(self) -> dict | None:
        """CULane results of the scored frames of each known category."""
        by_category: dict[str, list[str]] = {}
        for row in self.rows:
            if row.category and row.num_gt is not None:
                by_category.setdefault(row.category, []).append(_frame_name(row))
        if not by_category:
            return None
        return {name: culane_summary(self._culane.result(names)) for name, names in by_category.items()}


@dataclass(frozen=True)
class BagCamera:
    """The bag's camera as the node would see it: the ground projection from its first camera_info and its
    static transform ground <- the camera's frame (None, with the ``reason``, when it lacks either)."""

    projector: GroundProjector | None
    ground_frame: str | None = None
    camera_frame: str | None = None
    reason: str | None = None

    @property
    def pose(self) -> CameraPose | None:
        return self.projector.pose if self.projector is not None else None

    @property
    def description(self) -> str | None:
        """Where the projection comes from, in words (None without one)."""
        if self.projector is None:
            return None
        return f"camera_info and /tf_static ({self.ground_frame} <- {self.camera_frame})"


def bag_camera(bag: LaneBag) -> BagCamera:
    """The projection of ``bag``'s camera: intrinsics from its first camera_info, the pose from its static
    transforms, chained from the image's frame up to the root of their tree (the ground frame)."""
    info = bag.camera_info()
    if info is None:
        return BagCamera(None, reason="the bag has no camera_info")
    try:
        intrinsics = CameraIntrinsics.from_values(
            info.width, info.height, np.reshape(info.k, (3, 3)), info.d, info.distortion_model
        )
    except InputError as exc:
        return BagCamera(None, reason=str(exc))
    camera_frame = info.header.frame_id
    chain = static_chain(bag.static_transforms(), camera_frame)
    if chain is None:
        return BagCamera(None, camera_frame=camera_frame, reason=f"no static transform to {camera_frame}")
    ground_frame, rotation, translation = chain
    try:
        pose = CameraPose(rotation, translation)
    except InputError as exc:
        return BagCamera(None, ground_frame, camera_frame, reason=str(exc))
    return BagCamera(GroundProjector(intrinsics, pose), ground_frame, camera_frame)


def static_chain(transforms, child: str) -> tuple[str, np.ndarray, np.ndarray] | None:
    """(root frame, rotation, translation) of ``child`` in the root of its tree of ``transforms``
    (geometry_msgs/TransformStamped, parent <- child), or None when no transform names ``child``."""
    parents = {t.child_frame_id: t for t in transforms}
    if child not in parents:
        return None
    rotation, translation, frame = np.eye(3), np.zeros(3), child
    while frame in parents and len(parents) > 0:
        step = parents.pop(frame)  # popped: a cycle in a broken tree ends the walk
        q, t = step.transform.rotation, step.transform.translation
        step_rotation = Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()
        rotation, translation = step_rotation @ rotation, step_rotation @ translation + [t.x, t.y, t.z]
        frame = step.header.frame_id
    return frame, rotation, translation


class TrackingScorer:
    """The report's "tracking" block: the published lanes' ids against the GT lane ids, the ego lane against
    the truth (both when the bag has them) and, offline, what the perception step cost per frame."""

    def __init__(self, enabled: bool | None, projection: str | None) -> None:
        self.enabled = enabled
        self.projection = projection
        self.identity = IdentityCounter()
        self.ego = EgoErrors()
        self._has_ids = False
        self._has_truth = False
        self._has_ego = False
        self._tracking_ms: list[float] = []

    def add(
        self, frame: BagFrame, output: FrameOutput, image_size: tuple[int, int], row: FrameResult
    ) -> None:
        """Count one frame and fill its row's tracking columns."""
        row.track_ids = " ".join(str(track_id) for track_id in output.ids)
        if frame.gt_ids is not None and frame.gt_lanes is not None:
            self._has_ids = True
            gt = dict(zip(frame.gt_ids, frame.gt_lanes, strict=True))
            counted = self.identity.add(gt, dict(zip(output.ids, output.lanes, strict=True)), image_size)
            row.id_switches = counted.id_switches
        truth, ego, untracked = (EgoValues.of(v) for v in (frame.ego_truth, output.ego, output.untracked_ego))
        self._has_truth |= truth is not None
        self._has_ego |= ego is not None
        self.ego.add(truth, ego, untracked)
        row.lateral_offset = _offset(ego)
        row.lateral_offset_untracked = _offset(untracked)
        row.lateral_offset_truth = _offset(truth)
        if ego is not None and ego.valid:
            row.heading, row.width, row.lane_change = ego.heading, ego.width, ego.lane_change
        if output.tracking_ms is not None:
            self._tracking_ms.append(output.tracking_ms)

    def skip(self, frame: BagFrame) -> None:
        """A frame without an answer: its true lane change, if any, counts in the next scored frame."""
        self.ego.skip(EgoValues.of(frame.ego_truth))

    def summary(self) -> dict:
        """Tracking on or off, the ground projection's source, identity and ego results or why they are
        missing, the perception step's cost."""
        block: dict = {
            "enabled": self.enabled,
            "ground_projection": self.projection,
            "identity": self.identity.result() if self._has_ids else None,
            "identity_skipped": None,
            "ego": self.ego.result() if self._has_ego or self._has_truth else None,
            "ego_skipped": None,
            "ego_truth": self._has_truth,
            "tracking_ms": latency_stats(self._tracking_ms) if self._tracking_ms else None,
        }
        if block["ego"] is not None and self.enabled is False:
            # Tracking off: the one estimate is the untracked one (and there is no ratio to the untracked).
            block["ego"]["untracked"] = block["ego"].pop("tracked")
        if not self._has_ids:
            block["identity_skipped"] = (
                "the bag's GT lanes carry no true lane ids (synthetic drives written by bag make have them)"
            )
        if not self._has_ego:
            block["ego_skipped"] = f"no ego lane in any frame (ground projection: {self.projection})"
        return block


def _offset(values: EgoValues | None) -> float | None:
    return values.lateral_offset if values is not None and values.valid else None


def evaluate_bag(
    bag: LaneBag,
    detector: Detector,
    on_frame: Callable[[BagFrame, FrameOutput], None] | None = None,
    tracking: bool = True,
) -> tuple[dict, list[FrameResult]]:
    """Detect on every image of ``bag`` and perceive the lanes as the node does (``tracking`` on or off);
    returns the summary (metrics, latency, tracking) and the per-frame rows.

    ``on_frame`` sees every frame with its output (the report uses it for the overlay video).
    """
    camera = bag_camera(bag)
    perception = LanePerception(tracking=tracking)
    # The untracked estimate of the same detections, for the jitter comparison: the perception step is cheap.
    untracked = LanePerception(tracking=False) if tracking else None
    scorer = Scorer(bag, tracking, camera.description or f"none: {camera.reason}")
    for frame in tqdm(bag.frames(), total=bag.num_frames, desc="evaluating", unit="frame"):
        if frame.index == 0:
            detector.detect(frame.image)  # warm-up, untimed: lazy initialisation is not per-frame latency
        start = time.perf_counter()
        lanes = detector.detect(frame.image)
        latency_ms = (time.perf_counter() - start) * 1000.0
        output = perceive(frame, lanes, camera.projector, perception, untracked)
        scorer.add(frame, output, latency_ms)
        if on_frame is not None:
            on_frame(frame, output)
    return scorer.summary(), scorer.rows


def perceive(
    frame: BagFrame,
    lanes: list[Lane],
    projector: GroundProjector | None,
    perception: LanePerception,
    untracked: LanePerception | None = None,
) -> FrameOutput:
    """One frame through ``perception`` (timed) and, when given, the ``untracked`` reference."""
    height, width = frame.image.shape[:2]
    stamp_s = frame.stamp_ns / 1e9
    start = time.perf_counter()
    perceived = perception.update(lanes, (width, height), stamp_s, projector, frame.motion)
    tracking_ms = (time.perf_counter() - start) * 1000.0
    reference = None
    if untracked is not None:
        reference = untracked.update(lanes, (width, height), stamp_s, projector, frame.motion).ego
    return FrameOutput(
        detections=lanes,
        lanes=[lane.lane for lane in perceived.lanes],
        ids=[lane.track_id for lane in perceived.lanes],
        measured=[lane.measured for lane in perceived.lanes],
        ego=perceived.ego,
        untracked_ego=reference,
        tracking_ms=tracking_ms,
    )


def latency_stats(latencies_ms: list[float]) -> dict:
    """Mean, median, 95th percentile and maximum in milliseconds (None for no frames)."""
    if not latencies_ms:
        return {"mean": None, "p50": None, "p95": None, "max": None}
    values = np.asarray(latencies_ms)
    return {
        "mean": float(values.mean()),
        "p50": percentile(latencies_ms, 50),
        "p95": percentile(latencies_ms, 95),
        "max": float(values.max()),
    }


def _frame_name(frame: BagFrame | FrameResult) -> str:
    return f"frame_{frame.index:06d}"


def sample_at_rows(lane: Lane, rows: tuple[int, ...]) -> list[float]:
    """x of ``lane`` at each row (linear between its points); -2, TuSimple's "absent", outside its extent."""
    ys, xs = lane.points[:, 1], lane.points[:, 0]
    samples = np.interp(rows, ys, xs)
    outside = (np.asarray(rows) < ys.min()) | (np.asarray(rows) > ys.max())
    return [-2.0 if out else round(float(x), 3) for x, out in zip(samples, outside, strict=True)]


def f1_score(tp: int, fp: int, fn: int) -> float:
    """F1 of one frame's counts; NaN when the frame has neither GT nor predicted lanes."""
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else math.nan
