"""Inference-time folding of BatchNorm into the convolution before it.

In eval mode a BatchNorm is a per-channel affine map, so it can be merged into the preceding convolution's
weight and bias. That removes one memory-bound pass over every feature map; together with the channels-last
layout it makes the CPU forward about a quarter faster (BENCHMARKS.md).
"""

from itertools import pairwise

import torch
from torch import nn

# Attribute pairs whose forward applies the BatchNorm directly to the convolution's output: ConvModule and the
# DLA root (conv, bn), the ResNet and DLA blocks (convN, bnN).
_CONV_NORM_PAIRS = (("conv", "bn"), ("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))


@torch.no_grad()
def _fold_into(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> None:
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
    conv.weight = nn.Parameter(conv.weight * scale.reshape(-1, 1, 1, 1))
    conv.bias = nn.Parameter((bias - norm.running_mean) * scale + norm.bias)


def fold_batch_norms(model: nn.Module) -> int:
    """Fold every BatchNorm2d that directly follows a Conv2d into it, in place; returns how many were folded.

    Only for inference: the folded BatchNorms become ``nn.Identity``, so the model can no longer be trained or
    saved in the official layout.
    """
    if model.training:
        raise ValueError("fold_batch_norms needs a model in eval mode (it uses the running statistics)")
    folded = 0
    for module in model.modules():
        for conv_name, norm_name in _CONV_NORM_PAIRS:
            conv, norm = getattr(module, conv_name, None), getattr(module, norm_name, None)
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                _fold_into(conv, norm)
                setattr(module, norm_name, nn.Identity())
                folded += 1
        # torchvision's downsample, DLA's base layer, levels and projections
        if isinstance(module, nn.Sequential):
            for (_, first), (norm_name, second) in pairwise(module.named_children()):
                if isinstance(first, nn.Conv2d) and isinstance(second, nn.BatchNorm2d):
                    _fold_into(first, second)
                    setattr(module, norm_name, nn.Identity())
                    folded += 1
    return folded
