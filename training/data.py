"""Training data: the shared CULane/TuSimple datasets, checked up front, with reproducible augmentation."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset
from tqdm import tqdm

from clrkdnet_core.config import Preset
from clrkdnet_core.data.base import LaneDataset
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
