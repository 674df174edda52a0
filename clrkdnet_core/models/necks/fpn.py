"""CLRNet's FPN neck (teacher): lateral 1x1 convs, a nearest-upsampling top-down path, 3x3 output convs."""

import torch.nn.functional as F
from torch import Tensor, nn

from clrkdnet_core.models.conv_module import ConvModule


class FPN(nn.Module):
    """Uses the last ``len(in_channels)`` backbone maps; returns one map per input, finest first."""

    def __init__(self, in_channels: list[int], out_channels: int = 64) -> None:
        super().__init__()
        self.lateral_convs = nn.ModuleList(ConvModule(c, out_channels, 1) for c in in_channels)
        self.fpn_convs = nn.ModuleList(
            ConvModule(out_channels, out_channels, 3, padding=1) for _ in in_channels
        )

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        inputs = features[-len(self.lateral_convs) :]  # the stride-4 map is not used
        laterals = [conv(x) for conv, x in zip(self.lateral_convs, inputs, strict=True)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(
                laterals[i], size=laterals[i - 1].shape[2:], mode="nearest"
            )
        return [conv(x) for conv, x in zip(self.fpn_convs, laterals, strict=True)]
