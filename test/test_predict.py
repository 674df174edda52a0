"""predict CLI end to end (images, a folder, a video) and the lane overlay drawing."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from clrkdnet_core.checkpoint import save_checkpoint
from clrkdnet_core.cli import run_cli
from clrkdnet_core.lane import Lane
from clrkdnet_core.models import build_model
from clrkdnet_core.predict import main
from clrkdnet_core.visualization import PALETTE, draw_lanes

PRESET = "clrkdnet_resnet18_culane"


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model(PRESET)
    with torch.no_grad():  # random weights predict zero-length lanes; give them length and a clear score
        model.heads.reg_layers.bias[3] = 0.8
        model.heads.cls_layers.weight.zero_()
        model.heads.cls_layers.bias.copy_(torch.tensor([0.0, 1.0]))
    return save_checkpoint(tmp_path_factory.mktemp("weights") / "random.pth", model)


def noise(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def check_lanes(lanes: list[dict], width: int, height: int) -> None:
    assert 1 <= len(lanes) <= 4
    cut = round(270 / 590 * height)
    for lane in lanes:
        assert lane["score"] == pytest.approx(1 / (1 + np.exp(-1.0)), abs=1e-4)
        points = np.array(lane["points"])
        assert points.shape[1] == 2 and len(points) >= 2
        assert np.all(np.diff(points[:, 1]) > 0)  # top to bottom
        assert points[:, 1].min() >= cut - 0.01 and points[:, 1].max() <= height + 0.01


def test_predict_images_folder_and_video(tmp_path, weights, capsys):
    folder = tmp_path / "frames"
    (folder / "day").mkdir(parents=True)
    cv2.imwrite(str(folder / "day" / "a.png"), noise(590, 1640, 0))
    cv2.imwrite(str(tmp_path / "b.jpg"), noise(360, 640, 1))
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (320, 180))
    for seed in range(3):
        writer.write(noise(180, 320, seed))
    writer.release()
    out = tmp_path / "out"

    argv = [str(folder), str(tmp_path / "b.jpg"), str(video), "--preset", PRESET, "--weights", str(weights)]
    assert run_cli(main, [*argv, "--out", str(out), "--batch-size", "2", "--device", "cpu"]) == 0
    assert "wrote lanes of 2 image(s) and 1 video(s)" in capsys.readouterr().out

    for overlay, (height, width) in (
        (out / "frames" / "day" / "a.png", (590, 1640)),
        (out / "b.jpg", (360, 640)),
    ):
        image = cv2.imread(str(overlay))
        assert image.shape == (height, width, 3)
        record = json.loads(overlay.with_suffix(".json").read_text())
        assert (record["width"], record["height"]) == (width, height)
        check_lanes(record["lanes"], width, height)

    record = json.loads((out / "clip.json").read_text())
    assert (record["width"], record["height"], record["fps"]) == (320, 180, 5.0)
    assert [frame["frame"] for frame in record["frames"]] == [0, 1, 2]
    for frame in record["frames"]:
        check_lanes(frame["lanes"], 320, 180)
    capture = cv2.VideoCapture(str(out / "clip_lanes.mp4"))
    frames = 0
    while capture.read()[0]:
        frames += 1
    assert frames == 3


def test_bad_inputs_exit_2_with_one_line(tmp_path, weights, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    common = ["--preset", PRESET, "--weights", str(weights), "--out", str(tmp_path / "out")]
    assert run_cli(main, [str(tmp_path / "notes.txt"), *common]) == 2
    assert "unsupported input" in capsys.readouterr().err
    assert run_cli(main, [str(tmp_path / "missing.jpg"), *common]) == 2
    assert "no such input" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert run_cli(main, [str(tmp_path / "empty"), *common]) == 2
    assert "no images" in capsys.readouterr().err
    cv2.imwrite(str(tmp_path / "x.png"), noise(10, 10, 0))
    bad_weights = ["--preset", PRESET, "--weights", str(tmp_path / "nope.pth"), "--out", str(tmp_path / "o")]
    assert run_cli(main, [str(tmp_path / "x.png"), *bad_weights]) == 2
    assert "weights file not found" in capsys.readouterr().err


def test_wrong_preset_exits_2_with_one_line(tmp_path):
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), noise(10, 10, 0))
    result = subprocess.run(
        [
            *(sys.executable, "-m", "clrkdnet_core.predict", str(image)),
            *("--preset", "no_such_preset", "--weights", "w.pth", "--out", str(tmp_path / "out")),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: unknown preset 'no_such_preset'; available: ")


def test_draw_lanes_colours_lanes_left_to_right():
    image = np.zeros((200, 300, 3), dtype=np.uint8)
    right = Lane(np.array([[250, 50], [250, 190]], dtype=np.float32), 0.9)
    left = Lane(np.array([[50, 50], [50, 190]], dtype=np.float32), 0.8)
    far_off = Lane(np.array([[-1e9, 10], [1e9, 20]], dtype=np.float32), 0.5)  # rightmost base
    canvas = draw_lanes(image, [right, left, far_off], thickness=3, show_scores=False)
    assert not image.any()  # the input is untouched
    assert tuple(canvas[120, 50]) == PALETTE[0] and tuple(canvas[120, 250]) == PALETTE[1]
    with_scores = draw_lanes(image, [left], thickness=3)
    assert with_scores[:, 55:].any()  # the score text next to the lane
