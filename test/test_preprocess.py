"""Pre-processing: crop scaled to the image height, cubic resize, BGR / 255, input validation."""

import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from clrkdnet_core.errors import DatasetError, InputError
from clrkdnet_core.geometry import ImageGeometry
from clrkdnet_core.image import check_image, read_image
from clrkdnet_core.preprocess import preprocess, preprocess_batch

CULANE = ImageGeometry(1640, 590, 270)


def random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def test_matches_the_reference_pipeline():
    image = random_image(590, 1640)
    expected = cv2.resize(image[270:], (800, 320), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255.0
    tensor = preprocess(image, CULANE)
    assert tensor.shape == (3, 320, 800) and tensor.dtype == torch.float32
    np.testing.assert_array_equal(tensor.permute(1, 2, 0).numpy(), expected)


def test_channels_stay_bgr():
    image = np.empty((590, 1640, 3), dtype=np.uint8)
    image[:] = (10, 20, 30)  # B, G, R
    tensor = preprocess(image, CULANE)
    for channel, value in enumerate((10, 20, 30)):
        assert torch.all(tensor[channel] == torch.tensor(value / 255.0))


@pytest.mark.parametrize(("height", "width", "cut"), [(590, 1640, 270), (720, 1280, 329), (1080, 1920, 494)])
def test_crop_scales_with_the_image_height(height: int, width: int, cut: int):
    assert CULANE.cut_height_for(height) == cut
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[:cut] = 255  # everything above the crop line is removed
    assert preprocess(image, CULANE).max() == 0
    image[cut] = 255  # the first kept row shows up at the top of the input
    assert preprocess(image, CULANE)[:, 0].min() > 0


def test_batch_equals_single_images_of_different_sizes():
    images = [random_image(590, 1640, 1), random_image(720, 1280, 2), random_image(300, 500, 3)]
    batch = preprocess_batch(images, CULANE)
    assert batch.shape == (3, 3, 320, 800)
    for image, row in zip(images, batch, strict=True):
        assert torch.equal(row, preprocess(image, CULANE))


def test_flipped_views_are_accepted():
    image = random_image(590, 1640)
    assert torch.equal(preprocess(image[::-1][::-1], CULANE), preprocess(image, CULANE))
    preprocess(image[:, ::-1], CULANE)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ([[0, 0, 0]], "got list"),
        (np.zeros((10, 10), np.uint8), "single-channel image of shape \\(10, 10\\).*COLOR_GRAY2BGR"),
        (np.zeros((10, 10, 1), np.uint8), "single-channel.*COLOR_GRAY2BGR"),
        (np.zeros((10, 10, 4), np.uint8), "got shape \\(10, 10, 4\\).*COLOR_BGRA2BGR"),
        (np.zeros((2, 10, 10, 3), np.uint8), "got shape \\(2, 10, 10, 3\\)"),
        (np.zeros((10, 10, 3), np.float32), "got dtype float32"),
        (np.zeros((0, 10, 3), np.uint8), "empty image"),
        (torch.zeros(10, 10, 3, dtype=torch.uint8), "got Tensor"),
    ],
)
def test_bad_images_are_rejected(image, message: str):
    with pytest.raises(InputError, match=message):
        check_image(image)
    with pytest.raises(InputError, match="expected an HxWx3 uint8 BGR image"):
        preprocess(image, CULANE)


def test_empty_batch_and_tiny_image():
    with pytest.raises(InputError, match="empty list"):
        preprocess_batch([], CULANE)
    with pytest.raises(InputError, match="too small"):
        preprocess(np.zeros((1, 4, 3), np.uint8), ImageGeometry(10, 10, 8))


def test_reading_an_image_file(tmp_path):
    image = random_image(20, 30)
    cv2.imwrite(str(tmp_path / "frame.png"), image)
    np.testing.assert_array_equal(read_image(tmp_path / "frame.png"), image)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    for path in (tmp_path / "broken.jpg", tmp_path / "absent.png"):
        with pytest.raises(InputError, match=re.escape(f"cannot read image {path} (missing, unsupported")):
            read_image(path)
    with pytest.raises(DatasetError, match="cannot read image"):
        read_image(tmp_path / "absent.png", error=DatasetError)


def test_image_checks_and_overlays_do_not_import_torch():
    """The node draws debug overlays without PyTorch on its import path."""
    code = "import sys, clrkdnet_core.image, clrkdnet_core.visualization; print('torch' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    assert done.stdout.strip() == "False"
