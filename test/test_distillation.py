"""Distillation terms: zero for identical student and teacher tensors, positive otherwise."""

import pytest
import torch

from training.distillation import (
    DistillationWeights,
    attention_loss,
    attention_map,
    distillation_losses,
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
