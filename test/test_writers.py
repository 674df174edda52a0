"""Official prediction formats (MODEL.md 5.4) on hand-checked lanes."""

from __future__ import annotations

import json
import math

import numpy as np

from clrkdnet_core.data.writers import (
    culane_annotation_text,
    culane_lines_text,
    culane_prediction_path,
    tusimple_prediction_line,
    write_culane_prediction,
    write_tusimple_predictions,
)
from clrkdnet_core.lane import Lane


def _lane(points) -> Lane:
    return Lane(np.array(points, dtype=np.float32), 0.9)


def test_culane_text_hand_checked():
    # x = 800 + (y − 300)·100/290 between y = 300 and 590: rows 270 + 8i from 302 (294 is more than 0.01·590
    # above the first point) to 582, written bottom to top with 5 decimals.
    text = culane_lines_text([_lane([[800, 300], [900, 590]])])
    values = text.split()
    assert values[:4] == ["897.24138", "582.00000", "894.48276", "574.00000"]
    assert values[-2:] == ["800.68966", "302.00000"]
    assert len(values) == 2 * 36
    assert "\n" not in text


def test_culane_text_drops_points_outside_and_empty_lanes():
    inside = _lane([[800, 300], [900, 590]])
    leaving = _lane([[1600, 300], [1700, 590]])  # x ≥ 1640 (normalised ≥ 1) is dropped
    outside = _lane([[1700, 300], [1800, 590]])  # nothing left: no line at all
    short = _lane([[10, 300]])
    lines = culane_lines_text([inside, outside, leaving, short]).split("\n")
    assert len(lines) == 2
    pairs = np.array(lines[1].split(), dtype=np.float64).reshape(-1, 2)
    assert np.all(pairs[:, 0] < 1640)
    # inside above y = 300 + 40·2.9 = 416 (x < 1640): rows 414 (bottom-most) up to 302
    assert pairs[0, 1] == 414 and pairs[-1, 1] == 302
    assert culane_lines_text([]) == ""


def test_culane_files(tmp_path):
    path = culane_prediction_path(tmp_path, "/driver_37_30frame/05181432_0203.MP4/00000.jpg")
    assert path == tmp_path / "driver_37_30frame/05181432_0203.MP4/00000.lines.txt"
    write_culane_prediction(path, [_lane([[800, 300], [900, 590]])])
    assert path.read_text().startswith("897.24138 582.00000 ")
    write_culane_prediction(path, [])
    assert path.read_text() == ""


def test_tusimple_line_hand_checked():
    # x = 640.5 + 0.13·(y − 200) from y = 200 to 700; valid h_samples lie within 0.01·720 = 7.2 px of it.
    line = json.loads(
        tusimple_prediction_line(
            "clips/0530/1492626760788443246_0/20.jpg", [_lane([[640.5, 200], [705.5, 700]])], 3.5
        )
    )
    assert list(line) == ["raw_file", "lanes", "run_time"]
    assert line["raw_file"] == "clips/0530/1492626760788443246_0/20.jpg" and line["run_time"] == 3.5
    (lane,) = line["lanes"]
    assert len(lane) == 56
    h = np.arange(160, 720, 10)
    expected = [math.floor(640.5 + 0.13 * (y - 200) + 1e-9) if 192.8 <= y <= 707.2 else -2 for y in h]
    assert lane == expected
    assert lane[4] == 640 and lane[14] == 653  # y = 200 → 640.5, y = 300 → 653.5 (truncated)


def test_tusimple_negative_x_becomes_minus_two(tmp_path):
    line = json.loads(tusimple_prediction_line("a.jpg", [_lane([[-101, 300], [100, 700]])], 1.0))
    (lane,) = line["lanes"]
    xs = -101 + 201 / 400 * (np.arange(160, 720, 10) - 300)  # −0.5 at y = 500, 4.525 at 510
    h = np.arange(160, 720, 10)
    valid = (h >= 300 - 7.2) & (h <= 700 + 7.2) & (xs >= 0)
    assert [x for x, v in zip(lane, valid, strict=True) if not v] == [-2] * int((~valid).sum())
    assert all(x >= 0 for x, v in zip(lane, valid, strict=True) if v)
    path = tmp_path / "out" / "tusimple_predictions.json"
    write_tusimple_predictions(path, [tusimple_prediction_line("a.jpg", [], 1.0)] * 2)
    assert [json.loads(x)["lanes"] for x in path.read_text().split("\n")] == [[], []]


def test_culane_annotation_format():
    text = culane_annotation_text([np.array([[100.25, 590], [110.5, 580]]), np.array([[5.0, 590]])])
    assert text == "100.250 590 110.500 580 \n5.000 590 \n"


def test_ground_truth_written_as_predictions_scores_perfectly(tmp_path):
    """Synthetic labels re-written as predictions score perfectly with the project's metrics."""
    from clrkdnet_core.data.culane import read_lines_file
    from clrkdnet_core.data.synthetic import generate_dataset
    from clrkdnet_core.metrics.culane import evaluate_culane
    from clrkdnet_core.metrics.tusimple import evaluate_tusimple

    root = generate_dataset(tmp_path / "culane", "culane", 4, seed=2, split=(0, 0, 1), progress=False)
    for entry in (root / "list" / "test.txt").read_text().split():
        lanes = [Lane(lane, 1.0) for lane in read_lines_file(root / (entry[1:-3] + "lines.txt"))]
        write_culane_prediction(culane_prediction_path(tmp_path / "pred", entry), lanes)
    result = evaluate_culane(root, tmp_path / "pred", root / "list" / "test.txt", progress=False)
    assert result["fn"] == result["fp"] == 0 and result["tp"] > 0

    root = generate_dataset(tmp_path / "tusimple", "tusimple", 4, seed=2, split=(0, 0, 1), progress=False)
    lines = []
    for record in map(json.loads, (root / "test_label.json").read_text().splitlines()):
        lanes = [
            Lane(np.array([(x, y) for x, y in zip(xs, record["h_samples"], strict=True) if x >= 0]), 1.0)
            for xs in record["lanes"]
        ]
        lines.append(tusimple_prediction_line(record["raw_file"], lanes, 5.0))
    write_tusimple_predictions(tmp_path / "pred.json", lines)
    result = evaluate_tusimple(tmp_path / "pred.json", root / "test_label.json")
    assert result["accuracy"] == 1.0 and result["fp"] == 0.0 and result["fn"] == 0.0
