"""Softmax focal loss in the formulation of kornia used by CLRNet (MODEL.md 4.4)."""

import torch
import torch.nn.functional as F
from torch import Tensor


def focal_loss(
    logits: Tensor, target: Tensor, alpha: float = 0.25, gamma: float = 2.0, eps: float = 1e-6
) -> Tensor:
    """Per-sample focal loss of ``logits`` (N, C) against integer ``target`` (N,); no reduction.

    ``alpha`` weights every class alike and ``eps`` is added to the probabilities before the log, as in
    kornia's implementation, so the values match the reference to the last digit.
    """
    probs = F.softmax(logits, dim=1) + eps
    one_hot = F.one_hot(target.long(), num_classes=logits.shape[1]).to(probs.dtype)
    focal = -alpha * torch.pow(1.0 - probs, gamma) * torch.log(probs)
    return torch.sum(one_hot * focal, dim=1)
