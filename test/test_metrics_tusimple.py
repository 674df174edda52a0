"""TuSimple metric: hand-worked cases of the official lane.py (LaneEval.bench and bench_one_submit)."""

import json
import math

import pytest

from clrkdnet_core.data.formats import TUSIMPLE_H_SAMPLES
from clrkdnet_core.errors import DatasetError
from clrkdnet_core.metrics.tusimple import evaluate_tusimple, tusimple_bench

H_SAMPLES = list(TUSIMPLE_H_SAMPLES)
N = len(H_SAMPLES)


def vertical(x: float) -> list[float]:
    return [x] * N


def slanted(x0: float, slope: float) -> list[float]:
    return [x0 + slope * (y - 160) for y in H_SAMPLES]


def test_threshold_grows_with_the_lane_angle():
    # 25 px off: outside 20 px on a vertical lane, inside 20 / cos(45°) = 28.3 px on a diagonal one.
    assert tusimple_bench([vertical(325)], [vertical(300)], H_SAMPLES) == (0.0, 1.0, 1.0)
    diagonal = slanted(100, 1.0)
    assert tusimple_bench([[x + 25 for x in diagonal]], [diagonal], H_SAMPLES) == (1.0, 0.0, 0.0)


def test_single_valid_gt_point_uses_the_plain_threshold():
    gt = [-2] * (N - 1) + [300]
    near, far = [-2] * (N - 1) + [319], [-2] * (N - 1) + [321]
    assert tusimple_bench([near], [gt], H_SAMPLES) == (1.0, 0.0, 0.0)
    # The absent rows still agree: 55 of 56 rows are correct, above the 0.85 needed to match.
    assert tusimple_bench([far], [gt], H_SAMPLES) == (55 / 56, 0.0, 0.0)


def test_rows_absent_on_both_sides_count_as_correct():
    gt = [-2] * 28 + [300] * 28
    assert tusimple_bench([list(gt)], [gt], H_SAMPLES) == (1.0, 0.0, 0.0)
    filled = [300] * N  # predicts rows the GT does not have: those 28 rows are wrong
    assert tusimple_bench([filled], [gt], H_SAMPLES) == (0.5, 1.0, 1.0)


def test_more_than_four_gt_lanes_forgive_one_miss_and_drop_the_lowest():
    gts = [vertical(x) for x in (100, 300, 500, 700, 900)]
    assert tusimple_bench(gts[:4], gts, H_SAMPLES) == (1.0, 0.0, 0.0)
    assert tusimple_bench(gts[:3], gts, H_SAMPLES) == (0.75, 0.0, 0.25)


def test_run_time_and_too_many_predictions_score_zero():
    gt = [vertical(300)]
    assert tusimple_bench(gt, gt, H_SAMPLES, run_time=201) == (0.0, 0.0, 1.0)
    assert tusimple_bench(gt, gt, H_SAMPLES, run_time=200) == (1.0, 0.0, 0.0)
    extra = [vertical(x) for x in (600, 800, 1000)]
    assert tusimple_bench(gt + extra, gt, H_SAMPLES) == (0.0, 0.0, 1.0)
    assert tusimple_bench(gt + extra[:2], gt, H_SAMPLES) == (1.0, 2 / 3, 0.0)


def test_one_prediction_can_serve_two_gt_lanes():
    # Not a one-to-one matching: both GT lanes are matched by the same prediction, so FP = 1 - 2 = -1.
    assert tusimple_bench([vertical(305)], [vertical(300), vertical(310)], H_SAMPLES) == (1.0, -1.0, 0.0)


def test_no_gt_and_no_predictions():
    assert tusimple_bench([vertical(300)], [], H_SAMPLES) == (0.0, 1.0, 0.0)
    assert tusimple_bench([], [vertical(300)], H_SAMPLES) == (0.0, 0.0, 1.0)


def test_wrong_lane_length_is_a_format_error():
    with pytest.raises(DatasetError, match="Format of lanes error"):
        tusimple_bench([[300] * (N - 1)], [vertical(300)], H_SAMPLES)
    with pytest.raises(DatasetError, match="Format of lanes error"):
        tusimple_bench([vertical(300)], [[300] * (N + 1)], H_SAMPLES)


def write_json_lines(path, records):
    path.write_text("".join(json.dumps(record) + "\n" for record in records))


def test_evaluate_averages_over_images_and_derives_f1(tmp_path):
    gts = [
        {"raw_file": "clips/a/20.jpg", "lanes": [vertical(300), vertical(600)], "h_samples": H_SAMPLES},
        {"raw_file": "clips/b/20.jpg", "lanes": [vertical(300)], "h_samples": H_SAMPLES},
    ]
    preds = [  # in another order: looked up by raw_file
        {"raw_file": "clips/b/20.jpg", "lanes": [vertical(302), vertical(900)], "run_time": 10},
        {"raw_file": "clips/a/20.jpg", "lanes": [vertical(301)], "run_time": 10},
    ]
    write_json_lines(tmp_path / "gt.json", gts)
    write_json_lines(tmp_path / "pred.json", preds)
    result = evaluate_tusimple(tmp_path / "pred.json", tmp_path / "gt.json")
    # a: (0.5, 0, 0.5); b: (1, 0.5, 0)
    assert result["images"] == 2
    assert result["accuracy"] == pytest.approx(0.75)
    assert result["fp"] == pytest.approx(0.25) and result["fn"] == pytest.approx(0.25)
    precision, recall = 0.75 / (0.75 + 0.25), 0.75 / (0.75 + 0.25)
    assert result["precision"] == pytest.approx(precision) and result["recall"] == pytest.approx(recall)
    assert result["f1"] == pytest.approx(2 * precision * recall / (precision + recall))


def test_evaluate_reports_the_official_errors(tmp_path):
    gt = {"raw_file": "a.jpg", "lanes": [vertical(300)], "h_samples": H_SAMPLES}
    write_json_lines(tmp_path / "gt.json", [gt, {**gt, "raw_file": "b.jpg"}])
    write_json_lines(tmp_path / "pred.json", [{"raw_file": "a.jpg", "lanes": [], "run_time": 1}])
    with pytest.raises(DatasetError, match="We do not get the predictions of all the test tasks"):
        evaluate_tusimple(tmp_path / "pred.json", tmp_path / "gt.json")

    pred = {"raw_file": "a.jpg", "lanes": [vertical(300)], "run_time": 1}
    write_json_lines(tmp_path / "pred.json", [pred, {**pred, "raw_file": "c.jpg"}])
    with pytest.raises(DatasetError, match=r"do not exist in the test tasks: c\.jpg"):
        evaluate_tusimple(tmp_path / "pred.json", tmp_path / "gt.json")

    write_json_lines(tmp_path / "pred.json", [pred, {"raw_file": "b.jpg", "lanes": [[1, 2]], "run_time": 1}])
    with pytest.raises(DatasetError, match=r"Format of lanes error for b\.jpg"):
        evaluate_tusimple(tmp_path / "pred.json", tmp_path / "gt.json")

    write_json_lines(tmp_path / "pred.json", [pred, {"raw_file": "b.jpg", "lanes": []}])
    with pytest.raises(DatasetError, match="run_time"):
        evaluate_tusimple(tmp_path / "pred.json", tmp_path / "gt.json")

    (tmp_path / "pred.json").write_text(json.dumps(pred) + "\n\n")
    with pytest.raises(DatasetError, match="line 2: not a JSON object"):
        evaluate_tusimple(tmp_path / "pred.json", tmp_path / "gt.json")


def test_derived_f1_is_nan_where_clrnet_would_divide_by_zero(tmp_path):
    gt = {"raw_file": "a.jpg", "lanes": [], "h_samples": H_SAMPLES}
    write_json_lines(tmp_path / "gt.json", [gt])
    write_json_lines(tmp_path / "pred.json", [{"raw_file": "a.jpg", "lanes": [vertical(300)], "run_time": 1}])
    result = evaluate_tusimple(tmp_path / "pred.json", tmp_path / "gt.json")
    assert (result["accuracy"], result["fp"], result["fn"]) == (0.0, 1.0, 0.0)
    assert math.isnan(result["f1"])
