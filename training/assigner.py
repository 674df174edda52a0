"""Dynamic-k label assignment of CLRNet (SimOTA-like), run per image and per refinement stage (MODEL.md 4.2).

Every ground-truth lane gets the ``k`` priors of lowest cost, ``k`` being the rounded-down sum of its four
best IoUs. A prior claimed by several lanes must end with the cheapest one. The reference clears only column 0
of such rows before setting the cheapest column, so with three or more lanes the prior can stay with a more
expensive lane; ``legacy_conflict=True`` keeps that behaviour, the default clears the whole row
(as CLRerNet does).
"""

import torch
from torch import Tensor

from clrkdnet_core import lane_format
from training.losses.lane_iou import lane_iou
from training.losses.line_iou import line_iou

_CANDIDATE_K = 4
_DISTANCE_WEIGHT = 3.0
_CLS_WEIGHT = 1.0


def _normalise(score: Tensor) -> Tensor:
    """Map a non-negative cost to [0.01, 1.01]: 1.01 for a zero cost, 0.01 for the worst pair.

    When every cost is zero (e.g. all thetas equal) the reference divides by zero and assigns on NaN costs;
    clamping the maximum keeps the factor neutral (1.01) instead.
    """
    return 1.0 - score / score.max().clamp(min=1e-12) + 1e-2


def distance_cost(pred_xs: Tensor, target_xs: Tensor, img_w: int) -> Tensor:
    """Mean |x_gt - x_pred| over the target's valid rows, pixels; (P, R), (G, R) -> (P, G)."""
    invalid = ((target_xs < 0) | (target_xs >= img_w))[None]
    dist = (target_xs[None] - pred_xs[:, None]).abs().masked_fill(invalid, 0.0)
    return dist.sum(-1) / ((~invalid).sum(-1).float() + 1e-9)


def focal_cost(logits: Tensor, alpha: float = 0.25, gamma: float = 2.0, eps: float = 1e-12) -> Tensor:
    """Classification cost (P,) of labelling each prior positive, from the sigmoid of its positive logit."""
    prob = logits[:, lane_format.POSITIVE_LOGIT].sigmoid()
    neg = -(1.0 - prob + eps).log() * (1.0 - alpha) * prob.pow(gamma)
    pos = -(prob + eps).log() * alpha * (1.0 - prob).pow(gamma)
    return pos - neg


def dynamic_k_assign(cost: Tensor, ious: Tensor, legacy_conflict: bool = False) -> tuple[Tensor, Tensor]:
    """Pick ``k_g`` lowest-cost priors per GT from ``cost`` (P, G) with ``k_g`` from ``ious`` (P, G).

    Returns (prior indices, GT indices) of the matched pairs, sorted by prior index.
    """
    matching = torch.zeros_like(cost)
    topk_ious, _ = torch.topk(ious.clamp(min=0.0), min(_CANDIDATE_K, ious.shape[0]), dim=0)
    dynamic_ks = torch.clamp(topk_ious.sum(0).int(), min=1)
    for gt_idx in range(cost.shape[1]):
        _, pos_idx = torch.topk(cost[:, gt_idx], k=int(dynamic_ks[gt_idx]), largest=False)
        matching[pos_idx, gt_idx] = 1.0
    conflicts = matching.sum(1) > 1
    if conflicts.any():
        cheapest = cost[conflicts].argmin(dim=1)
        if legacy_conflict:
            matching[conflicts, 0] = 0.0
        else:
            matching[conflicts] = 0.0
        matching[conflicts.nonzero().flatten(), cheapest] = 1.0
    prior_idx = matching.sum(1).nonzero().flatten()
    gt_idx = matching[prior_idx].argmax(-1)
    return prior_idx, gt_idx


def _predicted_rows(pred: Tensor, n_strips: int) -> Tensor:
    """(P, R) bool: rows from the predicted start to the predicted end (start + length - 1)."""
    start = torch.clamp((pred[:, lane_format.START_Y] * n_strips).round().long(), 0, n_strips)
    end = start + (pred[:, lane_format.LENGTH] * n_strips).round().long() - 1
    rows = torch.arange(n_strips + 1, device=pred.device)[None]
    return (rows >= start[:, None]) & (rows <= end[:, None])


@torch.no_grad()
def assign(
    predictions: Tensor,
    targets: Tensor,
    img_w: int = 800,
    img_h: int = 320,
    ori_w: int = 1640,
    legacy_conflict: bool = False,
    use_lane_iou: bool = False,
) -> tuple[Tensor, Tensor]:
    """Match priors of one image's stage output ``predictions`` (P, 78) to its GT lanes ``targets`` (G, 78).

    Predictions are in the network's normalised units, targets as encoded by the dataset (start_x and
    xs in input pixels). ``use_lane_iou`` switches the cost and the dynamic-k IoU to CLRerNet's LaneIoU.
    """
    pred = predictions.detach().clone().float()
    pred[:, lane_format.START_X] *= img_w - 1
    pred[:, lane_format.XS] *= img_w - 1
    targets = targets.detach().float()
    pred_xs, target_xs = pred[:, lane_format.XS], targets[:, lane_format.XS]
    cls_cost = focal_cost(pred[:, lane_format.LOGITS])[:, None]
    if use_lane_iou:
        rows = _predicted_rows(pred, lane_format.NUM_STRIPS)
        score = lane_iou(pred_xs, target_xs, img_w, ori_w, img_h, 30.0 / 800, False, rows)
        cost = -score * _DISTANCE_WEIGHT + cls_cost * _CLS_WEIGHT
        ious = lane_iou(pred_xs, target_xs, img_w, ori_w, img_h, 7.5 / 800, aligned=False)
        return dynamic_k_assign(cost, ious, legacy_conflict)
    distances = _normalise(distance_cost(pred_xs, target_xs, img_w))
    start_y, start_x, theta = lane_format.START_Y, lane_format.START_X, lane_format.THETA
    pred_start = torch.stack([pred[:, start_y] * (img_h - 1), pred[:, start_x]], dim=1)
    target_start = torch.stack([targets[:, start_y] * (img_h - 1), targets[:, start_x]], dim=1)
    starts = _normalise(torch.cdist(pred_start, target_start, p=2))
    thetas = _normalise((pred[:, theta, None] - targets[None, :, theta]).abs() * 180)
    cost = -((distances * starts * thetas) ** 2) * _DISTANCE_WEIGHT + cls_cost * _CLS_WEIGHT
    ious = line_iou(pred_xs, target_xs, img_w, aligned=False)
    return dynamic_k_assign(cost, ious, legacy_conflict)
