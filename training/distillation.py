"""CLRKDNet's three distillation terms between a student and a frozen teacher (MODEL.md 3.2-3.3).

No temperature, adapters or projections: the matched tensors have the same shapes by construction
(attention maps are channel-free, the ROIGather outputs and priors are (B, 192, 64) and (B, 192, 3)
for every preset).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from clrkdnet_core.config import Preset


def attention_map(feature: Tensor) -> Tensor:
    """Channel mean of F², flattened and L2-normalised over space per sample: (B, C, h, w) -> (B, h·w)."""
    return F.normalize(feature.float().pow(2).mean(dim=1).flatten(1), dim=1)


def attention_loss(student_features: list[Tensor], teacher_features: list[Tensor]) -> Tensor:
    """Mean over the backbone stages of the MSE between student and teacher attention maps."""
    losses = [
        F.mse_loss(attention_map(s), attention_map(t))
        for s, t in zip(student_features, teacher_features, strict=True)
    ]
    return torch.stack(losses).mean()


def logit_loss(student_roi: Tensor, teacher_roi: Tensor) -> Tensor:
    """MSE (mean) between the ROIGather outputs of the last refinement stages, (B, 192, 64)."""
    return F.mse_loss(student_roi.float(), teacher_roi.float())


def prior_loss(student_priors: Tensor, teacher_priors: Tensor) -> Tensor:
    """Summed squared difference of the priors entering the last stage (B, 192, 3), over batch size."""
    return (student_priors.float() - teacher_priors.float()).pow(2).sum() / student_priors.shape[0]


@dataclass(frozen=True)
class DistillationWeights:
    """Weights of the attention, logit and prior terms (per student preset, MODEL.md 3.4)."""

    att: float
    logit: float
    prior: float

    @classmethod
    def from_preset(cls, preset: Preset) -> "DistillationWeights":
        """The student preset's ``train.att_weight``, ``logit_weight`` and ``prior_weight``."""
        return cls(preset.train.att_weight, preset.train.logit_weight, preset.train.prior_weight)


def distillation_losses(student: dict, teacher: dict, weights: DistillationWeights) -> dict[str, Tensor]:
    """Weighted terms from the train-mode output dicts (``features``, ``roi_features``, ``stage_priors``).

    A term with weight 0 is not computed (the DLA student has no attention transfer). Keys are the
    reference's log names: ``distill_att_loss``, ``distill_log_loss``, ``distill_priors_loss``.
    """
    zero = student["roi_features"].new_zeros((), dtype=torch.float32)
    att = attention_loss(student["features"], teacher["features"]) if weights.att else zero
    logit = logit_loss(student["roi_features"], teacher["roi_features"]) if weights.logit else zero
    prior = prior_loss(student["stage_priors"], teacher["stage_priors"]) if weights.prior else zero
    return {
        "distill_att_loss": weights.att * att,
        "distill_log_loss": weights.logit * logit,
        "distill_priors_loss": weights.prior * prior,
    }
