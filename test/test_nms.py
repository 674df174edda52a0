"""Lane NMS (vectorised PyTorch) against a scalar transcription of the reference CUDA kernel."""

import numpy as np
import pytest
import torch

from clrkdnet_core.lane_format import NMS_ROW_WIDTH
from clrkdnet_core.postprocess.nms import (
    greedy_keep,
    kernel_row_limits,
    lane_nms,
    lane_nms_batched,
    overlap_matrix,
)
from clrkdnet_core.postprocess.reference import kernel_overlap, reference_lane_nms

THRESHOLD = 50.0


def _half_start_ys() -> np.ndarray:
    """float32 start_y whose float32 product with 71 is exactly k + 0.5 (the kernel's rounding boundary)."""
    values = []
    for k in range(-3, 72):
        y = np.float32((k + 0.5) / 71)
        for candidate in (y, np.nextafter(y, np.float32(2)), np.nextafter(y, np.float32(-2))):
            if np.float32(candidate * np.float32(71)) == np.float32(k + 0.5):
                values.append(candidate)
    return np.array(values, dtype=np.float32)


HALF_START_YS = _half_start_ys()


def random_lanes(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n lanes in the kernel's row layout with the awkward cases mixed in, and scores with ties."""
    lanes = np.zeros((n, NMS_ROW_WIDTH), dtype=np.float32)
    lanes[:, :2] = rng.normal(size=(n, 2))
    kind = rng.integers(0, 4, size=n)
    start_y = rng.uniform(0, 1, size=n)
    start_y[kind == 1] = rng.choice(HALF_START_YS, size=(kind == 1).sum())
    start_y[kind == 2] = rng.integers(0, 72, size=(kind == 2).sum()) / 71  # on a row
    start_y[kind == 3] = rng.uniform(-0.12, 1.2, size=(kind == 3).sum())  # below the image / past the top
    lanes[:, 2] = start_y
    lanes[:, 3] = rng.uniform(0, 1, size=n)
    length_kind = rng.integers(0, 4, size=n)
    lengths = rng.uniform(-5, 90, size=n)  # end beyond 71, negative
    lengths[length_kind == 1] = rng.integers(-3, 4, size=(length_kind == 1).sum())  # 0, 1, negative
    lengths[length_kind == 2] = rng.integers(0, 80, size=(length_kind == 2).sum()) + 0.5
    lanes[:, 4] = lengths
    # Lanes share a base shape and are shifted by a few exact distances, so pairs land on the threshold.
    base = rng.uniform(0, 799) + rng.uniform(-8, 8) * np.arange(72)
    shift = rng.choice([0.0, 25.0, 49.0, 50.0, 51.0, 100.0, -50.0], size=n)
    noise = np.where(rng.random(size=(n, 1)) < 0.5, 0.0, rng.normal(scale=20, size=(n, 72)))
    lanes[:, 5:] = np.round(base + shift[:, None] + noise, 1)
    if rng.random() < 0.3:  # exact integer xs: sums are exact and ties with threshold*(rows) are common
        lanes[:, 5:] = np.round(lanes[:, 5:])
    scores = rng.choice([0.5, 0.6, 0.7, 0.9], size=n) if rng.random() < 0.5 else rng.random(size=n)
    return lanes, scores.astype(np.float32)


def test_row_limits_follow_c_rounding():
    lanes = torch.zeros(6, NMS_ROW_WIDTH)
    lanes[:, 2] = torch.tensor([0.5 / 71, -0.7 / 71, -1.7 / 71, 1.0, 2.0, 10.0 / 71])
    lanes[:, 4] = torch.tensor([3.0, 0.0, -2.0, 0.4, 1.0, 2.5])
    start, end = kernel_row_limits(lanes)
    # int(0.5 + 0.5) = 1; int(-0.2) = 0; int(-1.2) = -1 (truncation toward zero); 71; 142; 10
    assert start.tolist() == [1, 0, -1, 71, 142, 10]
    # end = int(start + len - 1 + 0.5 - (len - 1 < 0)): 3.5, -1.5, -4.5, 69.9, 142.5, 12 truncated
    assert end.tolist() == [3, -1, -4, 69, 142, 12]


def test_disjoint_lanes_never_overlap():
    lanes = torch.zeros(2, NMS_ROW_WIDTH)
    lanes[:, 5:] = 100.0  # identical xs
    lanes[0, 2], lanes[0, 4] = 0.0, 10.0  # rows 0..9
    lanes[1, 2], lanes[1, 4] = 10 / 71, 10.0  # rows 10..19
    assert lane_nms(lanes, torch.tensor([0.9, 0.8]), THRESHOLD, 4).tolist() == [0, 1]
    lanes[1, 2] = 9 / 71  # now row 9 is shared and the distance is 0
    assert lane_nms(lanes, torch.tensor([0.9, 0.8]), THRESHOLD, 4).tolist() == [0]


def test_distance_equal_to_threshold_is_not_an_overlap():
    lanes = torch.zeros(3, NMS_ROW_WIDTH)
    lanes[:, 4] = 72.0
    lanes[1, 5:] = THRESHOLD  # mean distance exactly 50 px: kept
    lanes[2, 5:] = THRESHOLD - 0.5  # just below: suppressed by lane 0
    assert lane_nms(lanes, torch.tensor([0.9, 0.8, 0.7]), THRESHOLD, 4).tolist() == [0, 1]


def test_ties_in_score_keep_index_order_and_top_k_stops():
    lanes = torch.zeros(5, NMS_ROW_WIDTH)
    lanes[:, 4] = 72.0
    lanes[:, 5:] = torch.arange(5)[:, None] * 200.0  # far apart: nothing suppressed
    scores = torch.tensor([0.5, 0.9, 0.5, 0.9, 0.7])
    assert lane_nms(lanes, scores, THRESHOLD, 10).tolist() == [1, 3, 4, 0, 2]
    assert lane_nms(lanes, scores, THRESHOLD, 3).tolist() == [1, 3, 4]
    assert lane_nms(lanes, scores, THRESHOLD, 0).tolist() == [1, 3, 4, 0, 2]  # kernel: k < 1 is no limit


def test_negative_start_sums_header_columns_like_the_kernel():
    a = np.zeros(NMS_ROW_WIDTH, dtype=np.float32)
    b = np.zeros(NMS_ROW_WIDTH, dtype=np.float32)
    a[2] = b[2] = -2.7 / 71  # start row int(-2.2) = -2: the kernel's loop starts at column 3 (start_x)
    a[4] = b[4] = 10.0
    b[3] = 1000.0  # differs only in start_x
    assert not kernel_overlap(a, b, THRESHOLD)
    lanes = torch.from_numpy(np.stack([a, b]))
    assert not overlap_matrix(lanes[None], THRESHOLD)[0, 0, 1]


def test_overlap_matrix_equals_kernel_pairwise():
    rng = np.random.default_rng(0)
    for _ in range(60):
        lanes, _ = random_lanes(rng, 12)
        matrix = overlap_matrix(torch.from_numpy(lanes)[None], THRESHOLD)[0].numpy()
        expected = np.array([[kernel_overlap(a, b, THRESHOLD) for b in lanes] for a in lanes])
        off_diagonal = ~np.eye(len(lanes), dtype=bool)
        np.testing.assert_array_equal(matrix[off_diagonal], expected[off_diagonal])


@pytest.mark.parametrize("seed", [1, 2])
def test_nms_equals_reference_on_random_cases(seed: int):
    rng = np.random.default_rng(seed)
    cases = [random_lanes(rng, int(rng.integers(1, 10))) for _ in range(1500)]
    top_ks = rng.integers(1, 6, size=len(cases))
    thresholds = rng.choice([THRESHOLD, 15.0, 50.5], size=len(cases))
    # One padded batch per threshold and top_k exercises the batched path; every case is checked alone too.
    for threshold in np.unique(thresholds):
        for top_k in np.unique(top_ks):
            group = [i for i in range(len(cases)) if thresholds[i] == threshold and top_ks[i] == top_k]
            n = max(len(cases[i][0]) for i in group)
            lanes = torch.zeros(len(group), n, NMS_ROW_WIDTH)
            scores = torch.zeros(len(group), n)
            eligible = torch.zeros(len(group), n, dtype=torch.bool)
            for row, i in enumerate(group):
                count = len(cases[i][0])
                lanes[row, :count] = torch.from_numpy(cases[i][0])
                scores[row, :count] = torch.from_numpy(cases[i][1])
                eligible[row, :count] = True
            keep, counts = lane_nms_batched(lanes, scores, eligible, float(threshold), int(top_k))
            for row, i in enumerate(group):
                expected = reference_lane_nms(*cases[i], float(threshold), int(top_k))
                assert keep[row, : counts[row]].tolist() == expected.tolist(), f"case {i}"
                assert (keep[row, counts[row] :] == -1).all()
    for i in range(0, len(cases), 10):
        lanes, scores = cases[i]
        kept = lane_nms(torch.from_numpy(lanes), torch.from_numpy(scores), thresholds[i], top_ks[i])
        assert kept.tolist() == reference_lane_nms(lanes, scores, thresholds[i], top_ks[i]).tolist()


def test_full_matrix_and_kept_rows_greedy_passes_agree():
    # The GPU computes the whole overlap matrix, the CPU only the rows of kept lanes: same lanes either way.
    rng = np.random.default_rng(5)
    lanes = torch.from_numpy(np.stack([random_lanes(rng, 16)[0] for _ in range(64)]))
    eligible = torch.from_numpy(rng.random((64, 16)) < 0.8)
    for top_k in (1, 4, 0):
        rows_only = greedy_keep(lanes, eligible, THRESHOLD, top_k, full_matrix=False)
        assert torch.equal(greedy_keep(lanes, eligible, THRESHOLD, top_k, full_matrix=True), rows_only)
        assert (rows_only >= 0).sum() >= 64


def test_ineligible_lanes_are_never_kept_nor_suppress():
    rng = np.random.default_rng(3)
    lanes, scores = random_lanes(rng, 9)
    eligible = torch.from_numpy(rng.random(9) < 0.6)
    keep, count = lane_nms_batched(
        torch.from_numpy(lanes)[None], torch.from_numpy(scores)[None], eligible[None], THRESHOLD, 4
    )
    subset = np.flatnonzero(eligible.numpy())
    expected = subset[reference_lane_nms(lanes[subset], scores[subset], THRESHOLD, 4)]
    assert keep[0, : count[0]].tolist() == expected.tolist()


def test_empty_input():
    assert lane_nms(torch.zeros(0, NMS_ROW_WIDTH), torch.zeros(0), THRESHOLD, 4).tolist() == []
    keep, count = lane_nms_batched(
        torch.zeros(2, 3, NMS_ROW_WIDTH), torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.bool), THRESHOLD, 4
    )
    assert (keep == -1).all() and count.tolist() == [0, 0]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_equals_cpu():
    rng = np.random.default_rng(4)
    lanes = torch.from_numpy(np.stack([random_lanes(rng, 20)[0] for _ in range(8)]))
    scores = torch.rand(8, 20)
    eligible = torch.rand(8, 20) < 0.7
    cpu = lane_nms_batched(lanes, scores, eligible, THRESHOLD, 5)
    gpu = lane_nms_batched(lanes.cuda(), scores.cuda(), eligible.cuda(), THRESHOLD, 5)
    assert torch.equal(cpu[0], gpu[0].cpu()) and torch.equal(cpu[1], gpu[1].cpu())
