"""Export a preset's network: ``python -m clrkdnet_core.export onnx|tensorrt|int8 --preset P --weights W``.

``onnx`` writes the network up to its (B, 192, 78) output and checks it with onnxruntime against PyTorch;
``tensorrt`` builds (or validates) the cached TensorRT engine ahead of time, so the node starts at once;
``int8 --backend onnxruntime|openvino --calibration DIR`` quantizes, runs the accuracy gate and caches the
int8 model the same way.
"""

import argparse
import sys

import torch

from clrkdnet_core.cli import run_cli
from clrkdnet_core.export.onnx import DEFAULT_OPSET, export_onnx, load_network


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m clrkdnet_core.export", description=__doc__.splitlines()[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)

    onnx = commands.add_parser("onnx", help="export to ONNX and check it with onnxruntime")
    onnx.add_argument("--preset", required=True, help="preset name or YAML file")
    onnx.add_argument("--weights", required=True, help="checkpoint (.pth)")
    onnx.add_argument("--out", required=True, help="output .onnx file")
    onnx.add_argument("--fp16", action="store_true", help="float16 graph (input and output included)")
    onnx.add_argument("--dynamic-batch", action="store_true", help="symbolic batch dimension")
    onnx.add_argument(
        "--batch", type=int, default=1, help="batch size of the graph / check input (default 1)"
    )
    onnx.add_argument(
        "--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset, >= 16 (default {DEFAULT_OPSET})"
    )
    onnx.add_argument("--no-verify", action="store_true", help="skip the onnxruntime check")

    trt = commands.add_parser("tensorrt", help="build the cached TensorRT engine and exit")
    trt.add_argument("--preset", required=True, help="preset name or YAML file")
    trt.add_argument("--weights", required=True, help="checkpoint (.pth)")
    trt.add_argument("--fp16", action="store_true", help="float16 engine (from a float16 export)")
    trt.add_argument("--max-batch", type=int, default=8, help="largest batch the engine accepts (default 8)")
    trt.add_argument("--device", default="cuda:0", help="CUDA device (default cuda:0)")
    trt.add_argument("--cache-dir", default=None, help="engine cache (default ~/.cache/clrkdnet_ros)")

    int8 = commands.add_parser("int8", help="build the cached int8 model (with its accuracy gate) and exit")
    int8.add_argument("--backend", required=True, choices=("onnxruntime", "openvino"), help="runtime")
    int8.add_argument("--preset", required=True, help="preset name or YAML file")
    int8.add_argument("--weights", required=True, help="checkpoint (.pth)")
    int8.add_argument("--calibration", required=True, help="folder of camera images or a dataset root")
    int8.add_argument("--force-int8", action="store_true", help="keep a model that fails the accuracy gate")
    int8.add_argument("--cache-dir", default=None, help="model cache (default ~/.cache/clrkdnet_ros)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    model = load_network(args.preset, args.weights)
    if args.command == "onnx":
        result = export_onnx(
            model,
            args.out,
            batch_size=args.batch,
            dynamic_batch=args.dynamic_batch,
            fp16=args.fp16,
            opset=args.opset,
            verify=not args.no_verify,
        )
        check = (
            "not checked"
            if result.max_abs_diff is None
            else f"max |onnxruntime - torch| = {result.max_abs_diff:.3g}"
        )
        print(f"wrote {result.path} ({check}, tolerance {result.tolerance:g})")
        return 0
    if args.command == "int8":
        from clrkdnet_core.backends import create_backend

        backend = create_backend(
            args.backend,
            model,
            "cpu",
            precision="int8",
            calibration=args.calibration,
            force_int8=args.force_int8,
            cache_dir=args.cache_dir,
        )
        print(f"{backend.agreement.summary()}\nint8 model ready: {backend.onnx_path}")
        return 0
    from clrkdnet_core.export.tensorrt import build_only

    path = build_only(
        model, torch.device(args.device), fp16=args.fp16, max_batch=args.max_batch, cache_dir=args.cache_dir
    )
    print(f"engine ready: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
