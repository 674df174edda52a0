"""Focal, LineIoU and LaneIoU against hand-computed values; the CLRNet criterion on a hand-built target."""

import math

import pytest
import torch

from training.criterion import CLRNetCriterion, LossWeights
from training.losses import focal_loss, lane_iou, lane_iou_loss, line_iou, line_iou_loss


def test_focal_loss_matches_hand_computed_values():
    logits = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    loss = focal_loss(logits, torch.tensor([1, 0]))
    p0 = 0.5 + 1e-6
    p1 = math.exp(2) / (math.exp(2) + 1) + 1e-6
    expected = [-0.25 * (1 - p0) ** 2 * math.log(p0), -0.25 * (1 - p1) ** 2 * math.log(p1)]
    assert loss.tolist() == pytest.approx(expected, rel=1e-6)


def test_line_iou_overlapping_disjoint_and_invalid_rows():
    pred = torch.full((2, 72), 100.0)
    target = torch.stack([torch.full((72,), 110.0), torch.full((72,), 150.0)])
    # Overlap 20 / union 40; disjoint bands give a negative overlap (-20 / 80).
    assert line_iou(pred, target).tolist() == pytest.approx([0.5, -0.25])
    target[0, 40:] = -1e5  # rows the GT does not reach are ignored, not counted as misses
    target[1, :30] = 900.0  # outside the 800-wide input: ignored as well
    assert line_iou(pred, target).tolist() == pytest.approx([0.5, -0.25])
    assert line_iou_loss(pred[:1], target[:1]).item() == pytest.approx(0.5)


def test_line_iou_unaligned_is_pairwise():
    pred = torch.stack([torch.full((72,), 100.0), torch.full((72,), 400.0)])
    target = torch.stack([torch.full((72,), 100.0), torch.full((72,), 110.0), torch.full((72,), 400.0)])
    ious = line_iou(pred, target, aligned=False)
    assert ious.shape == (2, 3)
    assert ious[0].tolist()[:2] == pytest.approx([1.0, 0.5])
    assert ious[1, 2].item() == pytest.approx(1.0)
    assert ious[1, 0].item() < 0


def test_lane_iou_widens_bands_of_slanted_lanes():
    rows = torch.arange(72, dtype=torch.float32)
    vertical = torch.full((1, 72), 100.0)
    # Vertical lane: half-width 7.5 px; 10 px apart -> overlap 5, union 25.
    assert lane_iou(vertical, vertical + 10).item() == pytest.approx(0.2)
    slope = 3.0  # px of the 800-wide input per row
    slanted = 100.0 + slope * rows[None]
    dx = 2 * slope / 800 * 1640
    dy = 2 * 320 / 71
    half = 7.5 * math.sqrt(dx**2 + dy**2) / dy
    expected = (2 * half - 10) / (2 * half + 10)
    assert lane_iou(slanted, slanted + 10).item() == pytest.approx(expected, rel=1e-5)
    assert lane_iou_loss(slanted, slanted).item() == pytest.approx(0.0, abs=1e-6)


def test_lane_iou_cost_variant_penalises_length_mismatch():
    lane = torch.full((1, 72), 300.0)
    valid = torch.zeros(1, 72, dtype=torch.bool)
    valid[:, :36] = True  # the prediction stops half-way up the GT
    full = lane_iou(lane, lane, half_width=30 / 800, aligned=False, pred_valid=valid)
    assert full.item() == pytest.approx(0.5)


def _lane_row(x_px: float, rows: int = 72) -> torch.Tensor:
    """Encoded GT row of a vertical lane over all rows (MODEL.md 4.1)."""
    row = torch.zeros(6 + rows)
    row[1], row[2], row[3], row[4], row[5] = 1.0, 0.0, x_px, 0.5, rows
    row[6:] = x_px
    return row


def test_criterion_is_lower_for_a_matching_prediction():
    criterion = CLRNetCriterion(LossWeights(2.0, 0.2, 2.0, 1.0), seg_classes=5)
    target = torch.stack([_lane_row(200.0), torch.tensor([1.0, 0.0] + [-1e5] * 76)])[None]
    seg = torch.zeros(1, 8, 20, dtype=torch.long)
    good = torch.zeros(1, 16, 78)
    good[..., 0] = 3.0  # confident negatives
    good[0, :, 2:] = torch.cat([torch.tensor([0.0, 0.1, 0.5, 1.0]), torch.full((72,), 0.1)])
    good[0, 5, 0:2] = torch.tensor([-3.0, 3.0])
    good[0, 5, 3] = good[0, 5, 6:].fill_(200.0 / 799)[0]
    bad = good.clone()
    bad[0, 5, 6:] += 0.05
    seg_logits = torch.zeros(1, 5, 8, 20)
    low = criterion({"predictions": [good], "seg": seg_logits}, target, seg)
    high = criterion({"predictions": [bad], "seg": seg_logits}, target, seg)
    assert low["iou_loss"].item() == pytest.approx(0.0, abs=1e-6)
    assert high["iou_loss"] > 0.5
    assert low["loss"] < high["loss"]
    assert low["stage_0_acc"].item() == pytest.approx(100.0)
    assert low["seg_loss"].item() == pytest.approx(math.log(5), rel=1e-5)
