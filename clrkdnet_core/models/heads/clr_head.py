"""CLRHead: iterative refinement of 192 lane priors over the neck maps, coarsest map first (CLRNet)."""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clrkdnet_core.lane_format import LINE, NUM_OFFSETS, NUM_PRIORS, prior_ys
from clrkdnet_core.models.heads import priors as prior_math
from clrkdnet_core.models.heads.roi_gather import ROIGather
from clrkdnet_core.models.heads.seg_decoder import SegDecoder

SEG_IGNORE_INDEX = 255
# Columns of the regression layer's output: the line's update, the length, the offsets added to the line.
_REG_LINE, _REG_LENGTH, _REG_OFFSETS = slice(0, 3), slice(3, 4), slice(4, None)


def _fc_branch(width: int, layers: int = 2) -> nn.Sequential:
    modules: list[nn.Module] = []
    for _ in range(layers):
        modules += [nn.Linear(width, width), nn.ReLU(inplace=True)]
    return nn.Sequential(*modules)


class CLRHead(nn.Module):
    """Refines the 192 priors once per stage; each stage predicts (B, 192, 78) lane rows (``lane_format``).

    The prior table is a buffer: regenerated from ``prior_embeddings`` on every training forward (so the
    embeddings get gradients) and used as stored in eval mode, which reproduces official checkpoints exactly.
    """

    def __init__(
        self,
        refine_layers: int = 3,
        fc_hidden_dim: int = 64,
        prior_feat_channels: int = 64,
        sample_points: int = 36,
        seg_classes: int = 5,
        bg_weight: float = 0.4,
        img_w: int = 800,
        img_h: int = 320,
    ) -> None:
        super().__init__()
        self.num_priors = NUM_PRIORS
        self.refine_layers = refine_layers
        self.img_w, self.img_h = img_w, img_h
        rows = prior_math.sample_x_indexs(NUM_OFFSETS, sample_points)
        self.register_buffer("sample_x_indexs", rows)
        self.register_buffer("prior_feat_ys", prior_math.prior_feat_ys(rows, NUM_OFFSETS))
        self.register_buffer("prior_ys", prior_ys())
        self.prior_embeddings = nn.Embedding(NUM_PRIORS, 3)
        with torch.no_grad():
            self.prior_embeddings.weight.copy_(prior_math.initial_prior_embeddings(NUM_PRIORS))
            priors, priors_on_featmap = self._generate_priors()
        self.register_buffer("priors", priors)
        self.register_buffer("priors_on_featmap", priors_on_featmap)

        self.seg_decoder = SegDecoder(prior_feat_channels * refine_layers, seg_classes, img_h, img_w)
        self.reg_modules = _fc_branch(fc_hidden_dim)
        self.cls_modules = _fc_branch(fc_hidden_dim)
        self.roi_gather = ROIGather(
            prior_feat_channels, NUM_PRIORS, sample_points, fc_hidden_dim, refine_layers
        )
        self.reg_layers = nn.Linear(fc_hidden_dim, 4 + NUM_OFFSETS)  # see _REG_*
        self.cls_layers = nn.Linear(fc_hidden_dim, 2)
        seg_weights = torch.ones(seg_classes)
        seg_weights[0] = bg_weight
        # the segmentation loss lives here because official checkpoints carry its class weights
        self.criterion = nn.NLLLoss(weight=seg_weights, ignore_index=SEG_IGNORE_INDEX)
        for param in (*self.cls_layers.parameters(), *self.reg_layers.parameters()):
            nn.init.normal_(param, mean=0.0, std=1e-3)

    def _generate_priors(self) -> tuple[Tensor, Tensor]:
        return prior_math.priors_from_embeddings(
            self.prior_embeddings.weight, self.prior_ys, self.sample_x_indexs, self.img_w, self.img_h
        )

    def _pool(self, feature_map: Tensor, xs_on_featmap: Tensor) -> Tensor:
        """Bilinear samples of the map along each prior: (B, P, S) xs -> (B, C, P, S), top row first."""
        xs = torch.flip(xs_on_featmap, dims=[2]) * 2.0 - 1.0
        ys = (self.prior_feat_ys * 2.0 - 1.0).expand_as(xs)
        return F.grid_sample(feature_map, torch.stack([xs, ys], dim=-1), align_corners=True)

    def forward(self, neck_maps: list[Tensor], return_dict: bool = False) -> Tensor | dict:
        """Last-stage predictions (B, P, 78); with ``return_dict`` a dict of every stage's ``predictions``,
        ``seg`` logits (training mode only, else None), and the last stage's ``roi_features`` and
        ``stage_priors``."""
        stage_maps = neck_maps[-self.refine_layers :][::-1]
        batch_size = stage_maps[0].shape[0]
        if self.training:
            priors, priors_on_featmap = self._generate_priors()
            with torch.no_grad():  # like the reference, the buffers keep the priors of the last training step
                self.priors.copy_(priors)
                self.priors_on_featmap.copy_(priors_on_featmap)
        else:
            priors, priors_on_featmap = self.priors, self.priors_on_featmap
        params = priors[:, LINE].expand(batch_size, -1, -1)
        xs_on_featmap = priors_on_featmap.expand(batch_size, -1, -1)
        one_minus_ys = 1 - self.prior_ys

        predictions: list[Tensor] = []
        pooled: list[Tensor] = []
        reduced: list[Tensor] = []
        for stage, feature_map in enumerate(stage_maps):
            stage_params = params
            pooled.append(self._pool(feature_map, xs_on_featmap))
            if self.training:
                # recomputed for every stage like the reference, so BatchNorm sees the same updates
                reduced = [conv(p) for conv, p in zip(self.roi_gather.convs, pooled, strict=False)]
            else:
                reduced.append(self.roi_gather.convs[stage](pooled[-1]))
            roi = self.roi_gather(reduced, feature_map, stage)
            features = roi.reshape(batch_size * self.num_priors, -1)
            cls = self.cls_layers(self.cls_modules(features)).view(batch_size, self.num_priors, -1)
            reg = self.reg_layers(self.reg_modules(features)).view(batch_size, self.num_priors, -1)
            params = stage_params + reg[..., _REG_LINE]
            lines = prior_math.line_xs(params, one_minus_ys, self.img_w, self.img_h)
            row = [cls, params, reg[..., _REG_LENGTH], lines + reg[..., _REG_OFFSETS]]
            predictions.append(torch.cat(row, dim=-1))
            if stage < self.refine_layers - 1:
                # the next stage starts from the refined line without the offsets, without gradient
                params = params.detach()
                xs_on_featmap = lines.detach()[..., self.sample_x_indexs]

        if not return_dict:
            return predictions[-1]
        return {
            "predictions": predictions,
            "seg": self.seg_decoder(stage_maps) if self.training else None,
            "roi_features": roi,
            "stage_priors": stage_params,
        }
