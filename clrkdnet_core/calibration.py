"""Calibration images for INT8 quantization: where they come from, how many, which ones are held out.

``calibration=`` names a folder: a folder of images (searched recursively) or a dataset root (CULane or
TuSimple: their label masks, ``laneseg_label*`` and ``seg_label*`` folders, are skipped), or is a sequence of
HxWx3 uint8 BGR images already in memory (what the ROS package passes for frames read from a bag, so the core
never imports ROS-side code). At least :data:`MIN_CALIBRATION_IMAGES` are needed; above
:data:`MAX_CALIBRATION_IMAGES` an evenly spaced subset is used. Every :data:`HELD_OUT_EVERY`-th image is held
out of the calibration for the accuracy gate. Images are pre-processed by :func:`preprocess_batch`, exactly as
LaneDetector does before inference.
"""

import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from clrkdnet_core.errors import InputError
from clrkdnet_core.geometry import ImageGeometry
from clrkdnet_core.image import check_image, read_image
from clrkdnet_core.preprocess import preprocess_batch

MIN_CALIBRATION_IMAGES = 20
# onnxruntime's calibrators keep the activations of every calibration image in memory (about 4 GB for 32
# images of the CULane R18 student at 320 x 800): the cap bounds that, and the calibration time.
MAX_CALIBRATION_IMAGES = 50
HELD_OUT_EVERY = 5
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
LABEL_FOLDERS = ("laneseg_label", "seg_label")  # dataset roots keep label masks next to the camera images

CalibrationSource = str | os.PathLike | Sequence[np.ndarray]


@dataclass(frozen=True)
class CalibrationSet:
    """Images to calibrate on and images held out for the accuracy gate, read on demand.

    Attributes:
        calibration, held_out: loaders of HxWx3 uint8 BGR images.
        digest: sha256 over the images' bytes (part of the INT8 model's cache key).
        description: where the images came from, for messages.
    """

    calibration: tuple[Callable[[], np.ndarray], ...]
    held_out: tuple[Callable[[], np.ndarray], ...]
    digest: str
    description: str

    def network_inputs(self, geometry: ImageGeometry) -> Iterator[np.ndarray]:
        """The calibration images as (1, 3, img_h, img_w) float32 network inputs, one at a time."""
        for load in self.calibration:
            yield preprocess_batch([load()], geometry).numpy()


def load_calibration(source: CalibrationSource | None) -> CalibrationSet:
    """The calibration set of ``source`` (a folder or a sequence of images); InputError when unusable."""
    if source is None:
        raise InputError(
            f"int8 needs calibration images: calibration=DIR (a folder of at least {MIN_CALIBRATION_IMAGES} "
            "camera images, or a dataset root)"
        )
    if isinstance(source, str | os.PathLike):
        paths = _folder_images(Path(source))
        description, found = str(source), len(paths)
        # Only the files used are read (a dataset root holds many thousands of images).
        paths = _evenly_spaced(paths)
        loaders = [partial(read_image, path) for path in paths]
        digest = _digest(path.read_bytes() for path in paths)
    else:
        images = [check_image(image) for image in source]
        description, found = f"{len(images)} images in memory", len(images)
        images = _evenly_spaced(images)
        loaders = [partial(_identity, image) for image in images]
        digest = _digest(image.tobytes() for image in images)
    if found < MIN_CALIBRATION_IMAGES:
        raise InputError(
            f"calibration set {description} has {found} images; int8 needs at least {MIN_CALIBRATION_IMAGES}"
        )
    held_out = tuple(loaders[HELD_OUT_EVERY - 1 :: HELD_OUT_EVERY])
    calibration = tuple(load for i, load in enumerate(loaders) if (i + 1) % HELD_OUT_EVERY)
    return CalibrationSet(calibration, held_out, digest, description)


def _folder_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise InputError(f"calibration folder {folder} does not exist (or is not a folder)")
    return sorted(
        path
        for path in folder.rglob("*")
        if path.suffix.lower() in IMAGE_EXTENSIONS
        and path.is_file()
        and not any(part.startswith(LABEL_FOLDERS) for part in path.relative_to(folder).parts)
    )


def _evenly_spaced(items: list) -> list:
    if len(items) <= MAX_CALIBRATION_IMAGES:
        return items
    picks = np.linspace(0, len(items) - 1, MAX_CALIBRATION_IMAGES).round().astype(int)
    return [items[i] for i in picks]


def _identity(image: np.ndarray) -> np.ndarray:
    return image


def _digest(chunks: Iterator[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(hashlib.sha256(chunk).digest())
    return digest.hexdigest()
