"""``bag eval``: run a lane detector over a bag's images and score it against the bag's GT lanes.

The metric follows the frame size: TuSimple's official metric for 1280x720 frames, otherwise the official
CULane metric (frames of another size are scaled to CULane's 1640x590 first, where its 30-px line width is
defined). Both score through the one in-memory scorer (:mod:`clrkdnet_core.metrics.scorer`), so a bag made
from a dataset scores as ``evaluate model`` scores that dataset. Latency is the wall time of
``detector.detect`` per frame, measured in the same loop after one untimed warm-up call on the first frame.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from tqdm import tqdm

from clrkdnet_core.data.formats import CULANE_IMAGE_SIZE, TUSIMPLE_H_SAMPLES, TUSIMPLE_IMAGE_SIZE
from clrkdnet_core.lane import Lane
from clrkdnet_core.metrics.results import culane_summary
from clrkdnet_core.metrics.scorer import CULaneScorer, TuSimpleScorer
from clrkdnet_core.timing import percentile
from clrkdnet_ros.bag.bagfile import BagFrame, LaneBag


class Detector(Protocol):
    def detect(self, image: np.ndarray) -> list[Lane]: ...


@dataclass
class FrameResult:
    """One row of the per-frame CSV; the metric columns are None without GT."""

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


class Scorer:
    """Scores frames one at a time against their GT and sums them up into the report's summary."""

    def __init__(self, bag: LaneBag) -> None:
        self.bag = bag
        self.rows: list[FrameResult] = []
        self.metric: str | None = None
        self.image_size: list[int] | None = None
        self._culane = CULaneScorer()
        self._tusimple = TuSimpleScorer()

    def add(self, frame: BagFrame, lanes: list[Lane], latency_ms: float) -> FrameResult:
        """Score one frame's predicted ``lanes`` (found in ``latency_ms``)."""
        row = FrameResult(frame.index, frame.stamp_ns, latency_ms, len(lanes), category=frame.category)
        if self.metric is None:
            height, width = frame.image.shape[:2]
            self.image_size = [width, height]
            self.metric = "tusimple" if (width, height) == TUSIMPLE_IMAGE_SIZE else "culane"
        if frame.gt_lanes is not None:
            row.num_gt = len(frame.gt_lanes)
            if self.metric == "tusimple":
                self._add_tusimple(frame, lanes, row)
            else:
                self._add_culane(frame, lanes, row)
        self.rows.append(row)
        return row

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


def evaluate_bag(
    bag: LaneBag, detector: Detector, on_frame: Callable[[BagFrame, list[Lane]], None] | None = None
) -> tuple[dict, list[FrameResult]]:
    """Detect on every image of ``bag``; returns the summary (metrics, latency) and the per-frame rows.

    ``on_frame`` sees every frame with its predictions (the report uses it for the overlay video).
    """
    scorer = Scorer(bag)
    for frame in tqdm(bag.frames(), total=bag.num_frames, desc="evaluating", unit="frame"):
        if frame.index == 0:
            detector.detect(frame.image)  # warm-up, untimed: lazy initialisation is not per-frame latency
        start = time.perf_counter()
        lanes = detector.detect(frame.image)
        scorer.add(frame, lanes, (time.perf_counter() - start) * 1000.0)
        if on_frame is not None:
            on_frame(frame, lanes)
    return scorer.summary(), scorer.rows


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
