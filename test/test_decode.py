"""Batched decoding against the reference per-image, per-lane decoding on synthetic network outputs."""

import numpy as np
import pytest
import torch

from clrkdnet_core.config import TestConfig
from clrkdnet_core.errors import InputError
from clrkdnet_core.geometry import ImageGeometry
from clrkdnet_core.lane import Lane
from clrkdnet_core.postprocess.decode import PRIOR_YS, decode_predictions, valid_rows
from clrkdnet_core.postprocess.reference import reference_decode

CULANE = ImageGeometry(1640, 590, 270)
TUSIMPLE = ImageGeometry(1280, 720, 160)
OFFICIAL = TestConfig(conf_threshold=0.4, nms_thres=50, max_lanes=4)


def random_predictions(rng: np.random.Generator, batch: int, priors: int = 192) -> torch.Tensor:
    """Network-like outputs with the decoding edge cases mixed in."""
    pred = np.zeros((batch, priors, 78), dtype=np.float32)
    pred[..., 1] = rng.normal(-0.6, 1.2, size=(batch, priors))  # about a third above a 0.4 score
    start_y = rng.uniform(-0.05, 1.15, size=(batch, priors))  # below 0 and past row 71 included
    on_half = rng.random(size=(batch, priors)) < 0.2
    start_y[on_half] = (rng.integers(0, 72, size=on_half.sum()) + 0.5) / 71  # round-half-even cases
    pred[..., 2] = start_y
    pred[..., 3] = rng.uniform(0, 1, size=(batch, priors))
    length = rng.uniform(-0.4, 1.3, size=(batch, priors))
    exact = rng.random(size=(batch, priors)) < 0.3
    length[exact] = rng.integers(-30, 80, size=exact.sum()) / 71  # 0, 1 and negative row counts
    pred[..., 5] = length
    rows = np.arange(72)
    slope = rng.uniform(-0.02, 0.02, size=(batch, priors, 1))
    xs = rng.uniform(-0.3, 1.3, size=(batch, priors, 1)) + slope * rows
    wiggle = rng.random(size=(batch, priors, 1)) < 0.3  # leave the image and come back in
    xs = xs + wiggle * 0.4 * np.sin(rows / rng.uniform(2, 6, size=(batch, priors, 1)))
    pred[..., 6:] = xs
    return torch.from_numpy(pred)


def assert_same_lanes(actual: list[Lane], expected: list[Lane], score_tolerance: float = 0.0) -> None:
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_array_equal(a.points, e.points)
        assert abs(a.score - e.score) <= score_tolerance


def one_lane(start_y: float, length_rows: float, xs: np.ndarray, logit: float = 5.0) -> torch.Tensor:
    pred = torch.zeros(1, 1, 78)
    pred[0, 0, 1] = logit
    pred[0, 0, 2] = start_y
    pred[0, 0, 5] = length_rows / 71
    pred[0, 0, 6:] = torch.as_tensor(xs, dtype=torch.float32)
    return pred


@pytest.mark.parametrize("geometry", [CULANE, TUSIMPLE])
def test_decode_equals_reference_on_random_outputs(geometry: ImageGeometry):
    rng = np.random.default_rng(0)
    pred = random_predictions(rng, 12)
    for conf, nms, max_lanes in [(0.4, 50, 4), (0.25, 15, 5), (0.6, 50, 0)]:
        test = TestConfig(conf, nms, max_lanes)
        decoded = decode_predictions(pred, geometry, test)
        expected = reference_decode(pred, geometry, test)
        assert len(decoded) == len(expected) == len(pred)
        for actual, wanted in zip(decoded, expected, strict=True):
            assert_same_lanes(actual, wanted)
    assert sum(len(lanes) for lanes in decoded) > 10  # the cases are not all empty


def test_batch_decode_equals_single_image_decode():
    pred = random_predictions(np.random.default_rng(1), 6)
    batched = decode_predictions(pred, CULANE, OFFICIAL)
    for image in range(len(pred)):
        assert_same_lanes(batched[image], decode_predictions(pred[image : image + 1], CULANE, OFFICIAL)[0])


def test_per_image_geometries():
    pred = random_predictions(np.random.default_rng(2), 2)
    decoded = decode_predictions(pred, [CULANE, TUSIMPLE], OFFICIAL)
    assert_same_lanes(decoded[0], decode_predictions(pred[:1], CULANE, OFFICIAL)[0])
    assert_same_lanes(decoded[1], decode_predictions(pred[1:], TUSIMPLE, OFFICIAL)[0])
    with pytest.raises(InputError, match="2 image geometries for a batch of 1"):
        decode_predictions(pred[:1], [CULANE, TUSIMPLE], OFFICIAL)


def test_nothing_above_threshold():
    pred = random_predictions(np.random.default_rng(3), 2)
    pred[..., 1] = -10.0
    assert decode_predictions(pred, CULANE, OFFICIAL) == [[], []]
    assert decode_predictions(torch.zeros(0, 192, 78), CULANE, OFFICIAL) == []


def test_points_in_original_pixels_top_to_bottom():
    xs = np.full(72, 0.5, dtype=np.float32)
    (lanes,) = decode_predictions(one_lane(0.0, 72, xs), CULANE, OFFICIAL)
    (lane,) = lanes
    assert lane.points.dtype == np.float32 and lane.points.shape == (72, 2)
    np.testing.assert_allclose(lane.xs, 0.5 * 1640)
    # Row 71 is the top of the crop (y = cut height), row 0 the image bottom; x is de-normalised by ori_w.
    np.testing.assert_allclose(lane.ys, 270 + 320 * PRIOR_YS[::-1], rtol=1e-6)
    assert lane.ys[0] == pytest.approx(270) and lane.ys[-1] == pytest.approx(590)
    assert lane.score == pytest.approx(torch.softmax(torch.tensor([0.0, 5.0]), 0)[1].item())


def test_rows_below_start_stop_at_the_first_row_outside_the_image():
    xs = np.full(72, 0.5, dtype=np.float32)
    xs[4] = 1.2  # out of the image on row 4, back in below
    xs[40] = 1.5  # above the start x > 1 is kept (only x < 0 is dropped there)
    xs[41] = -0.1
    pred = one_lane(10 / 71, 50, xs)
    valid = valid_rows(pred)[0, 0].numpy()
    assert not valid[:5].any() and valid[5:10].all()  # rows 0..4 cut, 5..9 extend the lane down
    assert valid[10:60].sum() == 49 and not valid[41] and valid[40]  # rows 10..59, minus the x < 0 row
    assert not valid[60:].any()
    (lanes,) = decode_predictions(pred, CULANE, OFFICIAL)
    assert_same_lanes(lanes, reference_decode(pred, CULANE, OFFICIAL)[0])
    assert len(lanes[0]) == valid.sum()


def test_negative_length_clears_rows_with_python_slice_semantics():
    xs = np.full(72, 0.5, dtype=np.float32)
    # start 10, length -20: end = -11 and the reference's xs[end + 1:] = xs[-10:] clears only rows 62..71.
    pred = one_lane(10 / 71, -20, xs)
    valid = valid_rows(pred)[0, 0].numpy()
    assert valid[:62].all() and not valid[62:].any()
    assert_same_lanes(
        decode_predictions(pred, CULANE, OFFICIAL)[0], reference_decode(pred, CULANE, OFFICIAL)[0]
    )
    # length 0 from the bottom: end = -1, xs[0:] cleared entirely -> no lane.
    assert decode_predictions(one_lane(0.0, 0, xs), CULANE, OFFICIAL) == [[]]


def test_one_point_lanes_are_dropped_and_start_is_clamped():
    xs = np.full(72, 0.5, dtype=np.float32)
    assert decode_predictions(one_lane(30 / 71, 1, xs * 0 - 0.5), CULANE, OFFICIAL) == [[]]
    xs_one = np.full(72, -0.5, dtype=np.float32)
    xs_one[30] = 0.5
    assert decode_predictions(one_lane(30 / 71, 1, xs_one), CULANE, OFFICIAL) == [[]]  # one point
    two = decode_predictions(one_lane(30 / 71, 2, xs_one + (np.arange(72) == 31)), CULANE, OFFICIAL)
    assert len(two[0]) == 1 and len(two[0][0]) == 2
    # start_y past the top: start = 71, the lane extends down from the top row while inside the image.
    beyond = one_lane(1.3, 10, xs)
    (lanes,) = decode_predictions(beyond, CULANE, OFFICIAL)
    assert len(lanes[0]) == 72
    assert_same_lanes(lanes, reference_decode(beyond, CULANE, OFFICIAL)[0])


def test_start_rounds_half_to_even_like_python_round():
    xs = np.full(72, 0.5, dtype=np.float32)
    xs[:3] = -1.0  # rows below the start are outside: the lane starts exactly at `start`
    for start_row in (2.5, 3.5):
        pred = one_lane(start_row / 71, 72, xs)
        expected = reference_decode(pred, CULANE, OFFICIAL)[0]
        assert_same_lanes(decode_predictions(pred, CULANE, OFFICIAL)[0], expected)


def test_bad_prediction_shape():
    with pytest.raises(InputError, match=r"\(B, P, 78\)"):
        decode_predictions(torch.zeros(192, 78), CULANE, OFFICIAL)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_decode_equals_reference():
    pred = random_predictions(np.random.default_rng(4), 8)
    decoded = decode_predictions(pred.cuda(), CULANE, OFFICIAL)
    for actual, wanted in zip(decoded, reference_decode(pred, CULANE, OFFICIAL), strict=True):
        assert_same_lanes(actual, wanted, score_tolerance=1e-6)  # CUDA's exp may differ in the last bit
