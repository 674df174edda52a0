"""What LaneDetector needs from an inference backend: a name, a device, and batch in -> predictions out."""

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class InferenceBackend(Protocol):
    """Runs the network: (B, 3, 320, 800) float BGR / 255 batch -> (B, 192, 78) float32 predictions.

    The output may stay on ``device``; decoding copies it to the host once.
    """

    name: str
    device: torch.device

    def __call__(self, batch: torch.Tensor) -> torch.Tensor: ...
