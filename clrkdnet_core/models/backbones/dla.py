"""DLA-34 (Deep Layer Aggregation, Yu et al. 2018) returning levels 2..5 (strides 4, 8, 16, 32).

Module names follow the reference DLA so official and DLA-zoo ImageNet weights load as is.
"""

from pathlib import Path

import torch
from torch import Tensor, nn

from clrkdnet_core.models.backbones.imagenet import load_imagenet_weights


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers; the residual is given by the caller (a tree projects it when shapes change)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        if residual is None:
            residual = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


class Root(nn.Module):
    """Aggregation node: 1x1 conv-BN-ReLU over the concatenated children."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, *children: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv(torch.cat(children, 1))))


class Tree(nn.Module):
    """Hierarchical aggregation tree of ``levels`` levels of basic blocks.

    A ``level_root`` tree also feeds its (downsampled) input to the root; deeper trees pass their children
    down so the last root aggregates every intermediate output (root_dim counts their channels).
    """

    def __init__(
        self,
        levels: int,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        level_root: bool = False,
        root_dim: int = 0,
    ) -> None:
        super().__init__()
        if root_dim == 0:
            root_dim = 2 * out_channels
        if level_root:
            root_dim += in_channels
        if levels == 1:
            self.tree1 = BasicBlock(in_channels, out_channels, stride)
            self.tree2 = BasicBlock(out_channels, out_channels, 1)
            self.root = Root(root_dim, out_channels)
        else:
            self.tree1 = Tree(levels - 1, in_channels, out_channels, stride)
            self.tree2 = Tree(levels - 1, out_channels, out_channels, root_dim=root_dim + out_channels)
        self.levels = levels
        self.level_root = level_root
        self.downsample = nn.MaxPool2d(stride, stride=stride) if stride > 1 else None
        self.project = None
        if in_channels != out_channels:
            self.project = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: Tensor, children: list[Tensor] | None = None) -> Tensor:
        children = [] if children is None else children
        bottom = self.downsample(x) if self.downsample is not None else x
        if self.level_root:
            children.append(bottom)
        if self.levels == 1:
            # only a leaf uses the projected residual (a subtree projects its own input)
            residual = self.project(bottom) if self.project is not None else bottom
            x1 = self.tree1(x, residual)
            x2 = self.tree2(x1)
            return self.root(x2, x1, *children)
        x1 = self.tree1(x)
        children.append(x1)
        return self.tree2(x1, children=children)


def _conv_level(in_channels: int, out_channels: int, convs: int, stride: int = 1) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [
            nn.Conv2d(in_channels, out_channels, 3, stride=stride if i == 0 else 1, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        ]
        in_channels = out_channels
    return nn.Sequential(*layers)


class DLA(nn.Module):
    """DLA with a 7x7 stem, two plain conv levels and four aggregation trees (levels 2..5, stride 2 each)."""

    def __init__(self, levels: list[int], channels: list[int]) -> None:
        super().__init__()
        self.base_layer = nn.Sequential(
            nn.Conv2d(3, channels[0], 7, padding=3, bias=False),
            nn.BatchNorm2d(channels[0]),
            nn.ReLU(inplace=True),
        )
        self.level0 = _conv_level(channels[0], channels[0], levels[0])
        self.level1 = _conv_level(channels[0], channels[1], levels[1], stride=2)
        self.level2 = Tree(levels[2], channels[1], channels[2], 2, level_root=False)
        self.level3 = Tree(levels[3], channels[2], channels[3], 2, level_root=True)
        self.level4 = Tree(levels[4], channels[3], channels[4], 2, level_root=True)
        self.level5 = Tree(levels[5], channels[4], channels[5], 2, level_root=True)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.level1(self.level0(self.base_layer(x)))
        features = []
        for level in (self.level2, self.level3, self.level4, self.level5):
            x = level(x)
            features.append(x)
        return features


class DLABackbone(nn.Module):
    """DLA-34 under ``model``; returns levels 2..5 (64/128/256/512 channels at strides 4/8/16/32).

    ``pretrained``: a local ImageNet weights file of the DLA model zoo (``dla34-ba72cf86.pth``), loaded
    strictly but for the classifier ``fc.*``; never downloaded.
    """

    def __init__(self, name: str = "dla34", pretrained: str | Path | None = None) -> None:
        super().__init__()
        channels = [16, 32, 64, 128, 256, 512]
        self.model = DLA(levels=[1, 1, 1, 2, 2, 1], channels=channels)
        self.out_channels = channels[2:]
        if pretrained is not None:
            load_imagenet_weights(self.model, pretrained, name)

    def forward(self, x: Tensor) -> list[Tensor]:
        return self.model(x)
