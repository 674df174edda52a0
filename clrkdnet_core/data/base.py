"""What CULane and TuSimple training/test samples have in common (MODEL.md 1.1 and 4).

Training sample: crop the top ``cut_height`` rows (lanes shifted up by the same amount, mask cropped alike),
augment image + lanes + mask jointly, encode the lanes (retrying the augmentation up to 30 times when the
encoding fails), /255 BGR CHW. Test sample: crop + cubic resize only.

``__getitem__`` returns a dict:
- training: ``img`` (3, 320, 800) float32, ``lane_line`` (max_lanes, 78) float32 (:mod:`.encoding`),
  ``seg`` (320, 800) int64 lane ids (0 = background), ``meta`` {"path", "name"};
- test: ``img`` and ``meta`` {"path": image file, "name": path relative to the root, as in the list}.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from clrkdnet_core import image as image_file
from clrkdnet_core.data.augment import apply_transform, build_transform
from clrkdnet_core.data.encoding import EncodingError, encode_lanes
from clrkdnet_core.errors import DatasetError
from clrkdnet_core.geometry import ImageGeometry
from clrkdnet_core.preprocess import preprocess

MAX_AUGMENT_TRIES = 30


@dataclass
class Sample:
    """One image of a list: paths and, when already read, its lanes in original-image pixels."""

    name: str  # relative to the dataset root, no leading slash
    image: Path
    mask: Path | None = None
    lanes: list[np.ndarray] | None = None


def read_image(path: Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """An image a dataset lists: :func:`clrkdnet_core.image.read_image`, failing with a DatasetError."""
    return image_file.read_image(path, flags, error=DatasetError)


def read_mask(path: Path) -> np.ndarray:
    mask = read_image(path, cv2.IMREAD_UNCHANGED)
    return mask[:, :, 0] if mask.ndim == 3 else mask


class LaneDataset(Dataset):
    """Common part of the CULane and TuSimple datasets; subclasses fill ``samples`` (and ``lanes_of``)."""

    missing_mask_hint = ""  # how to create the masks, added to the error for a missing one

    def __init__(
        self,
        root: str | Path,
        geometry: ImageGeometry,
        max_lanes: int,
        training: bool,
        augment: bool,
        seed: int | None = None,
    ):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"dataset root {self.root} does not exist")
        self.geometry = geometry
        self.max_lanes = max_lanes
        self.training = training
        self.transform = build_transform(geometry.img_w, geometry.img_h, train=augment, seed=seed)
        self.samples: list[Sample] = []

    def __len__(self) -> int:
        return len(self.samples)

    def lanes_of(self, sample: Sample) -> list[np.ndarray]:
        """Lanes of ``sample`` in original-image pixels, each (N, 2) (x, y)."""
        if sample.lanes is None:
            raise DatasetError(f"no lane annotation for {sample.image}")
        return sample.lanes

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        image = read_image(sample.image)
        meta = {"path": str(sample.image), "name": sample.name}
        if not self.training:
            return {"img": preprocess(image, self.geometry), "meta": meta}
        if sample.mask is None:
            raise DatasetError(f"the list gives no segmentation mask for {sample.image}")
        cut = self.geometry.cut_height
        if not sample.mask.is_file():
            raise DatasetError(f"segmentation mask {sample.mask} does not exist{self.missing_mask_hint}")
        mask = read_mask(sample.mask)[cut:]
        lanes = [lane - np.array([0.0, cut]) for lane in self.lanes_of(sample)]
        return self.training_sample(image[cut:], lanes, mask, sample, meta)

    def training_sample(
        self, image: np.ndarray, lanes: list[np.ndarray], mask: np.ndarray, sample: Sample, meta: dict
    ) -> dict:
        """The augmented training sample of a cropped ``image``, its ``lanes`` (cropped pixels) and ``mask``;
        augmentations whose lanes cannot be encoded are drawn again."""
        for _ in range(MAX_AUGMENT_TRIES):
            img, moved, seg = apply_transform(self.transform, image, lanes, mask)
            try:
                target = encode_lanes(moved, self.max_lanes, self.geometry.img_w, self.geometry.img_h)
                break
            except EncodingError:
                continue
        else:
            raise DatasetError(f"lane encoding failed {MAX_AUGMENT_TRIES} times for {sample.image}")
        return {
            "img": torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255),
            "lane_line": torch.from_numpy(target),
            "seg": torch.from_numpy(np.ascontiguousarray(seg)).long(),
            "meta": meta,
        }
