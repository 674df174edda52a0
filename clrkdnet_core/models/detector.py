"""LaneNet: backbone + neck + CLR head, the whole CLRNet / CLRKDNet network of one preset."""

from pathlib import Path

from torch import Tensor, nn

from clrkdnet_core.config import Preset
from clrkdnet_core.errors import InputError
from clrkdnet_core.models.backbones.dla import DLABackbone
from clrkdnet_core.models.backbones.resnet import ResNetBackbone
from clrkdnet_core.models.heads.clr_head import CLRHead
from clrkdnet_core.models.necks.aggregator import Aggregator
from clrkdnet_core.models.necks.fpn import FPN


class LaneNet(nn.Module):
    """The network of ``preset``; module names reproduce the official state_dict keys.

    Input: (B, 3, img_h, img_w) float BGR / 255 (no mean/std normalisation, like the official models).
    Eval mode returns the last stage's (B, 192, 78) predictions; training mode returns a dict
    (see :meth:`forward`). ``postprocess.decode_predictions(pred, preset.geometry, preset.test)`` turns eval
    predictions into lanes.
    """

    def __init__(self, preset: Preset, pretrained_backbone: str | Path | None = None) -> None:
        super().__init__()
        self.preset = preset
        cfg = preset.model
        if cfg.backbone == "dla34":
            self.backbone = DLABackbone(cfg.backbone, pretrained_backbone)
        else:
            self.backbone = ResNetBackbone(cfg.backbone, pretrained_backbone)
        if cfg.neck == "fpn":
            self.neck = FPN(self.backbone.out_channels[1:], cfg.prior_feat_channels)
        else:
            self.neck = Aggregator(self.backbone.out_channels[-1], cfg.prior_feat_channels)
        self.heads = CLRHead(
            refine_layers=cfg.refine_layers,
            fc_hidden_dim=cfg.fc_hidden_dim,
            prior_feat_channels=cfg.prior_feat_channels,
            sample_points=cfg.sample_points,
            seg_classes=cfg.seg_classes,
            bg_weight=preset.train.bg_weight,
            img_w=preset.geometry.img_w,
            img_h=preset.geometry.img_h,
        )

    def forward(self, x: Tensor, return_dict: bool | None = None) -> Tensor | dict:
        """Run the network on a (B, 3, img_h, img_w) batch.

        ``return_dict`` defaults to ``self.training``. The dict holds ``predictions`` (one (B, 192, 78) tensor
        per refinement stage), ``seg`` ((B, C, img_h, img_w) logits in training mode, None in eval mode),
        ``features`` (the 4 backbone maps), ``roi_features`` ((B, 192, 64) ROIGather output of the last stage)
        and ``stage_priors`` ((B, 192, 3) start_y, start_x, theta of the priors entering the last stage).
        Distillation calls a teacher in eval mode with ``return_dict=True``.
        """
        geometry = self.preset.geometry
        if (
            x.dim() != 4
            or tuple(x.shape[1:]) != (3, geometry.img_h, geometry.img_w)
            or not x.is_floating_point()
        ):
            raise InputError(
                f"expected a float tensor of shape (B, 3, {geometry.img_h}, {geometry.img_w}) "
                f"(BGR / 255), got {x.dtype} {tuple(x.shape)}"
            )
        weight = next(self.parameters())
        if x.dtype != weight.dtype or x.device != weight.device:
            raise InputError(
                f"input is {x.dtype} on {x.device} but the network is {weight.dtype} on {weight.device}; "
                "move it with x.to(device, dtype)"
            )
        if return_dict is None:
            return_dict = self.training
        features = self.backbone(x)
        output = self.heads(self.neck(features), return_dict=return_dict)
        if return_dict:
            output["features"] = features
        return output
