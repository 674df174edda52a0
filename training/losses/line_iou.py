"""LineIoU of CLRNet: lanes widened to bands of ±``radius`` pixels, IoU summed over rows (MODEL.md 4.3)."""

import torch
from torch import Tensor


def _invalid_rows(target: Tensor, img_w: int) -> Tensor:
    return (target < 0) | (target >= img_w)


def line_iou(
    pred: Tensor, target: Tensor, img_w: int = 800, radius: float = 15.0, aligned: bool = True
) -> Tensor:
    """LineIoU of lane x coordinates in input pixels.

    aligned: ``pred`` and ``target`` are (N, R) pairs -> (N,). Unaligned: ``pred`` (N, R) against every row of
    ``target`` (M, R) -> (N, M). Rows where the target lies outside ``[0, img_w)`` are ignored; the overlap of
    disjoint bands is negative, which makes the loss GIoU-like.
    """
    if not aligned:
        pred = pred[:, None, :]
        target = target[None, :, :]
    overlap = torch.minimum(pred + radius, target + radius) - torch.maximum(pred - radius, target - radius)
    union = torch.maximum(pred + radius, target + radius) - torch.minimum(pred - radius, target - radius)
    invalid = _invalid_rows(target, img_w).expand_as(overlap)
    overlap = overlap.masked_fill(invalid, 0.0)
    union = union.masked_fill(invalid, 0.0)
    return overlap.sum(dim=-1) / (union.sum(dim=-1) + 1e-9)


def line_iou_loss(pred: Tensor, target: Tensor, img_w: int = 800, radius: float = 15.0) -> Tensor:
    """Mean of ``1 - LineIoU`` over matched pairs."""
    return (1.0 - line_iou(pred, target, img_w, radius)).mean()
