"""The ONNX file an ONNX-based backend (onnxruntime, OpenVINO) runs: the one given, or the model's cached
export, and for ``int8`` its quantized version (:mod:`clrkdnet_core.quantization`)."""

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from torch import nn

from clrkdnet_core.calibration import CalibrationSource
from clrkdnet_core.errors import BackendError
from clrkdnet_core.export.onnx import cached_onnx, default_cache_dir

if TYPE_CHECKING:
    from clrkdnet_core.quantization import Agreement


def onnx_model_file(
    backend: str,
    model: nn.Module | None,
    onnx_path: str | os.PathLike | None,
    cache_dir: str | os.PathLike | None,
    *,
    precision: str,
    calibration: CalibrationSource | None,
    force_int8: bool,
    runtime: str,
    open_runner: Callable,
) -> tuple[str, "Agreement | None"]:
    """(path of the file to run, the int8 model's :class:`~clrkdnet_core.quantization.Agreement` or None).

    Args:
        backend: the backend's name, for errors.
        model: the network, exported (and its preset used for int8) when given.
        onnx_path: an existing export to run or to quantize instead of exporting ``model``.
        cache_dir: exports and int8 models (default ``~/.cache/clrkdnet_ros``).
        precision: ``fp16`` exports in float16; ``int8`` quantizes on ``calibration``.
        force_int8: keep an int8 model that fails the accuracy gate, with a warning.
        runtime: ``name version`` of the runtime (part of the int8 cache key).
        open_runner: model path -> numpy runner in that runtime (the accuracy gate runs fp32 and int8).
    """
    if onnx_path is None:
        if model is None:
            raise BackendError(f"{backend} backend needs a model or an onnx_path")
        onnx_path = cached_onnx(model, cache_dir, fp16=precision == "fp16")
    if not os.path.isfile(onnx_path):
        raise FileNotFoundError(f"ONNX model not found: {onnx_path}")
    if precision != "int8":
        return str(onnx_path), None
    from clrkdnet_core.quantization import quantized_model

    if model is None:
        raise BackendError("int8 needs the model (its preset sets the calibration's pre-processing)")
    path, agreement = quantized_model(
        onnx_path,
        calibration,
        model.preset,
        runtime,
        open_runner,
        cache_dir=cache_dir or default_cache_dir(),
        force_int8=force_int8,
    )
    return str(path), agreement
