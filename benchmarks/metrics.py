"""Benchmark section: how long the official-equivalent CULane metric takes on a test-set-sized list."""

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from clrkdnet_core.metrics.culane import evaluate_culane

_COMMAND = (
    "python -m clrkdnet_core.evaluate culane --anno-dir ANNO --pred-dir PRED --list LIST --iou 0.5 0.75"
)


def culane_metric_section(n_images: int = 34680, workers: int = 2, seed: int = 0) -> str:
    """Time :func:`evaluate_culane` (IoU 0.5 and 0.75 in one pass) on ``n_images`` synthetic images.

    Each image gets 2-4 GT lanes of ~40 points (CULane-like: bottom to top, every 10 rows) and predictions
    that are the GT shifted by a few pixels, with an occasional missed or extra lane, written as
    ``.lines.txt`` files to a temporary directory. Returns a markdown section with the time and images/s.
    """
    with tempfile.TemporaryDirectory(prefix="culane_bench_") as tmp:
        root = Path(tmp)
        list_file = _write_synthetic_culane(root, n_images, np.random.default_rng(seed))
        load = os.getloadavg()[0]
        start = time.perf_counter()
        result = evaluate_culane(
            root / "anno",
            root / "pred",
            list_file,
            iou_thresholds=(0.5, 0.75),
            workers=workers,
            progress=False,
        )
        seconds = time.perf_counter() - start
    f1_50, f1_75 = (result["thresholds"][t]["f1"] for t in (0.5, 0.75))
    return "\n".join(
        [
            "## CULane metric (official C++ equivalent)",
            "",
            f"`evaluate_culane` on {n_images} synthetic images (GT and predictions: 2-4 lanes, ~40 points),",
            f"IoU thresholds 0.5 and 0.75 from one matching pass, {workers} worker process(es) on "
            f"{os.cpu_count()} CPU cores (1-minute load average {load:.1f} at the start).",
            "",
            "| images | time (s) | images/s | F1@50 | F1@75 |",
            "|---:|---:|---:|---:|---:|",
            f"| {n_images} | {seconds:.1f} | {n_images / seconds:.0f} | {f1_50:.4f} | {f1_75:.4f} |",
            "",
            f"Command on real data: `{_COMMAND}`",
            "",
        ]
    )


def _write_synthetic_culane(root: Path, n_images: int, rng: np.random.Generator) -> Path:
    """Write CULane-style GT and prediction files for ``n_images`` images; returns the list file."""
    entries = []
    for index in range(n_images):
        entry = f"/driver_bench/clip_{index // 1000:03d}/{index % 1000:05d}.jpg"
        entries.append(entry)
        gt = [_synthetic_lane(rng) for _ in range(rng.integers(2, 5))]
        preds = [lane + np.array([rng.normal(0, 6), 0.0]) for lane in gt if rng.random() > 0.1]
        if rng.random() < 0.1:
            preds.append(_synthetic_lane(rng))
        for folder, lanes in (("anno", gt), ("pred", preds)):
            path = root / folder / (entry[1:-4] + ".lines.txt")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(" ".join(f"{v:.3f}" for v in lane.ravel()) + " \n" for lane in lanes))
    list_file = root / "test.txt"
    list_file.write_text("\n".join(entries) + "\n")
    return list_file


def _synthetic_lane(rng: np.random.Generator) -> np.ndarray:
    """~40 points from y = 590 upwards every 10 rows, on a gently curved line through a random bottom x."""
    num_points = int(rng.integers(34, 46))
    ys = 590.0 - 10.0 * np.arange(num_points)
    bottom_x = rng.uniform(-200, 1840)
    slope = (820 - bottom_x) / 400 + rng.normal(0, 0.1)
    curve = rng.normal(0, 4e-4)
    xs = bottom_x + slope * (590 - ys) + curve * (590 - ys) ** 2
    return np.stack([xs, ys], axis=1)
