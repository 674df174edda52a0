"""LaneIoU of CLRerNet: LineIoU with a per-row band width that follows the lane's local angle (MODEL.md 10).

A steep lane and a slanted lane covering the same pixels get the same IoU because the band is widened
horizontally by ``sqrt(dx² + dy²) / dy``; this is why LaneIoU correlates better with the
CULane metric than LineIoU.
"""

import torch
from torch import Tensor

# A GT x-difference this large (in original-image pixels) involves a -1e5 placeholder row, not a real slope.
_MAX_DX = 1e4


def _half_widths(xs: Tensor, img_w: int, ori_w: int, img_h: int, half_width: float) -> Tensor:
    """Per-row half-widths (input pixels) of lanes ``xs`` (N, R) given in input pixels."""
    n_strips = xs.shape[-1] - 1
    dy = 2.0 * img_h / n_strips
    dx = (xs[..., 2:] - xs[..., :-2]) / img_w * ori_w
    dx = dx.masked_fill(dx.abs() > _MAX_DX, 0.0)
    widths = half_width * img_w * torch.sqrt(dx.pow(2) + dy**2) / dy
    return torch.cat([widths[..., :1], widths, widths[..., -1:]], dim=-1)


def lane_iou(
    pred: Tensor,
    target: Tensor,
    img_w: int = 800,
    ori_w: int = 1640,
    img_h: int = 320,
    half_width: float = 7.5 / 800,
    aligned: bool = True,
    pred_valid: Tensor | None = None,
) -> Tensor:
    """LaneIoU of lane xs in input pixels; shapes as in :func:`training.losses.line_iou.line_iou`.

    ``half_width`` is relative to the input width. The prediction's widths come from the detached prediction.
    With ``pred_valid`` (N, R) bool (rows between the predicted start and end), rows where only one of the
    two lanes exists add that lane's full band to the union with zero overlap, which penalises a wrong
    length (the assignment-cost variant); otherwise only the target's invalid rows are dropped.
    """
    pred_w = _half_widths(pred.detach(), img_w, ori_w, img_h, half_width)
    target_w = _half_widths(target, img_w, ori_w, img_h, half_width)
    target_invalid = (target < 0) | (target >= img_w)
    if not aligned:
        pred, pred_w = pred[:, None, :], pred_w[:, None, :]
        target, target_w, target_invalid = target[None], target_w[None], target_invalid[None]
        if pred_valid is not None:
            pred_valid = pred_valid[:, None, :]
    overlap = torch.minimum(pred + pred_w, target + target_w) - torch.maximum(
        pred - pred_w, target - target_w
    )
    union = torch.maximum(pred + pred_w, target + target_w) - torch.minimum(pred - pred_w, target - target_w)
    target_invalid = target_invalid.expand_as(overlap)
    if pred_valid is None:
        overlap = overlap.masked_fill(target_invalid, 0.0)
        union = union.masked_fill(target_invalid, 0.0)
    else:
        pred_invalid = ~pred_valid.expand_as(overlap)
        only_target = pred_invalid & ~target_invalid
        only_pred = ~pred_invalid & target_invalid
        overlap = overlap.masked_fill(pred_invalid | target_invalid, 0.0)
        union = torch.where(only_target, 2.0 * target_w.expand_as(union), union)
        union = torch.where(only_pred, 2.0 * pred_w.expand_as(union), union)
        union = union.masked_fill(pred_invalid & target_invalid, 0.0)
    return overlap.sum(dim=-1) / (union.sum(dim=-1) + 1e-9)


def lane_iou_loss(
    pred: Tensor, target: Tensor, img_w: int = 800, ori_w: int = 1640, img_h: int = 320
) -> Tensor:
    """Mean of ``1 - LaneIoU`` over matched pairs (half-width 7.5/800, CLRerNet's loss setting)."""
    return (1.0 - lane_iou(pred, target, img_w, ori_w, img_h)).mean()
