"""Official CULane and TuSimple file formats for predictions (and CULane ground truth).

Predictions follow the reference implementation exactly: every lane becomes a spline x(y) over its points
normalised by the original image size (x / ori_w, y / ori_h), degree min(3, n − 1), that returns −2 outside
[min_y − 0.01, max_y + 0.01]; CULane files sample it at y = 270, 278, …, 582 px, TuSimple lines at the 56
h_samples 160, 170, …, 710. :func:`culane_prediction_lanes` and :func:`tusimple_prediction_lanes` give the
lanes exactly as those files hold them, for scoring in memory (:mod:`clrkdnet_core.metrics.scorer`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from scipy.interpolate import InterpolatedUnivariateSpline

from clrkdnet_core.data.formats import CULANE_IMAGE_SIZE, TUSIMPLE_H_SAMPLES, TUSIMPLE_IMAGE_SIZE
from clrkdnet_core.lane import Lane

CULANE_PRED_ROWS = np.arange(270, 590, 8)  # hard-coded start row of the reference, not the cut height
INVALID_X = -2.0
_CULANE_W, _CULANE_H = CULANE_IMAGE_SIZE
_TUSIMPLE_W, _TUSIMPLE_H = TUSIMPLE_IMAGE_SIZE


def lane_spline(lane: Lane, ori_w: int, ori_h: int, ys: np.ndarray) -> np.ndarray:
    """Normalised x of ``lane`` at normalised rows ``ys``; −2 outside the lane's y-range (± 0.01)."""
    points = np.asarray(lane.points, dtype=np.float64)
    x, y = points[:, 0] / ori_w, points[:, 1] / ori_h
    spline = InterpolatedUnivariateSpline(y, x, k=min(3, len(points) - 1))
    xs = spline(ys)
    xs[(ys < y.min() - 0.01) | (ys > y.max() + 0.01)] = INVALID_X
    return xs


def culane_prediction_lanes(
    lanes: Sequence[Lane], ori_w: int = _CULANE_W, ori_h: int = _CULANE_H
) -> list[np.ndarray]:
    """The lanes of a CULane ``.lines.txt`` prediction as (N, 2) float64 (x, y), bottom to top, at the file's
    5 decimals: reading the written file gives these numbers.

    Lanes with fewer than 2 points or without a point inside the image are left out, as in the reference.
    """
    ys = CULANE_PRED_ROWS / ori_h
    out = []
    for lane in lanes:
        if len(lane.points) < 2:
            continue
        xs = lane_spline(lane, ori_w, ori_h, ys)
        valid = (xs >= 0) & (xs < 1)
        if valid.any():
            points = np.stack([(xs * ori_w)[valid][::-1], (ys * ori_h)[valid][::-1]], axis=1)
            out.append(np.array([[float(f"{value:.5f}") for value in point] for point in points]))
    return out


def culane_lines_text(lanes: Sequence[Lane], ori_w: int = _CULANE_W, ori_h: int = _CULANE_H) -> str:
    """Text of a CULane ``.lines.txt`` prediction: a lane per line, "x y" pairs bottom to top, 5 decimals."""
    return "\n".join(
        " ".join(f"{x:.5f} {y:.5f}" for x, y in points)
        for points in culane_prediction_lanes(lanes, ori_w, ori_h)
    )


def culane_prediction_path(output_dir: str | Path, image_name: str) -> Path:
    """Where the prediction of list entry ``image_name`` (e.g. ``driver_37_30frame/x.MP4/00000.jpg``) goes."""
    relative = Path(image_name.lstrip("/"))
    return Path(output_dir) / relative.parent / (relative.name[:-3] + "lines.txt")


def write_culane_prediction(
    path: str | Path, lanes: Sequence[Lane], ori_w: int = _CULANE_W, ori_h: int = _CULANE_H
) -> None:
    """Write one CULane prediction file (creating folders; an image without lanes gets an empty file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(culane_lines_text(lanes, ori_w, ori_h))


def tusimple_prediction_lanes(
    lanes: Sequence[Lane], ori_w: int = _TUSIMPLE_W, ori_h: int = _TUSIMPLE_H
) -> list[list[int]]:
    """The ``lanes`` of a TuSimple prediction line: x = int(spline(y / ori_h) · ori_w) at the 56 h_samples,
    −2 where absent; lanes with fewer than 2 points are left out."""
    ys = np.asarray(TUSIMPLE_H_SAMPLES) / ori_h
    out = []
    for lane in lanes:
        if len(lane.points) < 2:
            continue
        xs = lane_spline(lane, ori_w, ori_h, ys)
        pixels = (xs * ori_w).astype(int)
        pixels[xs < 0] = -2
        out.append(pixels.tolist())
    return out


def tusimple_prediction_line(
    raw_file: str,
    lanes: Sequence[Lane],
    run_time_ms: float,
    ori_w: int = _TUSIMPLE_W,
    ori_h: int = _TUSIMPLE_H,
) -> str:
    """One JSON line of a TuSimple prediction file (:func:`tusimple_prediction_lanes` and the run time)."""
    lane_xs = tusimple_prediction_lanes(lanes, ori_w, ori_h)
    return json.dumps({"raw_file": raw_file, "lanes": lane_xs, "run_time": run_time_ms})


def write_tusimple_predictions(path: str | Path, lines: Iterable[str]) -> None:
    """Write TuSimple prediction lines (from :func:`tusimple_prediction_line`) as one JSON-lines file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def culane_annotation_text(lanes: Iterable[np.ndarray]) -> str:
    """CULane ground-truth text: per lane "x y " pairs (float x, integer y, trailing space), a line each."""
    return "".join("".join(f"{x:.3f} {round(y)} " for x, y in lane) + "\n" for lane in lanes)
