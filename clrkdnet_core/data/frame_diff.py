"""Frame differences for CULane's similar-image removal (MODEL.md 4.7).

    python -m clrkdnet_core.data.frame_diff --root DIR [--list list/train_gt.txt] [--out list/train_diffs.npz]

For every image of the list, in list order: the mean absolute pixel difference (over H·W·3) to the previous
image of the list; the first image is compared with zeros. Saved as ``data`` in an ``.npz`` file that
``CULaneDataset(diff_file=...)`` reads.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from clrkdnet_core.cli import run_cli
from clrkdnet_core.data.base import read_image
from clrkdnet_core.data.culane import read_list
from clrkdnet_core.errors import DatasetError

DEFAULT_LIST = "list/train_gt.txt"
DEFAULT_OUT = "list/train_diffs.npz"


def frame_diffs(root: str | Path, list_file: str | Path = DEFAULT_LIST, progress: bool = True) -> np.ndarray:
    """Mean absolute difference of each listed image to the previous one (float64, one value per image)."""
    samples = read_list(Path(root), list_file)
    diffs = np.zeros(len(samples), dtype=np.float64)
    previous = None
    for i, sample in enumerate(tqdm(samples, desc="frame diffs", disable=not progress)):
        image = read_image(sample.image).astype(np.float64)  # float, so the sums round as for a float image
        if previous is None or previous.shape != image.shape:
            previous = np.zeros_like(image)
        diffs[i] = np.abs(image - previous).mean()
        previous = image
    return diffs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Frame differences of a CULane list (similar-image removal)."
    )
    parser.add_argument("--root", required=True, help="CULane root")
    parser.add_argument(
        "--list", default=DEFAULT_LIST, help=f"list file under the root (default {DEFAULT_LIST})"
    )
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output under the root (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    diffs = frame_diffs(args.root, args.list)
    out = Path(args.root) / args.out
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez(out, data=diffs)
    except OSError as exc:
        raise DatasetError(f"cannot write {out}: {exc.strerror}") from exc
    print(f"wrote {len(diffs)} frame differences to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
