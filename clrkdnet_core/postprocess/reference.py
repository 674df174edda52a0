"""The reference implementation's decoding, one image and one lane at a time (test oracle and baseline).

A plain transcription of the official code path: ``get_lanes`` loops over the images, the CUDA NMS kernel's
pairwise test and greedy pass are written here as scalar float32 code (``kernel_overlap``), and
``predictions_to_pred`` converts each kept prediction with numpy slicing exactly as the official code does.
:mod:`clrkdnet_core.postprocess.nms` and :mod:`clrkdnet_core.postprocess.decode` must agree with it.
"""

import numpy as np
import torch

from clrkdnet_core.config import TestConfig
from clrkdnet_core.geometry import ImageGeometry
from clrkdnet_core.lane import Lane
from clrkdnet_core.lane_format import (
    LENGTH,
    LOGITS,
    NMS_FIRST_X,
    NMS_LENGTH,
    NUM_OFFSETS,
    NUM_STRIPS,
    POSITIVE_LOGIT,
    START_Y,
    XS,
)
from clrkdnet_core.postprocess.decode import PRIOR_YS, nms_rows

_F32 = np.float32
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def _c_int(value: float) -> int:
    """C's (int) cast of a double on the GPU: truncation toward zero, saturating to the int32 range."""
    return min(max(int(value), _INT32_MIN), _INT32_MAX)


def _kernel_rows(lane: np.ndarray) -> tuple[int, int]:
    """First and last row of a 77-wide float32 row, with the kernel's float / double / truncation mix."""
    start = _c_int(float(_F32(lane[START_Y] * _F32(NUM_STRIPS))) + 0.5)
    length = lane[NMS_LENGTH]
    end = _c_int(float(_F32(_F32(start) + length) - _F32(1)) + 0.5 - float(_F32(length - _F32(1)) < 0))
    return start, end


def kernel_overlap(a: np.ndarray, b: np.ndarray, threshold: float) -> bool:
    """``devIoU`` of the CUDA kernel for two 77-wide float32 rows: True when the lanes overlap."""
    (start_a, end_a), (start_b, end_b) = _kernel_rows(a), _kernel_rows(b)
    start = max(start_a, start_b)
    end = min(end_a, end_b, NUM_OFFSETS - 1)
    if end < start:
        return False
    # for (unsigned char i = 5 + start; i <= 5 + end; ++i) dist += |a[i] - b[i]|, accumulated in float32.
    first, last = (NMS_FIRST_X + start) % 256, NMS_FIRST_X + end
    dist = _F32(0)
    if first <= last:
        # add.accumulate adds strictly left to right in float32, like the kernel's loop.
        dist = np.add.accumulate(np.abs(a[first : last + 1] - b[first : last + 1]), dtype=_F32)[-1]
    return bool(dist < _F32(threshold) * _F32(end - start + 1))


def reference_lane_nms(
    lanes: np.ndarray, scores: np.ndarray, overlap_threshold: float, top_k: int
) -> np.ndarray:
    """The kernel's NMS one lane at a time: indices of the kept rows of ``lanes`` (N, 77), best first."""
    lanes = np.asarray(lanes, dtype=_F32)
    order = np.argsort(-np.asarray(scores, dtype=_F32), kind="stable")
    removed = np.zeros(len(order), dtype=bool)
    keep: list[int] = []
    for position, index in enumerate(order):
        if removed[position]:
            continue
        keep.append(int(index))
        if len(keep) == top_k:
            break
        for later in range(position + 1, len(order)):
            if not removed[later] and kernel_overlap(lanes[index], lanes[order[later]], overlap_threshold):
                removed[later] = True
    return np.array(keep, dtype=np.int64)


def reference_decode(
    pred: torch.Tensor,
    geometry: ImageGeometry,
    test: TestConfig,
) -> list[list[Lane]]:
    """Decode (B, P, 78) predictions like the official ``get_lanes`` + ``predictions_to_pred``, on the CPU."""
    decoded = []
    for predictions in pred.detach().float().cpu():
        scores = torch.softmax(predictions[:, LOGITS], dim=1)[:, POSITIVE_LOGIT]
        above = scores >= test.conf_threshold
        predictions, scores = predictions[above], scores[above]
        keep = torch.from_numpy(
            reference_lane_nms(
                nms_rows(predictions, geometry.img_w).numpy(), scores.numpy(), test.nms_thres, test.max_lanes
            )
        )
        predictions, scores = predictions[keep], scores[keep]
        predictions[:, LENGTH] = torch.round(predictions[:, LENGTH] * NUM_STRIPS)
        decoded.append(
            [
                lane
                for prediction, score in zip(predictions.numpy(), scores.tolist(), strict=True)
                if (lane := _prediction_to_lane(prediction, score, geometry)) is not None
            ]
        )
    return decoded


def _prediction_to_lane(prediction: np.ndarray, score: float, geometry: ImageGeometry) -> Lane | None:
    """``predictions_to_pred`` for one prediction, in original-image pixels; None for lanes of <= 1 point."""
    lane_xs = prediction[XS].copy()
    start = min(max(0, round(float(prediction[START_Y]) * NUM_STRIPS)), NUM_STRIPS)
    length = round(float(prediction[LENGTH]))
    end = min(start + length - 1, NUM_OFFSETS - 1)
    inside = (lane_xs[:start] >= 0.0) & (lane_xs[:start] <= 1.0)
    mask = ~(inside[::-1].cumprod()[::-1].astype(bool))
    lane_xs[end + 1 :] = -2
    lane_xs[:start][mask] = -2
    lane_ys = PRIOR_YS[lane_xs >= 0]
    lane_xs = lane_xs[lane_xs >= 0]
    lane_xs = lane_xs[::-1].astype(np.float64)
    lane_ys = lane_ys[::-1]
    ori_w, ori_h, cut = geometry.ori_img_w, geometry.ori_img_h, geometry.cut_height
    lane_ys = (lane_ys * (ori_h - cut) + cut) / ori_h
    if len(lane_xs) <= 1:
        return None
    return Lane(np.stack([lane_xs * ori_w, lane_ys * ori_h], axis=1), score)
