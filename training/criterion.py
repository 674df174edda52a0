"""CLRNet's training loss over all refinement stages: focal classification, smooth-L1 on start/theta/length,
LineIoU (or LaneIoU) on the xs, and the auxiliary segmentation NLL (MODEL.md 4.4)."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clrkdnet_core.config import Preset
from clrkdnet_core.lane_format import (
    GEOMETRY,
    LENGTH,
    LOGITS,
    NUM_STRIPS,
    POSITIVE_LOGIT,
    START_X,
    START_Y,
    THETA,
    XS,
)
from training.assigner import assign
from training.losses.focal import focal_loss
from training.losses.lane_iou import lane_iou_loss
from training.losses.line_iou import line_iou_loss

SEG_IGNORE_INDEX = 255


@dataclass(frozen=True)
class LossWeights:
    """Weights of the four CLRNet terms."""

    cls: float
    xyt: float
    iou: float
    seg: float


class CLRNetCriterion(nn.Module):
    """Loss of a CLRNet/CLRKDNet train-mode output against a batch of encoded lane targets.

    ``forward(output, targets, seg_targets)`` takes the model's train dict (``predictions``: R stage tensors
    (B, 192, 78), ``seg``: (B, C, H, W) logits), ``targets`` (B, max_lanes, 78) as encoded by the datasets
    (pixels, invalid rows with column 1 = 0) and ``seg_targets`` (B, H, W) long; it returns a dict with
    ``loss`` and the detached terms ``cls_loss``, ``reg_xytl_loss``, ``iou_loss``, ``seg_loss`` and
    ``stage_{i}_acc`` (percent).
    """

    def __init__(
        self,
        weights: LossWeights,
        seg_classes: int,
        bg_weight: float = 0.4,
        img_w: int = 800,
        img_h: int = 320,
        ori_w: int = 1640,
        legacy_conflict: bool = False,
        use_lane_iou: bool = False,
    ) -> None:
        super().__init__()
        self.weights = weights
        self.img_w, self.img_h, self.ori_w = img_w, img_h, ori_w
        self.legacy_conflict = legacy_conflict
        self.use_lane_iou = use_lane_iou
        class_weights = torch.ones(seg_classes)
        class_weights[0] = bg_weight
        self.register_buffer("seg_class_weights", class_weights)

    @classmethod
    def from_preset(
        cls, preset: Preset, legacy_conflict: bool = False, use_lane_iou: bool = False
    ) -> "CLRNetCriterion":
        """The criterion with the preset's loss weights, seg classes and geometry."""
        train, geometry = preset.train, preset.geometry
        return cls(
            LossWeights(train.cls_weight, train.xyt_weight, train.iou_weight, train.seg_weight),
            preset.model.seg_classes,
            train.bg_weight,
            geometry.img_w,
            geometry.img_h,
            geometry.ori_img_w,
            legacy_conflict,
            use_lane_iou,
        )

    def _iou_loss(self, pred_xs: Tensor, target_xs: Tensor) -> Tensor:
        if self.use_lane_iou:
            return lane_iou_loss(pred_xs, target_xs, self.img_w, self.ori_w, self.img_h)
        return line_iou_loss(pred_xs, target_xs, self.img_w)

    def forward(self, output: dict, targets: Tensor, seg_targets: Tensor) -> dict[str, Tensor]:
        stages = output["predictions"]
        zero = stages[0].new_zeros(())
        cls_loss, reg_loss, iou_loss = zero, zero, zero
        terms: dict[str, Tensor] = {}
        for stage_idx, stage in enumerate(stages):
            stage = stage.float()
            accuracies = []
            for predictions, target in zip(stage, targets, strict=True):
                target = target[target[:, POSITIVE_LOGIT] == 1]
                cls_target = predictions.new_zeros(predictions.shape[0], dtype=torch.long)
                cls_pred = predictions[:, LOGITS]
                if len(target) == 0:
                    cls_loss = cls_loss + focal_loss(cls_pred, cls_target).sum()
                    continue
                prior_idx, gt_idx = assign(
                    predictions,
                    target,
                    self.img_w,
                    self.img_h,
                    self.ori_w,
                    self.legacy_conflict,
                    self.use_lane_iou,
                )
                cls_target[prior_idx] = 1
                cls_loss = cls_loss + focal_loss(cls_pred, cls_target).sum() / target.shape[0]
                reg_loss = reg_loss + self._reg_loss(predictions[prior_idx], target[gt_idx])
                pred_xs = predictions[prior_idx, XS] * (self.img_w - 1)
                iou_loss = iou_loss + self._iou_loss(pred_xs, target[gt_idx, XS])
                accuracies.append((cls_pred.argmax(1) == cls_target).float().mean() * 100)
            if accuracies:
                terms[f"stage_{stage_idx}_acc"] = torch.stack(accuracies).mean().detach()
        norm = targets.shape[0] * len(stages)
        cls_loss, reg_loss, iou_loss = cls_loss / norm, reg_loss / norm, iou_loss / norm
        seg_loss = F.nll_loss(
            F.log_softmax(output["seg"].float(), dim=1),
            seg_targets.long(),
            weight=self.seg_class_weights,
            ignore_index=SEG_IGNORE_INDEX,
        )
        w = self.weights
        loss = w.cls * cls_loss + w.xyt * reg_loss + w.seg * seg_loss + w.iou * iou_loss
        terms.update(
            cls_loss=cls_loss.detach(),
            reg_xytl_loss=reg_loss.detach(),
            iou_loss=iou_loss.detach(),
            seg_loss=seg_loss.detach(),
        )
        return {"loss": loss, **terms}

    def _reg_loss(self, matched: Tensor, target: Tensor) -> Tensor:
        """Smooth-L1 on (start_y, start_x, theta, length) in rows/pixels/degrees/rows, with the GT length
        shortened by how far the predicted start row is above the GT start row."""
        scale = matched.new_tensor([NUM_STRIPS, self.img_w - 1, 180.0, NUM_STRIPS])
        pred = matched[:, GEOMETRY] * scale
        with torch.no_grad():
            pred_start = torch.clamp((matched[:, START_Y] * NUM_STRIPS).round().long(), 0, NUM_STRIPS)
            target_start = (target[:, START_Y] * NUM_STRIPS).round().long()
            length_adj = target[:, LENGTH] - (pred_start - target_start)
            goal = torch.stack(
                [target[:, START_Y] * NUM_STRIPS, target[:, START_X], target[:, THETA] * 180.0, length_adj],
                dim=1,
            ).float()
        return F.smooth_l1_loss(pred, goal, reduction="none").mean()
