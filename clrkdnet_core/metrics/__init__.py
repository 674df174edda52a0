"""Lane detection metrics equal to the official evaluators: CULane (SCNN C++ tool) and TuSimple
(``lane.py``)."""

from clrkdnet_core.metrics.culane import (
    MF1_THRESHOLDS,
    ImageMatch,
    culane_counts,
    evaluate_culane,
    evaluate_culane_categories,
    evaluate_culane_lists,
    match_image,
    mean_f1,
    read_lane_file,
    sum_results,
)
from clrkdnet_core.metrics.tusimple import evaluate_tusimple, tusimple_bench

__all__ = [
    "MF1_THRESHOLDS",
    "ImageMatch",
    "culane_counts",
    "evaluate_culane",
    "evaluate_culane_categories",
    "evaluate_culane_lists",
    "evaluate_tusimple",
    "match_image",
    "mean_f1",
    "read_lane_file",
    "sum_results",
    "tusimple_bench",
]
