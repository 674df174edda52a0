"""The report folder of ``bag eval`` and ``replay``: report.json, frames.csv, plots and an overlay video."""

import csv
import itertools
import math
from dataclasses import asdict, fields
from pathlib import Path

import cv2
import matplotlib
import numpy as np

from clrkdnet_core.camera_model import GroundProjector
from clrkdnet_core.metrics.results import dumps
from clrkdnet_core.visualization import PALETTE, draw_lanes
from clrkdnet_ros.bag.bagfile import BagFrame
from clrkdnet_ros.bag.evaluate import FrameOutput, FrameResult

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

GT_COLOR = (0, 200, 0)
PRED_COLOR = (0, 0, 255)
CENTRE_COLOR = (255, 255, 0)
TEXT_COLOR = (255, 255, 255)
_VIDEO_WIDTH = 820
_VIDEO_FPS = 10.0
_ROLLING = 30
# The ego centre line is drawn from the vehicle to this distance ahead (m), where the road is still large.
_CENTRE_RANGE_M = (2.0, 40.0)
_LANE_CHANGE = {1: "LANE CHANGE LEFT", -1: "LANE CHANGE RIGHT"}
_TEXT_SCALE = 0.45


class OverlayVideo:
    """Writes each frame to an mp4 file: GT lanes (green), published lanes in a colour per track with their
    ids (thin when predicted through a missed frame), the ego lane's centre line (cyan, with a projector) and
    its state as text (drawn after the frame is scaled to the video's size, so that it stays legible)."""

    def __init__(self, path: Path, projector: GroundProjector | None = None) -> None:
        self.path = Path(path)
        self.projector = projector
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None

    def __call__(self, frame: BagFrame, output: FrameOutput) -> None:
        image = draw_lanes(frame.image, frame.gt_lanes or [], thickness=3, show_scores=False, color=GT_COLOR)
        labels = _draw_tracks(image, output)
        if output.ego is not None and output.ego.valid and self.projector is not None:
            _draw_centre_line(image, output.ego, self.projector)
        if self._writer is None:
            height, width = image.shape[:2]
            scale = min(1.0, _VIDEO_WIDTH / width)
            self._size = (round(width * scale) // 2 * 2, round(height * scale) // 2 * 2)
            self._writer = cv2.VideoWriter(
                str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), _VIDEO_FPS, self._size
            )
        scale = self._size[0] / image.shape[1]
        image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        for text, (x, y), colour in labels:
            origin = (
                int(np.clip(x * scale - 8, 0, self._size[0] - 30)),
                int(np.clip(y * scale - 6, 14, None)),
            )
            _put_text(image, text, origin, colour)
        if output.ego is not None:
            lines = [_ego_text("ego", output.ego)]
            if frame.ego_truth is not None:
                lines.append(_ego_text("truth", frame.ego_truth))
            change = _LANE_CHANGE.get(int(output.ego.lane_change))
            if change:
                lines.append(change)
            _text_box(image, lines)
        self._writer.write(image)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()


def _draw_tracks(image: np.ndarray, output: FrameOutput) -> list[tuple[str, tuple[int, int], tuple]]:
    """Draw each published lane in its track's colour, in place; returns its "#id" label, where (its bottom
    end) and in which colour."""
    labels = []
    for lane, track_id, measured in zip(output.lanes, output.ids, output.measured, strict=True):
        if len(lane.points) < 2:
            continue
        colour = PALETTE[track_id % len(PALETTE)]
        limit = 16 * max(image.shape)  # far-off points must not overflow OpenCV's int32 coordinates
        points = np.round(np.clip(lane.points, -limit, limit)).astype(np.int32)
        cv2.polylines(image, [points], False, colour, 3 if measured else 1, cv2.LINE_AA)
        labels.append((f"#{track_id}", tuple(points[np.argmax(points[:, 1])]), colour))
    return labels


def _draw_centre_line(image: np.ndarray, ego, projector: GroundProjector) -> None:
    """The ego centre line y = offset + tan(heading) x + curvature / 2 (1 + slope^2)^1.5 x^2, the published
    state's own local curve, drawn on the road ahead, in place."""
    xs = np.linspace(*_CENTRE_RANGE_M, 40)
    slope = math.tan(ego.heading)
    ys = ego.lateral_offset + slope * xs + 0.5 * ego.curvature * (1 + slope**2) ** 1.5 * xs**2
    pixels = projector.to_pixels(np.stack([xs, ys, np.zeros_like(xs)], axis=1))
    pixels = pixels[np.isfinite(pixels).all(axis=1)]
    if len(pixels) >= 2:
        cv2.polylines(image, [np.round(pixels).astype(np.int32)], False, CENTRE_COLOR, 3, cv2.LINE_AA)


def _put_text(image: np.ndarray, text: str, origin: tuple[int, int], colour: tuple) -> None:
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, _TEXT_SCALE, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, _TEXT_SCALE, colour, 1, cv2.LINE_AA)


def _text_box(image: np.ndarray, lines: list[str]) -> None:
    """``lines`` in white on a darkened box at the top left, in place."""
    height = 18 * len(lines) + 8
    width = max(cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, _TEXT_SCALE, 1)[0][0] for line in lines) + 12
    box = image[:height, :width]
    box[...] = (box * 0.4).astype(image.dtype)
    for row, line in enumerate(lines):
        cv2.putText(
            image, line, (6, 18 * row + 17), cv2.FONT_HERSHEY_SIMPLEX, _TEXT_SCALE, TEXT_COLOR, 1, cv2.LINE_AA
        )


def _ego_text(label: str, ego) -> str:
    """One line of an ego lane state (published or true): offset, heading, width, boundary ids."""
    if not ego.valid:
        return f"{label}: no ego lane"
    return (
        f"{label}: offset {ego.lateral_offset:+.2f} m  heading {math.degrees(ego.heading):+.2f} deg  "
        f"width {ego.width:.2f} m  ids {ego.left_id or '-'}|{ego.right_id or '-'}"
    )


def write_report(out_dir: Path, summary: dict, rows: list[FrameResult]) -> dict:
    """Write report.json (``summary`` plus file names), frames.csv and the plots; returns the report."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"frames_csv": "frames.csv", "latency_plot": "latency_hist.png"}
    with (out_dir / files["frames_csv"]).open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=[field.name for field in fields(FrameResult)])
        writer.writeheader()
        writer.writerows(asdict(row) for row in rows)
    _latency_plot(out_dir / files["latency_plot"], rows, summary["latency_ms"])
    if summary["metric"] is not None:
        files["score_plot"] = "f1_over_drive.png"
        _score_plot(out_dir / files["score_plot"], rows, summary["metric"])
    if any(row.lateral_offset is not None or row.lateral_offset_truth is not None for row in rows):
        files["ego_plot"] = "ego_offset.png"
        _ego_plot(out_dir / files["ego_plot"], rows)
    if (out_dir / "overlay.mp4").is_file():
        files["overlay_video"] = "overlay.mp4"
    report = {**summary, "files": files}
    (out_dir / "report.json").write_text(dumps(report, indent=2) + "\n")
    return report


def _latency_plot(path: Path, rows: list[FrameResult], stats: dict) -> None:
    figure, axes = plt.subplots(figsize=(7, 4))
    axes.hist([row.latency_ms for row in rows], bins=min(50, max(5, len(rows) // 4)), color="tab:blue")
    for name, style in (("p50", "--"), ("p95", ":")):
        axes.axvline(stats[name], color="black", linestyle=style, label=f"{name} {stats[name]:.1f} ms")
    axes.set(xlabel="detector latency per frame [ms]", ylabel="frames", title="Latency")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _score_plot(path: Path, rows: list[FrameResult], metric: str) -> None:
    """Per-frame F1 (CULane, IoU 0.5) or accuracy (TuSimple) and its rolling mean over the drive."""
    label = "accuracy" if metric == "tusimple" else "F1@50"
    values = np.array([(row.accuracy if metric == "tusimple" else row.f1) for row in rows], dtype=float)
    index = np.array([row.index for row in rows])
    finite = np.isfinite(values)
    figure, axes = plt.subplots(figsize=(9, 4))
    axes.plot(index[finite], values[finite], ".", color="tab:gray", markersize=3, label=f"per frame {label}")
    if finite.any():
        window = min(_ROLLING, int(finite.sum()))
        rolling = np.convolve(values[finite], np.ones(window) / window, mode="valid")
        axes.plot(index[finite][window - 1 :], rolling, color="tab:red", label=f"mean of {window} frames")
    axes.set(xlabel="frame", ylabel=label, ylim=(-0.05, 1.05), title=f"{label} over the drive")
    axes.legend(loc="lower left")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


# Longer runs of frames without output break the ego plot's lines; the row that marks the break.
_PLOT_GAP = 5
_NO_ROW = FrameResult(index=-1, stamp_ns=0, latency_ms=math.nan, num_pred=0)


def _ego_plot(path: Path, rows: list[FrameResult]) -> None:
    """The ego lane's lateral offset over the drive: truth, tracked and untracked estimates. A run of more
    than :data:`_PLOT_GAP` frames without a row (dropped by a live node) is a gap in the lines, not a join."""
    broken = rows[:1]
    for row, after in itertools.pairwise(rows):
        broken += [_NO_ROW, after] if after.index - row.index > _PLOT_GAP else [after]
    rows = broken
    index = np.array([row.index for row in rows], dtype=float)
    index[index < 0] = np.nan
    figure, axes = plt.subplots(figsize=(9, 4))
    series = (
        ("lateral_offset_truth", "truth", "black", "-"),
        ("lateral_offset_untracked", "untracked", "tab:gray", ":"),
        ("lateral_offset", "estimate", "tab:red", "-"),
    )
    for field, label, colour, style in series:
        values = np.array([np.nan if (v := getattr(row, field)) is None else v for row in rows], dtype=float)
        if np.isfinite(values).any():
            axes.plot(index, values, style, color=colour, linewidth=1.2, label=label)
    axes.set(xlabel="frame", ylabel="lateral offset [m]", title="Ego lane centre offset over the drive")
    axes.legend(loc="lower left")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
