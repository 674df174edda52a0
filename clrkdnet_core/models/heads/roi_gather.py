"""ROIGather: fuses the features pooled along each prior with global context of the feature map (CLRNet)."""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clrkdnet_core.models.conv_module import ConvModule

CONTEXT_SIZE = (10, 25)  # key and value maps are resized (nearest) to this before the attention


class ROIGather(nn.Module):
    """Per stage: reduce the pooled features of every stage so far (``convs``), fuse them (``catconv``), embed
    each prior (``fc``), then add attention over the stage's feature map.

    Inputs are the reduced features ``convs[j](pooled_j)`` of stages 0..stage, each (B*P, mid, S, 1), and the
    stage's map (B, C, h, w). Returns (B, P, fc_hidden_dim).
    """

    def __init__(
        self,
        in_channels: int,
        num_priors: int,
        sample_points: int,
        fc_hidden_dim: int,
        refine_layers: int,
        mid_channels: int = 48,
    ) -> None:
        super().__init__()
        self.num_priors = num_priors
        self.f_key = ConvModule(in_channels, in_channels, 1, norm=True, activation=True)
        # kernel-1 grouped conv over the prior axis: one scale and bias per prior
        self.f_query = nn.Sequential(
            nn.Conv1d(num_priors, num_priors, 1, groups=num_priors), nn.ReLU(inplace=True)
        )
        self.f_value = nn.Conv2d(in_channels, in_channels, 1)
        self.W = nn.Conv1d(num_priors, num_priors, 1, groups=num_priors)
        self.convs = nn.ModuleList(
            ConvModule(in_channels, mid_channels, (9, 1), padding=(4, 0), norm=True, activation=True)
            for _ in range(refine_layers)
        )
        self.catconv = nn.ModuleList(
            ConvModule(
                mid_channels * (i + 1), in_channels, (9, 1), padding=(4, 0), norm=True, activation=True
            )
            for i in range(refine_layers)
        )
        self.fc = nn.Linear(sample_points * fc_hidden_dim, fc_hidden_dim)
        self.fc_norm = nn.LayerNorm(fc_hidden_dim)
        # the context starts switched off and is learned in
        nn.init.zeros_(self.W.weight)
        nn.init.zeros_(self.W.bias)

    def forward(self, reduced: list[Tensor], feature_map: Tensor, stage: int) -> Tensor:
        batch_size = feature_map.shape[0]
        roi = self.catconv[stage](torch.cat(reduced, dim=1))
        roi = F.relu(self.fc_norm(self.fc(roi.reshape(batch_size * self.num_priors, -1))))
        roi = roi.view(batch_size, self.num_priors, -1)

        query = self.f_query(roi)  # (B, P, C)
        key = F.interpolate(self.f_key(feature_map), size=CONTEXT_SIZE).flatten(2)  # (B, C, 250)
        value = F.interpolate(self.f_value(feature_map), size=CONTEXT_SIZE).flatten(2).transpose(1, 2)
        attention = F.softmax((key.shape[1] ** -0.5) * torch.matmul(query, key), dim=-1)  # (B, P, 250)
        context = self.W(torch.matmul(attention, value))
        return roi + F.dropout(context, p=0.1, training=self.training)
