"""TuSimple lane metric, equal to the official ``evaluate/lane.py`` (``LaneEval``) of
TuSimple/tusimple-benchmark.

Per image: each GT lane gets the threshold 20 px / cos(theta), theta the angle of a least-squares line x = k*y
+ b through its valid points; a prediction's accuracy on a GT lane is the share of all h_samples where |x_pred
- x_gt| < threshold, absent points (< 0) on either side set to -100 first, so rows where both are absent count
as correct. Each GT lane takes its best prediction (not a one-to-one matching); below 0.85 it is a miss. More
than 4 GT lanes forgive one miss and drop the lowest accuracy. Accuracy, FP and FN rates are averaged over the
images; F1 is derived from those averages as CLRNet's ``tusimple_metric.py`` does.
"""

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from clrkdnet_core.errors import DatasetError

PIXEL_THRESH = 20
PT_THRESH = 0.85
MAX_RUN_TIME_MS = 200
_ABSENT = -100


def tusimple_bench(
    pred_lanes: Sequence[Sequence[float]],
    gt_lanes: Sequence[Sequence[float]],
    h_samples: Sequence[float],
    run_time: float = 0.0,
) -> tuple[float, float, float]:
    """(accuracy, FP rate, FN rate) of one image, as the official ``LaneEval.bench``.

    Each lane is a list of x values, one per h_sample, negative where absent. Lanes of the wrong length raise
    :class:`DatasetError` ("Format of lanes error"), except where the official returns early (run time over
    200 ms or more than #GT + 2 predictions, scored accuracy 0, FP 0, FN 1).
    """
    y_samples = np.asarray(h_samples, dtype=np.float64)
    if any(len(lane) != len(y_samples) for lane in pred_lanes):
        raise DatasetError("Format of lanes error: a predicted lane does not have one x per h_sample")
    if run_time > MAX_RUN_TIME_MS or len(gt_lanes) + 2 < len(pred_lanes):
        return 0.0, 0.0, 1.0
    if any(len(lane) != len(y_samples) for lane in gt_lanes):
        raise DatasetError("Format of lanes error: a GT lane does not have one x per h_sample")
    try:
        preds = np.array(pred_lanes, dtype=np.float64).reshape(len(pred_lanes), len(y_samples))
        gts = np.array(gt_lanes, dtype=np.float64).reshape(len(gt_lanes), len(y_samples))
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"Format of lanes error: {exc}") from exc

    preds_mapped = np.where(preds >= 0, preds, _ABSENT)
    line_accs = []
    fn, matched = 0.0, 0.0
    for gt in gts:
        thresh = PIXEL_THRESH / np.cos(_lane_angle(gt, y_samples))
        gt_mapped = np.where(gt >= 0, gt, _ABSENT)
        hits = np.where(np.abs(preds_mapped - gt_mapped) < thresh, 1.0, 0.0)
        accs = hits.sum(axis=1) / len(gt)
        max_acc = accs.max() if len(accs) > 0 else 0.0
        if max_acc < PT_THRESH:
            fn += 1
        else:
            matched += 1
        line_accs.append(max_acc)
    fp = len(preds) - matched
    if len(gts) > 4 and fn > 0:
        fn -= 1
    total = 0.0
    for acc in line_accs:  # sequential sum, as the official sum()
        total += acc
    if len(gts) > 4:
        total -= min(line_accs)
    lanes_counted = max(min(4.0, len(gts)), 1.0)
    return (
        float(total / lanes_counted),
        float(fp / len(preds)) if len(preds) > 0 else 0.0,
        float(fn / lanes_counted),
    )


def evaluate_tusimple(pred_json: str | os.PathLike, gt_json: str | os.PathLike) -> dict:
    """Official TuSimple evaluation of a prediction JSON-lines file against a GT file.

    Returns ``accuracy``, ``fp``, ``fn`` (the official output), CLRNet's derived ``precision``, ``recall`` and
    ``f1`` (NaN where its formula divides by zero) and ``images``. As the official tool, it walks the
    predictions and looks each one up in the GT by ``raw_file``; both files must have as many lines, every
    prediction must name a GT image, and the sums are divided by the number of distinct GT images.
    """
    preds = _read_json_lines(pred_json, "prediction")
    gts_list = _read_json_lines(gt_json, "GT")
    if len(gts_list) != len(preds):
        raise DatasetError(
            f"We do not get the predictions of all the test tasks: {pred_json} has {len(preds)} lines, "
            f"{gt_json} has {len(gts_list)}"
        )
    for line_number, gt in enumerate(gts_list, start=1):
        missing = [key for key in ("raw_file", "lanes", "h_samples") if key not in gt]
        if missing:
            raise DatasetError(f"{gt_json} line {line_number}: missing {', '.join(missing)}")
    gts = {gt["raw_file"]: gt for gt in gts_list}
    accuracy, fp, fn = 0.0, 0.0, 0.0
    for line_number, pred in enumerate(preds, start=1):
        if not all(key in pred for key in ("raw_file", "lanes", "run_time")):
            raise DatasetError(
                f"raw_file or lanes or run_time not in some predictions ({pred_json} line {line_number})"
            )
        raw_file = pred["raw_file"]
        if raw_file not in gts:
            raise DatasetError(
                f"Some raw_file from your predictions do not exist in the test tasks: {raw_file} "
                f"({pred_json})"
            )
        gt = gts[raw_file]
        try:
            a, p, n = tusimple_bench(pred["lanes"], gt["lanes"], gt["h_samples"], pred["run_time"])
        except (DatasetError, TypeError, ValueError) as exc:
            raise DatasetError(f"Format of lanes error for {raw_file}: {exc}") from exc
        accuracy += a
        fp += p
        fn += n
    if not gts:
        raise DatasetError(f"no test images in {gt_json}")
    return summarize_tusimple(accuracy, fp, fn, len(gts))


def summarize_tusimple(accuracy_sum: float, fp_sum: float, fn_sum: float, images: int) -> dict:
    """The official result from the summed per-image rates of ``images`` images, with CLRNet's derived F1."""
    fp, fn = fp_sum / images, fn_sum / images
    return {"images": images, "accuracy": accuracy_sum / images, "fp": fp, "fn": fn, **_derived_f1(fp, fn)}


def _derived_f1(fp: float, fn: float) -> dict:
    """CLRNet's F1 from the averaged FP and FN rates: tp = 1 - FP, P = tp/(tp+FP), R = tp/(tp+FN)."""
    tp = 1 - fp
    precision = tp / (tp + fp) if tp + fp else math.nan
    recall = tp / (tp + fn) if tp + fn else math.nan
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else math.nan
    return {"precision": precision, "recall": recall, "f1": f1}


def _lane_angle(xs: np.ndarray, y_samples: np.ndarray) -> float:
    """atan of the slope of the least-squares fit x = k*y + b over the valid points (0 with fewer than 2)."""
    valid = xs >= 0
    if np.count_nonzero(valid) <= 1:
        return 0.0
    x, y = xs[valid], y_samples[valid]
    y_centered = y - y.mean()
    spread = np.dot(y_centered, y_centered)
    # A zero spread has the minimum-norm solution 0, as sklearn's lstsq gives.
    slope = np.dot(y_centered, x - x.mean()) / spread if spread else 0.0
    return float(np.arctan(slope))


def _read_json_lines(path: str | os.PathLike, kind: str) -> list[dict]:
    try:
        # Lines as the official readlines() gives them; a blank line is not JSON, there as here.
        lines = Path(path).read_text(encoding="utf-8").split("\n")
    except FileNotFoundError as exc:
        raise DatasetError(f"TuSimple {kind} file not found: {path}") from exc
    except UnicodeDecodeError as exc:
        raise DatasetError(f"TuSimple {kind} file {path} is not UTF-8 text") from exc
    if lines[-1] == "":
        lines.pop()
    records = []
    for line_number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path} line {line_number}: not a JSON object ({exc.msg})") from exc
        if not isinstance(record, dict):
            raise DatasetError(f"{path} line {line_number}: not a JSON object")
        records.append(record)
    return records
