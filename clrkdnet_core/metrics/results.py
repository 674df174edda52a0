"""The one JSON form of a lane metric result, written by every JSON output (``evaluate --json``, the bag
tools' ``report.json``): key spelling, the CULane summary and strict JSON (NaN and infinities as null).

CULane: ``tp``, ``fp``, ``fn``, ``precision``, ``recall``, ``f1`` at the first IoU threshold (``iou``);
``images``, ``missing_annotations``, ``missing_predictions``; ``f1@50``, ``f1@75``, ... for every threshold
scored; ``mf1`` (null unless all of 0.50:0.05:0.95 were scored); ``thresholds``: {"0.5": counts and scores,
"0.55": ...}. TuSimple: the flat result of :func:`~clrkdnet_core.metrics.tusimple.summarize_tusimple`.
"""

import json
import math

from clrkdnet_core.metrics.culane import MF1_THRESHOLDS, mean_f1

_COUNTS_AND_SCORES = ("tp", "fp", "fn", "precision", "recall", "f1")
_IMAGE_COUNTS = ("images", "missing_annotations", "missing_predictions")


def iou_key(threshold: float) -> str:
    """A threshold as a key of ``thresholds``: its shortest decimal, as typed on the command line ("0.5")."""
    return format(threshold, "g")


def f1_key(threshold: float) -> str:
    """The key of the F1 at an IoU threshold, named like the papers' F1@50: "f1@50", "f1@75"."""
    return f"f1@{threshold * 100:g}"


def culane_summary(result: dict) -> dict:
    """The JSON form of a CULane result (as :func:`~clrkdnet_core.metrics.culane.evaluate_culane` returns)."""
    thresholds = result["thresholds"]
    summary = {key: result[key] for key in _COUNTS_AND_SCORES}
    summary["iou"] = next(iter(thresholds))
    summary.update({key: result[key] for key in _IMAGE_COUNTS})
    summary.update({f1_key(threshold): row["f1"] for threshold, row in thresholds.items()})
    summary["mf1"] = mean_f1(result) if set(MF1_THRESHOLDS) <= set(thresholds) else None
    summary["thresholds"] = {iou_key(threshold): row for threshold, row in thresholds.items()}
    return summary


def json_safe(value):
    """``value`` with every NaN and infinity (the official metrics' undefined values) replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


def dumps(value, **options) -> str:
    """Strict JSON text of ``value`` (:func:`json_safe` first; ``options`` go to :func:`json.dumps`)."""
    return json.dumps(json_safe(value), allow_nan=False, **options)
