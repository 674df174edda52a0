"""Training validation scores in memory exactly as the official metric scores the written prediction files."""

from pathlib import Path

import torch

from clrkdnet_core.checkpoint import load_checkpoint
from clrkdnet_core.config import load_preset
from clrkdnet_core.data.culane import CULaneDataset
from clrkdnet_core.data.synthetic import generate_dataset
from clrkdnet_core.data.writers import culane_prediction_path, write_culane_prediction
from clrkdnet_core.metrics.culane import evaluate_culane
from clrkdnet_core.models import build_model
from clrkdnet_core.postprocess.decode import decode_predictions
from training.validation import evaluate, validate

MODELS = Path(__file__).resolve().parents[1] / "models"


def test_validation_equals_the_official_metric_on_the_written_files(tmp_path):
    preset = load_preset(MODELS / "clrkdnet_resnet18_synthetic.yaml")
    model = build_model(preset)
    load_checkpoint(model, MODELS / "clrkdnet_resnet18_synthetic.pth")
    root = generate_dataset(tmp_path / "set", "culane", 12, seed=2026, split=(0, 0, 1), progress=False)
    images = CULaneDataset(root, "test", preset.geometry)
    model.train()

    scores = evaluate(model, images, torch.device("cpu"), iou_thresholds=(0.5, 0.75))
    assert model.training  # put back as it was

    model.eval()
    with torch.inference_mode():
        for index, sample in enumerate(images.samples):
            predictions = model(images[index]["img"][None])
            (lanes,) = decode_predictions(predictions, preset.geometry, preset.test)
            write_culane_prediction(culane_prediction_path(tmp_path / "pred", sample.name), lanes)
    official = evaluate_culane(root, tmp_path / "pred", root / "list" / "test.txt", (0.5, 0.75), workers=1)
    assert scores == official["thresholds"]
    assert scores[0.5]["tp"] > 0 and scores[0.75]["tp"] < scores[0.5]["tp"]
    assert validate(model, images, torch.device("cpu"), 0) == {
        key: official["thresholds"][0.5][key] for key in ("f1", "precision", "recall")
    }
