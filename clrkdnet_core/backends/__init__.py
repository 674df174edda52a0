"""Inference backends behind LaneDetector, created by name.

Each backend is a class taking ``(model, device, **options)`` and implementing
:class:`~clrkdnet_core.backends.base.InferenceBackend`. Classes are imported on first use, so onnxruntime and
TensorRT and OpenVINO are only needed by whoever asks for them.
"""

import importlib
import inspect

import torch
from torch import nn

from clrkdnet_core.backends.base import InferenceBackend
from clrkdnet_core.errors import BackendError

# name -> "module:class"
BACKENDS = {
    "torch": "clrkdnet_core.backends.torch_backend:TorchBackend",
    "onnxruntime": "clrkdnet_core.backends.onnxruntime_backend:OnnxRuntimeBackend",
    "tensorrt": "clrkdnet_core.backends.tensorrt_backend:TensorRTBackend",
    "openvino": "clrkdnet_core.backends.openvino_backend:OpenVinoBackend",
}

__all__ = ["BACKENDS", "InferenceBackend", "create_backend"]


def create_backend(name: str, model: nn.Module, device: torch.device | str, **options) -> InferenceBackend:
    """Build backend ``name`` for ``model`` on ``device``; ``options`` go to the backend's constructor.

    Unknown names and options raise BackendError listing what is available.
    """
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; available: {', '.join(BACKENDS)}")
    module_name, class_name = BACKENDS[name].split(":")
    backend_class = getattr(importlib.import_module(module_name), class_name)
    try:
        inspect.signature(backend_class).bind(model, device, **options)
    except TypeError as exc:
        raise BackendError(f"bad options for the {name} backend: {exc}") from exc
    return backend_class(model, device, **options)
