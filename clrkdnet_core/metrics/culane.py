"""CULane lane metric, equal to the official C++ tool (SCNN ``tools/lane_evaluation``) at every IoU threshold.

Per image, every GT and every predicted lane is interpolated (two points as they are, more points by the
official natural cubic spline with 50 samples per segment), rounded to pixels the way OpenCV converts
``Point2f`` to ``Point`` and drawn as the tool's ``cv::line`` calls of width 30 draw it (:mod:`.raster`) on
its own 590x1640 mask. IoU of two masks is |A∩B| / (|A| + |B| - |A∩B|); GT and predictions are matched by the
official Kuhn-Munkres on the IoU matrix, and a GT lane counts as a true positive when its partner's IoU is
strictly above the threshold. Counts are summed over the list before precision, recall and F1 are computed,
with the tool's -1 for an empty denominator.

The matching does not depend on the threshold, so one pass gives the counts at every threshold (F1@50, F1@75,
mF1).

Where the official tool is odd, it is reproduced: each text line of a ``.lines.txt`` file is a lane, even an
empty one (a lane with fewer than 2 points has IoU 0 with everything); an odd trailing value on a line is
ignored; a missing prediction file means no predictions and a missing annotation file means no GT lanes (both
are counted in the result so that a wrong directory does not pass unnoticed). A lane whose spline has NaN
samples (two equal consecutive points: a division by zero in the tool) is drawn towards INT_MIN like the tool
does; what OpenCV draws for such a segment differs between OpenCV versions, so there the tool's own result
depends on its build.
"""

import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from clrkdnet_core.data.formats import CULANE_CATEGORY_FILES, CULANE_IMAGE_SIZE
from clrkdnet_core.errors import DatasetError
from clrkdnet_core.metrics.matching import match_gt_to_predictions
from clrkdnet_core.metrics.raster import cv_round, draw_polyline
from clrkdnet_core.metrics.spline import natural_spline_samples

CULANE_COLS, CULANE_ROWS = CULANE_IMAGE_SIZE  # the tool's -c 1640 -r 590
CULANE_WIDTH = 30
# CLRNet's mF1 thresholds 0.50:0.05:0.95, as the doubles that "-t 0.55" etc. give the C++ tool.
MF1_THRESHOLDS = tuple(round(0.5 + 0.05 * k, 2) for k in range(10))

_COUNTS = ("tp", "fp", "fn")
# What `istream >> double` accepts (no nan/inf/hex, which stop the C++ reader).
_NUMBER = re.compile(rb"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
# Images per worker task, and the size below which a process pool costs more than it saves.
_CHUNK = 32
_MIN_POOL_IMAGES = 256


@dataclass(frozen=True)
class ImageMatch:
    """Official matching of one image: lane counts, each GT lane's IoU with its partner (NaN if none) and the
    partner's index among the predictions (-1 if none; tracking metrics follow identities through it)."""

    num_gt: int
    num_pred: int
    matched_iou: np.ndarray
    partners: np.ndarray

    def counts(self, iou_threshold: float = 0.5) -> tuple[int, int, int]:
        """(TP, FP, FN) at ``iou_threshold``: a matched GT lane is a TP when its IoU is strictly greater."""
        tp = int(np.count_nonzero(self.matched_iou > iou_threshold))
        return tp, self.num_pred - tp, self.num_gt - tp


@dataclass(frozen=True)
class ImageResult:
    """One image of a list: its official matching, and whether its annotation or prediction was missing."""

    match: ImageMatch
    missing_annotation: bool = False
    missing_prediction: bool = False


@dataclass(frozen=True)
class _LaneMask:
    """One rasterised lane: its drawn pixels inside a box of the image, and how many there are."""

    top: int
    left: int
    pixels: np.ndarray
    area: int


def read_lane_file(path: str | os.PathLike) -> list[np.ndarray] | None:
    """Lanes of a CULane ``.lines.txt`` file as float32 (N, 2) arrays, or None when it cannot be opened.

    Like the C++ reader (``getline`` + ``stringstream >> x >> y``): one lane per text line, blank lines
    included, coordinates read in pairs and an unpaired last value dropped. A token that is not a number
    raises :class:`DatasetError` naming the file and line, where the C++ would silently stop reading that
    line.
    """
    try:
        data = Path(path).read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
        return None  # the C++ ifstream fails to open and reads no lane
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    lanes = []
    for line_number, line in enumerate(lines, start=1):
        tokens = line.split()
        if not all(_NUMBER.fullmatch(token) for token in tokens):
            raise DatasetError(f"file {path} line {line_number}: expected pairs of numbers")
        values = np.array([float(token) for token in tokens[: len(tokens) // 2 * 2]], dtype=np.float64)
        if not np.all(np.isfinite(values)):
            raise DatasetError(f"file {path} line {line_number}: number out of range")
        with np.errstate(over="ignore"):
            lanes.append(values.astype(np.float32).reshape(-1, 2))
    return lanes


def lane_file_path(directory: str | os.PathLike, list_entry: str) -> str:
    """``<directory><list entry up to its last dot>.lines.txt``: the official path rule.

    The C++ concatenates plainly (CULane list entries start with '/'); a separator is added only when neither
    side has one, where the plain concatenation would name a file in the parent directory.
    """
    directory = os.fspath(directory)
    dot = list_entry.rfind(".")
    stem = list_entry if dot < 0 else list_entry[:dot]
    if directory and not directory.endswith("/") and not stem.startswith("/"):
        directory += "/"
    return directory + stem + ".lines.txt"


def rasterize_lane(
    points: np.ndarray, width: int = CULANE_WIDTH, rows: int = CULANE_ROWS, cols: int = CULANE_COLS
) -> np.ndarray:
    """The official binary mask (rows x cols uint8, 0/1) of one lane; all zeros below 2 points."""
    mask = np.zeros((rows, cols), np.uint8)
    lane = _lane_mask(points, width, mask)
    if lane is not None:
        mask[lane.top : lane.top + lane.pixels.shape[0], lane.left : lane.left + lane.pixels.shape[1]] = (
            lane.pixels
        )
    return mask


def match_image(
    pred_lanes: Sequence[np.ndarray],
    gt_lanes: Sequence[np.ndarray],
    width: int = CULANE_WIDTH,
    rows: int = CULANE_ROWS,
    cols: int = CULANE_COLS,
) -> ImageMatch:
    """Official IoU matching of one image's predicted and GT lanes ((N, 2) (x, y) arrays or Lane objects)."""
    num_gt, num_pred = len(gt_lanes), len(pred_lanes)
    if num_gt == 0 or num_pred == 0:
        return ImageMatch(num_gt, num_pred, np.full(num_gt, np.nan), np.full(num_gt, -1))
    canvas = np.zeros((rows, cols), np.uint8)
    gt_masks = [_lane_mask(lane, width, canvas) for lane in gt_lanes]
    pred_masks = [_lane_mask(lane, width, canvas) for lane in pred_lanes]
    similarity = np.zeros((num_gt, num_pred))
    for i, gt in enumerate(gt_masks):
        for j, pred in enumerate(pred_masks):
            similarity[i, j] = _iou(gt, pred)
    partners = match_gt_to_predictions(similarity)
    matched = np.array([similarity[i, j] if j >= 0 else np.nan for i, j in enumerate(partners)])
    return ImageMatch(num_gt, num_pred, matched, np.array(partners, dtype=int))


def culane_counts(
    pred_lanes: Sequence[np.ndarray],
    gt_lanes: Sequence[np.ndarray],
    iou_threshold: float = 0.5,
    width: int = CULANE_WIDTH,
    rows: int = CULANE_ROWS,
    cols: int = CULANE_COLS,
) -> tuple[int, int, int]:
    """(TP, FP, FN) of one image from in-memory lanes: (N, 2) arrays of (x, y) pixels, or Lane objects.

    Each lane is drawn as the tool draws a ``.lines.txt`` line holding these points in this order (the files
    list points bottom to top; the spline samples, and so a few border pixels, depend on the direction).
    """
    return match_image(pred_lanes, gt_lanes, width, rows, cols).counts(iou_threshold)


def summarize_counts(tp: int, fp: int, fn: int) -> dict:
    """tp/fp/fn with the official precision, recall and F1 (-1 for an empty denominator, F = 2PR/(P+R))."""
    precision = tp / (tp + fp) if tp + fp else -1.0
    recall = tp / (tp + fn) if tp + fn else -1.0
    denominator = precision + recall
    numerator = 2 * precision * recall
    if denominator:
        f1 = numerator / denominator
    else:  # IEEE division, as the C++ computes it (0/0 is NaN).
        f1 = math.nan if numerator == 0 else math.copysign(math.inf, numerator)
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}


def evaluate_culane(
    anno_dir: str | os.PathLike,
    pred_dir: str | os.PathLike,
    list_file: str | os.PathLike,
    iou_thresholds: Sequence[float] = (0.5,),
    width: int = CULANE_WIDTH,
    workers: int | None = None,
    rows: int = CULANE_ROWS,
    cols: int = CULANE_COLS,
    progress: bool = True,
) -> dict:
    """Evaluate the predictions in ``pred_dir`` against ``anno_dir`` on the images of ``list_file``.

    Returns ``images``, ``missing_annotations``, ``missing_predictions``, ``thresholds`` ({threshold:
    summary}) and, for the first threshold, ``tp``, ``fp``, ``fn``, ``precision``, ``recall``, ``f1`` at the
    top level.
    """
    lists = {"list": list_file}
    return evaluate_culane_lists(
        anno_dir, pred_dir, lists, iou_thresholds, width, workers, rows, cols, progress
    )["list"]


def evaluate_culane_lists(
    anno_dir: str | os.PathLike,
    pred_dir: str | os.PathLike,
    list_files: Mapping[str, str | os.PathLike],
    iou_thresholds: Sequence[float] = (0.5,),
    width: int = CULANE_WIDTH,
    workers: int | None = None,
    rows: int = CULANE_ROWS,
    cols: int = CULANE_COLS,
    progress: bool = True,
) -> dict[str, dict]:
    """Evaluate several lists ({name: list file}) in one pass; each image shared by lists is matched once.

    Returns {name: result}, each result as from :func:`evaluate_culane`.
    """
    if not iou_thresholds:
        raise ValueError("at least one IoU threshold is needed")
    lists = {name: read_list_file(path) for name, path in list_files.items()}
    unique = list(dict.fromkeys(entry for entries in lists.values() for entry in entries))
    matches = _match_entries(anno_dir, pred_dir, unique, width, workers, rows, cols, progress)
    by_entry = dict(zip(unique, matches, strict=True))
    return {
        name: aggregate_images([by_entry[e] for e in entries], iou_thresholds)
        for name, entries in lists.items()
    }


def evaluate_culane_categories(
    anno_dir: str | os.PathLike,
    pred_dir: str | os.PathLike,
    split_dir: str | os.PathLike | None = None,
    iou_thresholds: Sequence[float] = (0.5,),
    width: int = CULANE_WIDTH,
    workers: int | None = None,
    rows: int = CULANE_ROWS,
    cols: int = CULANE_COLS,
    progress: bool = True,
) -> dict:
    """Evaluate the 9 CULane category lists (default folder ``<anno_dir>/list/test_split``) and their total.

    Returns ``{"categories": {name: result}, "total": result}``, each result as from :func:`evaluate_culane`;
    the total comes from the summed counts (:func:`sum_results`).
    """
    split_dir = Path(anno_dir) / "list" / "test_split" if split_dir is None else split_dir
    categories = evaluate_culane_lists(
        anno_dir,
        pred_dir,
        category_list_files(split_dir),
        iou_thresholds,
        width,
        workers,
        rows,
        cols,
        progress,
    )
    return {"categories": categories, "total": sum_results(categories.values())}


def category_list_files(split_dir: str | os.PathLike) -> dict[str, Path]:
    """{category name: list file} of the CULane categories present in ``split_dir``; DatasetError if none."""
    split_dir = Path(split_dir)
    found = {
        name: split_dir / file for name, file in CULANE_CATEGORY_FILES.items() if (split_dir / file).is_file()
    }
    if not found:
        expected = ", ".join(CULANE_CATEGORY_FILES.values())
        raise DatasetError(f"no CULane category list in {split_dir} (expected {expected})")
    return found


def sum_results(results: Iterable[dict]) -> dict:
    """One result from the summed counts of several, as the official ``calTotal.m`` totals the 9 categories.

    The total F1 comes from the summed TP/FP/FN, not from averaging F1 scores.
    """
    results = list(results)
    thresholds = {
        threshold: summarize_counts(
            *(sum(r["thresholds"][threshold][key] for r in results) for key in _COUNTS)
        )
        for threshold in results[0]["thresholds"]
    }
    first = next(iter(thresholds.values()))
    return {
        **first,
        **{
            key: sum(r[key] for r in results)
            for key in ("images", "missing_annotations", "missing_predictions")
        },
        "thresholds": thresholds,
    }


def mean_f1(result: dict) -> float:
    """CLRNet's mF1: the mean F1 over the IoU thresholds 0.50, 0.55, ..., 0.95 of an evaluation result.

    mF1 comes from CLRNet's Python port, which scores F1 = 0 where TP = 0 (the C++ formula gives -1 or NaN
    there); elsewhere both F1 are the same number.
    """
    missing = [t for t in MF1_THRESHOLDS if t not in result["thresholds"]]
    if missing:
        raise ValueError(f"mF1 needs the IoU thresholds {MF1_THRESHOLDS}, missing {missing}")
    rows = [result["thresholds"][t] for t in MF1_THRESHOLDS]
    return float(np.mean([row["f1"] if row["tp"] else 0.0 for row in rows]))


def read_list_file(list_file: str | os.PathLike) -> list[str]:
    """Entries of a CULane list file, one per line as ``getline`` reads them (a blank line is one too)."""
    try:
        text = Path(list_file).read_bytes().decode("utf-8", errors="surrogateescape")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        raise DatasetError(f"CULane list file not found: {list_file}") from exc
    entries = text.split("\n")
    if entries[-1] == "":
        entries.pop()
    return entries


def _match_entries(
    anno_dir: str | os.PathLike,
    pred_dir: str | os.PathLike,
    entries: Sequence[str],
    width: int,
    workers: int | None,
    rows: int,
    cols: int,
    progress: bool,
) -> list[ImageResult]:
    for name, directory in (("annotation", anno_dir), ("prediction", pred_dir)):
        if not Path(directory).is_dir():
            raise DatasetError(f"CULane {name} directory not found: {directory}")
    if width < 1:
        raise DatasetError(f"lane width must be positive, got {width}")
    tasks = [(lane_file_path(anno_dir, e), lane_file_path(pred_dir, e), width, rows, cols) for e in entries]
    if workers is None:
        workers = os.cpu_count() or 1
    # disable=None: a bar on a terminal only, so logs and captured stderr stay clean.
    bar = tqdm(
        total=len(tasks), desc="CULane", unit="img", disable=None if progress else True, dynamic_ncols=True
    )
    with bar:
        if workers <= 1 or len(tasks) < _MIN_POOL_IMAGES:
            return [_tick(bar, _match_files(task)) for task in tasks]
        # spawn: the caller may hold torch/CUDA threads, which fork would copy in a broken state.
        with get_context("spawn").Pool(workers) as pool:
            return [_tick(bar, result) for result in pool.imap(_match_files, tasks, chunksize=_CHUNK)]


def _tick(bar: tqdm, result: ImageResult) -> ImageResult:
    bar.update()
    return result


def _match_files(task: tuple[str, str, int, int, int]) -> ImageResult:
    anno_path, pred_path, width, rows, cols = task
    gt_lanes = read_lane_file(anno_path)
    pred_lanes = read_lane_file(pred_path)
    match = match_image(pred_lanes or [], gt_lanes or [], width, rows, cols)
    return ImageResult(match, gt_lanes is None, pred_lanes is None)


def aggregate_images(results: Sequence[ImageResult], iou_thresholds: Sequence[float]) -> dict:
    """The result of a list of images, as :func:`evaluate_culane` returns it: counts summed over them."""
    num_gt = sum(r.match.num_gt for r in results)
    num_pred = sum(r.match.num_pred for r in results)
    ious = np.concatenate([r.match.matched_iou for r in results]) if results else np.zeros(0)
    thresholds = {}
    for threshold in iou_thresholds:
        tp = int(np.count_nonzero(ious > threshold))
        thresholds[threshold] = summarize_counts(tp, num_pred - tp, num_gt - tp)
    return {
        **thresholds[iou_thresholds[0]],
        "images": len(results),
        "missing_annotations": sum(r.missing_annotation for r in results),
        "missing_predictions": sum(r.missing_prediction for r in results),
        "thresholds": thresholds,
    }


def _lane_mask(points: np.ndarray, width: int, canvas: np.ndarray) -> _LaneMask | None:
    """Draw one lane as the official tool does, using ``canvas`` (all zeros, left zeroed) as scratch space."""
    points = np.asarray(getattr(points, "points", points), dtype=np.float32).reshape(-1, 2)
    if len(points) < 2:
        return None  # the official similarity of such a lane is 0 with anything
    pixels = cv_round(points if len(points) == 2 else natural_spline_samples(points))
    draw_polyline(canvas, pixels, width)
    # Every drawn pixel lies within half the width (+ rounding) of the polyline's bounding box.
    margin = width // 2 + 2
    rows, cols = canvas.shape
    top = min(max(int(pixels[:, 1].min()) - margin, 0), rows)
    bottom = min(max(int(pixels[:, 1].max()) + margin + 1, 0), rows)
    left = min(max(int(pixels[:, 0].min()) - margin, 0), cols)
    right = min(max(int(pixels[:, 0].max()) + margin + 1, 0), cols)
    box = canvas[top:bottom, left:right]
    drawn = box.astype(bool)
    box[...] = 0
    return _LaneMask(top, left, drawn, int(np.count_nonzero(drawn)))


def _iou(a: _LaneMask | None, b: _LaneMask | None) -> float:
    if a is None or b is None:
        return 0.0
    top, left = max(a.top, b.top), max(a.left, b.left)
    bottom = min(a.top + a.pixels.shape[0], b.top + b.pixels.shape[0])
    right = min(a.left + a.pixels.shape[1], b.left + b.pixels.shape[1])
    inter = 0
    if bottom > top and right > left:
        part_a = a.pixels[top - a.top : bottom - a.top, left - a.left : right - a.left]
        part_b = b.pixels[top - b.top : bottom - b.top, left - b.left : right - b.left]
        inter = int(np.count_nonzero(part_a & part_b))
    union = a.area + b.area - inter
    return inter / union if union else math.nan
