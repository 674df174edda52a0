"""``bag eval``: run a lane detector over a bag's images and score it against the bag's GT lanes.

The metric follows the frame size: TuSimple's official metric for 1280x720 frames, otherwise the official
CULane metric (frames of another size are scaled to CULane's 1640x590 first, where its 30-px line width is
defined). Latency is the wall time of ``detector.detect`` per frame, measured in the same loop after one
untimed warm-up call on the first frame.
"""

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from tqdm import tqdm

from clrkdnet_core.lane import Lane
from clrkdnet_core.metrics.culane import (
    CULANE_COLS,
    CULANE_ROWS,
    MF1_THRESHOLDS,
    ImageMatch,
    match_image,
    summarize_counts,
)
from clrkdnet_core.metrics.tusimple import evaluate_tusimple, tusimple_bench
from clrkdnet_core.timing import percentile
from clrkdnet_ros.bag.bagfile import BagFrame, LaneBag

TUSIMPLE_SIZE = (1280, 720)
# TuSimple's test rows; GT and predictions are sampled there (x = -2 where a lane does not reach a row).
TUSIMPLE_H_SAMPLES = tuple(range(160, 720, 10))


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

    def __init__(self, bag: LaneBag, out_dir: Path) -> None:
        self.bag = bag
        self.out_dir = Path(out_dir)
        self.rows: list[FrameResult] = []
        self.metric: str | None = None
        self.image_size: list[int] | None = None
        self._matches: list[ImageMatch] = []
        self._tusimple_lines: list[tuple[dict, dict]] = []

    def add(self, frame: BagFrame, lanes: list[Lane], latency_ms: float) -> FrameResult:
        """Score one frame's predicted ``lanes`` (found in ``latency_ms``)."""
        row = FrameResult(frame.index, frame.stamp_ns, latency_ms, len(lanes), category=frame.category)
        if self.metric is None:
            height, width = frame.image.shape[:2]
            self.image_size = [width, height]
            self.metric = "tusimple" if (width, height) == TUSIMPLE_SIZE else "culane"
        if frame.gt_lanes is not None:
            row.num_gt = len(frame.gt_lanes)
            if self.metric == "tusimple":
                self._tusimple_lines.append(_tusimple_frame(frame, lanes, row))
            else:
                self._matches.append(_culane_frame(frame, lanes, row))
        self.rows.append(row)
        return row

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
            summary.update(metric=self.metric, metrics=_tusimple_summary(self._tusimple_lines, self.out_dir))
        else:
            scored = [row for row in self.rows if row.num_gt is not None]
            summary.update(
                metric=self.metric,
                metrics=_culane_summary(self._matches),
                per_category=_per_category(scored, self._matches),
            )
        return summary


def evaluate_bag(
    bag: LaneBag,
    detector: Detector,
    out_dir: Path,
    on_frame: Callable[[BagFrame, list[Lane]], None] | None = None,
) -> tuple[dict, list[FrameResult]]:
    """Detect on every image of ``bag``; returns the summary (metrics, latency) and the per-frame rows.

    ``out_dir`` receives the official-format files the TuSimple metric reads. ``on_frame`` sees every frame
    with its predictions (the report uses it for the overlay video).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scorer = Scorer(bag, out_dir)
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


def _culane_frame(frame: BagFrame, lanes: list[Lane], row: FrameResult) -> ImageMatch:
    height, width = frame.image.shape[:2]
    scale = np.array([CULANE_COLS / width, CULANE_ROWS / height], dtype=np.float32)
    match = match_image(
        [lane.points * scale for lane in lanes], [lane.points * scale for lane in frame.gt_lanes]
    )
    row.tp, row.fp, row.fn = match.counts(0.5)
    row.f1 = f1_score(row.tp, row.fp, row.fn)
    return match


def _culane_summary(matches: list[ImageMatch]) -> dict:
    thresholds = {}
    for threshold in MF1_THRESHOLDS:
        tp, fp, fn = (
            np.sum([m.counts(threshold) for m in matches], axis=0, dtype=int) if matches else (0, 0, 0)
        )
        thresholds[f"{threshold:.2f}"] = summarize_counts(int(tp), int(fp), int(fn))
    f1s = [thresholds[f"{t:.2f}"]["f1"] for t in MF1_THRESHOLDS]
    return {
        **thresholds["0.50"],
        "f1@50": thresholds["0.50"]["f1"],
        "f1@75": thresholds["0.75"]["f1"],
        "mf1": float(np.mean(f1s)),
        "thresholds": thresholds,
    }


def _per_category(scored: list[FrameResult], matches: list[ImageMatch]) -> dict | None:
    """CULane results per category (summed counts at IoU 0.5) for frames whose category is known."""
    by_category: dict[str, list] = {}
    for row, match in zip(scored, matches, strict=True):
        if row.category:
            by_category.setdefault(row.category, []).append(match)
    if not by_category:
        return None
    result = {}
    for name, category_matches in by_category.items():
        tp, fp, fn = np.sum([m.counts(0.5) for m in category_matches], axis=0, dtype=int)
        result[name] = {**summarize_counts(int(tp), int(fp), int(fn)), "images": len(category_matches)}
    return result


def _tusimple_frame(frame: BagFrame, lanes: list[Lane], row: FrameResult) -> tuple[dict, dict]:
    name = f"frame_{frame.index:06d}"
    gt_xs = [sample_at_rows(lane, TUSIMPLE_H_SAMPLES) for lane in frame.gt_lanes]
    gt_xs = [xs for xs in gt_xs if any(x >= 0 for x in xs)]
    pred_xs = [sample_at_rows(lane, TUSIMPLE_H_SAMPLES) for lane in lanes]
    # run_time 0: the official 200 ms rule would score every CPU frame as a miss; latency is reported apart.
    row.accuracy, _, _ = tusimple_bench(pred_xs, gt_xs, TUSIMPLE_H_SAMPLES, run_time=0.0)
    gt = {"raw_file": name, "lanes": gt_xs, "h_samples": list(TUSIMPLE_H_SAMPLES)}
    pred = {"raw_file": name, "lanes": pred_xs, "run_time": 0}
    return pred, gt


def _tusimple_summary(lines: list[tuple[dict, dict]], out_dir: Path) -> dict:
    pred_path, gt_path = out_dir / "tusimple_pred.json", out_dir / "tusimple_gt.json"
    pred_path.write_text("".join(json.dumps(pred) + "\n" for pred, _ in lines))
    gt_path.write_text("".join(json.dumps(gt) + "\n" for _, gt in lines))
    return evaluate_tusimple(pred_path, gt_path)


def sample_at_rows(lane: Lane, rows: tuple[int, ...]) -> list[float]:
    """x of ``lane`` at each row (linear between its points); -2, TuSimple's "absent", outside its extent."""
    ys, xs = lane.points[:, 1], lane.points[:, 0]
    samples = np.interp(rows, ys, xs)
    outside = (np.asarray(rows) < ys.min()) | (np.asarray(rows) > ys.max())
    return [-2.0 if out else round(float(x), 3) for x, out in zip(samples, outside, strict=True)]


def f1_score(tp: int, fp: int, fn: int) -> float:
    """F1 of one frame's counts; NaN when the frame has neither GT nor predicted lanes."""
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else math.nan
