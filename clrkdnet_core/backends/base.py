"""What LaneDetector needs from an inference backend: a name, a device, and batch in -> predictions out."""

from typing import Any, Protocol, runtime_checkable

import torch

from clrkdnet_core.backend_options import PRECISIONS
from clrkdnet_core.errors import BackendError


@runtime_checkable
class InferenceBackend(Protocol):
    """Runs the network: (B, 3, img_h, img_w) float BGR / 255 batch -> (B, 192, 78) float32 predictions.

    The output may stay on ``device``; decoding copies it to the host once.
    """

    name: str
    device: torch.device
    precision: str

    def __call__(self, batch: torch.Tensor) -> torch.Tensor: ...


def check_precision(backend: Any, device: torch.device, precision: str) -> None:
    """Raise BackendError unless ``backend`` (a backend class or instance) runs ``precision`` on ``device``.

    Backends list what they run per device type in ``PRECISIONS`` (``{"cpu": ("fp32", "int8"), ...}``).
    """
    if precision not in PRECISIONS:
        raise BackendError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    if precision == "int8" and device.type != "cpu":
        raise BackendError(
            f"int8 runs on the CPU only (backends onnxruntime and openvino), not on {device}; "
            "on a GPU use fp16 (torch or tensorrt)"
        )
    supported = backend.PRECISIONS.get(device.type, ())
    if precision not in supported:
        raise BackendError(
            f"the {backend.name} backend on {device.type} runs precision {' or '.join(supported)}, "
            f"not {precision}"
        )
