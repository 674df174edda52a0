"""Validation with the official CULane metric: predict a list split and score it in memory with the one scorer
of the project (``clrkdnet_core.metrics.scorer``), which converts the lanes exactly as the official
``.lines.txt`` writer does (F1 at IoU 0.5, optionally other thresholds)."""

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from clrkdnet_core.data.culane import CULaneDataset
from clrkdnet_core.metrics.culane import lane_file_path, read_lane_file
from clrkdnet_core.metrics.scorer import CULaneScorer
from clrkdnet_core.postprocess.decode import decode_predictions

EVAL_BATCH_SIZE = 8


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    images: CULaneDataset,
    device: torch.device,
    workers: int = 0,
    iou_thresholds: Sequence[float] = (0.5,),
) -> dict[float, dict]:
    """Official CULane precision/recall/F1 of ``model`` (a LaneNet, decoded with its preset's test settings)
    on ``images`` per IoU threshold."""
    was_training = model.training
    model.eval()
    geometry = images.geometry
    image_size = (geometry.ori_img_w, geometry.ori_img_h)
    scorer = CULaneScorer()
    loader = DataLoader(images, batch_size=EVAL_BATCH_SIZE, num_workers=workers)
    try:
        for batch in tqdm(loader, desc="predict", leave=False, dynamic_ncols=True):
            predictions = model(batch["img"].to(device))
            lanes_per_image = decode_predictions(predictions, model.preset.geometry, model.preset.test)
            for name, lanes in zip(batch["meta"]["name"], lanes_per_image, strict=True):
                gt_lanes = read_lane_file(lane_file_path(images.root, name))
                scorer.add(name, lanes, gt_lanes, image_size)
    finally:
        model.train(was_training)
    # Exactly the dataset's images (a frame filter or a custom list may have changed them), in list order.
    names = [sample.name for sample in images.samples]
    return scorer.result(names, tuple(iou_thresholds))["thresholds"]


def validate(model: nn.Module, images: CULaneDataset, device: torch.device, workers: int) -> dict[str, float]:
    """F1, precision and recall at IoU 0.5 (the number CLRNet reports as F1@50)."""
    scores = evaluate(model, images, device, workers)[0.5]
    return {key: float(scores[key]) for key in ("f1", "precision", "recall")}
