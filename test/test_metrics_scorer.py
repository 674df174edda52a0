"""The in-memory scorer equals the official metrics on the files the writers write, and its one JSON form."""

import json
import math

import numpy as np
import pytest

from clrkdnet_core.data.formats import TUSIMPLE_H_SAMPLES
from clrkdnet_core.data.writers import (
    culane_annotation_text,
    culane_prediction_lanes,
    culane_prediction_path,
    tusimple_prediction_line,
    write_culane_prediction,
    write_tusimple_predictions,
)
from clrkdnet_core.errors import DatasetError
from clrkdnet_core.lane import Lane
from clrkdnet_core.metrics.culane import MF1_THRESHOLDS, evaluate_culane, lane_file_path, read_lane_file
from clrkdnet_core.metrics.results import culane_summary, dumps, f1_key, iou_key
from clrkdnet_core.metrics.scorer import CULaneScorer, TuSimpleScorer
from clrkdnet_core.metrics.tusimple import evaluate_tusimple

ENTRIES = [f"/driver/clip/{index:05d}.jpg" for index in range(4)]


def gt_lane(bottom_x: float, bend: float) -> np.ndarray:
    """A CULane GT lane as its file lists it: float x, integer y, bottom (590) to top."""
    ys = 590.0 - 10.0 * np.arange(30)
    return np.stack([bottom_x + 0.8 * (590 - ys) + bend * (590 - ys) ** 2, ys], axis=1)


def detections(gt: list[np.ndarray], rng: np.random.Generator) -> list[Lane]:
    """The GT lanes top to bottom, moved by up to 25 px so that some pass IoU 0.75 and some do not."""
    return [Lane(lane[::-1] + np.array([rng.uniform(-25, 25), 0.0]), 0.9) for lane in gt]


@pytest.fixture
def culane_set(tmp_path):
    """(annotation root, {entry: GT lanes or None}, {entry: detections}); entry 3 has no annotation file."""
    rng = np.random.default_rng(0)
    gts, preds = {}, {}
    for index, entry in enumerate(ENTRIES):
        gt = [gt_lane(300 + 400 * k + 7 * index, 2e-4 * (k - 1)) for k in range(3 - index % 2)]
        preds[entry] = detections(gt, rng)
        if index == 3:
            gts[entry] = None
            continue
        gts[entry] = gt
        path = tmp_path / "anno" / (entry[1:-4] + ".lines.txt")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(culane_annotation_text(gt))
    (tmp_path / "list.txt").write_text("".join(entry + "\n" for entry in ENTRIES))
    return tmp_path, gts, preds


def test_culane_prediction_lanes_are_what_the_written_file_reads_back(tmp_path):
    lanes = detections([gt_lane(500, 3e-4), gt_lane(1500, -2e-4)], np.random.default_rng(1))
    path = tmp_path / "a.lines.txt"
    write_culane_prediction(path, lanes)
    in_memory = culane_prediction_lanes(lanes)
    assert len(in_memory) == 2
    for written, kept in zip(read_lane_file(path), in_memory, strict=True):
        np.testing.assert_array_equal(written, kept.astype(np.float32))


def test_culane_scorer_equals_the_official_metric_on_the_written_files(culane_set):
    root, gts, preds = culane_set
    scorer = CULaneScorer()
    for entry in ENTRIES:
        gt = read_lane_file(lane_file_path(root / "anno", entry))
        assert (gt is None) == (gts[entry] is None)
        scorer.add(entry, preds[entry], gt, (1640, 590))
        write_culane_prediction(culane_prediction_path(root / "pred", entry), preds[entry])
    official = evaluate_culane(root / "anno", root / "pred", root / "list.txt", MF1_THRESHOLDS, workers=1)
    result = scorer.result()
    assert result == official
    unannotated = scorer.result(ENTRIES[3:])
    assert unannotated["missing_annotations"] == 1 and (unannotated["tp"], unannotated["fp"]) == (0, 2)
    assert 0 < result["thresholds"][0.75]["tp"] < result["thresholds"][0.5]["tp"]
    subset = scorer.result(ENTRIES[:2], (0.5,))
    assert subset["images"] == 2 and list(subset["thresholds"]) == [0.5]
    with pytest.raises(DatasetError, match="1 listed images were not scored"):
        scorer.result([*ENTRIES, "/other.jpg"])


def test_tusimple_scorer_equals_the_official_metric_on_the_written_files(tmp_path):
    h_samples = list(TUSIMPLE_H_SAMPLES)
    rng = np.random.default_rng(2)
    scorer, pred_lines, gt_lines = TuSimpleScorer(), [], []
    for index in range(5):
        ys = np.asarray(h_samples[8:], dtype=np.float64)
        gt_points = [np.stack([300 + 300 * k + 0.5 * (ys - 240), ys], axis=1) for k in range(3)]
        gt_xs = [[-2] * 8 + [int(x) for x in lane[:, 0]] for lane in gt_points]
        lanes = [Lane(lane + np.array([rng.uniform(-30, 30), 0.0]), 0.9) for lane in gt_points]
        run_time = 250.0 if index == 4 else 5.0  # over 200 ms: scored as a miss
        raw_file = f"clips/{index}/20.jpg"
        scorer.add(raw_file, lanes, gt_xs, h_samples, (1280, 720), run_time)
        pred_lines.append(tusimple_prediction_line(raw_file, lanes, run_time))
        gt_lines.append(json.dumps({"raw_file": raw_file, "lanes": gt_xs, "h_samples": h_samples}))
    write_tusimple_predictions(tmp_path / "pred.json", pred_lines)
    (tmp_path / "gt.json").write_text("\n".join(gt_lines) + "\n")
    official = evaluate_tusimple(tmp_path / "pred.json", tmp_path / "gt.json")
    assert scorer.result() == official
    assert 0 < official["accuracy"] < 1 and official["fn"] > 0
    with pytest.raises(DatasetError, match="no TuSimple image"):
        TuSimpleScorer().result()


def test_one_json_form_with_the_official_mf1(culane_set):
    _, gts, preds = culane_set
    scorer = CULaneScorer()
    for entry in ENTRIES:
        scorer.add(entry, preds[entry], gts[entry], (1640, 590))
    result = scorer.result()
    assert result["thresholds"][0.95]["tp"] == 0 and math.isnan(result["thresholds"][0.95]["f1"])
    summary = culane_summary(result)
    assert [f1_key(t) for t in (0.5, 0.55, 0.75)] == ["f1@50", "f1@55", "f1@75"]
    assert [iou_key(t) for t in (0.5, 0.55, 0.75)] == ["0.5", "0.55", "0.75"]
    assert list(summary["thresholds"]) == [iou_key(t) for t in MF1_THRESHOLDS]
    assert summary["iou"] == 0.5 and summary["f1"] == summary["f1@50"]
    assert summary["f1@75"] == result["thresholds"][0.75]["f1"]
    # mF1 scores F1 = 0 where a threshold has no true positive, as CLRNet's metric does: never NaN.
    f1s = [row["f1"] if row["tp"] else 0.0 for row in result["thresholds"].values()]
    assert summary["mf1"] == pytest.approx(np.mean(f1s)) and math.isfinite(summary["mf1"])
    text = dumps(summary)
    assert "NaN" not in text and json.loads(text)["thresholds"]["0.95"]["f1"] is None
    assert culane_summary(scorer.result(iou_thresholds=(0.5, 0.75)))["mf1"] is None
