"""The one in-memory scorer of a lane detector, behind every "F1 of a detector" (``evaluate model``, training
validation, ``bag eval`` and ``bag replay``).

Detected lanes are converted exactly as the official writers write them (:mod:`clrkdnet_core.data.writers`:
the reference's spline sampled at the official rows, at the files' precision) and counted by the official
metric code, so a score from memory equals the official tool's score of the written prediction files.
"""

from collections.abc import Iterable, Sequence

import numpy as np

from clrkdnet_core.data.writers import culane_prediction_lanes, tusimple_prediction_lanes
from clrkdnet_core.errors import DatasetError
from clrkdnet_core.lane import Lane
from clrkdnet_core.metrics.culane import (
    CULANE_WIDTH,
    MF1_THRESHOLDS,
    ImageMatch,
    ImageResult,
    aggregate_images,
    match_image,
)
from clrkdnet_core.metrics.tusimple import summarize_tusimple, tusimple_bench


class CULaneScorer:
    """Official CULane counts of a detector, image by image; results of any list of the scored images."""

    def __init__(self, width: int = CULANE_WIDTH) -> None:
        if width < 1:
            raise DatasetError(f"lane width must be positive, got {width}")
        self.width = width
        self._images: dict[str, ImageResult] = {}

    def add(
        self,
        name: str,
        lanes: Sequence[Lane],
        gt_lanes: Sequence[np.ndarray] | None,
        image_size: tuple[int, int],
    ) -> ImageMatch:
        """Score the detected ``lanes`` of image ``name``, in pixels of its (width, height) ``image_size``.

        ``gt_lanes`` are (N, 2) (x, y) arrays in the order of the annotation file (CULane: bottom to top; the
        spline depends on the direction); None when the image has no annotation file (no GT lanes, counted as
        a missing annotation, as the official tool treats it).
        """
        predictions = culane_prediction_lanes(lanes, *image_size)
        match = match_image(predictions, gt_lanes or [], self.width)
        self._images[name] = ImageResult(match, missing_annotation=gt_lanes is None)
        return match

    def result(
        self, names: Iterable[str] | None = None, iou_thresholds: Sequence[float] = MF1_THRESHOLDS
    ) -> dict:
        """The result of the images ``names`` (default: all, in order), as
        :func:`~clrkdnet_core.metrics.culane.evaluate_culane` returns it for their files."""
        names = list(self._images) if names is None else list(names)
        unscored = [name for name in names if name not in self._images]
        if unscored:
            raise DatasetError(f"{len(unscored)} listed images were not scored, e.g. {unscored[0]}")
        return aggregate_images([self._images[name] for name in names], iou_thresholds)


class TuSimpleScorer:
    """The official TuSimple rates of a detector, image by image."""

    def __init__(self) -> None:
        self._sums = (0.0, 0.0, 0.0)  # accuracy, FP rate, FN rate
        self._names: set[str] = set()

    def add(
        self,
        name: str,
        lanes: Sequence[Lane],
        gt_lanes: Sequence[Sequence[float]],
        h_samples: Sequence[float],
        image_size: tuple[int, int],
        run_time_ms: float = 0.0,
    ) -> tuple[float, float, float]:
        """Score the detected ``lanes`` of image ``name`` against its label's ``gt_lanes`` (x per h_sample,
        negative where absent); returns its (accuracy, FP rate, FN rate).

        ``run_time_ms`` above 200 scores the image as a miss, as the official tool does.
        """
        predictions = tusimple_prediction_lanes(lanes, *image_size)
        scores = tusimple_bench(predictions, gt_lanes, h_samples, run_time_ms)
        # Summed in the order the official tool walks its prediction file: the same floats.
        self._sums = tuple(total + score for total, score in zip(self._sums, scores, strict=True))
        self._names.add(name)
        return scores

    def result(self) -> dict:
        """The official result: the rates averaged over the distinct images, with CLRNet's derived F1."""
        if not self._names:
            raise DatasetError("no TuSimple image was scored")
        return summarize_tusimple(*self._sums, len(self._names))
