"""LaneDetector: construction, devices, thresholds, batch vs single images, coordinates on other sizes."""

import logging

import cv2
import numpy as np
import pytest
import torch

from clrkdnet_core.backends import create_backend
from clrkdnet_core.checkpoint import save_checkpoint
from clrkdnet_core.config import TestConfig
from clrkdnet_core.errors import BackendError, CheckpointError, InputError
from clrkdnet_core.inference import LaneDetector, resolve_device
from clrkdnet_core.models import build_model
from clrkdnet_core.postprocess.decode import decode_predictions
from clrkdnet_core.preprocess import preprocess

PRESET = "clrkdnet_resnet18_culane"
OFFICIAL = TestConfig(conf_threshold=0.4, nms_thres=50, max_lanes=4)
# The reference's results need exact fp32 (the default, auto, may run bf16 or another runtime).
EXACT = {"backend": "torch", "precision": "fp32"}


def make_lanes_visible(model: torch.nn.Module) -> None:
    """Random weights predict zero-length lanes with near-equal scores; give them length and one fixed score.

    Equal scores make the visiting order the prior index, so results do not hinge on 1e-7 differences between
    a batched and a single-image forward pass.
    """
    with torch.no_grad():
        model.heads.reg_layers.bias[3] = 0.8
        model.heads.cls_layers.weight.zero_()
        model.heads.cls_layers.bias.copy_(torch.tensor([0.0, 1.0]))


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model(PRESET)
    make_lanes_visible(model)
    return save_checkpoint(tmp_path_factory.mktemp("weights") / "student.pth", model)


@pytest.fixture(scope="module")
def detector(weights):
    return LaneDetector.from_preset(PRESET, weights, device="cpu", **EXACT)


def road_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Grey road with two bright lane markings converging towards the horizon, plus noise."""
    rng = np.random.default_rng(seed)
    image = np.full((height, width, 3), 90, dtype=np.uint8)
    for x_bottom in (0.25, 0.75):
        cv2.line(image, (int(x_bottom * width), height - 1), (width // 2, height // 2), (230, 230, 230), 8)
    return np.clip(image + rng.integers(0, 20, size=image.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def culane_lanes(detector):
    return detector.detect(road_image(590, 1640))


def test_attributes_and_thresholds(detector, culane_lanes):
    assert detector.preset.name == PRESET
    assert detector.device == torch.device("cpu")
    assert detector.backend == "torch"
    assert (detector.conf_threshold, detector.nms_thres, detector.max_lanes) == (0.4, 50, 4)
    lanes = culane_lanes
    assert 1 < len(lanes) <= 4
    assert all(lane.score == pytest.approx(1 / (1 + np.exp(-1.0))) for lane in lanes)
    try:
        detector.set_thresholds(max_lanes=1)
        assert len(detector.detect(road_image(590, 1640))) == 1
        detector.set_thresholds(conf_threshold=0.99)
        assert detector.detect(road_image(590, 1640)) == []
    finally:
        detector.set_thresholds(conf_threshold=0.4, max_lanes=4)
    for bad in ({"conf_threshold": 1.5}, {"nms_thres": -1}, {"max_lanes": 0}, {"max_lanes": 2.5}):
        with pytest.raises(InputError):
            detector.set_thresholds(**bad)


def test_detect_on_the_preset_size_equals_the_manual_pipeline(detector, culane_lanes):
    image = road_image(590, 1640)
    with torch.no_grad():
        pred = detector.runner.model(preprocess(image, detector.preset.geometry)[None])
    expected = decode_predictions(pred, detector.preset.geometry, OFFICIAL)[0]
    lanes = culane_lanes
    assert len(lanes) == len(expected) > 0
    for lane, wanted in zip(lanes, expected, strict=True):
        np.testing.assert_array_equal(lane.points, wanted.points)


@pytest.mark.parametrize(("height", "width"), [(720, 1280), (360, 640)])
def test_lanes_are_in_the_pixels_of_the_given_image(detector, height: int, width: int):
    """Decode in the preset's 1640x590 frame, then map by hand: x by the width ratio, y through the crop."""
    image = road_image(height, width)
    geometry = detector.preset.geometry
    cut = geometry.cut_height_for(height)
    with torch.no_grad():
        pred = detector.runner.model(preprocess(image, geometry)[None])
    in_preset_frame = decode_predictions(pred, geometry, OFFICIAL)[0]
    lanes = detector.detect(image)
    assert len(lanes) == len(in_preset_frame) > 0
    for lane, reference in zip(lanes, in_preset_frame, strict=True):
        x = reference.xs / geometry.ori_img_w * width
        row_fraction = (reference.ys - geometry.cut_height) / (geometry.ori_img_h - geometry.cut_height)
        y = cut + row_fraction * (height - cut)
        np.testing.assert_allclose(lane.xs, x, atol=1e-3)
        np.testing.assert_allclose(lane.ys, y, atol=1e-3)
        assert lane.ys.max() <= height + 1e-3 and lane.ys.min() >= cut - 1e-3


def test_batch_equals_single_images(detector):
    images = [road_image(590, 1640, 1), road_image(720, 1280, 2)]
    batched = detector.detect_batch(images)
    assert detector.detect_batch([]) == []
    for image, lanes in zip(images, batched, strict=True):
        single = detector.detect(image)
        assert len(single) == len(lanes) > 0
        for a, b in zip(single, lanes, strict=True):
            assert a.points.shape == b.points.shape
            np.testing.assert_allclose(a.points, b.points, atol=1e-3)
            assert a.score == pytest.approx(b.score)


def test_weights_are_loaded(weights):
    # Unfolded, so the backend's state_dict still has the checkpoint's entries to compare.
    detector = LaneDetector.from_preset(PRESET, weights, device="cpu", fold_batchnorm=False, **EXACT)
    torch.manual_seed(0)
    expected = build_model(PRESET)
    make_lanes_visible(expected)
    loaded = detector.runner.model.state_dict()
    for key, value in expected.state_dict().items():
        assert torch.equal(loaded[key], value), key
    with pytest.raises(CheckpointError, match="weights file not found"):
        LaneDetector.from_preset(PRESET, weights.with_name("missing.pth"), device="cpu", **EXACT)


def test_random_init_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="clrkdnet_core.inference"):
        detector = LaneDetector.from_preset(PRESET, None, device="auto", backend="torch")
    assert "randomly initialised" in caplog.text
    assert detector.device.type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_devices(caplog):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    for bad in ("gpu", "cuda:x", "tpu:0"):
        with pytest.raises(InputError, match="auto, cpu, cuda or cuda:N"):
            resolve_device(bad)
    if not torch.cuda.is_available():
        with caplog.at_level(logging.WARNING, logger="clrkdnet_core.inference"):
            assert resolve_device("cuda:1") == torch.device("cpu")
        assert "CUDA is not available" in caplog.text


def test_cpu_pipeline_parts(detector):
    from clrkdnet_core.postprocess.nms import lane_nms_batched

    assert detector.nms is lane_nms_batched
    image = road_image(590, 1640)
    expected = preprocess(image, detector.preset.geometry)[None]
    torch.testing.assert_close(detector.preprocess([image]), expected)


def test_nms_falls_back_to_pytorch_when_triton_fails(monkeypatch, caplog):
    pytest.importorskip("triton")
    from clrkdnet_core.inference import select_nms
    from clrkdnet_core.postprocess import nms_triton
    from clrkdnet_core.postprocess.nms import lane_nms_batched

    def no_compiler(device):
        raise RuntimeError("no compiler for this GPU")

    monkeypatch.setattr(nms_triton, "check_on", no_compiler)
    with caplog.at_level(logging.WARNING, logger="clrkdnet_core.inference"):
        assert select_nms(torch.device("cuda")) is lane_nms_batched
    assert "Triton lane NMS unavailable on cuda (no compiler for this GPU)" in caplog.text


def test_backend_errors(detector):
    with pytest.raises(BackendError, match="unknown backend 'nope'; available: torch"):
        create_backend("nope", detector.runner.model, "cpu")
    with pytest.raises(BackendError, match="bad options for the torch backend"):
        create_backend("torch", detector.runner.model, "cpu", speed=11)
    with pytest.raises(BackendError, match="the torch backend on cpu runs precision fp32, not fp16"):
        create_backend("torch", detector.runner.model, "cpu", precision="fp16")
    with pytest.raises(BackendError, match="unknown precision 'fp8'"):
        create_backend("torch", detector.runner.model, "cpu", precision="fp8")


@pytest.mark.parametrize(("size", "scale"), [((1640, 590), 1), ((3280, 1180), 2), ((6560, 2360), 4)])
def test_reduced_scale_keeps_the_crop_at_least_the_network_input(detector, size, scale):
    # 800 x 320 input: the 1640 x 590 camera's crop is 1640 x 320, too short to halve.
    assert detector.reduced_decode_scale(*size) == scale


def test_a_reduced_image_gives_the_lanes_of_the_full_image_in_its_pixels(detector):
    full = road_image(1180, 3280)
    expected = detector.detect(full)
    # What a JPEG decoded at half scale gives (libjpeg averages each 2x2 block).
    half = cv2.resize(full, (1640, 590), interpolation=cv2.INTER_AREA)
    lanes = detector.detect(half, original_size=(3280, 1180))
    assert len(expected) >= 1 and len(lanes) == len(expected)
    for a, b in zip(lanes, expected, strict=True):
        np.testing.assert_array_equal(a.points[:, 1], b.points[:, 1])  # the same rows of the camera image
        assert np.abs(a.points[:, 0] - b.points[:, 0]).max() <= 2.0
    with pytest.raises(InputError, match="original sizes"):
        detector.detect_batch([half], original_sizes=[])


@pytest.mark.parametrize(
    "image", [np.zeros((590, 1640), np.uint8), np.zeros((590, 1640, 4), np.uint8), np.zeros((590, 1640, 3))]
)
def test_bad_images(detector, image):
    with pytest.raises(InputError, match="expected an HxWx3 uint8 BGR image"):
        detector.detect(image)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_backends_agree_with_cpu(weights, detector, culane_lanes):
    image = road_image(590, 1640)
    gpu = LaneDetector.from_preset(PRESET, weights, device="cuda", channels_last=True, **EXACT)
    lanes = gpu.detect(image)
    assert len(lanes) == len(culane_lanes)
    for a, b in zip(lanes, culane_lanes, strict=True):
        assert a.points.shape == b.points.shape
        assert np.abs(a.points - b.points).max() < 0.5
    # float16 rounds lengths and xs differently: only check that it runs and finds lanes in the image.
    half = LaneDetector.from_preset(PRESET, weights, device="cuda", backend="torch", precision="fp16")
    half = half.detect(image)
    assert 1 <= len(half) <= 4 and all(np.isfinite(lane.points).all() for lane in half)
