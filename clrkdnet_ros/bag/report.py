"""The report folder of ``bag eval``: report.json, frames.csv, plots and an overlay video."""

import csv
from dataclasses import asdict, fields
from pathlib import Path

import cv2
import matplotlib
import numpy as np

from clrkdnet_core.lane import Lane
from clrkdnet_core.metrics.results import dumps
from clrkdnet_core.visualization import draw_lanes
from clrkdnet_ros.bag.bagfile import BagFrame
from clrkdnet_ros.bag.evaluate import FrameResult

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

GT_COLOR = (0, 200, 0)
PRED_COLOR = (0, 0, 255)
_VIDEO_WIDTH = 820
_VIDEO_FPS = 10.0
_ROLLING = 30


class OverlayVideo:
    """Writes each frame with its GT (green) and predicted (red) lanes to an mp4 file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None

    def __call__(self, frame: BagFrame, lanes: list[Lane]) -> None:
        image = draw_lanes(frame.image, frame.gt_lanes or [], thickness=3, show_scores=False, color=GT_COLOR)
        image = draw_lanes(image, lanes, thickness=2, show_scores=False, color=PRED_COLOR)
        if self._writer is None:
            height, width = image.shape[:2]
            scale = min(1.0, _VIDEO_WIDTH / width)
            self._size = (round(width * scale) // 2 * 2, round(height * scale) // 2 * 2)
            self._writer = cv2.VideoWriter(
                str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), _VIDEO_FPS, self._size
            )
        self._writer.write(cv2.resize(image, self._size, interpolation=cv2.INTER_AREA))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()


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
