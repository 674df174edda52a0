"""Synthetic CULane / TuSimple datasets with exact labels: the frames of a set and its files.

Writes the real datasets' file layouts (images, ``.lines.txt`` / label JSON lines, segmentation masks, list
files and the nine CULane test-category lists), so every tool that reads CULane or TuSimple also runs on this
data. The same seed always gives byte-identical files: every frame has its own random generator and OpenCV's
encoders are deterministic.

A ``--sequence`` drive also writes ``truth.jsonl`` at the root: one :class:`FrameTruth` JSON line per frame
in the order of the frames (image path relative to the root, camera, pose, motion, every marking's id and
ground cubic, the ids of the labelled lanes in the label file's order, the ego lane), so a dataset on disk
keeps what :mod:`~clrkdnet_core.data.synthetic.truth` knows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from clrkdnet_core.data.formats import (
    CULANE_CATEGORY_FILES,
    CULANE_IMAGE_SIZE,
    TUSIMPLE_H_SAMPLES,
    TUSIMPLE_IMAGE_SIZE,
)
from clrkdnet_core.data.synthetic.drive import Curve, Drive, LaneChange
from clrkdnet_core.data.synthetic.render import draw_scene
from clrkdnet_core.data.synthetic.sampler import sample_category, sample_scene
from clrkdnet_core.data.synthetic.scene import CATEGORIES, Scene
from clrkdnet_core.data.synthetic.truth import FrameTruth, drive_truth
from clrkdnet_core.data.tusimple_seg import generate_seg_labels
from clrkdnet_core.data.writers import culane_annotation_text
from clrkdnet_core.errors import DatasetError

IMAGE_SIZES = {"culane": CULANE_IMAGE_SIZE, "tusimple": TUSIMPLE_IMAGE_SIZE}
SPLITS = ("train", "val", "test")
CULANE_SEG_WIDTH = 16
TUSIMPLE_MAX_LANES = 5
TUSIMPLE_LABEL_FILES = {
    "train": "label_data_synth.json",
    "val": "label_data_synth_val.json",
    "test": "test_label.json",
}
_FRAMES_PER_CLIP = 30
TRUTH_FILE = "truth.jsonl"


def split_sizes(n: int, fractions: tuple[float, float, float]) -> dict[str, int]:
    """Frames per split: train and val rounded down, the rest is test."""
    if n < 1 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise DatasetError(f"cannot split {n} frames with fractions {fractions}")
    total = sum(fractions)
    train = int(n * fractions[0] / total)
    val = int(n * fractions[1] / total)
    return {"train": train, "val": val, "test": n - train - val}


_Frame = tuple[str, int, Scene, FrameTruth | None]


def _scenes(n: int, seed: int, fmt: str, drive: Drive | None, splits: dict[str, int]) -> Iterator[_Frame]:
    """(split, index within the split, scene, its truth for a drive) for every frame, splits in order.

    TuSimple images always show lanes (highway driving), so its frames never are crossing scenes.
    """
    size = IMAGE_SIZES[fmt]
    categories = CATEGORIES if fmt == "culane" else tuple(c for c in CATEGORIES if c != "cross")
    index = 0
    for split in SPLITS:
        for local in range(splits[split]):
            if drive is not None:
                yield split, local, drive.scene_at(index), drive_truth(drive, index)
            else:
                rng = np.random.default_rng([seed, index])
                yield split, local, sample_scene(rng, *size, sample_category(rng, categories)), None
            index += 1


def generate_dataset(
    out: str | Path,
    fmt: str,
    n: int,
    seed: int,
    sequence: bool = False,
    split: tuple[float, float, float] = (0.8, 0.1, 0.1),
    progress: bool = True,
    fps: float = 10.0,
    lane_change: LaneChange | None = None,
    curve: Curve | None = None,
) -> Path:
    """Write ``n`` synthetic frames in the ``fmt`` layout ("culane" / "tusimple") under ``out``.

    With ``sequence`` the frames are one :class:`Drive` at ``fps`` frames per second, optionally with a
    ``lane_change`` and a ``curve``, and ``truth.jsonl`` is written beside the lists.
    """
    if fmt not in IMAGE_SIZES:
        raise DatasetError(f"unknown dataset format {fmt!r}; expected culane or tusimple")
    if not sequence and (lane_change is not None or curve is not None):
        raise DatasetError("a lane change or a curve needs --sequence (one continuous drive)")
    splits = split_sizes(n, split)
    drive = Drive(seed, *IMAGE_SIZES[fmt], fps, lane_change, curve) if sequence else None
    root = Path(out)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"cannot create output folder {root}: {exc.strerror}") from exc
    frames = tqdm(
        _scenes(n, seed, fmt, drive, splits),
        total=n,
        desc=f"synthetic {fmt}",
        disable=not progress,
    )
    truths = _write_culane(root, frames, seed) if fmt == "culane" else _write_tusimple(root, frames)
    if drive is not None:
        (root / TRUTH_FILE).write_text("".join(f"{truth.to_json()}\n" for truth in truths))
    return root


def _write_image(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise DatasetError(f"cannot write {path}")


def culane_lanes(scene: Scene) -> tuple[list[np.ndarray | None], list[np.ndarray], list[int]]:
    """CULane ground truth of a scene: the 4 lane slots (left-left, left, right, right-right of the ego car,
    ``None`` where absent), the lanes to write, left to right, as (N, 2) (x, y) at y = H, H−10, …
    (bottom up), and the index in ``scene.markings`` of each lane written.

    A lane needs at least 3 visible points (CULane readers drop shorter ones).
    """
    height = scene.camera.height
    ys = np.arange(height, 0, -10, dtype=np.float64)
    xs = scene.sample_lanes(ys)
    positions = scene.lateral_positions()
    left = [i for i in np.argsort(-positions) if positions[i] < 0][:2][::-1]
    right = [i for i in np.argsort(positions) if positions[i] >= 0][:2]
    markings: list[int | None] = [None] * 4
    markings[2 - len(left) : 2] = left
    markings[2 : 2 + len(right)] = right
    out: list[np.ndarray | None] = []
    for i in markings:
        ok = ~np.isnan(xs[i]) if i is not None else None
        out.append(np.stack([xs[i][ok], ys[ok]], axis=1) if i is not None and ok.sum() >= 3 else None)
    written = [int(i) for i, lane in zip(markings, out, strict=True) if lane is not None]
    return out, [lane for lane in out if lane is not None], written


def _with_labels(truth: FrameTruth | None, image: str, markings: list[int]) -> FrameTruth | None:
    """The frame's truth with its image path and the ids of the lanes its label file lists."""
    if truth is None:
        return None
    ids = tuple(truth.lanes[i].id for i in markings)
    return replace(truth, image=image, gt_lane_ids=ids)


def _write_culane(root: Path, frames: Iterator[_Frame], seed: int) -> list[FrameTruth]:
    lists: dict[str, list[str]] = {name: [] for name in ("train", "train_gt", "val", "val_gt", "test")}
    categories: dict[str, list[str]] = {c: [] for c in CATEGORIES}
    truths = []
    for split, local, scene, truth in frames:
        driver = f"driver_{SPLITS.index(split) + 1:02d}_30frame"
        clip = f"{seed % 10**8:08d}_{local // _FRAMES_PER_CLIP:04d}.MP4"
        name = f"{driver}/{clip}/{(local % _FRAMES_PER_CLIP) * 30:05d}"
        image = draw_scene(scene)
        _write_image(root / f"{name}.jpg", image)
        slots, lanes, markings = culane_lanes(scene)
        (root / f"{name}.lines.txt").write_text(culane_annotation_text(lanes))
        if truth is not None:
            truths.append(_with_labels(truth, f"{name}.jpg", markings))
        mask = np.zeros(image.shape[:2], np.uint8)
        for lane_id, lane in enumerate(slots, start=1):
            if lane is not None:
                points = np.round(lane).astype(np.int32)
                cv2.polylines(mask, [points], False, lane_id, CULANE_SEG_WIDTH)
        _write_image(root / "laneseg_label_w16" / f"{name}.png", mask)
        exist = " ".join("0" if lane is None else "1" for lane in slots)
        gt_line = f"/{name}.jpg /laneseg_label_w16/{name}.png {exist}"
        if split == "test":
            lists["test"].append(f"/{name}.jpg")
            categories[scene.category].append(f"/{name}.jpg")
        else:
            lists[split].append(f"/{name}.jpg")
            lists[f"{split}_gt"].append(gt_line)
    list_dir = root / "list"
    (list_dir / "test_split").mkdir(parents=True, exist_ok=True)
    for name, lines in lists.items():
        (list_dir / f"{name}.txt").write_text("".join(f"{line}\n" for line in lines))
    for category, lines in categories.items():
        (list_dir / "test_split" / CULANE_CATEGORY_FILES[category]).write_text(
            "".join(f"{x}\n" for x in lines)
        )
    return truths


def tusimple_lanes(scene: Scene) -> tuple[list[list[int]], list[int]]:
    """TuSimple lanes of a scene: up to 5 lanes nearest the ego car, left to right, x per h_sample or −2;
    and the index in ``scene.markings`` of each lane."""
    xs = scene.sample_lanes(np.asarray(TUSIMPLE_H_SAMPLES, dtype=np.float64))
    positions = scene.lateral_positions()
    nearest = sorted(np.argsort(np.abs(positions))[:TUSIMPLE_MAX_LANES], key=lambda i: positions[i])
    lanes, written = [], []
    for i in nearest:
        if np.count_nonzero(~np.isnan(xs[i])) >= 2:
            lanes.append([-2 if np.isnan(x) else round(x) for x in xs[i]])
            written.append(int(i))
    return lanes, written


def _write_tusimple(root: Path, frames: Iterator[_Frame]) -> list[FrameTruth]:
    labels: dict[str, list[str]] = {split: [] for split in SPLITS}
    truths = []
    for split, local, scene, truth in frames:
        raw_file = f"clips/synth_{split}/{local:05d}/20.jpg"
        _write_image(root / raw_file, draw_scene(scene))
        lanes, markings = tusimple_lanes(scene)
        record = {"lanes": lanes, "h_samples": TUSIMPLE_H_SAMPLES, "raw_file": raw_file}
        labels[split].append(json.dumps(record))
        if truth is not None:
            truths.append(_with_labels(truth, raw_file, markings))
    for split, lines in labels.items():
        (root / TUSIMPLE_LABEL_FILES[split]).write_text("".join(f"{line}\n" for line in lines))
    generate_seg_labels(root, progress=False)
    return truths
