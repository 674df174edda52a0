"""Distillation terms: zero for identical student and teacher tensors, positive otherwise; the
beyond-the-paper lane-regression term falls along its own gradient."""

import pytest
import torch

from training.distillation import (
    DistillationWeights,
    attention_loss,
    attention_map,
    distillation_losses,
    lane_regression_loss,
    logit_loss,
    prior_loss,
)


def _outputs(seed: int, channels: tuple[int, ...]) -> dict:
    gen = torch.Generator().manual_seed(seed)
    sizes = [(8, 20), (4, 10), (2, 5), (1, 3)]
    return {
        "features": [torch.randn(2, c, *hw, generator=gen) for c, hw in zip(channels, sizes, strict=True)],
        "roi_features": torch.randn(2, 192, 64, generator=gen),
        "stage_priors": torch.rand(2, 192, 3, generator=gen),
    }


def test_attention_map_is_channel_mean_of_squares_with_unit_norm():
    feature = torch.randn(3, 7, 4, 5)
    maps = attention_map(feature)
    assert maps.shape == (3, 20)
    assert maps.norm(dim=1).tolist() == pytest.approx([1.0] * 3)
    raw = feature.pow(2).mean(1).flatten(1)
    assert torch.allclose(maps, raw / raw.norm(dim=1, keepdim=True))


def test_terms_are_zero_for_equal_tensors_and_positive_otherwise():
    weights = DistillationWeights(att=1.0, logit=5.0, prior=3.0)
    student = _outputs(0, (64, 128, 256, 512))
    same = distillation_losses(student, student, weights)
    assert all(value.item() == 0.0 for value in same.values())
    # A teacher with other channel counts (ResNet-101) is comparable through the channel-free attention maps.
    teacher = _outputs(1, (256, 512, 1024, 2048))
    diff = distillation_losses(student, teacher, weights)
    assert set(diff) == {"distill_att_loss", "distill_log_loss", "distill_priors_loss"}
    assert all(value.item() > 0.0 for value in diff.values())


def test_weights_scale_the_terms_and_zero_weight_disables():
    student, teacher = _outputs(0, (4, 4, 4, 4)), _outputs(1, (4, 4, 4, 4))
    terms = distillation_losses(student, teacher, DistillationWeights(att=0.0, logit=5.0, prior=5.0))
    assert terms["distill_att_loss"].item() == 0.0
    expected_logit = 5.0 * logit_loss(student["roi_features"], teacher["roi_features"])
    assert terms["distill_log_loss"].item() == pytest.approx(expected_logit.item())
    att = attention_loss(student["features"], teacher["features"])
    assert att.item() > 0.0


def test_prior_loss_is_summed_squares_over_batch_size():
    assert prior_loss(torch.ones(2, 192, 3), torch.zeros(2, 192, 3)).item() == pytest.approx(192 * 3)
    assert logit_loss(torch.ones(2, 192, 64), torch.zeros(2, 192, 64)).item() == pytest.approx(1.0)


def _lanes(generator: torch.Generator, batch: int = 2) -> torch.Tensor:
    """(B, 192, 78) final-stage predictions in normalised units: lanes starting at the bottom rows,
    covering about half of the image height, xs inside the image."""
    pred = torch.zeros(batch, 192, 78)
    pred[..., :2] = torch.randn(batch, 192, 2, generator=generator)
    pred[..., 2] = 0.02 * torch.rand(batch, 192, generator=generator)  # start_y
    pred[..., 3] = torch.rand(batch, 192, generator=generator)  # start_x
    pred[..., 4] = 0.3 + 0.4 * torch.rand(batch, 192, generator=generator)  # theta
    pred[..., 5] = 0.5  # length: half of the rows
    start = 0.2 + 0.6 * torch.rand(batch, 192, 1, generator=generator)
    pred[..., 6:] = start + 0.002 * torch.arange(72)
    return pred


def _targets(teacher: torch.Tensor, img_w: int = 400) -> torch.Tensor:
    """Two GT lanes per image, encoded like the datasets (pixels, positive flag), near priors 5 and 90."""
    targets = torch.zeros(teacher.shape[0], 4, 78)
    for b in range(teacher.shape[0]):
        for k, prior in enumerate((5, 90)):
            lane = teacher[b, prior].clone()
            targets[b, k, :2] = torch.tensor([0.0, 1.0])
            targets[b, k, 3] = lane[3] * (img_w - 1)
            targets[b, k, 2], targets[b, k, 4], targets[b, k, 5] = lane[2], lane[4], 36.0
            targets[b, k, 6:] = lane[6:] * (img_w - 1) + 3.0
            targets[b, k, 6 + 36 :] = -1e5
    return targets


def test_lane_regression_loss_is_zero_for_identical_lanes_and_its_gradient_reduces_it():
    generator = torch.Generator().manual_seed(0)
    teacher = _lanes(generator)
    targets = _targets(teacher)
    geometry = (400, 160, 1640)
    assert lane_regression_loss(teacher.clone(), teacher, targets, *geometry).item() == pytest.approx(
        0.0, abs=1e-6
    )
    student = (teacher + 0.03 * torch.randn(teacher.shape, generator=generator)).requires_grad_(True)
    losses = []
    optimizer = torch.optim.SGD([student], lr=0.05)
    for _ in range(20):
        loss = lane_regression_loss(student, teacher, targets, *geometry)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] > 0.1 and losses[-1] < 0.5 * losses[0]
    # only the xs carry the term, and nothing flows to the teacher
    assert torch.count_nonzero(student.grad[..., :6]) == 0


def test_lane_regression_loss_ignores_images_without_lanes_and_is_weighted_in():
    generator = torch.Generator().manual_seed(1)
    teacher = _lanes(generator)
    student = (teacher + 0.05).requires_grad_(True)
    empty = torch.zeros(2, 4, 78)
    zero = lane_regression_loss(student, teacher, empty, 400, 160, 1640)
    assert zero.item() == 0.0 and zero.requires_grad
    outputs = {**_outputs(0, (4, 4, 4, 4)), "predictions": [student]}
    reference = {**_outputs(0, (4, 4, 4, 4)), "predictions": [teacher]}
    weights = DistillationWeights(att=1.0, logit=1.0, prior=3.0, lane=2.0)
    terms = distillation_losses(outputs, reference, weights, _targets(teacher), (400, 160, 1640))
    expected = 2.0 * lane_regression_loss(student, teacher, _targets(teacher), 400, 160, 1640)
    assert terms["distill_lane_loss"].item() == pytest.approx(expected.item()) and expected.item() > 0
    with pytest.raises(ValueError, match="targets"):
        distillation_losses(outputs, reference, weights)
    # the paper's weights (lane 0) have no such term
    assert "distill_lane_loss" not in distillation_losses(
        outputs, reference, DistillationWeights(1.0, 5.0, 3.0)
    )
