"""TensorRT engines built from the ONNX export, cached under a key of everything that invalidates them.

An engine only runs with the TensorRT version and GPU it was built for, and building takes minutes, so
engines are cached in ``<cache_dir>/<name>.engine`` where the name hashes the ONNX file, the input size, the
precision, the TensorRT version and the GPU's name and compute capability. Writes are atomic (temporary file +
``os.replace``), so a crash never leaves a half-written engine under the final name; a cached file that fails
to deserialize (truncated, corrupt, built by another version) is rebuilt with a warning instead of failing.

FP16: TensorRT 11 removed ``BuilderFlag.FP16``; precision comes from the types in the graph. Engines are
therefore built as strongly typed networks from an fp32 or fp16 ONNX export, the same way on 10.x and 11.x.
"""

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from clrkdnet_core.errors import BackendError
from clrkdnet_core.export.cache import load_or_build
from clrkdnet_core.export.onnx import INPUT_NAME, cached_onnx, default_cache_dir, onnx_input_size
from clrkdnet_core.hashing import file_sha256

INSTALL_HINT = (
    "TensorRT is not installed: pip install tensorrt (needs an NVIDIA GPU with a matching CUDA driver)"
)


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on; ``digest`` names the cache file."""

    onnx_sha256: str
    input_shape: tuple[int, int, int, int]  # largest (batch, 3, height, width) of the optimisation profile
    precision: str  # "fp32" or "fp16"
    tensorrt_version: str
    gpu_name: str
    compute_capability: tuple[int, int]

    @property
    def digest(self) -> str:
        canonical = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]

    @property
    def file_name(self) -> str:
        major, minor = self.compute_capability
        return f"{self.precision}-sm{major}{minor}-trt{self.tensorrt_version}-{self.digest}.engine"


def import_tensorrt():
    """The tensorrt module, or a BackendError saying how to install it."""
    try:
        import tensorrt
    except ImportError as exc:
        raise BackendError(INSTALL_HINT) from exc
    return tensorrt


def engine_key(
    onnx_path: str | os.PathLike,
    input_shape: tuple[int, int, int, int],
    precision: str,
    device: torch.device,
    tensorrt_version: str,
) -> EngineKey:
    """The cache key of an engine for ``onnx_path`` on the CUDA ``device``."""
    return EngineKey(
        onnx_sha256=file_sha256(onnx_path),
        input_shape=tuple(input_shape),
        precision=precision,
        tensorrt_version=tensorrt_version,
        gpu_name=torch.cuda.get_device_name(device),
        compute_capability=tuple(torch.cuda.get_device_capability(device)),
    )


def load_or_build_engine(
    cache_dir: str | os.PathLike,
    key: EngineKey,
    build: Callable[[], bytes],
    deserialize: Callable[[bytes], Any],
) -> tuple[Any, Path]:
    """Deserialize the cached engine of ``key``, or build, cache and deserialize a new one.

    Args:
        cache_dir: directory of cached engines (created when missing).
        key: the engine's cache key.
        build: returns a freshly serialized engine.
        deserialize: turns engine bytes into a runtime engine; returns None or raises when they are unusable.

    Returns:
        The deserialized engine and its cache file.
    """
    path = Path(cache_dir) / key.file_name
    return load_or_build(path, build, deserialize, "TensorRT engine"), path


def build_serialized_engine(
    onnx_path: str | os.PathLike, max_batch: int, input_size: tuple[int, int]
) -> bytes:
    """Parse ``onnx_path`` into a strongly typed network and build an engine for batch 1..``max_batch``."""
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    height, width = input_size
    profile.set_shape(INPUT_NAME, (1, 3, height, width), (1, 3, height, width), (max_batch, 3, height, width))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendError(
            f"TensorRT failed to build an engine from {onnx_path} (see the TensorRT log above)"
        )
    return bytes(serialized)


class EngineDeserializer:
    """Turns engine bytes into an ``ICudaEngine`` on ``device`` (None when they are unusable).

    Keep it alive as long as its engines: the TensorRT runtime must outlive what it deserialized.
    """

    def __init__(self, device: torch.device) -> None:
        trt = import_tensorrt()
        self.device = device
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.ERROR))

    def __call__(self, data: bytes) -> Any:
        with torch.cuda.device(self.device):
            return self.runtime.deserialize_cuda_engine(data)


def prepare_engine(
    model: nn.Module,
    device: torch.device,
    *,
    fp16: bool = False,
    max_batch: int = 8,
    cache_dir: str | os.PathLike | None = None,
    onnx_path: str | os.PathLike | None = None,
    deserializer: EngineDeserializer | None = None,
) -> tuple[Any, Path]:
    """Export (if no ``onnx_path`` is given), build or load the cached engine of ``model`` for ``device``.

    The engine's input size is the export's (the preset's). Pass a ``deserializer`` you keep when the engine
    outlives this call (see :class:`EngineDeserializer`).
    """
    trt = import_tensorrt()
    if device.type != "cuda" or not torch.cuda.is_available():
        raise BackendError(f"the tensorrt backend needs a CUDA device, got {device}")
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if onnx_path is None:
        onnx_path = cached_onnx(model, cache_dir, fp16=fp16)
    input_size = onnx_input_size(onnx_path)
    height, width = input_size
    key = engine_key(
        onnx_path, (max_batch, 3, height, width), "fp16" if fp16 else "fp32", device, trt.__version__
    )
    return load_or_build_engine(
        cache_dir,
        key,
        build=lambda: build_serialized_engine(onnx_path, max_batch, input_size),
        deserialize=deserializer or EngineDeserializer(device),
    )


def build_only(model: nn.Module, device: torch.device, **options: Any) -> Path:
    """Build the engine of ``model`` ahead of time (or check that the cached one loads); returns its path."""
    _, path = prepare_engine(model, device, **options)
    return path
