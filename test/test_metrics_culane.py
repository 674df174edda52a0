"""CULane metric: hand-worked cases of the official C++ tool's behaviour."""

import itertools
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.interpolate import CubicSpline
from scipy.optimize import linear_sum_assignment

from clrkdnet_core.errors import DatasetError
from clrkdnet_core.lane import Lane
from clrkdnet_core.metrics.culane import (
    MF1_THRESHOLDS,
    culane_counts,
    evaluate_culane,
    evaluate_culane_categories,
    lane_file_path,
    match_image,
    mean_f1,
    rasterize_lane,
    read_lane_file,
    summarize_counts,
)
from clrkdnet_core.metrics.matching import match_gt_to_predictions, official_km_match
from clrkdnet_core.metrics.spline import natural_spline_samples

INT_MIN = -(2**31)


def curved_lane(bottom_x: float = 700.0, num_points: int = 30, bend: float = 3e-4) -> np.ndarray:
    ys = 590.0 - 10.0 * np.arange(num_points)
    xs = bottom_x + 0.8 * (590 - ys) + bend * (590 - ys) ** 2
    return np.stack([xs, ys], axis=1)


def shifted(lane: np.ndarray, dx: float) -> np.ndarray:
    return lane + np.array([dx, 0.0])


def reference_mask(points: np.ndarray, width: int = 30) -> np.ndarray:
    """The C++ drawing loop written out: Point2f -> Point by cvRound, one cv2.line per consecutive pair."""
    mask = np.zeros((590, 1640), np.uint8)
    points = np.asarray(points, np.float32)
    if len(points) < 2:
        return mask
    polyline = points if len(points) == 2 else natural_spline_samples(points)
    for p, q in itertools.pairwise(polyline):
        cv2.line(mask, cv_round(p), cv_round(q), 1, width)
    return mask


def cv_round(point: np.ndarray) -> tuple[int, int]:
    """x86 cvRound of a float: half to even; NaN and out-of-range give INT_MIN."""
    return tuple(int(np.rint(v)) if np.isfinite(v) and abs(v) < 2**31 else INT_MIN for v in point)


def write_lanes(path: Path, lanes: list[np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(" ".join(f"{v:.3f}" for v in lane.ravel()) + " \n" for lane in lanes))


def test_identical_lanes_are_a_true_positive():
    lane = curved_lane()
    assert culane_counts([lane], [lane]) == (1, 0, 0)
    assert match_image([lane], [lane]).matched_iou[0] == 1.0


def test_lane_shifted_by_its_width_is_a_miss_and_a_false_positive():
    lane = curved_lane()
    match = match_image([shifted(lane, 30)], [lane])
    assert match.matched_iou[0] < 0.5
    assert match.counts(0.5) == (0, 1, 1)


def test_iou_threshold_is_strict():
    lane = curved_lane()
    match = match_image([shifted(lane, 8)], [lane])
    iou = float(match.matched_iou[0])
    assert 0.3 < iou < 0.9
    assert match.counts(iou) == (0, 1, 1)
    assert match.counts(math.nextafter(iou, 0.0)) == (1, 0, 0)


def test_empty_sides():
    lane = curved_lane()
    assert culane_counts([], [lane, lane]) == (0, 0, 2)
    assert culane_counts([lane, lane, lane], []) == (0, 3, 0)
    assert culane_counts([], []) == (0, 0, 0)


def test_lane_with_fewer_than_two_points_has_iou_zero():
    lane = curved_lane()
    single = lane[:1]
    match = match_image([lane, single], [lane, np.zeros((0, 2))])
    assert match.counts(0.5) == (1, 1, 1)
    assert not rasterize_lane(single).any()
    # Even against itself: the official similarity of a < 2 point lane is 0.
    assert match_image([single], [single]).matched_iou[0] == 0.0


def test_two_point_lane_is_one_segment_with_rounded_ends():
    mask = rasterize_lane(np.array([[100.5, 500.5], [301.5, 200.5]]), width=30)
    expected = np.zeros_like(mask)
    cv2.line(expected, (100, 500), (302, 200), 1, 30)  # half to even: 100.5 -> 100, 301.5 -> 302
    assert np.array_equal(mask, expected)


@pytest.mark.parametrize(("x", "pixel"), [(10.5, 10), (11.5, 12), (12.4999, 12), (-0.5, 0), (2.5, 2)])
def test_coordinates_round_half_to_even(x, pixel):
    mask = rasterize_lane(np.array([[x, 100.0], [x, 200.0]]), width=1)
    columns = np.nonzero(mask.any(axis=0))[0]
    assert list(columns) == [pixel]


def test_natural_spline_matches_scipy_on_chord_length():
    points = curved_lane(num_points=12, bend=2e-3).astype(np.float32)
    points[:, 0] += np.sin(np.arange(12)) * 5
    samples = natural_spline_samples(points)
    assert samples.shape == (11 * 50 + 1, 2) and samples.dtype == np.float32
    p64 = points.astype(np.float64)
    h = np.hypot(*np.diff(p64, axis=0).T)
    knots = np.concatenate([[0.0], np.cumsum(h)])
    t = (knots[:-1, None] + (h / 50)[:, None] * np.arange(50)).ravel()
    expected = np.concatenate([CubicSpline(knots, p64, bc_type="natural")(t), p64[-1:]])
    np.testing.assert_allclose(samples, expected, atol=1e-3)
    assert np.array_equal(samples[::50], points)  # every segment starts on its point


def test_duplicated_point_gives_nan_samples_drawn_towards_int_min():
    lane = np.array([[800, 590], [800, 590], [780, 500], [760, 400]], np.float64)
    samples = natural_spline_samples(lane)
    assert np.isnan(samples[:-1]).all() and np.array_equal(samples[-1], [760, 400])
    mask = rasterize_lane(lane)
    # The official tool draws one thick segment from (INT_MIN, INT_MIN) to the last point (how, depends on the
    # OpenCV version: OpenCV 4 overflows; the installed cv2 draws the band towards the top-left corner).
    assert np.array_equal(mask, reference_mask(lane))
    assert mask[400, 760] == 1 and mask[200, 560] == 1 and mask[590 - 1, 800] == 0


def test_rasterisation_equals_the_per_segment_loop():
    # Inside the image (+ the width) every OpenCV version draws these pixels, so cv2.line is the reference.
    rng = np.random.default_rng(3)
    for _ in range(25):
        n = int(rng.integers(2, 25))
        lane = np.stack([rng.uniform(100, 1500) + np.cumsum(rng.normal(0, 6, n)), 560 - 20 * np.arange(n)], 1)
        width = int(rng.integers(1, 40))
        assert np.array_equal(rasterize_lane(lane, width), reference_mask(lane, width))


# Segments reaching more than the width outside the image, drawn by the official tool's OpenCV (4.6, C++
# cv::line on a 590x1640 CV_8UC1 image): pixel count and sum of the flat indices of the drawn pixels.
# OpenCV 5's cv2.line moves some edge pixels of these bands.
OPENCV4_LINES = [
    ((800, 300), (1000, 700), 30, 10342, 7464351390),
    ((800, 100), (1000, 620), 30, 16433, 9159800297),
    ((-400, 590), (820, 250), 30, 26732, 15917378976),
    ((1700, 650), (900, 200), 31, 26659, 17155820027),
    ((100, -300), (600, 500), 2, 1943, 798109080),
]


@pytest.mark.parametrize(("start", "end", "width", "count", "index_sum"), OPENCV4_LINES)
def test_segments_far_outside_are_drawn_as_opencv4_draws_them(start, end, width, count, index_sum):
    mask = rasterize_lane(np.array([start, end], np.float64), width)
    drawn = np.flatnonzero(mask)
    assert (len(drawn), int(drawn.sum())) == (count, index_sum)


def test_official_km_takes_the_first_edge_within_its_tolerance():
    similarity = np.array([[0.495, 0.5]])
    assert match_gt_to_predictions(similarity) == [0]
    # The exact optimum takes 0.5, which would be a TP at IoU > 0.497 where the official tool counts none.
    assert linear_sum_assignment(similarity, maximize=True)[1].tolist() == [1]


def test_official_km_stops_at_a_row_without_any_slack():
    assert official_km_match(np.array([[np.nan, np.nan], [0.7, 0.2]]))[0] == [-1, -1]


def test_official_km_is_optimal_up_to_its_tolerance():
    rng = np.random.default_rng(0)
    for _ in range(200):
        rows, cols = rng.integers(1, 7, size=2)
        weights = rng.random((rows, cols)) * (rng.random((rows, cols)) > 0.3)
        partners = match_gt_to_predictions(weights)
        assert sorted(p for p in partners if p >= 0) == sorted(set(p for p in partners if p >= 0))
        assert sum(p >= 0 for p in partners) == min(rows, cols)
        r, c = linear_sum_assignment(weights, maximize=True)
        total = sum(weights[i, p] for i, p in enumerate(partners) if p >= 0)
        assert total >= weights[r, c].sum() - 1e-2 * min(rows, cols)


def test_more_gt_than_predictions_matches_on_the_transpose():
    lanes = [curved_lane(x) for x in (300.0, 700.0, 1100.0)]
    assert culane_counts([lanes[2] + [3, 0]], lanes) == (1, 0, 2)
    assert match_image([lanes[2]], lanes).matched_iou[2] == 1.0


def test_reader_follows_the_stream_extraction(tmp_path):
    path = tmp_path / "a.lines.txt"
    path.write_text("1 2 3 4 \n\n5.5 6 7\n  +1e1 .5 \r\n")
    lanes = read_lane_file(path)
    assert [lane.tolist() for lane in lanes] == [[[1, 2], [3, 4]], [], [[5.5, 6]], [[10, 0.5]]]
    assert all(lane.dtype == np.float32 for lane in lanes)
    assert read_lane_file(tmp_path / "missing.lines.txt") is None
    path.write_text("")
    assert read_lane_file(path) == []


def test_reader_rejects_what_is_not_a_number(tmp_path):
    path = tmp_path / "bad.lines.txt"
    path.write_text("1 2 3 4\n10 20 x 40\n")
    with pytest.raises(DatasetError, match=r"bad.lines.txt line 2: expected pairs of numbers"):
        read_lane_file(path)


def test_lane_file_path_replaces_the_last_extension():
    assert lane_file_path("/data/anno", "/driver_37/05181432_0203.MP4/00000.jpg") == (
        "/data/anno/driver_37/05181432_0203.MP4/00000.lines.txt"
    )
    assert lane_file_path("/data/anno/", "/a/b") == "/data/anno//a/b.lines.txt"
    assert lane_file_path("/data/anno", "a/b.png") == "/data/anno/a/b.lines.txt"


def test_summary_uses_the_official_conventions():
    assert summarize_counts(3, 1, 1) == {
        "tp": 3,
        "fp": 1,
        "fn": 1,
        "precision": 0.75,
        "recall": 0.75,
        "f1": 0.75,
    }
    cross = summarize_counts(0, 5, 0)
    assert (cross["precision"], cross["recall"], cross["f1"]) == (0.0, -1.0, 0.0)
    nothing = summarize_counts(0, 0, 0)
    assert (nothing["precision"], nothing["recall"], nothing["f1"]) == (-1.0, -1.0, -1.0)
    assert math.isnan(summarize_counts(0, 2, 2)["f1"])


def make_dataset(root: Path) -> Path:
    """Three images: hits and a blank GT line, a miss plus a false positive, a missing prediction file."""
    lane_a, lane_b = curved_lane(400.0), curved_lane(900.0)
    write_lanes(root / "anno/d/v/0.lines.txt", [lane_a, lane_b])
    with open(root / "anno/d/v/0.lines.txt", "a") as f:
        f.write("\n")  # a blank line: one more GT lane, never matched
    write_lanes(root / "pred/d/v/0.lines.txt", [shifted(lane_a, 2), lane_b])
    write_lanes(root / "anno/d/v/1.lines.txt", [lane_a])
    write_lanes(root / "pred/d/v/1.lines.txt", [shifted(lane_a, 40)])
    write_lanes(root / "anno/d/v/2.lines.txt", [lane_b])
    list_file = root / "list.txt"
    list_file.write_text("/d/v/0.jpg\n/d/v/1.jpg\n/d/v/2.jpg\n")
    return list_file


def test_evaluate_sums_counts_over_the_list(tmp_path):
    list_file = make_dataset(tmp_path)
    result = evaluate_culane(tmp_path / "anno", tmp_path / "pred", list_file, (0.5, 0.99), workers=1)
    # image 0: 2 TP, 1 FN (blank line); image 1: 1 FP, 1 FN; image 2: no prediction file, 1 FN.
    assert (result["tp"], result["fp"], result["fn"]) == (2, 1, 3)
    assert result["precision"] == pytest.approx(2 / 3) and result["recall"] == pytest.approx(2 / 5)
    assert result["images"] == 3 and result["missing_predictions"] == 1 and result["missing_annotations"] == 0
    assert result["thresholds"][0.99]["tp"] == 1  # only the exact copy survives IoU > 0.99


def test_missing_annotation_file_counts_as_no_gt(tmp_path):
    list_file = make_dataset(tmp_path)
    list_file.write_text("/d/v/0.jpg\n/d/v/9.jpg\n")
    write_lanes(tmp_path / "pred/d/v/9.lines.txt", [curved_lane()])
    result = evaluate_culane(tmp_path / "anno", tmp_path / "pred", list_file, workers=1)
    assert (result["tp"], result["fp"], result["fn"]) == (2, 1, 1)
    assert result["missing_annotations"] == 1


def test_user_errors_name_the_path(tmp_path):
    list_file = make_dataset(tmp_path)
    with pytest.raises(DatasetError, match="list file not found"):
        evaluate_culane(tmp_path / "anno", tmp_path / "pred", tmp_path / "nope.txt")
    with pytest.raises(DatasetError, match="annotation directory not found"):
        evaluate_culane(tmp_path / "nope", tmp_path / "pred", list_file)


def test_categories_total_comes_from_summed_counts(tmp_path):
    make_dataset(tmp_path)
    split = tmp_path / "anno/list/test_split"
    split.mkdir(parents=True)
    (split / "test0_normal.txt").write_text("/d/v/0.jpg\n")
    (split / "test7_cross.txt").write_text("/d/v/1.jpg\n/d/v/2.jpg\n")
    # The category folder defaults to <anno_dir>/list/test_split, where CULane keeps it.
    result = evaluate_culane_categories(tmp_path / "anno", tmp_path / "pred", iou_thresholds=MF1_THRESHOLDS)
    assert list(result["categories"]) == ["normal", "cross"]
    normal, cross, total = result["categories"]["normal"], result["categories"]["cross"], result["total"]
    assert (normal["tp"], normal["fp"], normal["fn"]) == (2, 0, 1)
    assert (cross["tp"], cross["fp"], cross["fn"]) == (0, 1, 2)
    assert (total["tp"], total["fp"], total["fn"], total["images"]) == (2, 1, 3, 3)
    assert total["f1"] == pytest.approx(2 * (2 / 3) * (2 / 5) / (2 / 3 + 2 / 5))
    assert mean_f1(total) == pytest.approx(np.mean([total["thresholds"][t]["f1"] for t in MF1_THRESHOLDS]))


def test_process_pool_gives_the_same_counts(tmp_path):
    rng = np.random.default_rng(5)
    entries = []
    for index in range(300):
        gt = [curved_lane(rng.uniform(200, 1200), int(rng.integers(5, 15))) for _ in range(2)]
        write_lanes(tmp_path / f"anno/v/{index}.lines.txt", gt)
        write_lanes(tmp_path / f"pred/v/{index}.lines.txt", [shifted(lane, rng.normal(0, 8)) for lane in gt])
        entries.append(f"/v/{index}.jpg")
    (tmp_path / "list.txt").write_text("\n".join(entries) + "\n")
    args = (tmp_path / "anno", tmp_path / "pred", tmp_path / "list.txt", (0.5, 0.75))
    serial = evaluate_culane(*args, workers=1, progress=False)
    parallel = evaluate_culane(*args, workers=2, progress=False)
    assert serial["thresholds"] == parallel["thresholds"]


def test_mean_f1_scores_zero_where_there_is_no_true_positive():
    rows = {t: summarize_counts(4, 1, 1) for t in MF1_THRESHOLDS[:5]}
    rows.update({t: summarize_counts(0, 5, 5) for t in MF1_THRESHOLDS[5:]})  # C++ F1 is NaN there
    assert mean_f1({"thresholds": rows}) == pytest.approx(0.8 / 2)
    with pytest.raises(ValueError, match="mF1 needs"):
        mean_f1({"thresholds": {0.5: rows[0.5]}})


def test_lane_objects_are_accepted():
    lane = curved_lane()
    detected = Lane(points=lane[::-1], score=0.9)  # detector order: top to bottom
    match = match_image([detected], [lane])
    assert match.counts(0.5) == (1, 0, 0) and match.matched_iou[0] > 0.95
