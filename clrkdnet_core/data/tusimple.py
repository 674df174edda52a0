"""TuSimple: label JSON lines and the generated ``seg_label`` masks (MODEL.md 1.1 and 4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clrkdnet_core.data.base import LaneDataset, Sample
from clrkdnet_core.data.formats import TUSIMPLE_SPLIT_FILES
from clrkdnet_core.data.tusimple_seg import read_label_file, seg_mask_path
from clrkdnet_core.errors import DatasetError
from clrkdnet_core.geometry import ImageGeometry

MAX_LANES = 5


class TuSimpleDataset(LaneDataset):
    """TuSimple split: "trainval" (what the reference trains on), "train", "val" or "test".

    Each split reads those of its label files that are present (real or synthetic names). Masks are read from
    ``seg_label/`` (generate them with ``python -m clrkdnet_core.data.tusimple_seg``).
    """

    missing_mask_hint = "; generate the masks with `python -m clrkdnet_core.data.tusimple_seg --root ROOT`"

    def __init__(
        self,
        root: str | Path,
        split: str,
        geometry: ImageGeometry,
        augment: bool | None = None,
        training: bool | None = None,
        max_lanes: int = MAX_LANES,
        seed: int | None = None,
    ):
        training = split in ("train", "trainval") if training is None else training
        augment = training if augment is None else augment
        super().__init__(root, geometry, max_lanes, training, augment, seed)
        if split not in TUSIMPLE_SPLIT_FILES:
            raise DatasetError(
                f"unknown TuSimple split {split!r}; expected one of {', '.join(TUSIMPLE_SPLIT_FILES)}"
            )
        files = [self.root / name for name in TUSIMPLE_SPLIT_FILES[split] if (self.root / name).is_file()]
        if not files:
            raise DatasetError(
                f"no TuSimple label file of split {split!r} in {self.root} "
                f"(expected one of {', '.join(TUSIMPLE_SPLIT_FILES[split])})"
            )
        for path in files:
            for record in read_label_file(path):
                lanes = [
                    np.array(
                        [(x, y) for x, y in zip(lane, record["h_samples"], strict=False) if x >= 0], float
                    )
                    for lane in record["lanes"]
                ]
                name = record["raw_file"].lstrip("/")
                self.samples.append(
                    Sample(
                        name=name,
                        image=self.root / name,
                        mask=self.root / seg_mask_path(name),
                        lanes=[lane for lane in lanes if len(lane) > 0],
                    )
                )
