"""Camera images as the core takes them: HxWx3 uint8 BGR numpy arrays, checked or read from a file.

Torch-free, so that drawing overlays and the node's image handling do not load PyTorch.
"""

from pathlib import Path

import cv2
import numpy as np

from clrkdnet_core.errors import ClrkdnetError, InputError


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


def read_image(
    path: str | Path, flags: int = cv2.IMREAD_COLOR, error: type[ClrkdnetError] = InputError
) -> np.ndarray:
    """The image file at ``path`` as OpenCV reads it (``IMREAD_COLOR``: HxWx3 uint8 BGR).

    A missing, unsupported or corrupt file raises ``error``: InputError for a file the user named,
    DatasetError for one a dataset or bag source lists.
    """
    image = cv2.imread(str(path), flags)
    if image is None:
        raise error(f"cannot read image {path} (missing, unsupported or corrupt file)")
    return image
