"""CLRKDNet's three distillation terms between a student and a frozen teacher (MODEL.md 3.2-3.3).

No temperature, adapters or projections: the matched tensors have the same shapes by construction
(attention maps are channel-free, the ROIGather outputs and priors are (B, 192, 64) and (B, 192, 3)
for every preset).

Beyond the paper, :func:`lane_regression_loss` distils what the three terms leave out: the teacher's
final-stage lane regression (the refinement stages are what give it its F1@75), compared with the line-IoU
loss at the priors the teacher's assignment gives to the ground-truth lanes.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from clrkdnet_core.config import Preset
from clrkdnet_core.lane_format import POSITIVE_LOGIT, XS
from clrkdnet_core.postprocess.decode import valid_rows
from training.assigner import assign
from training.losses.line_iou import line_iou


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


def lane_regression_loss(
    student_pred: Tensor,
    teacher_pred: Tensor,
    targets: Tensor,
    img_w: int,
    img_h: int,
    ori_w: int,
) -> Tensor:
    """1 - LineIoU between the student's and the teacher's final-stage lanes at the teacher's assigned priors.

    ``student_pred`` and ``teacher_pred`` are the last refinement stage (B, 192, 78) in the network's
    normalised units, ``targets`` the batch's encoded GT lanes (B, max_lanes, 78). Per image, the teacher's
    predictions are assigned to the GT lanes with the training assigner (the priors the teacher itself is
    trained to regress there, i.e. real lanes, not background priors); at those prior indices the student's
    xs are pulled towards the teacher's with the line-IoU loss, over the rows of the teacher's polyline as its
    decoding keeps them (:func:`valid_rows`: from its start over its length, inside the image). Index ``i``
    is the same prior in both networks because the prior term aligns the students' priors with the teacher's.
    Mean over the matched priors of the batch; 0 (with a gradient path) when no image has a lane.
    """
    teacher_pred = teacher_pred.detach().float()
    student_pred = student_pred.float()
    losses = []
    for student_lanes, teacher_lanes, target in zip(student_pred, teacher_pred, targets, strict=True):
        target = target[target[:, POSITIVE_LOGIT] == 1]
        if len(target) == 0:
            continue
        prior_idx, _ = assign(teacher_lanes, target.float(), img_w, img_h, ori_w)
        teacher = teacher_lanes[prior_idx]
        rows = valid_rows(teacher)
        keep = rows.any(dim=1)  # a prior without a row of polyline has nothing to teach (and IoU 0/0)
        if not keep.any():
            continue
        # Rows outside the teacher's polyline become an out-of-image target, which line_iou ignores.
        teacher_xs = torch.where(rows[keep], teacher[keep][:, XS] * (img_w - 1), -1.0)
        student_xs = student_lanes[prior_idx][keep][:, XS] * (img_w - 1)
        losses.append(1.0 - line_iou(student_xs, teacher_xs, img_w))
    if not losses:
        return student_pred.sum() * 0.0
    return torch.cat(losses).mean()


@dataclass(frozen=True)
class DistillationWeights:
    """Weights of the attention, logit and prior terms (per student preset, MODEL.md 3.4), and of the
    beyond-the-paper lane-regression term (``lane``, 0 in the paper's recipe)."""

    att: float
    logit: float
    prior: float
    lane: float = 0.0

    @classmethod
    def from_preset(cls, preset: Preset) -> "DistillationWeights":
        """The student preset's ``train.att_weight``, ``logit_weight`` and ``prior_weight``."""
        return cls(preset.train.att_weight, preset.train.logit_weight, preset.train.prior_weight)


def distillation_losses(
    student: dict,
    teacher: dict,
    weights: DistillationWeights,
    targets: Tensor | None = None,
    geometry: tuple[int, int, int] | None = None,
) -> dict[str, Tensor]:
    """Weighted terms from the train-mode output dicts (``features``, ``roi_features``, ``stage_priors``).

    A term with weight 0 is not computed (the DLA student has no attention transfer). Keys are the
    reference's log names: ``distill_att_loss``, ``distill_log_loss``, ``distill_priors_loss``; with a
    ``lane`` weight also ``distill_lane_loss``, which needs the batch's ``targets`` and the ``geometry``
    (img_w, img_h, ori_w) of the criterion.
    """
    zero = student["roi_features"].new_zeros((), dtype=torch.float32)
    att = attention_loss(student["features"], teacher["features"]) if weights.att else zero
    logit = logit_loss(student["roi_features"], teacher["roi_features"]) if weights.logit else zero
    prior = prior_loss(student["stage_priors"], teacher["stage_priors"]) if weights.prior else zero
    terms = {
        "distill_att_loss": weights.att * att,
        "distill_log_loss": weights.logit * logit,
        "distill_priors_loss": weights.prior * prior,
    }
    if weights.lane:
        if targets is None or geometry is None:
            raise ValueError("the lane-regression term needs the batch's targets and the geometry")
        lane = lane_regression_loss(
            student["predictions"][-1], teacher["predictions"][-1], targets, *geometry
        )
        terms["distill_lane_loss"] = weights.lane * lane
    return terms
