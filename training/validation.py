"""Validation with the official CULane metric: predict a list split, write the official ``.lines.txt`` files
with the shared writers, and score them with ``clrkdnet_core.metrics.culane`` (F1 at IoU 0.5, optionally
0.75)."""

import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from clrkdnet_core.data.culane import CULaneDataset
from clrkdnet_core.data.writers import culane_prediction_path, write_culane_prediction
from clrkdnet_core.metrics.culane import evaluate_culane
from clrkdnet_core.postprocess import decode_predictions

EVAL_BATCH_SIZE = 8


@torch.inference_mode()
def predict_to_files(
    model: nn.Module, images: CULaneDataset, out_dir: Path, device: torch.device, workers: int
) -> None:
    """Run ``model`` (eval mode) on every image and write one official CULane prediction file per image."""
    was_training = model.training
    model.eval()
    geometry = images.geometry
    preset = model.preset
    loader = DataLoader(images, batch_size=EVAL_BATCH_SIZE, num_workers=workers)
    for batch in tqdm(loader, desc="predict", leave=False, dynamic_ncols=True):
        predictions = model(batch["img"].to(device))
        lanes_per_image = decode_predictions(predictions, preset.geometry, preset.test)
        for name, lanes in zip(batch["meta"]["name"], lanes_per_image, strict=True):
            path = culane_prediction_path(out_dir, name)
            write_culane_prediction(path, lanes, geometry.ori_img_w, geometry.ori_img_h)
    model.train(was_training)


def evaluate(
    model: nn.Module,
    images: CULaneDataset,
    device: torch.device,
    workers: int = 0,
    iou_thresholds: Sequence[float] = (0.5,),
) -> dict[float, dict]:
    """Official CULane precision/recall/F1 of ``model`` on ``images`` per IoU threshold."""
    with tempfile.TemporaryDirectory(prefix="clrkdnet_val_") as tmp:
        predictions = Path(tmp) / "predictions"
        predict_to_files(model, images, predictions, device, workers)
        # The list of exactly the dataset's images (a frame filter or a custom list may have changed it).
        list_file = Path(tmp) / "list.txt"
        list_file.write_text("".join(f"/{sample.name}\n" for sample in images.samples))
        result = evaluate_culane(images.root, predictions, list_file, tuple(iou_thresholds), progress=False)
    return result["thresholds"]


def validate(model: nn.Module, images: CULaneDataset, device: torch.device, workers: int) -> dict[str, float]:
    """F1, precision and recall at IoU 0.5 (the number CLRNet reports as F1@50)."""
    scores = evaluate(model, images, device, workers)[0.5]
    return {key: float(scores[key]) for key in ("f1", "precision", "recall")}
