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


def check_image(image: object) -> np.ndarray:
    """Return ``image`` if it is an HxWx3 uint8 BGR array; raise InputError saying what it is otherwise."""
    expected = "expected an HxWx3 uint8 BGR image"
    if not isinstance(image, np.ndarray):
        raise InputError(f"{expected}, got {type(image).__name__}")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        raise InputError(
            f"{expected}, got a single-channel image of shape {image.shape}; "
            "convert it with cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)"
        )
    if image.ndim == 3 and image.shape[2] == 4:
        raise InputError(
            f"{expected}, got shape {image.shape} (4 channels); "
            "drop the alpha channel with cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)"
        )
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"{expected}, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise InputError(
            f"{expected}, got dtype {image.dtype}; scale it to 0..255 and convert with image.astype(np.uint8)"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f"{expected}, got an empty image of shape {image.shape}")
    return image


def crop_and_resize(image: np.ndarray, geometry: ImageGeometry) -> np.ndarray:
    """Crop the top of a BGR uint8 image and resize it to the network input: (img_h, img_w, 3) uint8."""
    check_image(image)
    cut = geometry.cut_height_for(image.shape[0])
    if cut >= image.shape[0]:
        raise InputError(f"image of height {image.shape[0]} is too small: cropping {cut} rows leaves nothing")
    kept = np.ascontiguousarray(image[cut:])  # OpenCV rejects negative strides (flipped views)
    return cv2.resize(kept, (geometry.img_w, geometry.img_h), interpolation=cv2.INTER_CUBIC)


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
