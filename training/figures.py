"""Pictures of a synthetic reproduction: the training-loss curves and a model's lanes on held-out images.

    python -m training.figures --run work_dirs/synthetic_reproduction \\
        --preset models/clrkdnet_resnet18_synthetic.yaml --weights models/clrkdnet_resnet18_synthetic.pth

``training/reproduce_synthetic.py`` calls the same functions at the end of its run.
"""

import argparse
import sys
from pathlib import Path

import cv2
import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from clrkdnet_core.cli import run_cli
from clrkdnet_core.errors import DatasetError
from clrkdnet_core.image import read_image
from clrkdnet_core.inference import LaneDetector
from clrkdnet_core.lane import Lane
from clrkdnet_core.metrics.culane import lane_file_path, read_lane_file, read_list_file
from clrkdnet_core.visualization import draw_lanes

# Sub-folders of a reproduction run and their legends.
RUNS = {
    "teacher": "CLRNet-R18 teacher",
    "student_distilled": "CLRKDNet-R18 distilled",
    "student_plain": "CLRKDNet-R18 without distillation",
}
GT_COLOUR = (255, 255, 255)  # BGR
TILE_WIDTH = 820


def plot_losses(run_dir: Path, png: Path) -> Path:
    """Detection loss (without the distillation terms, so the three runs compare) against iteration."""
    figure, axes = plt.subplots(figsize=(7, 4))
    for folder, label in RUNS.items():
        if not (run_dir / folder).is_dir():  # TensorBoard's reader would raise its own traceback
            raise DatasetError(f"no training log in {run_dir / folder}: not a folder")
        events = EventAccumulator(str(run_dir / folder))
        events.Reload()
        if "train/loss" not in events.Tags()["scalars"]:
            raise DatasetError(f"no training log in {run_dir / folder}")
        scalars = events.Scalars("train/loss")
        axes.plot([s.step for s in scalars], [s.value for s in scalars], label=label)
    axes.set_xlabel("iteration")
    axes.set_ylabel("detection loss")
    axes.set_yscale("log")
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png, dpi=120)
    plt.close(figure)
    return png


def overlay_grid(detector: LaneDetector, data_root: Path, png: Path, count: int = 4) -> Path:
    """The first ``count`` test images, ground truth in white under the detector's lanes, two per row."""
    entries = [entry for entry in read_list_file(data_root / "list" / "test.txt") if entry][:count]
    if not entries:
        raise DatasetError(f"{data_root / 'list' / 'test.txt'} names no image")
    tiles = []
    for entry in entries:
        image = read_image(data_root / entry.lstrip("/"), error=DatasetError)
        truth = [Lane(points, 1.0) for points in read_lane_file(lane_file_path(data_root, entry)) or []]
        canvas = draw_lanes(image, truth, color=GT_COLOUR, show_scores=False, thickness=10)
        canvas = draw_lanes(canvas, detector.detect(image))
        height = round(canvas.shape[0] * TILE_WIDTH / canvas.shape[1])
        tiles.append(cv2.resize(canvas, (TILE_WIDTH, height), interpolation=cv2.INTER_AREA))
    if len(tiles) % 2:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack(tiles[i : i + 2]) for i in range(0, len(tiles), 2)]
    png.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(png), np.vstack(rows)):
        raise DatasetError(f"cannot write {png}")
    return png


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.figures", description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="the reproduction's --out folder")
    parser.add_argument("--preset", required=True, help="preset name or YAML file of the model to show")
    parser.add_argument("--weights", type=Path, required=True, help="its checkpoint")
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Write losses.png and lanes.png of a reproduction run."""
    args = _parser().parse_args(argv)
    detector = LaneDetector.from_preset(args.preset, args.weights, device="cpu")
    for path in (
        plot_losses(args.run, args.out / "synthetic_reproduction_losses.png"),
        overlay_grid(detector, args.run / "data", args.out / "synthetic_reproduction_lanes.png"),
    ):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
