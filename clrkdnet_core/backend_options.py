"""Backend names, precisions and their command-line options, without importing torch or any runtime.

``predict``, ``evaluate model`` and the benchmarks spell them the same way as
``LaneDetector.from_preset(..., backend=, precision=, calibration=)`` and the node's parameters.
"""

import argparse
from typing import Any

# name -> "module:class" of the backend (imported on first use by clrkdnet_core.backends.create_backend)
BACKENDS = {
    "torch": "clrkdnet_core.backends.torch_backend:TorchBackend",
    "onnxruntime": "clrkdnet_core.backends.onnxruntime_backend:OnnxRuntimeBackend",
    "openvino": "clrkdnet_core.backends.openvino_backend:OpenVinoBackend",
    "tensorrt": "clrkdnet_core.backends.tensorrt_backend:TensorRTBackend",
}
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
# The default of backend and precision: the fastest for the device (clrkdnet_core.backend_choice).
AUTO = "auto"


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """--backend, --precision, --calibration and --force-int8."""
    parser.add_argument(
        "--backend",
        default=AUTO,
        choices=(AUTO, *BACKENDS),
        help="inference backend (default auto: the fastest installed one; exact fp32: --backend torch "
        "--precision fp32)",
    )
    parser.add_argument(
        "--precision",
        default=AUTO,
        choices=(AUTO, *PRECISIONS),
        help="auto (default: the backend's best for the device), fp32, fp16 (CUDA), bf16 (openvino), "
        "int8 (onnxruntime/openvino, with --calibration)",
    )
    parser.add_argument(
        "--calibration", help="int8: folder of camera images (searched recursively) or a dataset root"
    )
    parser.add_argument(
        "--force-int8", action="store_true", help="int8: use the model even if it fails the accuracy gate"
    )


def detector_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``LaneDetector.from_preset`` keyword arguments of the options above."""
    options: dict[str, Any] = {"backend": args.backend, "precision": args.precision}
    if args.precision == "int8":
        options.update(calibration=args.calibration, force_int8=args.force_int8)
    return options
