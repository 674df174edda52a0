"""TensorRT backend: a cached engine (see :mod:`clrkdnet_core.export.tensorrt`) run on torch's CUDA stream.

Input and output are torch CUDA tensors bound by address, so the network's output stays on the GPU for the
on-device post-processing.
"""

import os
from typing import ClassVar

import torch
from torch import nn

from clrkdnet_core.backends.base import check_precision
from clrkdnet_core.errors import BackendError
from clrkdnet_core.export.onnx import INPUT_NAME, OUTPUT_NAME, PREDICTION_SHAPE, check_input
from clrkdnet_core.export.tensorrt import EngineDeserializer, import_tensorrt, prepare_engine


class TensorRTBackend:
    """Runs (B, 3, img_h, img_w) batches (B <= ``max_batch``) through a TensorRT engine -> (B, 192, 78)."""

    name = "tensorrt"
    PRECISIONS: ClassVar[dict[str, tuple[str, ...]]] = {"cuda": ("fp32", "fp16")}

    def __init__(
        self,
        model: nn.Module | None,
        device: torch.device | str = "cuda",
        *,
        precision: str = "fp32",
        max_batch: int = 8,
        cache_dir: str | os.PathLike | None = None,
        onnx_path: str | os.PathLike | None = None,
    ) -> None:
        """
        Args:
            model: the network (exported to ONNX on first use unless ``onnx_path`` is given).
            device: a CUDA device.
            precision: ``fp32``, or ``fp16``: built from a float16 export (strongly typed network).
            max_batch: largest batch of the engine's optimisation profile.
            cache_dir: engine and export cache (default ``~/.cache/clrkdnet_ros``).
            onnx_path: an existing export to build from (its precision must match ``precision``).
        """
        trt = import_tensorrt()
        self.device = torch.device(device)
        if model is None and onnx_path is None:
            raise BackendError("tensorrt backend needs a model or an onnx_path")
        if self.device.type != "cuda" or not torch.cuda.is_available():
            raise BackendError(f"the tensorrt backend needs a CUDA device, got {self.device}")
        check_precision(self, self.device, precision)
        self.precision = precision
        self.max_batch = max_batch
        self._deserializer = EngineDeserializer(self.device)
        self.engine, self.engine_path = prepare_engine(
            model,
            self.device,
            fp16=precision == "fp16",
            max_batch=max_batch,
            cache_dir=cache_dir,
            onnx_path=onnx_path,
            deserializer=self._deserializer,
        )
        self.context = self.engine.create_execution_context()
        input_type = self.engine.get_tensor_dtype(INPUT_NAME)
        self.io_dtype = torch.float16 if input_type == trt.DataType.HALF else torch.float32
        self.input_size = tuple(self.engine.get_tensor_shape(INPUT_NAME))[2:]

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        check_input(batch, self.input_size)
        if batch.shape[0] > self.max_batch:
            raise BackendError(f"batch {batch.shape[0]} exceeds the engine's max_batch {self.max_batch}")
        batch = batch.to(self.device, self.io_dtype).contiguous()
        output = torch.empty((batch.shape[0], *PREDICTION_SHAPE), dtype=self.io_dtype, device=self.device)
        self.context.set_input_shape(INPUT_NAME, tuple(batch.shape))
        self.context.set_tensor_address(INPUT_NAME, batch.data_ptr())
        self.context.set_tensor_address(OUTPUT_NAME, output.data_ptr())
        stream = torch.cuda.current_stream(self.device)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise BackendError("TensorRT execution failed (see the TensorRT log)")
        return output.float()
