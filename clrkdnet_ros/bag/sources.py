"""Frames of a lane dataset, in list order, for writing into a bag: image path and ground-truth lanes.

CULane: a list file of image paths relative to the root (default ``list/test.txt``); the lanes of
``<root><entry>`` are in the ``.lines.txt`` file next to the image. TuSimple: label files of JSON lines
(``raw_file``, ``h_samples``, ``lanes`` with -2 where a lane is absent). A synthetic set written by
``python -m clrkdnet_core.data.synthetic`` is in one of these two layouts and is detected as such; a
synthetic drive's ``truth.jsonl`` (camera, pose, motion, lane ids, ego lane per image) goes with its frames.
"""

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from clrkdnet_core.data.formats import CULANE_CATEGORY_FILES
from clrkdnet_core.data.synthetic.truth import FrameTruth
from clrkdnet_core.data.synthetic.writer import TRUTH_FILE
from clrkdnet_core.errors import DatasetError
from clrkdnet_core.lane import Lane
from clrkdnet_core.metrics.culane import lane_file_path, read_lane_file, read_list_file

FORMATS = ("culane", "tusimple", "synthetic")
_CULANE_DEFAULT_LIST = "list/test.txt"
_TUSIMPLE_DEFAULT_LABELS = ("test_label.json",)


@dataclass(frozen=True)
class SourceFrame:
    """One dataset image: its file, its GT lanes (top to bottom), its CULane category if known and, for a
    synthetic drive, its truth (``truth.gt_lane_ids`` names ``lanes`` in order)."""

    image_path: Path
    lanes: list[Lane]
    category: str | None = None
    truth: FrameTruth | None = None


@dataclass(frozen=True)
class DatasetSource:
    """The frames of one dataset list, with the format it was read as."""

    format: str
    frames: list[SourceFrame]


def read_source(kind: str, root: Path, list_path: Path | None = None) -> DatasetSource:
    """Frames of ``root`` read as ``kind`` (see :data:`FORMATS`), from ``list_path`` or the default list."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    if kind == "synthetic":
        kind = "culane" if (root / "list").is_dir() else "tusimple"
    if kind == "culane":
        frames = _culane_frames(root, Path(list_path) if list_path else root / _CULANE_DEFAULT_LIST)
    elif kind == "tusimple":
        frames = _tusimple_frames(root, Path(list_path) if list_path else _default_tusimple_labels(root))
    else:
        raise DatasetError(f"unknown dataset format '{kind}' (expected one of {', '.join(FORMATS)})")
    if not frames:
        raise DatasetError(f"no images listed for {root} ({kind})")
    truths = _truths(root)
    if truths:
        frames = [_with_truth(frame, root, truths) for frame in frames]
    return DatasetSource(kind, frames)


def _truths(root: Path) -> dict[str, FrameTruth]:
    """Image path relative to ``root`` -> its truth, from a synthetic drive's truth file ({} without one)."""
    path = root / TRUTH_FILE
    if not path.is_file():
        return {}
    truths = {}
    for line_number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            truth = FrameTruth.from_json(line)
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(
                f"file {path} line {line_number}: not a synthetic frame's truth ({exc})"
            ) from exc
        truths[truth.image] = truth
    return truths


def _with_truth(frame: SourceFrame, root: Path, truths: dict[str, FrameTruth]) -> SourceFrame:
    truth = truths.get(frame.image_path.relative_to(root).as_posix())
    if truth is None or len(truth.gt_lane_ids) != len(frame.lanes):
        raise DatasetError(
            f"{root / TRUTH_FILE} does not match the labels of {frame.image_path} (edited, or another set's)"
        )
    return replace(frame, truth=truth)


def _culane_frames(root: Path, list_path: Path) -> list[SourceFrame]:
    entries = [entry.split()[0] for entry in read_list_file(list_path) if entry.strip()]
    categories = _culane_categories(root / "list" / "test_split")
    frames = []
    for entry in entries:
        image_path = _existing_image(root / entry.lstrip("/"), list_path)
        points = read_lane_file(lane_file_path(root, entry)) or []
        lanes = [Lane(_top_to_bottom(p), 1.0) for p in points if len(p) >= 2]
        frames.append(SourceFrame(image_path, lanes, categories.get(entry.lstrip("/"))))
    return frames


def _culane_categories(split_dir: Path) -> dict[str, str]:
    """Image entry (no leading '/') -> category name, from the official test_split lists where present."""
    categories = {}
    for name, file_name in CULANE_CATEGORY_FILES.items():
        if (split_dir / file_name).is_file():
            for entry in read_list_file(split_dir / file_name):
                if entry.strip():
                    categories[entry.split()[0].lstrip("/")] = name
    return categories


def _default_tusimple_labels(root: Path) -> Path:
    for name in _TUSIMPLE_DEFAULT_LABELS:
        if (root / name).is_file():
            return root / name
    labels = sorted(root.glob("*.json"))
    if len(labels) == 1:
        return labels[0]
    raise DatasetError(
        f"choose the TuSimple label file with --list (found {[p.name for p in labels]} in {root})"
    )


def _tusimple_frames(root: Path, label_path: Path) -> list[SourceFrame]:
    if not label_path.is_file():
        raise DatasetError(f"TuSimple label file not found: {label_path}")
    frames = []
    for line_number, line in enumerate(label_path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            label = json.loads(line)
            ys = np.asarray(label["h_samples"], dtype=np.float32)
            lanes = []
            for xs in label["lanes"]:
                xs = np.asarray(xs, dtype=np.float32)
                present = xs >= 0
                if np.count_nonzero(present) >= 2:
                    lanes.append(Lane(np.stack([xs[present], ys[present]], axis=1), 1.0))
            image_path = _existing_image(root / label["raw_file"], label_path)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"file {label_path} line {line_number}: not a TuSimple label ({exc})") from exc
        frames.append(SourceFrame(image_path, lanes))
    return frames


def _existing_image(path: Path, listed_in: Path) -> Path:
    if not path.is_file():
        raise DatasetError(f"image {path} listed in {listed_in} does not exist")
    return path


def _top_to_bottom(points: np.ndarray) -> np.ndarray:
    # .lines.txt files list points bottom to top; Lane wants them top to bottom.
    return points[np.argsort(points[:, 1], kind="stable")]
