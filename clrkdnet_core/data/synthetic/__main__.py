"""Synthetic CULane / TuSimple datasets with exact labels.

    python -m clrkdnet_core.data.synthetic --out DIR --format culane --n 200 --seed 0 [--sequence]
        [--fps 10] [--lane-change SECONDS [--lane-change-direction auto|left|right]
        [--lane-change-duration 2.5]] [--curve SECONDS [--curve-curvature 0.004] [--curve-duration 12]]

A --sequence drive also writes truth.jsonl (camera, pose, motion, lane ids, the ego lane's state per frame).
Detector dropouts are not rendered: an evaluation drops a frame's detections.

The same arguments always write the same bytes (see :mod:`clrkdnet_core.data.synthetic.writer`).
"""

import argparse
import sys

from clrkdnet_core.cli import run_cli
from clrkdnet_core.data.synthetic.drive import LANE_CHANGE_DIRECTIONS, Curve, LaneChange
from clrkdnet_core.data.synthetic.writer import IMAGE_SIZES, generate_dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clrkdnet_core.data.synthetic", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", required=True, help="output dataset root")
    parser.add_argument("--format", choices=sorted(IMAGE_SIZES), default="culane")
    parser.add_argument("--n", type=int, default=100, help="number of frames over all splits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sequence", action="store_true", help="consecutive frames of one continuous drive")
    parser.add_argument(
        "--split",
        type=float,
        nargs=3,
        default=(0.8, 0.1, 0.1),
        metavar=("TRAIN", "VAL", "TEST"),
        help="fractions of the frames per split (default 0.8 0.1 0.1)",
    )
    drive = parser.add_argument_group("drive (with --sequence)")
    drive.add_argument("--fps", type=float, default=10.0, help="frames per second of the drive (default 10)")
    drive.add_argument(
        "--lane-change", type=float, metavar="SECONDS", help="start a lane change this far into the drive"
    )
    drive.add_argument("--lane-change-direction", choices=LANE_CHANGE_DIRECTIONS, default="auto")
    drive.add_argument("--lane-change-duration", type=float, default=2.5, metavar="SECONDS")
    drive.add_argument(
        "--curve", type=float, metavar="SECONDS", help="enter a curved stretch this far into the drive"
    )
    drive.add_argument(
        "--curve-curvature", type=float, default=1 / 250, metavar="1/M", help="positive bends left"
    )
    drive.add_argument("--curve-duration", type=float, default=12.0, metavar="SECONDS")
    args = parser.parse_args(argv)
    lane_change = curve = None
    if args.lane_change is not None:
        lane_change = LaneChange(args.lane_change, args.lane_change_direction, args.lane_change_duration)
    if args.curve is not None:
        curve = Curve(args.curve, args.curve_curvature, args.curve_duration)
    root = generate_dataset(
        args.out,
        args.format,
        args.n,
        args.seed,
        args.sequence,
        tuple(args.split),
        fps=args.fps,
        lane_change=lane_change,
        curve=curve,
    )
    print(f"wrote {args.n} {args.format} frames to {root}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
