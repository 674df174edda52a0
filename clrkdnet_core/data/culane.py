"""CULane: list files, ``.lines.txt`` annotations and ``laneseg_label_w16`` masks (MODEL.md 1.1, 4, 4.7)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clrkdnet_core.data.base import LaneDataset, Sample
from clrkdnet_core.errors import DatasetError
from clrkdnet_core.geometry import ImageGeometry

LIST_FILES = {"train": "list/train_gt.txt", "val": "list/val.txt", "test": "list/test.txt"}
TRAIN_LIST_FILES = {"train": "list/train_gt.txt", "val": "list/val_gt.txt"}
MAX_LANES = 4


def read_list(root: Path, list_file: str | Path) -> list[Sample]:
    """Samples of a CULane list: "/img.jpg [/mask.png e1 e2 e3 e4]" per line (leading slash optional)."""
    path = root / list_file
    if not path.is_file():
        raise DatasetError(f"CULane list file {path} does not exist")
    samples = []
    for line in path.read_text().splitlines():
        tokens = line.split()
        if not tokens:
            continue
        name = tokens[0].lstrip("/")
        mask = root / tokens[1].lstrip("/") if len(tokens) > 1 else None
        samples.append(Sample(name=name, image=root / name, mask=mask))
    return samples


def read_lines_file(path: Path) -> list[np.ndarray]:
    """Lanes of a CULane ``.lines.txt`` as the reference reads them.

    Points with a negative coordinate are dropped, duplicate points removed, lanes with ≤ 2 points dropped,
    points sorted top to bottom. A line with an odd number of values or a non-number raises DatasetError.
    """
    if not path.is_file():
        raise DatasetError(f"CULane annotation {path} does not exist")
    lanes = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        try:
            values = [float(v) for v in line.split()]
        except ValueError as exc:
            raise DatasetError(f"{path}:{number}: malformed lane line ({exc})") from exc
        if len(values) % 2:
            raise DatasetError(f"{path}:{number}: malformed lane line (odd number of coordinates)")
        points = {(x, y) for x, y in zip(values[::2], values[1::2], strict=True) if x >= 0 and y >= 0}
        if len(points) > 2:
            lanes.append(np.array(sorted(points, key=lambda p: p[1]), dtype=np.float64))
    return lanes


def filter_by_frame_diff(samples: list[Sample], diff_file: Path, threshold: float) -> list[Sample]:
    """Keep the samples whose frame difference (MODEL.md 4.7) is above ``threshold``."""
    if not diff_file.is_file():
        raise DatasetError(f"frame-difference file {diff_file} does not exist")
    with np.load(diff_file) as data:
        if "data" not in data:
            raise DatasetError(f"frame-difference file {diff_file} has no 'data' array")
        diffs = data["data"]
    if len(diffs) != len(samples):
        raise DatasetError(
            f"frame-difference file {diff_file} has {len(diffs)} values "
            f"but the list has {len(samples)} images"
        )
    return [sample for sample, diff in zip(samples, diffs, strict=True) if diff > threshold]


class CULaneDataset(LaneDataset):
    """CULane split ("train", "val", "test") or any list file under the root.

    Training samples (``training`` defaults to split == "train") need a list with masks (``train_gt.txt`` /
    ``val_gt.txt``); ``diff_file`` (relative to the root or absolute) applies the frame-difference filter,
    keeping images with diff > ``diff_threshold`` (CLRKDNet: 15), in every mode.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        geometry: ImageGeometry,
        augment: bool | None = None,
        diff_file: str | Path | None = None,
        diff_threshold: float = 15.0,
        training: bool | None = None,
        list_file: str | Path | None = None,
        max_lanes: int = MAX_LANES,
        seed: int | None = None,
    ):
        training = split == "train" if training is None else training
        augment = training if augment is None else augment
        super().__init__(root, geometry, max_lanes, training, augment, seed)
        if list_file is None:
            lists = TRAIN_LIST_FILES if training else LIST_FILES
            if split not in lists:
                raise DatasetError(f"unknown CULane split {split!r}; expected one of {', '.join(lists)}")
            list_file = lists[split]
        self.samples = read_list(self.root, list_file)
        if diff_file is not None:
            self.samples = filter_by_frame_diff(self.samples, self.root / diff_file, diff_threshold)

    def lanes_of(self, sample: Sample) -> list[np.ndarray]:
        return read_lines_file(sample.image.with_suffix(".lines.txt"))
