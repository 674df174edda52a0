"""What LaneDetector needs from an inference backend: a name, a device, and batch in -> predictions out."""

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch

from clrkdnet_core.errors import BackendError

PRECISIONS = ("fp32", "fp16", "bf16", "int8")


@runtime_checkable
class InferenceBackend(Protocol):
    """Runs the network: (B, 3, img_h, img_w) float BGR / 255 batch -> (B, 192, 78) float32 predictions.

    The output may stay on ``device``; decoding copies it to the host once.
    """

    name: str
    device: torch.device
    precision: str

    def __call__(self, batch: torch.Tensor) -> torch.Tensor: ...


def check_precision(backend: str, device: torch.device, precision: str, supported: Sequence[str]) -> None:
    """Raise BackendError unless ``backend`` runs ``precision`` on ``device`` (it runs ``supported``)."""
    if precision not in PRECISIONS:
        raise BackendError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    if precision == "int8" and device.type != "cpu":
        raise BackendError(
            f"int8 runs on the CPU only (backends onnxruntime and openvino), not on {device}; "
            "on a GPU use fp16 (torch or tensorrt)"
        )
    if precision not in supported:
        raise BackendError(
            f"the {backend} backend on {device.type} runs precision {' or '.join(supported)}, not {precision}"
        )
