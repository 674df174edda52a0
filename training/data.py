"""Training data: the shared CULane/TuSimple datasets, checked up front, with reproducible augmentation, and
an optional cache of the decoded images at the size the training uses."""

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset
from tqdm import tqdm

from clrkdnet_core.config import Preset
from clrkdnet_core.data.augment import build_transform
from clrkdnet_core.data.base import LaneDataset, read_image, read_mask
from clrkdnet_core.data.culane import LIST_FILES, CULaneDataset
from clrkdnet_core.data.tusimple import TuSimpleDataset
from clrkdnet_core.errors import DatasetError

DIFF_FILE = "list/train_diffs.npz"


@dataclass(frozen=True)
class Batch:
    """A collated batch: (B, 3, H, W) images, (B, max_lanes, 78) lane targets, (B, H, W) seg labels."""

    images: Tensor
    targets: Tensor
    seg: Tensor
    metas: list[dict]


def collate(samples: list[dict]) -> Batch:
    """Stack the training samples of the datasets (``img``, ``lane_line``, ``seg``, ``meta``)."""
    return Batch(
        torch.stack([s["img"] for s in samples]),
        torch.stack([s["lane_line"] for s in samples]),
        torch.stack([s["seg"] for s in samples]),
        [s["meta"] for s in samples],
    )


class SeededAugmentation(Dataset):
    """Makes the augmentation of sample ``i`` in epoch ``e`` a function of (seed, e, i) only.

    The order of samples, the number of loader processes and resuming in the middle of an epoch then do not
    change what a sample looks like, so runs are reproducible and a resumed run continues exactly.
    """

    def __init__(self, dataset: LaneDataset, seed: int) -> None:
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentations of ``epoch``."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        seed = np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(1)[0]
        self.dataset.transform.set_random_seed(int(seed))
        return self.dataset[index]


class ReducedImageCache:
    """The crop + resize that every training sample starts with, decoded once and kept on disk.

    The augmentation's first op resizes the cropped full-size image (1640 x 320 for CULane) to the network
    input (e.g. 400 x 160, bicubic; the mask nearest): deterministic, so its result can be cached. The
    expensive part of a sample is decoding the full-size JPEG/PNG, not the augmentation on the small image.
    Entries are ``.npz`` files named by the image and mask paths, their sizes and modification times and the
    geometry, so an edited file or another input size is never served a stale entry; writes are atomic
    (loader workers may fill the same cache at once).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    @staticmethod
    def key(image: Path, mask: Path, img_w: int, img_h: int, cut_height: int) -> str:
        """Hex digest of both files' identity (path, size, mtime) and the reduced geometry."""
        parts = [f"{img_w}x{img_h}+cut{cut_height}"]
        for path in (image, mask):
            stat = Path(path).stat()
            parts.append(f"{Path(path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}")
        return hashlib.sha1("\n".join(parts).encode()).hexdigest()

    def load(
        self, image: Path, mask: Path, img_w: int, img_h: int, cut_height: int
    ) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        """(reduced image (img_h, img_w, 3) uint8, reduced mask (img_h, img_w), cropped (height, width))."""
        entry = self.folder / f"{self.key(image, mask, img_w, img_h, cut_height)}.npz"
        if entry.is_file():
            with np.load(entry) as data:
                return data["image"], data["mask"], (int(data["crop"][0]), int(data["crop"][1]))
        crop = read_image(image)[cut_height:]
        crop_mask = read_mask(mask)[cut_height:]
        # The augmentation's own first op (build_transform(train=False) is exactly that Resize), so the
        # cached pixels are the ones an uncached sample gets.
        reduced = build_transform(img_w, img_h, train=False)(
            image=crop, mask=crop_mask, keypoints=np.zeros((0, 2))
        )
        shape = (crop.shape[0], crop.shape[1])
        self.folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self.folder, suffix=".tmp", delete=False) as handle:
            np.savez(handle, image=reduced["image"], mask=reduced["mask"], crop=np.array(shape))
        os.replace(handle.name, entry)
        return reduced["image"], reduced["mask"], shape


class CachedDecodeDataset(Dataset):
    """A training :class:`LaneDataset` whose samples start from :class:`ReducedImageCache` entries.

    Same samples as the wrapped dataset (``test/test_kd_study.py`` compares them): the lanes are scaled by
    the factors the skipped resize would have applied, and the augmentation's first Resize then meets an
    image already at its output size, which it returns unchanged. ``transform``, ``samples``, ``geometry``
    and ``lanes_of`` are the wrapped dataset's, so :class:`SeededAugmentation` and the trainer use it as is.
    """

    def __init__(self, dataset: LaneDataset, cache: ReducedImageCache) -> None:
        if not dataset.training:
            raise DatasetError("the decoded-image cache serves training samples only")
        self.dataset, self.cache = dataset, cache
        self.transform, self.samples, self.geometry = dataset.transform, dataset.samples, dataset.geometry
        self.max_lanes, self.training, self.root = dataset.max_lanes, True, dataset.root

    def __len__(self) -> int:
        return len(self.dataset)

    def lanes_of(self, sample) -> list[np.ndarray]:
        return self.dataset.lanes_of(sample)

    def __getitem__(self, index: int) -> dict:
        sample, geometry = self.dataset.samples[index], self.geometry
        if sample.mask is None:
            raise DatasetError(f"the list gives no segmentation mask for {sample.image}")
        if not sample.mask.is_file():
            raise DatasetError(f"segmentation mask {sample.mask} does not exist")
        img_w, img_h, cut = geometry.img_w, geometry.img_h, geometry.cut_height
        image, mask, (crop_h, crop_w) = self.cache.load(sample.image, sample.mask, img_w, img_h, cut)
        # Albumentations scales float32 keypoints by a float32 factor: doing the same here gives the very
        # coordinates the skipped Resize would have (float64 arithmetic differs by up to 1e-3 px).
        scale = np.array([img_w / crop_w, img_h / crop_h], dtype=np.float32)
        lanes = [
            (lane - np.array([0.0, cut])).astype(np.float32) * scale for lane in self.dataset.lanes_of(sample)
        ]
        meta = {"path": str(sample.image), "name": sample.name}
        return self.dataset.training_sample(image, lanes, mask, sample, meta)


def check_annotations(dataset: LaneDataset) -> None:
    """Read every label and look for every image and mask now, so a bad file stops the run before training.

    Raises the dataset's DatasetError naming the file.
    """
    # disable=None: a bar on a terminal only, so a failing check prints nothing but its one error line.
    for sample in tqdm(
        dataset.samples, desc="checking labels", leave=False, disable=None, dynamic_ncols=True
    ):
        if not sample.image.is_file():
            raise DatasetError(f"image {sample.image} does not exist")
        if sample.mask is not None and not sample.mask.is_file():
            raise DatasetError(f"segmentation mask {sample.mask} does not exist")
        dataset.lanes_of(sample)


def build_train_dataset(preset: Preset, root: Path) -> LaneDataset:
    """The training split of ``preset.dataset`` under ``root``, frame-filtered when the preset asks for it."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset root {root} does not exist")
    if preset.dataset == "tusimple":
        dataset: LaneDataset = TuSimpleDataset(
            root, "trainval", preset.geometry, max_lanes=preset.test.max_lanes
        )
    else:
        threshold = preset.train.frame_diff_threshold
        if threshold is not None and not (root / DIFF_FILE).is_file():
            raise DatasetError(
                f"preset {preset.name} filters similar frames but {root / DIFF_FILE} does not exist; "
                f"compute it with `python -m clrkdnet_core.data.frame_diff --root {root}` or train on every "
                "frame with --set train.frame_diff_threshold=null"
            )
        dataset = CULaneDataset(
            root,
            "train",
            preset.geometry,
            diff_file=None if threshold is None else DIFF_FILE,
            diff_threshold=threshold or 0.0,
            max_lanes=preset.test.max_lanes,
        )
    if len(dataset) == 0:
        raise DatasetError(f"the training list under {root} names no image")
    check_annotations(dataset)
    return dataset


def build_eval_dataset(preset: Preset, root: Path, split: str) -> CULaneDataset:
    """A CULane list split (``val``, ``test``) preprocessed like at inference, for the CULane metric."""
    if preset.dataset != "culane":
        raise DatasetError(
            f"validation with the CULane metric needs CULane-format data, not {preset.dataset}"
        )
    if split not in LIST_FILES:
        raise DatasetError(f"unknown CULane split {split!r}; expected one of {', '.join(LIST_FILES)}")
    dataset = CULaneDataset(root, split, preset.geometry, training=False, max_lanes=preset.test.max_lanes)
    if len(dataset) == 0:
        raise DatasetError(f"{Path(root) / LIST_FILES[split]} names no image")
    return dataset
