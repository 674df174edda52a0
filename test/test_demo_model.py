"""The shipped demo model (models/, made by training/reproduce_synthetic.py) and the demo that uses it."""

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

from clrkdnet_core.checkpoint import read_checkpoint
from clrkdnet_core.config import load_preset
from clrkdnet_core.data.synthetic import generate_dataset
from clrkdnet_core.evaluate import main as evaluate_main
from clrkdnet_core.inference import LaneDetector

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO / "models" / "clrkdnet_resnet18_synthetic.pth"
PRESET = REPO / "models" / "clrkdnet_resnet18_synthetic.yaml"


def test_demo_model_is_a_small_half_precision_student_with_its_preset():
    assert WEIGHTS.stat().st_size <= 25 * 2**20
    checkpoint = read_checkpoint(WEIGHTS)
    assert checkpoint["preset"] == "clrkdnet_resnet18_synthetic"
    assert {tensor.dtype for tensor in checkpoint["net"].values() if tensor.is_floating_point()} == {
        torch.float16
    }
    preset = load_preset(PRESET)
    assert preset.name == "clrkdnet_resnet18_synthetic" and preset.is_student
    detector = LaneDetector.from_preset(preset, WEIGHTS, device="cpu", backend="torch")
    assert next(detector.runner.model.parameters()).dtype == torch.float32  # cast back on loading


@pytest.mark.slow
def test_demo_model_finds_the_lanes_of_unseen_synthetic_scenes(tmp_path, capsys):
    # Seed 2026: none of these scenes is in the training set (seed 0).
    root = generate_dataset(tmp_path / "scenes", "culane", 24, seed=2026, split=(0, 0, 1), progress=False)
    arguments = ["model", "--preset", str(PRESET), "--weights", str(WEIGHTS), "--dataset", "culane"]
    arguments += ["--root", str(root), "--device", "cpu", "--workers", "1", "--json"]
    assert evaluate_main(arguments) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["images"] == 24
    assert result["f1"] >= 0.85, result


@pytest.mark.slow
@pytest.mark.ros
def test_demo_runs_the_shipped_model_live_and_finds_lanes(tmp_path):
    environment = {**os.environ, "DEMO_FRAMES": "45", "DEMO_DEVICE": "cpu"}
    environment.update(DEMO_WORK=str(tmp_path / "work"), DEMO_OUT=str(tmp_path / "out"))
    result = subprocess.run(
        [str(REPO / "scripts" / "demo.sh")], env=environment, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "CULane F1@50" in result.stdout and "dropped" in result.stdout and "p95" in result.stdout
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["mode"] == "live" and report["frames"] >= 5
    assert report["model"]["weights"] == str(WEIGHTS)
    assert report["metrics"]["f1@50"] >= 0.8, report["metrics"]
    assert (tmp_path / "out" / "overlay.mp4").stat().st_size > 0
