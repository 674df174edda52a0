"""OpenVINO backend: the exported network compiled for OpenVINO's CPU plugin, in fp32, bf16 or int8.

The inference precision is always set explicitly: left alone, OpenVINO runs "fp32" models in bf16 on CPUs
that have it. ``int8`` compiles the QDQ model of :mod:`clrkdnet_core.quantization` with an f32 precision hint,
so what is not quantized (the head, decoding) stays fp32.
"""

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from clrkdnet_core.backends.base import check_precision
from clrkdnet_core.backends.onnx_model import onnx_model_file
from clrkdnet_core.calibration import CalibrationSource
from clrkdnet_core.errors import BackendError
from clrkdnet_core.export.onnx import check_input, default_cache_dir

# precision -> INFERENCE_PRECISION_HINT; int8 kernels come from the QDQ graph, everything else stays f32.
PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}


def import_openvino():
    """The openvino module, or a BackendError saying how to install it."""
    try:
        import openvino
    except ImportError as exc:
        raise BackendError("OpenVINO is not installed: pip install openvino") from exc
    return openvino


@functools.cache
def shared_core():
    """The process's one ``openvino.Core``, never released.

    OpenVINO's CPU plugin points the signal stack (sigaltstack) of the thread that loads it at a buffer of its
    own, sized for AMX state, and puts the previous one back when the plugin is released. Cores released in
    another order than they were made leave that thread's signal stack on unmapped memory, and the next signal
    a Python handler takes (Ctrl-C, SIGTERM) kills the process with a SIGSEGV that nothing reports. One Core
    for the process never puts a stack back; it is also OpenVINO's advice (plugins and caches are per Core).
    """
    return import_openvino().Core()


class OpenVinoBackend:
    """Runs (B, 3, img_h, img_w) float batches on the CPU with OpenVINO; returns (B, 192, 78) float32."""

    name = "openvino"
    PRECISIONS: ClassVar[dict[str, tuple[str, ...]]] = {"cpu": tuple(PRECISION_HINTS)}

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
            device: ``cpu`` (OpenVINO's GPU plugin targets Intel GPUs, which torch does not name).
            precision: ``fp32``, ``bf16`` (CPUs with bf16 instructions) or ``int8`` (quantized on
                ``calibration``; needs ``model`` for its preset).
            calibration: int8 calibration images (see :func:`~clrkdnet_core.calibration.load_calibration`).
            force_int8: use an int8 model that fails the accuracy gate, with a warning.
            onnx_path: an fp32 export (see ``python -m clrkdnet_core.export onnx``).
            cache_dir: where on-the-fly exports, int8 models and OpenVINO's compiled models (``openvino/``)
                go (default ``~/.cache/clrkdnet_ros``).
            threads: CPU threads of OpenVINO (default: torch's intra-op thread count).
        """
        ov = import_openvino()
        self.device = torch.device(device)
        if self.device.type != "cpu":
            raise BackendError(f"the openvino backend runs on the CPU, not on {self.device}")
        check_precision(self, self.device, precision)
        self.core = shared_core()
        if precision == "bf16" and "BF16" not in self.core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            raise BackendError("this CPU has no bf16 instructions (OpenVINO reports none): use fp32 or int8")
        self.config = {
            "INFERENCE_PRECISION_HINT": PRECISION_HINTS[precision],
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
            "INFERENCE_NUM_THREADS": threads or torch.get_num_threads(),
            # Pinned worker threads would keep DDS and the node's own threads off their cores. OpenVINO's TBB
            # workers do not spin after a call: PyTorch work right after one ran no slower than after 50 ms
            # idle (4.3 against 4.8 ms, 2 cores), unlike onnxruntime's default.
            "ENABLE_CPU_PINNING": False,
            # Dynamic quantization would run the head's FC layers in int8: the head stays fp32.
            "DYNAMIC_QUANTIZATION_GROUP_SIZE": 0,
            # Compiled models are cached by OpenVINO (keyed by model file and this config): a warm start-up
            # compiles in 0.02 s instead of reading and compiling in 0.27 s (400x160 student, 2-core EPYC).
            "CACHE_DIR": str(Path(cache_dir or default_cache_dir()) / "openvino"),
        }
        self.onnx_path, self.agreement = onnx_model_file(
            self.name,
            model,
            onnx_path,
            cache_dir,
            precision=precision,
            calibration=calibration,
            force_int8=force_int8,
            runtime=f"openvino {ov.__version__}",
            open_runner=lambda path: _numpy_runner(self._compile(path)),
        )
        self.precision = precision
        compiled = self._compile(self.onnx_path)
        self.input_size = tuple(compiled.input(0).get_partial_shape().get_max_shape())[2:]
        self._run = _numpy_runner(compiled)

    def _compile(self, path: str):
        # Compiled from the path, so that a cache hit skips reading the ONNX file too.
        return self.core.compile_model(str(path), "CPU", self.config)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        check_input(batch, self.input_size)
        return torch.from_numpy(self._run(batch.to("cpu", torch.float32).contiguous().numpy()))


def _numpy_runner(compiled) -> Callable[[np.ndarray], np.ndarray]:
    request = compiled.create_infer_request()

    def run(batch: np.ndarray) -> np.ndarray:
        request.infer({0: batch})
        return request.get_output_tensor(0).data.astype(np.float32, copy=True)

    return run
