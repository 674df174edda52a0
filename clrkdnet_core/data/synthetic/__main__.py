"""Synthetic CULane / TuSimple datasets with exact labels.

    python -m clrkdnet_core.data.synthetic --out DIR --format culane --n 200 --seed 0 [--sequence]

The same arguments always write the same bytes (see :mod:`clrkdnet_core.data.synthetic.writer`).
"""

import argparse
import sys

from clrkdnet_core.cli import run_cli
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
    args = parser.parse_args(argv)
    root = generate_dataset(args.out, args.format, args.n, args.seed, args.sequence, tuple(args.split))
    print(f"wrote {args.n} {args.format} frames to {root}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
