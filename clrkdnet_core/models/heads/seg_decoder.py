"""Auxiliary segmentation decoder (training only): one 1x1 conv over the concatenated stage maps."""

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SegDecoder(nn.Module):
    """Stage maps resized to the last (finest) one, concatenated, 1x1 conv, upsampled to the input."""

    def __init__(self, in_channels: int, num_classes: int, img_h: int, img_w: int) -> None:
        super().__init__()
        self.output_size = (img_h, img_w)
        self.dropout = nn.Dropout2d(0.1)
        self.conv = nn.Conv2d(in_channels, num_classes, 1)

    def forward(self, stage_maps: list[Tensor]) -> Tensor:
        size = stage_maps[-1].shape[2:]
        x = torch.cat(
            [F.interpolate(m, size=size, mode="bilinear", align_corners=False) for m in stage_maps], 1
        )
        x = self.conv(self.dropout(x))
        return F.interpolate(x, size=self.output_size, mode="bilinear", align_corners=False)
