"""TuSimple segmentation targets from the label JSON files (the reference ``generate_seg_tusimple`` tool).

    python -m clrkdnet_core.data.tusimple_seg --root DIR [--savedir seg_label]

Lanes with at least 2 points are ordered by the angle of their end-to-end chord; the last lane leaning left
(angle ≤ 90°) gets id 3 and its left neighbours 2 and 1, the first leaning right ids 4, 5, 6. Lanes with at
least 4 points are drawn 15 px thick into ``<savedir>/<clip>/<frame>/20.png`` (the path the datasets derive
from ``raw_file``); ``<savedir>/list/{train_val,test}_gt.txt`` list image, mask and the 6 existence flags.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from clrkdnet_core.cli import run_cli
from clrkdnet_core.data.formats import TUSIMPLE_IMAGE_SIZE, TUSIMPLE_SPLIT_FILES
from clrkdnet_core.errors import DatasetError

SEG_THICKNESS = 15
MAX_SEG_LANES = 6
# The reference tool's two lists (train_val_gt.txt, test_gt.txt) and the label files each one covers.
_MASK_LISTS = {"train_val": TUSIMPLE_SPLIT_FILES["trainval"], "test": TUSIMPLE_SPLIT_FILES["test"]}


def read_label_file(path: Path) -> list[dict]:
    """Records of a TuSimple label JSON-lines file; a malformed line raises DatasetError (file:line)."""
    records = []
    with open(path) as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                record["lanes"], record["h_samples"], record["raw_file"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DatasetError(f"{path}:{number}: malformed TuSimple label line ({exc})") from exc
            records.append(record)
    return records


def seg_lane_slots(lanes: list[list[float]], h_samples: list[int]) -> list[list[tuple[int, int]]]:
    """The 6 mask slots (ids 1..6) of a label's lanes, each a list of (x, y) points; empty where absent."""
    kept, angles = [], []
    for lane in lanes:
        points = [(x, y) for x, y in zip(lane, h_samples, strict=False) if x >= 0]
        if len(points) > 1:
            kept.append(points)
            angles.append(
                np.arctan2(points[-1][1] - points[0][1], points[0][0] - points[-1][0]) / np.pi * 180
            )
    order = np.argsort(angles)
    kept = [kept[i] for i in order]
    angles = [angles[i] for i in order]
    index: list[int | None] = [None] * MAX_SEG_LANES
    for i, angle in enumerate(angles):
        if angle <= 90:
            index[2] = i
            index[1] = i - 1 if i > 0 else None
            index[0] = i - 2 if i > 1 else None
        else:
            index[3] = i
            index[4] = i + 1 if i + 1 < len(angles) else None
            index[5] = i + 2 if i + 2 < len(angles) else None
            break
    return [[] if i is None else kept[i] for i in index]


def seg_mask(lanes: list[list[float]], h_samples: list[int]) -> tuple[np.ndarray, list[int]]:
    """(720, 1280) uint8 lane-id mask and the 6 existence flags of one TuSimple label."""
    width, height = TUSIMPLE_IMAGE_SIZE
    mask = np.zeros((height, width), np.uint8)
    exist = []
    for lane_id, points in enumerate(seg_lane_slots(lanes, h_samples), start=1):
        if len(points) < 4:
            exist.append(0)
            continue
        pixels = np.asarray(points, dtype=np.float64).astype(np.int32)
        for a, b in itertools.pairwise(pixels):
            cv2.line(mask, tuple(int(v) for v in a), tuple(int(v) for v in b), lane_id, SEG_THICKNESS)
        exist.append(1)
    return mask, exist


def seg_mask_path(raw_file: str, savedir: str = "seg_label") -> str:
    """Mask path of a label's ``raw_file`` relative to the root: clips/a/b/20.jpg → seg_label/a/b/20.png."""
    return raw_file.replace("clips", savedir, 1)[:-3] + "png"


def generate_seg_labels(root: str | Path, savedir: str = "seg_label", progress: bool = True) -> int:
    """Write the masks and list files for every label file present under ``root``; returns the mask count."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"TuSimple root {root} does not exist")
    count = 0
    present = {name: [root / f for f in files if (root / f).is_file()] for name, files in _MASK_LISTS.items()}
    if not any(present.values()):
        expected = ", ".join(file for files in _MASK_LISTS.values() for file in files)
        raise DatasetError(f"no TuSimple label files in {root} (expected {expected})")
    list_dir = root / savedir / "list"
    list_dir.mkdir(parents=True, exist_ok=True)
    for name, files in present.items():
        records = [record for path in files for record in read_label_file(path)]
        lines = []
        for record in tqdm(records, desc=f"seg masks {name}", disable=not progress):
            mask, exist = seg_mask(record["lanes"], record["h_samples"])
            relative = seg_mask_path(record["raw_file"], savedir)
            target = root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(target), mask):
                raise DatasetError(f"cannot write {target}")
            lines.append(f"/{record['raw_file'].lstrip('/')} /{relative} {' '.join(map(str, exist))}\n")
            count += 1
        (list_dir / f"{name}_gt.txt").write_text("".join(lines))
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Generate TuSimple segmentation masks from the label JSON files."
    )
    parser.add_argument(
        "--root", required=True, help="TuSimple root holding label_data_*.json / test_label.json"
    )
    parser.add_argument("--savedir", default="seg_label", help="output folder under the root")
    args = parser.parse_args(argv)
    count = generate_seg_labels(args.root, args.savedir)
    print(f"wrote {count} masks under {Path(args.root) / args.savedir}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
