"""Lane NMS and post-processing on the GPU with Triton: the same lanes as ``postprocess.nms.lane_nms``.

Two kernels replace the reference CUDA extension ``nms_kernel.cu`` (users failed to build it, MODEL.md 9):

1. ``_overlap_kernel`` fills the (N, N) overlap matrix of the lanes sorted by score, with the kernel's exact
   arithmetic: float32 sums of |x_a - x_b| accumulated row by row, the start/end rounding of the C code, the
   unsigned-char loop index of the reference (a start row below -5 wraps and sums nothing), and "disjoint rows
   never overlap";
2. ``_greedy_kernel`` walks the sorted lanes once per image and keeps a lane when no kept lane overlaps it,
   up to ``top_k``, writing kept positions into a padded tensor, so no host synchronisation is needed.

Both work on a padded batch of images at once ((B, N, 77) with an ``eligible`` mask), as the all-on-GPU
post-processing below needs. Under ``TRITON_INTERPRET=1`` the kernels run on CPU tensors, which is how the
tests check them without a GPU.
"""

import torch
import triton
import triton.language as tl

from clrkdnet_core.lane_format import (
    NMS_FIRST_X,
    NMS_LENGTH,
    NMS_ROW_WIDTH,
    NMS_XS,
    NUM_OFFSETS,
    START_Y,
)
from clrkdnet_core.postprocess import nms
from clrkdnet_core.postprocess.nms import kernel_row_limits


@triton.jit
def _overlap_kernel(
    lanes_ptr,
    start_ptr,
    end_ptr,
    overlap_ptr,
    n,
    threshold,
    ROW: tl.constexpr,
    FIRST_X: tl.constexpr,
    LAST_ROW: tl.constexpr,
    BLOCK_I: tl.constexpr,
    BLOCK_J: tl.constexpr,
):
    image = tl.program_id(0)
    rows_i = tl.program_id(1) * BLOCK_I + tl.arange(0, BLOCK_I)
    rows_j = tl.program_id(2) * BLOCK_J + tl.arange(0, BLOCK_J)
    in_i = rows_i < n
    in_j = rows_j < n
    base = image * n
    start_a = tl.load(start_ptr + base + rows_i, mask=in_i, other=0)
    end_a = tl.load(end_ptr + base + rows_i, mask=in_i, other=0)
    start_b = tl.load(start_ptr + base + rows_j, mask=in_j, other=0)
    end_b = tl.load(end_ptr + base + rows_j, mask=in_j, other=0)
    start = tl.maximum(start_a[:, None], start_b[None, :])
    end = tl.minimum(tl.minimum(end_a[:, None], end_b[None, :]), LAST_ROW)
    # The reference loops `for (unsigned char i = 5 + start; i <= 5 + end; ++i)` over the 77-wide row.
    first_col = (start + FIRST_X) & 255
    last_col = end + FIRST_X
    lane_a = lanes_ptr + (base + rows_i) * ROW
    lane_b = lanes_ptr + (base + rows_j) * ROW
    dist = tl.zeros((BLOCK_I, BLOCK_J), dtype=tl.float32)
    for col in range(ROW):
        x_a = tl.load(lane_a + col, mask=in_i, other=0.0)
        x_b = tl.load(lane_b + col, mask=in_j, other=0.0)
        in_range = (col >= first_col) & (col <= last_col)
        # Adding 0.0 outside the range leaves the float32 sum bit-identical to the kernel's sequential loop.
        dist += tl.where(in_range, tl.abs(x_a[:, None] - x_b[None, :]), 0.0)
    limit = threshold * (end - start + 1).to(tl.float32)
    overlap = (end >= start) & (dist < limit)
    out = overlap_ptr + base * n + rows_i[:, None] * n + rows_j[None, :]
    tl.store(out, overlap.to(tl.int8), mask=in_i[:, None] & in_j[None, :])


@triton.jit
def _greedy_kernel(
    overlap_ptr, eligible_ptr, num_eligible_ptr, keep_ptr, count_ptr, n, top_k, BLOCK: tl.constexpr
):
    image = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    in_range = cols < n
    removed = tl.load(eligible_ptr + image * n + cols, mask=in_range, other=0) == 0
    count = tl.zeros((), dtype=tl.int32)
    # Eligible lanes come first in the visiting order; the ineligible tail can never be kept.
    for i in range(tl.load(num_eligible_ptr + image)):
        removed_i = tl.sum(tl.where(cols == i, removed.to(tl.int32), 0))
        take = (removed_i == 0) & (count < top_k)
        row = tl.load(overlap_ptr + (image * n + i) * n + cols, mask=in_range, other=0) != 0
        removed = removed | (row & take)
        tl.store(keep_ptr + image * top_k + count, i, mask=take)
        count += take.to(tl.int32)
    tl.store(count_ptr + image, count)


def overlap_matrix(lanes: torch.Tensor, overlap_threshold: float) -> torch.Tensor:
    """(B, N, N) bool matrix: lanes ``i`` and ``j`` of an image overlap under the kernel's rule.

    ``lanes`` is a (B, N, 77) float32 tensor in the kernel's row layout.
    """
    lanes = lanes.float().contiguous()
    batch, n, width = lanes.shape
    if width != NMS_ROW_WIDTH:
        raise ValueError(f"lanes must have {NMS_ROW_WIDTH} columns, got {width}")
    start, end = (limit.to(torch.int32).contiguous() for limit in kernel_row_limits(lanes))
    overlap = torch.empty((batch, n, n), dtype=torch.int8, device=lanes.device)
    if batch == 0 or n == 0:
        return overlap.bool()
    block = 32
    grid = (batch, triton.cdiv(n, block), triton.cdiv(n, block))
    _overlap_kernel[grid](
        lanes,
        start,
        end,
        overlap,
        n,
        float(overlap_threshold),
        ROW=NMS_ROW_WIDTH,
        FIRST_X=NMS_FIRST_X,
        LAST_ROW=NUM_OFFSETS - 1,
        BLOCK_I=block,
        BLOCK_J=block,
    )
    return overlap.bool()


def lane_nms_batched(
    lanes: torch.Tensor, scores: torch.Tensor, eligible: torch.Tensor, overlap_threshold: float, top_k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lane NMS of every image of a padded batch on the device: same contract as ``nms.lane_nms_batched``.

    Args:
        lanes: (B, N, 77) rows in the kernel's layout.
        scores: (B, N) scores; lanes are visited by descending score, ties by index.
        eligible: (B, N) bool; lanes not eligible (below the score threshold, padding) are never kept.
        overlap_threshold: mean horizontal distance in pixels below which two lanes overlap (``nms_thres``).
        top_k: at most this many lanes are kept per image (all of them if ``top_k < 1``, like the kernel).

    Returns:
        ``keep`` (B, K) int64 indices into N in descending score order, padded with -1, and ``count`` (B,)
        int64. K is ``top_k`` (N if ``top_k < 1``).
    """
    if lanes.ndim != 3 or lanes.shape[-1] != NMS_ROW_WIDTH:
        raise ValueError(f"lanes must have shape (B, N, {NMS_ROW_WIDTH}), got {tuple(lanes.shape)}")
    batch, n = scores.shape
    width = n if top_k < 1 else top_k
    keep = torch.full((batch, width), -1, dtype=torch.long, device=lanes.device)
    count = torch.zeros(batch, dtype=torch.int32, device=lanes.device)
    if batch == 0 or n == 0 or width == 0:
        return keep, count.long()
    # The visiting order of nms.lane_nms_batched: by score, then eligible lanes first, both sorts stable.
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    order = torch.gather(
        order, 1, torch.sort(eligible.gather(1, order).byte(), dim=1, descending=True, stable=True).indices
    )
    sorted_lanes = torch.gather(lanes.float(), 1, order[..., None].expand(-1, -1, NMS_ROW_WIDTH)).contiguous()
    sorted_eligible = eligible.gather(1, order).to(torch.int8).contiguous()
    overlap = overlap_matrix(sorted_lanes, overlap_threshold).to(torch.int8)
    kept_positions = torch.full((batch, width), -1, dtype=torch.int32, device=lanes.device)
    block = max(16, triton.next_power_of_2(n))
    num_eligible = sorted_eligible.sum(dim=1, dtype=torch.int32)
    _greedy_kernel[(batch,)](
        overlap, sorted_eligible, num_eligible, kept_positions, count, n, width, BLOCK=block
    )
    kept = kept_positions >= 0
    keep = torch.where(kept, torch.gather(order, 1, kept_positions.clamp(min=0).long()), keep)
    return keep, count.long()


def triton_lane_nms(
    lanes: torch.Tensor, scores: torch.Tensor, overlap_threshold: float, top_k: int
) -> torch.Tensor:
    """Drop-in replacement of ``lane_nms`` for one image: kept indices into ``lanes``, by descending score.

    Returning a variable-length tensor needs one host synchronisation (the count); the batched
    :func:`lane_nms_batched` avoids it.
    """
    eligible = torch.ones(scores.shape, dtype=torch.bool, device=scores.device)
    keep, count = lane_nms_batched(lanes[None], scores[None], eligible[None], overlap_threshold, top_k)
    return keep[0, : int(count[0])]


def check_on(device: torch.device) -> None:
    """Compile the kernels for ``device`` and compare them with the PyTorch NMS on a fixed random batch.

    Raises whatever Triton raises when it cannot compile for this GPU, or AssertionError when the kept lanes
    differ; callers fall back to the PyTorch NMS then. Doing this once up front also keeps the compilation
    out of the first frame's latency.
    """
    generator = torch.Generator().manual_seed(0)
    lanes = torch.rand(2, 64, NMS_ROW_WIDTH, generator=generator)
    lanes[..., START_Y] *= 1.1
    lanes[..., NMS_LENGTH] *= NUM_OFFSETS
    lanes[..., NMS_XS] = lanes[..., NMS_XS] * 60 + torch.rand(2, 64, 1, generator=generator) * 700
    scores = torch.rand(2, 64, generator=generator)
    eligible = scores > 0.3
    expected = nms.lane_nms_batched(lanes, scores, eligible, 50.0, 4)
    got = lane_nms_batched(lanes.to(device), scores.to(device), eligible.to(device), 50.0, 4)
    for a, b in zip(expected, got, strict=True):
        if not torch.equal(a, b.cpu()):
            raise AssertionError(f"Triton lane NMS kept {b.tolist()}, PyTorch kept {a.tolist()}")
