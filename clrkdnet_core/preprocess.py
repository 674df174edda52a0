"""Camera image -> network input, as the reference test pipeline does it (MODEL.md 1.1).

BGR uint8 image -> drop the top rows (the preset's cut height scaled to this image's height) -> cubic resize
to 800 x 320 (imgaug's default, OpenCV's INTER_CUBIC) -> float32 / 255 -> CHW. Channels stay BGR and no
mean/std normalisation is applied: the official weights expect exactly that.
"""

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from clrkdnet_core.errors import InputError
from clrkdnet_core.geometry import ImageGeometry
from clrkdnet_core.image import check_image


def crop_top(image: np.ndarray, geometry: ImageGeometry) -> np.ndarray:
    """A checked BGR uint8 image without its top rows (the preset's cut scaled to its height), contiguous."""
    check_image(image)
    cut = geometry.cut_height_for(image.shape[0])
    if cut >= image.shape[0]:
        raise InputError(f"image of height {image.shape[0]} is too small: cropping {cut} rows leaves nothing")
    return np.ascontiguousarray(image[cut:])  # OpenCV rejects negative strides (flipped views)


def crop_and_resize(image: np.ndarray, geometry: ImageGeometry) -> np.ndarray:
    """Crop the top of a BGR uint8 image and resize it to the network input: (img_h, img_w, 3) uint8."""
    return cv2.resize(
        crop_top(image, geometry), (geometry.img_w, geometry.img_h), interpolation=cv2.INTER_CUBIC
    )


def to_tensor(resized: np.ndarray, device: torch.device | str | None = None) -> torch.Tensor:
    """(..., H, W, 3) uint8 -> (..., 3, H, W) float32 / 255 on ``device`` (uint8 is what crosses the bus)."""
    pixels = torch.from_numpy(np.ascontiguousarray(resized)).to(device)
    return pixels.movedim(-1, -3).float().div_(255)


def preprocess(image: np.ndarray, geometry: ImageGeometry) -> torch.Tensor:
    """One HxWx3 uint8 BGR image of any size -> (3, img_h, img_w) float32 BGR / 255 tensor."""
    return to_tensor(crop_and_resize(image, geometry))


def preprocess_batch(
    images: Sequence[np.ndarray], geometry: ImageGeometry, device: torch.device | str | None = None
) -> torch.Tensor:
    """Images (sizes may differ) -> (B, 3, img_h, img_w) float32 batch on ``device``."""
    if len(images) == 0:
        raise InputError("expected at least one image, got an empty list")
    return to_tensor(np.stack([crop_and_resize(image, geometry) for image in images]), device)
