"""Inference backends behind LaneDetector, created by name.

Each backend is a class taking ``(model, device, **options)`` and implementing
:class:`~clrkdnet_core.backends.base.InferenceBackend`. Classes are imported on first use, so onnxruntime,
OpenVINO and TensorRT are only needed by whoever asks for them.
"""

import importlib
import inspect

import torch
from torch import nn

from clrkdnet_core.backend_options import BACKENDS
from clrkdnet_core.backends.base import InferenceBackend, check_precision
from clrkdnet_core.errors import BackendError

__all__ = ["BACKENDS", "InferenceBackend", "create_backend"]


def create_backend(name: str, model: nn.Module, device: torch.device | str, **options) -> InferenceBackend:
    """Build backend ``name`` for ``model`` on ``device``; ``options`` go to the backend's constructor.

    Unknown names, options and precisions raise BackendError listing what is available.
    """
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; available: {', '.join(BACKENDS)}")
    module_name, class_name = BACKENDS[name].split(":")
    backend_class = getattr(importlib.import_module(module_name), class_name)
    device = torch.device(device)
    if device.type in backend_class.PRECISIONS:  # else the backend names the devices it runs on
        check_precision(backend_class, device, options.get("precision", "fp32"))
    try:
        inspect.signature(backend_class).bind(model, device, **options)
    except TypeError as exc:
        raise BackendError(f"bad options for the {name} backend: {exc}") from exc
    return backend_class(model, device, **options)
