"""Lane NMS in vectorised PyTorch, keeping exactly the lanes the reference CUDA kernel keeps.

The reference (``nms_kernel.cu`` of CLRNet, LaneATT and CLRerNet) works on rows of 77 floats
``[logit0, logit1, start_y, start_x, length, x_0 .. x_71]`` (length in rows, xs in pixels of the 800-wide
input; ``lane_format.NMS_*``). Two lanes overlap when their common rows are at less than
``overlap_threshold`` pixels mean horizontal distance. Lanes are visited by descending score; a lane is kept
when no kept lane overlaps it, until ``top_k`` lanes are kept.

The pairwise test reproduces the kernel's C arithmetic (MODEL.md 5.2):

* ``start = (int)(start_y * 71 + 0.5)``: float32 product, double ``+ 0.5``, truncation toward zero;
* ``end = (int)(start + length - 1 + 0.5 - (length - 1 < 0))`` with the same float / double / truncation mix;
  the common rows are ``max(starts) .. min(ends, 71)`` and lanes whose rows are disjoint never overlap;
* the distance is a float32 sum accumulated column by column, in the kernel's order, over columns
  ``(unsigned char)(5 + start) .. 5 + end`` of the 77-wide row (a start row in -5..-1 therefore also sums the
  header columns, a lower one wraps and sums nothing, as in the kernel);
* ``overlap = dist < threshold * (end - start + 1)`` in float32.

Ties in score are broken by index (stable descending sort), the rule a filtered subset keeps too.
``top_k < 1`` keeps every non-overlapping lane, like the kernel, whose counter never equals a non-positive k.
"""

import numpy as np
import torch

from clrkdnet_core.lane_format import (
    NMS_FIRST_X,
    NMS_LENGTH,
    NMS_ROW_WIDTH,
    NUM_OFFSETS,
    NUM_STRIPS,
    START_Y,
)


def kernel_row_limits(lanes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """First and last row of every lane as the kernel rounds them: two int64 tensors of ``lanes.shape[:-1]``.

    Casts to int saturate to the int32 range like the GPU's float-to-int conversion.
    """
    start_y = lanes[..., START_Y].float()
    length = lanes[..., NMS_LENGTH].float()
    int32 = torch.iinfo(torch.int32)
    start = torch.trunc((start_y * NUM_STRIPS).double() + 0.5).clamp(int32.min, int32.max)
    end_sum = (start.float() + length) - 1.0
    end = torch.trunc(end_sum.double() + 0.5 - (length - 1.0 < 0).double()).clamp(int32.min, int32.max)
    return start.long(), end.long()


def _overlaps(
    a: torch.Tensor,
    a_rows: tuple[torch.Tensor, torch.Tensor],
    b: torch.Tensor,
    b_rows: tuple[torch.Tensor, torch.Tensor],
    overlap_threshold: float,
) -> torch.Tensor:
    """The kernel's ``devIoU`` of lanes ``a`` and ``b``: broadcasting (..., 77) rows and their row limits."""
    common_start = torch.maximum(a_rows[0], b_rows[0])
    common_end = torch.minimum(a_rows[1], b_rows[1]).clamp(max=NUM_OFFSETS - 1)
    first_col = (common_start + NMS_FIRST_X) & 0xFF  # the kernel's loop index is an unsigned char
    last_col = common_end + NMS_FIRST_X

    col = torch.arange(NMS_ROW_WIDTH, device=a.device)
    outside = (col < first_col[..., None]) | (col > last_col[..., None])
    # Adding 0.0 outside the kernel's column range leaves its float32 sum unchanged.
    dist = _sum_in_order((a - b).abs_().masked_fill_(outside, 0.0))
    limit = (common_end - common_start + 1).float() * float(np.float32(overlap_threshold))
    return (common_end >= common_start) & (dist < limit)


def _sum_in_order(terms: torch.Tensor) -> torch.Tensor:
    """Float32 sum over the last axis, added left to right like the kernel's loop.

    Reductions that regroup the additions (or accumulate in double, as torch's CPU cumsum does) can flip
    decisions that sit on the threshold. numpy's add.accumulate is strictly sequential in float32, so the CPU
    takes it in one call; on other devices each column is added as one vectorised step.
    """
    if terms.device.type == "cpu":
        return torch.from_numpy(np.add.accumulate(terms.numpy(), axis=-1, dtype=np.float32)[..., -1].copy())
    columns = terms.movedim(-1, 0).contiguous()
    dist = torch.zeros_like(columns[0])
    for column in columns:
        dist += column
    return dist


def overlap_matrix(lanes: torch.Tensor, overlap_threshold: float) -> torch.Tensor:
    """(B, N, N) bool: whether lanes ``i`` and ``j`` of each image overlap under the kernel's rule.

    ``lanes`` is a (B, N, 77) tensor in the kernel's row layout; the diagonal is meaningless (never used).
    """
    lanes = lanes.float()
    start, end = kernel_row_limits(lanes)
    return _overlaps(
        lanes[:, :, None],
        (start[:, :, None], end[:, :, None]),
        lanes[:, None],
        (start[:, None], end[:, None]),
        overlap_threshold,
    )


def greedy_keep(
    sorted_lanes: torch.Tensor,
    eligible: torch.Tensor,
    overlap_threshold: float,
    top_k: int,
    full_matrix: bool | None = None,
) -> torch.Tensor:
    """Greedy pass over lanes sorted by score: (B, K) positions of the kept lanes, -1 where fewer were kept.

    ``sorted_lanes`` is (B, N, 77) and ``eligible`` (B, N) bool, both in visiting order. Each of the K steps
    keeps the first remaining lane and removes the lanes it overlaps. ``full_matrix`` (default: off the CPU)
    computes the whole overlap matrix at once, parallel work in few kernel launches, and reads nothing back
    to the host; otherwise only the rows of the kept lanes are computed, and on the CPU the pass stops once
    no lane remains. Both give the same lanes.
    """
    batch, n = eligible.shape
    device = eligible.device
    on_cpu = device.type == "cpu"
    sorted_lanes = sorted_lanes.float()
    rows = kernel_row_limits(sorted_lanes)
    full_matrix = not on_cpu if full_matrix is None else full_matrix
    overlap = overlap_matrix(sorted_lanes, overlap_threshold) if full_matrix else None
    steps = n if top_k < 1 else min(top_k, n)
    keep = torch.full((batch, steps), -1, dtype=torch.long, device=device)
    alive = eligible.clone()
    positions = torch.arange(n, device=device)
    for step in range(steps):
        found = alive.any(dim=1)
        if on_cpu and not found.any():
            break
        first = alive.to(torch.uint8).argmax(dim=1)  # argmax returns the first maximal position
        keep[:, step] = torch.where(found, first, -1)
        if overlap is not None:
            suppressed = torch.gather(overlap, 1, first.view(-1, 1, 1).expand(-1, 1, n)).squeeze(1)
        else:
            pick = first.view(-1, 1)
            chosen = torch.gather(sorted_lanes, 1, pick[..., None].expand(-1, 1, NMS_ROW_WIDTH))
            chosen_rows = (rows[0].gather(1, pick), rows[1].gather(1, pick))
            suppressed = _overlaps(chosen, chosen_rows, sorted_lanes, rows, overlap_threshold)
        alive &= ~suppressed & (positions != first[:, None])
    return keep


def lane_nms_batched(
    lanes: torch.Tensor,
    scores: torch.Tensor,
    eligible: torch.Tensor,
    overlap_threshold: float,
    top_k: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lane NMS of every image of a padded batch, without synchronising with the device.

    Args:
        lanes: (B, N, 77) rows in the kernel's layout.
        scores: (B, N) scores; lanes are visited by descending score, ties by index.
        eligible: (B, N) bool; lanes not eligible (below the score threshold, padding) are never kept.
        overlap_threshold: mean horizontal distance in pixels below which two lanes overlap (``nms_thres``).
        top_k: at most this many lanes are kept per image (all of them if ``top_k < 1``, like the kernel).

    Returns:
        ``keep`` (B, K) int64 indices into N in descending score order, padded with -1, and ``count`` (B,)
        int64, the number of kept lanes per image. K is ``top_k`` (N if ``top_k < 1``).
    """
    if lanes.ndim != 3 or lanes.shape[-1] != NMS_ROW_WIDTH:
        raise ValueError(f"lanes must have shape (B, N, {NMS_ROW_WIDTH}), got {tuple(lanes.shape)}")
    batch, n = scores.shape
    width = n if top_k < 1 else top_k
    keep = torch.full((batch, width), -1, dtype=torch.long, device=lanes.device)
    if batch == 0 or n == 0:
        return keep, torch.zeros(batch, dtype=torch.long, device=lanes.device)

    # Stable sorts: by score, then eligible first, so eligible lanes keep the order a filtered sort gives.
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    eligible_first = torch.sort(eligible.gather(1, order).byte(), dim=1, descending=True, stable=True).indices
    order = torch.gather(order, 1, eligible_first)
    sorted_eligible = eligible.gather(1, order)
    if lanes.device.type == "cpu":
        # Host reads are free on the CPU: drop the ineligible tail before the pairwise tests.
        candidates = int(sorted_eligible.sum(dim=1).max())
        order, sorted_eligible = order[:, :candidates], sorted_eligible[:, :candidates]
    sorted_lanes = torch.gather(lanes, 1, order[:, :, None].expand(-1, -1, NMS_ROW_WIDTH))

    kept_positions = greedy_keep(sorted_lanes, sorted_eligible, overlap_threshold, top_k)
    kept = kept_positions >= 0
    indices = torch.where(kept, torch.gather(order, 1, kept_positions.clamp(min=0)), -1)
    keep[:, : indices.shape[1]] = indices
    return keep, kept.sum(dim=1)


def lane_nms(lanes: torch.Tensor, scores: torch.Tensor, overlap_threshold: float, top_k: int) -> torch.Tensor:
    """Lane NMS of one image, as the reference CUDA kernel.

    Args:
        lanes: (N, 77) rows ``[logit0, logit1, start_y, start_x, length (rows), 72 xs (px of the 800-wide
            input)]``, on any device.
        scores: (N,) scores.
        overlap_threshold: ``nms_thres``, in pixels (50 for the official configs).
        top_k: maximum number of lanes kept (``max_lanes``).

    Returns:
        int64 indices into ``lanes`` of the kept lanes, by descending score. Returning a variable-length
        tensor reads the count back from the device once; :func:`lane_nms_batched` does not.
    """
    if lanes.ndim != 2 or scores.shape != lanes.shape[:1]:
        raise ValueError(
            f"expected lanes (N, {NMS_ROW_WIDTH}) and scores (N,), "
            f"got {tuple(lanes.shape)} and {tuple(scores.shape)}"
        )
    eligible = torch.ones(scores.shape, dtype=torch.bool, device=scores.device)
    keep, count = lane_nms_batched(lanes[None], scores[None], eligible[None], overlap_threshold, top_k)
    return keep[0, : int(count[0])]
