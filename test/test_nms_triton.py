"""The Triton lane NMS against the PyTorch one (``postprocess.nms``) on random cases.

Without CUDA the kernels run under the Triton interpreter (``TRITON_INTERPRET=1``, set before triton compiles
anything); with CUDA the same tests run the compiled kernels on the GPU.
"""

import os

import numpy as np
import pytest
import torch

CUDA = torch.cuda.is_available()
if not CUDA:
    os.environ["TRITON_INTERPRET"] = "1"

pytest.importorskip("triton")

from clrkdnet_core.postprocess import nms, nms_triton  # noqa: E402

DEVICE = torch.device("cuda" if CUDA else "cpu")


def random_lanes(rng: np.random.Generator, n: int, spread: float = 60.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Lanes near a common curve (so many overlap), with odd starts, zero/negative lengths and score ties."""
    lanes = np.zeros((n, 77), np.float32)
    lanes[:, :2] = rng.normal(size=(n, 2))
    lanes[:, 2] = rng.choice([rng.uniform(-0.12, 1.05), 0.0, 0.5 / 71, -1.5 / 71], size=n)
    lanes[:, 2] = np.where(rng.random(n) < 0.6, rng.uniform(-0.12, 1.05, n), lanes[:, 2])
    lanes[:, 3] = rng.uniform(0, 1, n)
    lanes[:, 4] = np.where(rng.random(n) < 0.15, rng.choice([0.0, -3.0, 1.0, 0.5]), rng.uniform(-5, 80, n))
    lanes[:, 5:] = rng.uniform(0, 800) + rng.normal(0, spread, (n, 72))
    scores = rng.uniform(size=n).astype(np.float32)
    if rng.random() < 0.5:
        scores = np.round(scores, 1)  # ties
    return torch.from_numpy(lanes).to(DEVICE), torch.from_numpy(scores).to(DEVICE)


def test_overlap_matrix_equals_pytorch_rule():
    rng = np.random.default_rng(1)
    for _ in range(10):
        n = int(rng.integers(1, 70))
        lanes, _ = random_lanes(rng, n, spread=float(rng.choice([5.0, 40.0, 120.0])))
        threshold = float(rng.choice([50.0, 15.0, 100.0]))
        got = nms_triton.overlap_matrix(lanes[None], threshold)[0]
        expected = nms.overlap_matrix(lanes[None], threshold)[0]
        off_diagonal = ~torch.eye(n, dtype=torch.bool, device=DEVICE)
        assert torch.equal(got & off_diagonal, expected & off_diagonal)


def test_threshold_boundary_decided_like_the_kernel():
    # dist is exactly threshold * rows: "dist < limit" is false, so the lanes do not overlap.
    lanes = torch.zeros((2, 77), device=DEVICE)
    lanes[:, 4] = 72.0
    lanes[1, 5:] = 50.0
    assert not nms_triton.overlap_matrix(lanes[None], 50.0)[0, 0, 1]
    lanes[1, 5:] = 49.999
    assert nms_triton.overlap_matrix(lanes[None], 50.0)[0, 0, 1]


@pytest.mark.parametrize("top_k", [4, 1, 0])
def test_single_image_nms_equals_lane_nms(top_k):
    rng = np.random.default_rng(top_k + 10)
    for _ in range(12):
        lanes, scores = random_lanes(rng, int(rng.integers(0, 40)))
        got = nms_triton.triton_lane_nms(lanes, scores, 50.0, top_k)
        expected = nms.lane_nms(lanes, scores, 50.0, top_k)
        assert got.tolist() == expected.tolist()


def test_batched_nms_with_eligibility_equals_pytorch():
    rng = np.random.default_rng(7)
    for case in range(4):
        batch, n = (2, 192) if case == 0 else (int(rng.integers(1, 4)), int(rng.integers(1, 100)))
        pairs = [random_lanes(rng, n) for _ in range(batch)]
        lanes = torch.stack([lane for lane, _ in pairs])
        scores = torch.stack([score for _, score in pairs])
        eligible = torch.from_numpy(rng.random((batch, n)) < 0.3).to(DEVICE)
        keep, count = nms_triton.lane_nms_batched(lanes, scores, eligible, 50.0, 5)
        expected_keep, expected_count = nms.lane_nms_batched(lanes, scores, eligible, 50.0, 5)
        assert torch.equal(keep, expected_keep)
        assert count.tolist() == expected_count.tolist()


def test_empty_inputs():
    lanes = torch.zeros((0, 77), device=DEVICE)
    scores = torch.zeros(0, device=DEVICE)
    assert nms_triton.triton_lane_nms(lanes, scores, 50.0, 4).numel() == 0


def test_decode_with_triton_nms_equals_decode_with_pytorch_nms():
    from test_decode import random_predictions

    from clrkdnet_core.config import TestConfig
    from clrkdnet_core.geometry import ImageGeometry
    from clrkdnet_core.postprocess.decode import decode_predictions

    pred = random_predictions(np.random.default_rng(3), 4).to(DEVICE)
    geometry = ImageGeometry(1640, 590, 270)
    test = TestConfig(conf_threshold=0.4, nms_thres=50, max_lanes=4)
    expected = decode_predictions(pred, geometry, test)
    got = decode_predictions(pred, geometry, test, nms=nms_triton.lane_nms_batched)
    assert sum(len(lanes) for lanes in expected) > 4
    for image_expected, image_got in zip(expected, got, strict=True):
        assert len(image_expected) == len(image_got)
        for a, b in zip(image_expected, image_got, strict=True):
            np.testing.assert_array_equal(a.points, b.points)


def test_self_check_passes_and_catches_a_wrong_kernel(monkeypatch):
    nms_triton.check_on(DEVICE)

    def keeps_nothing(lanes, scores, eligible, threshold, top_k):
        return nms.lane_nms_batched(lanes, scores, torch.zeros_like(eligible), threshold, top_k)

    monkeypatch.setattr(nms_triton, "lane_nms_batched", keeps_nothing)
    with pytest.raises(AssertionError, match="Triton lane NMS kept"):
        nms_triton.check_on(DEVICE)
