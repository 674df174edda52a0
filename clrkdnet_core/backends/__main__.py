"""Which backend is fastest on this CPU: ``python -m clrkdnet_core.backends --preset P --weights W``.

Times ``LaneDetector.detect`` (image -> lanes) on one generated 1640 x 590 road image for every CPU backend
and precision that runs here, side by side (interleaved), and names the fastest. int8 rows need
``--calibration DIR``; the others never change a result, int8 is the user's choice (see README, INT8).
"""

import argparse
import sys

import numpy as np

from clrkdnet_core.backend_choice import choose_backend
from clrkdnet_core.cli import run_cli
from clrkdnet_core.errors import ClrkdnetError
from clrkdnet_core.timing import measure_interleaved

CANDIDATES = (
    ("torch", "fp32"),
    ("onnxruntime", "fp32"),
    ("openvino", "fp32"),
    ("openvino", "bf16"),
    ("onnxruntime", "int8"),
    ("openvino", "int8"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m clrkdnet_core.backends", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--preset", required=True, help="preset name or YAML file")
    parser.add_argument("--weights", required=True, help="checkpoint (.pth)")
    parser.add_argument(
        "--calibration", help="int8: folder of camera images or a dataset root (else no int8)"
    )
    parser.add_argument("--iterations", type=int, default=20, help="timed calls per backend (default 20)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from clrkdnet_core.data.synthetic import render_scene
    from clrkdnet_core.inference import LaneDetector

    image, _ = render_scene(np.random.default_rng(3), 1640, 590)
    detectors = {}
    for backend, precision in CANDIDATES:
        if precision == "int8" and args.calibration is None:
            continue
        try:
            detector = LaneDetector.from_preset(
                args.preset, args.weights, "cpu", backend, precision, args.calibration
            )
        except ClrkdnetError as exc:
            print(f"{backend} {precision}: not available ({exc})")
            continue
        detectors[f"{backend} {precision}"] = detector
    timings = measure_interleaved(
        {name: lambda d=detector: d.detect(image) for name, detector in detectors.items()},
        args.iterations,
        warmup=3,
        batch=1,
        description="backends",
    )
    baseline = timings["torch fp32"].p50
    print("backend precision   image -> lanes p50 (ms)   vs torch fp32")
    for name, timing in sorted(timings.items(), key=lambda item: item[1].p50):
        print(f"{name:<20}{timing.p50:>12.1f}{baseline / timing.p50:>18.2f}x")
    fastest = min(timings, key=lambda name: timings[name].p50)
    print(f"fastest on this CPU: {fastest} ({timings[fastest].p50:.1f} ms per 1640x590 image)")
    print(f"backend auto (the default) runs {choose_backend('cpu').reason}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
