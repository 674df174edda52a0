"""Network output (B, 192, 78) -> lanes in original-image pixels, batched and on the output's device.

Reproduces the reference ``get_lanes`` + ``predictions_to_pred`` (MODEL.md 5.1-5.3) with masks instead of
per-image and per-lane loops: score threshold, lane NMS, then per kept prediction the rows from its start up
to ``start + length - 1``, extended below the start while x stays inside the image. The only host transfer is
one copy of the kept lanes at the end; the Python loop that remains builds the :class:`Lane` objects.
"""

from collections.abc import Callable, Sequence

import numpy as np
import torch

from clrkdnet_core.config import TestConfig
from clrkdnet_core.errors import InputError
from clrkdnet_core.geometry import ImageGeometry
from clrkdnet_core.lane import Lane
from clrkdnet_core.lane_format import (
    LENGTH,
    LOGITS,
    NMS_LENGTH,
    NMS_XS,
    NUM_OFFSETS,
    NUM_STRIPS,
    POSITIVE_LOGIT,
    ROW_WIDTH,
    START_Y,
    THETA,
    XS,
    prior_ys,
)
from clrkdnet_core.postprocess.nms import lane_nms_batched

# (lanes, scores, eligible, nms_thres, top_k) -> (keep, count): nms.lane_nms_batched or the Triton one.
BatchedNms = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor, float, int], tuple[torch.Tensor, torch.Tensor]
]

# Normalised image y of each row (row 0 = bottom): the head's float32 buffer, which the reference decodes in
# double (1 - r/71 computed otherwise differs in the last bit for some rows).
PRIOR_YS = prior_ys().double().numpy()


def nms_rows(pred: torch.Tensor, img_w: int) -> torch.Tensor:
    """The kernel's 77-wide rows from predictions (..., 78): theta dropped, length in rows, xs in pixels."""
    rows = torch.cat([pred[..., :THETA], pred[..., LENGTH:]], dim=-1)
    rows[..., NMS_LENGTH] *= NUM_STRIPS
    rows[..., NMS_XS] *= img_w - 1
    return rows


def valid_rows(pred: torch.Tensor) -> torch.Tensor:
    """(..., 72) bool: the rows of each prediction that belong to its polyline (row 0 = bottom).

    ``start = clamp(round(start_y * 71), 0, 71)`` (Python's round on the double value) and
    ``end = min(start + round(length * 71) - 1, 71)``. Rows from ``start`` up to ``end`` are kept where
    x >= 0 (x > 1 included); rows below ``start`` are kept while x stays in [0, 1] on every row from there up
    to ``start``. Rows from ``end + 1`` up are cleared with Python slice semantics, as the reference does
    (``xs[end + 1:] = -2``): an ``end + 1`` below zero counts from the top row.
    """
    xs = pred[..., XS]
    start = torch.round(pred[..., START_Y].double() * NUM_STRIPS).clamp(0, NUM_STRIPS).long()
    # Clamping before the cast keeps absurd lengths finite without changing any slice they produce.
    length = torch.round(pred[..., LENGTH] * NUM_STRIPS).clamp(-4 * NUM_OFFSETS, 4 * NUM_OFFSETS).long()
    end = (start + length - 1).clamp(max=NUM_STRIPS)
    cut = torch.where(end >= -1, end + 1, (NUM_OFFSETS + end + 1).clamp(min=0))

    rows = torch.arange(NUM_OFFSETS, device=pred.device)
    below_start = rows < start[..., None]
    outside = below_start & ~((xs >= 0) & (xs <= 1))
    # Rows below the start survive only if no row between them and the start leaves the image.
    outside_above = outside.flip(-1).cumsum(-1).flip(-1)
    return (rows < cut[..., None]) & (xs >= 0) & (~below_start | (outside_above == 0))


def decode_predictions(
    pred: torch.Tensor,
    geometry: ImageGeometry | Sequence[ImageGeometry],
    test: TestConfig,
    nms: BatchedNms = lane_nms_batched,
) -> list[list[Lane]]:
    """Decode the network output of a batch into lanes.

    Args:
        pred: (B, P, 78) last-stage predictions (any float dtype, any device).
        geometry: the image geometry the lanes are mapped to, or one per image (sizes may differ).
        test: the decoding settings (usually ``preset.test``): lanes scoring at least ``conf_threshold``
            (softmax), lane NMS at ``nms_thres`` pixels of the 800-wide input, at most ``max_lanes`` lanes
            per image.
        nms: the batched lane NMS (the vectorised PyTorch one; ``nms_triton.lane_nms_batched`` on CUDA).

    Returns:
        Per image, the kept lanes by descending score (lanes with fewer than 2 points are dropped), with
        points in that image's pixels, top to bottom.
    """
    if not isinstance(pred, torch.Tensor) or pred.ndim != 3 or pred.shape[-1] != ROW_WIDTH:
        shape = tuple(pred.shape) if isinstance(pred, torch.Tensor) else type(pred).__name__
        raise InputError(f"predictions must be a (B, P, {ROW_WIDTH}) tensor, got {shape}")
    geometries = [geometry] * len(pred) if isinstance(geometry, ImageGeometry) else list(geometry)
    if len(geometries) != len(pred):
        raise InputError(f"got {len(geometries)} image geometries for a batch of {len(pred)}")
    if len({g.img_w for g in geometries}) > 1:
        raise InputError("all images of a batch must share the network input width")
    if not geometries:
        return []

    pred = pred.detach().float()
    scores = torch.softmax(pred[..., LOGITS], dim=-1)[..., POSITIVE_LOGIT]
    eligible = scores >= test.conf_threshold
    keep, _ = nms(nms_rows(pred, geometries[0].img_w), scores, eligible, test.nms_thres, test.max_lanes)

    kept = keep >= 0
    index = keep.clamp(min=0)
    selected = torch.gather(pred, 1, index[..., None].expand(-1, -1, ROW_WIDTH))
    packed = torch.cat(
        [
            kept[..., None].float(),
            torch.gather(scores, 1, index)[..., None],
            selected[..., XS],
            valid_rows(selected).float(),
        ],
        dim=-1,
    )
    packed = packed.cpu().numpy()  # the one device-to-host transfer
    return [_lanes_of_image(rows, g) for rows, g in zip(packed, geometries, strict=True)]


def _lanes_of_image(packed: np.ndarray, geometry: ImageGeometry) -> list[Lane]:
    """Lane objects from the packed rows ``[kept, score, 72 xs, 72 valid]`` of one image."""
    ori_w, ori_h, cut = geometry.ori_img_w, geometry.ori_img_h, geometry.cut_height
    # Reference: y_ori = (prior_y * (ori_h - cut) + cut) / ori_h in double, x stays a fraction of ori_w.
    ys = (PRIOR_YS * (ori_h - cut) + cut) / ori_h * ori_h
    lanes = []
    for row in packed:
        if not row[0]:
            continue
        valid = np.flatnonzero(row[2 + NUM_OFFSETS :])[::-1]  # top to bottom
        if len(valid) <= 1:
            continue
        xs = row[2:][valid].astype(np.float64) * ori_w
        lanes.append(Lane(np.stack([xs, ys[valid]], axis=1), float(row[1])))
    return lanes
