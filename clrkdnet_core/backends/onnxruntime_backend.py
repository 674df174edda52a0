"""onnxruntime backend: the exported network run by onnxruntime's CPU or CUDA execution provider.

Takes an ONNX file, or exports the given model once to the cache directory (keyed by its weights' digest).
On CUDA, input and output stay on the GPU (I/O binding to the torch tensors' memory): no host copies.
"""

import os

import numpy as np
import torch
from torch import nn

from clrkdnet_core.errors import BackendError
from clrkdnet_core.export.onnx import (
    INPUT_NAME,
    OUTPUT_NAME,
    PREDICTION_SHAPE,
    cached_onnx,
    check_input,
    import_onnxruntime,
)


class OnnxRuntimeBackend:
    """Runs (B, 3, 320, 800) float batches through an ONNX model; returns (B, 192, 78) float32 tensors."""

    name = "onnxruntime"

    def __init__(
        self,
        model: nn.Module | None,
        device: torch.device | str = "cpu",
        *,
        onnx_path: str | os.PathLike | None = None,
        cache_dir: str | os.PathLike | None = None,
        fp16: bool = False,
        threads: int | None = None,
    ) -> None:
        """
        Args:
            model: the network to export when ``onnx_path`` is None.
            device: ``cpu`` or ``cuda[:N]``.
            onnx_path: an exported model (see ``python -m clrkdnet_core.export onnx``).
            cache_dir: where on-the-fly exports go (default ``~/.cache/clrkdnet_ros``).
            fp16: export in float16 (only with ``model``; an ``onnx_path`` keeps its own precision).
            threads: CPU threads of onnxruntime (default: torch's intra-op thread count).
        """
        ort = import_onnxruntime()
        self.device = torch.device(device)
        if self.device.type == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise BackendError(
                    "onnxruntime has no CUDA execution provider: pip install onnxruntime-gpu "
                    "(instead of onnxruntime), or use device cpu"
                )
            providers = [
                ("CUDAExecutionProvider", {"device_id": self.device.index or 0}),
                "CPUExecutionProvider",
            ]
        elif self.device.type == "cpu":
            providers = ["CPUExecutionProvider"]
        else:
            raise BackendError(f"onnxruntime backend supports cpu and cuda devices, not {self.device}")
        if onnx_path is None:
            if model is None:
                raise BackendError("onnxruntime backend needs a model or an onnx_path")
            onnx_path = cached_onnx(model, cache_dir, fp16=fp16)
        if not os.path.isfile(onnx_path):
            raise FileNotFoundError(f"ONNX model not found: {onnx_path}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning worker threads keep the cores busy after each run: that slowed the next PyTorch
        # call (decode, a neighbouring node) by a quarter on 2 cores; not spinning cost nothing here.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.onnx_path = str(onnx_path)
        self.session = ort.InferenceSession(self.onnx_path, options, providers=providers)
        input_type = self.session.get_inputs()[0].type
        self.input_dtype = torch.float16 if input_type == "tensor(float16)" else torch.float32

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        check_input(batch)
        batch = batch.to(self.device, self.input_dtype).contiguous()
        if self.device.type == "cuda":
            return self._run_on_gpu(batch)
        (output,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: batch.numpy()})
        return torch.from_numpy(np.asarray(output, dtype=np.float32))

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
