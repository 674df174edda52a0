"""The dynamic-k assigner on hand-built cases, including the column-0 conflict bug of the reference."""

import torch

from training.assigner import assign, dynamic_k_assign


def _vertical_priors(xs_px: list[float]) -> torch.Tensor:
    """Stage predictions (P, 78) of vertical lanes starting at the bottom, equal logits."""
    pred = torch.zeros(len(xs_px), 78)
    pred[:, 4] = 0.5
    pred[:, 5] = 1.0
    for i, x in enumerate(xs_px):
        pred[i, 3] = x / 799
        pred[i, 6:] = x / 799
    return pred


def _targets(xs_px: list[float]) -> torch.Tensor:
    target = torch.zeros(len(xs_px), 78)
    target[:, 1] = 1.0
    target[:, 4] = 0.5
    target[:, 5] = 72
    for i, x in enumerate(xs_px):
        target[i, 3] = x
        target[i, 6:] = x
    return target


def test_each_lane_gets_its_closest_prior():
    priors = _vertical_priors([50, 200, 320, 450, 600, 750])
    targets = _targets([600, 200])
    for use_lane_iou in (False, True):
        prior_idx, gt_idx = assign(priors, targets, use_lane_iou=use_lane_iou)
        assert prior_idx.tolist() == [1, 4]
        assert gt_idx.tolist() == [1, 0]


def test_dynamic_k_grows_with_the_iou_of_the_best_priors():
    priors = _vertical_priors([200, 201, 202, 203, 600])
    prior_idx, gt_idx = assign(priors, _targets([201.5]))
    # Four priors within 2 px: the top-4 IoUs sum to more than 3, so k = 3.
    assert prior_idx.tolist() == [0, 1, 2] or prior_idx.tolist() == [1, 2, 3]
    assert len(prior_idx) == 3
    assert gt_idx.tolist() == [0, 0, 0]


def test_conflict_resolution_fix_differs_from_legacy():
    # Prior 0 is the cheapest prior of GT 1 and of GT 2, cheaper for GT 2.
    cost = torch.tensor([[5.0, 0.0, -1.0], [0.0, 5.0, 5.0], [5.0, 5.0, 0.0]])
    ious = torch.full((3, 3), 0.2)  # k = 1 for every GT
    fixed = dynamic_k_assign(cost, ious)
    legacy = dynamic_k_assign(cost, ious, legacy_conflict=True)
    assert [t.tolist() for t in fixed] == [[0, 1], [2, 0]]
    # The reference clears only column 0, so prior 0 keeps GT 1 as well and argmax picks it.
    assert [t.tolist() for t in legacy] == [[0, 1], [1, 0]]


def test_two_lane_conflicts_agree_between_fixed_and_legacy():
    cost = torch.tensor([[1.0, 0.0], [0.0, 3.0], [4.0, 4.0]])
    ious = torch.full((3, 2), 0.4)  # k = int(3 * 0.4) = 1
    cost[0, 0] = -2.0  # prior 0 is the cheapest for both GTs, cheaper for GT 0
    fixed = dynamic_k_assign(cost, ious)
    legacy = dynamic_k_assign(cost, ious, legacy_conflict=True)
    assert [t.tolist() for t in fixed] == [t.tolist() for t in legacy] == [[0], [0]]
