"""Exponential moving average of a network's weights (CLRerNet⋆ trains with it)."""

import copy

import torch
from torch import nn


class ModelEMA:
    """Keeps ``ema = (1 - momentum) · ema + momentum · weights`` after every optimizer step.

    Integer buffers (BatchNorm's batch counter, the prior sample indices) are copied, not averaged.
    """

    def __init__(self, model: nn.Module, momentum: float) -> None:
        self.module = copy.deepcopy(model).eval()
        self.module.requires_grad_(False)
        self.momentum = momentum

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Blend the current weights of ``model`` into the average."""
        current = model.state_dict()
        for name, averaged in self.module.state_dict().items():
            value = current[name].detach()
            if averaged.dtype.is_floating_point:
                averaged.lerp_(value.to(averaged.dtype), self.momentum)
            else:
                averaged.copy_(value)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged weights."""
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore averaged weights saved with :meth:`state_dict`."""
        self.module.load_state_dict(state)
