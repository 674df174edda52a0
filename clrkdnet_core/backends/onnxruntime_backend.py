"""onnxruntime backend: the exported network run by onnxruntime's CPU or CUDA execution provider.

Takes an ONNX file, or exports the given model once to the cache directory (keyed by its weights' digest).
On CUDA, input and output stay on the GPU (I/O binding to the torch tensors' memory): no host copies.
``precision="int8"`` runs the QDQ model of :mod:`clrkdnet_core.quantization` on the CPU.
"""

import os
from collections.abc import Callable
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from clrkdnet_core.backends.base import check_precision
from clrkdnet_core.backends.onnx_model import onnx_model_file
from clrkdnet_core.calibration import CalibrationSource
from clrkdnet_core.errors import BackendError
from clrkdnet_core.export.onnx import (
    INPUT_NAME,
    OUTPUT_NAME,
    PREDICTION_SHAPE,
    check_input,
    import_onnxruntime,
)


class OnnxRuntimeBackend:
    """Runs (B, 3, img_h, img_w) float batches through an ONNX model; returns (B, 192, 78) float32 tensors."""

    name = "onnxruntime"
    PRECISIONS: ClassVar[dict[str, tuple[str, ...]]] = {
        "cpu": ("fp32", "fp16", "int8"),
        "cuda": ("fp32", "fp16"),
    }

    def __init__(
        self,
        model: nn.Module | None,
        device: torch.device | str = "cpu",
        *,
        precision: str = "fp32",
        calibration: CalibrationSource | None = None,
        force_int8: bool = False,
        onnx_path: str | os.PathLike | None = None,
        cache_dir: str | os.PathLike | None = None,
        threads: int | None = None,
    ) -> None:
        """
        Args:
            model: the network to export when ``onnx_path`` is None.
            device: ``cpu`` or ``cuda[:N]``.
            precision: ``fp32``, ``fp16`` (exported in float16; not with ``onnx_path``, which keeps its own
                precision) or ``int8`` (CPU; quantized on ``calibration``, needs ``model`` for its preset).
            calibration: int8 calibration images (see :func:`~clrkdnet_core.calibration.load_calibration`).
            force_int8: use an int8 model that fails the accuracy gate, with a warning.
            onnx_path: an exported model (see ``python -m clrkdnet_core.export onnx``).
            cache_dir: where on-the-fly exports and int8 models go (default ``~/.cache/clrkdnet_ros``).
            threads: CPU threads of onnxruntime (default: torch's intra-op thread count).
        """
        ort = import_onnxruntime()
        self.device = torch.device(device)
        gpu = self.device.type == "cuda"
        check_precision(self, self.device, precision)
        if gpu:
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise BackendError(
                    "onnxruntime has no CUDA execution provider: pip install onnxruntime-gpu "
                    "(instead of onnxruntime), or use device cpu"
                )
            self.providers = [
                ("CUDAExecutionProvider", {"device_id": self.device.index or 0}),
                "CPUExecutionProvider",
            ]
        elif self.device.type == "cpu":
            self.providers = ["CPUExecutionProvider"]
        else:
            raise BackendError(f"onnxruntime backend supports cpu and cuda devices, not {self.device}")
        self.threads = threads or torch.get_num_threads()
        self.onnx_path, self.agreement = onnx_model_file(
            self.name,
            model,
            onnx_path,
            cache_dir,
            precision=precision,
            calibration=calibration,
            force_int8=force_int8,
            runtime=f"onnxruntime {ort.__version__}",
            open_runner=lambda path: _numpy_runner(self._open(path)),
        )
        self.precision = precision
        self.session = self._open(self.onnx_path)
        self._run = _numpy_runner(self.session)
        inputs = self.session.get_inputs()[0]
        self.input_dtype = torch.float16 if inputs.type == "tensor(float16)" else torch.float32
        self.input_size = tuple(inputs.shape[2:])

    def _open(self, path: str):
        ort = import_onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning worker threads keep the cores busy after each run: that slowed the next PyTorch
        # call (decode, a neighbouring node) by a quarter on 2 cores; not spinning cost nothing here.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(path, options, providers=self.providers)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        check_input(batch, self.input_size)
        batch = batch.to(self.device, self.input_dtype).contiguous()
        if self.device.type == "cuda":
            return self._run_on_gpu(batch)
        return torch.from_numpy(self._run(batch.numpy()))

    def _run_on_gpu(self, batch: torch.Tensor) -> torch.Tensor:
        output = torch.empty((batch.shape[0], *PREDICTION_SHAPE), dtype=self.input_dtype, device=self.device)
        element_type = np.float16 if self.input_dtype == torch.float16 else np.float32
        binding = self.session.io_binding()
        device_id = self.device.index or 0
        binding.bind_input(INPUT_NAME, "cuda", device_id, element_type, tuple(batch.shape), batch.data_ptr())
        binding.bind_output(
            OUTPUT_NAME, "cuda", device_id, element_type, tuple(output.shape), output.data_ptr()
        )
        # onnxruntime runs on its own stream: finish torch's pending writes to the input first.
        torch.cuda.current_stream(self.device).synchronize()
        self.session.run_with_iobinding(binding)
        return output.float()


def _numpy_runner(session) -> Callable[[np.ndarray], np.ndarray]:
    def run(batch: np.ndarray) -> np.ndarray:
        (output,) = session.run([OUTPUT_NAME], {INPUT_NAME: batch})
        return np.asarray(output, dtype=np.float32)

    return run
