"""Detections to tracks by lateral gap: the optimal assignment, gated, with the left-to-right order kept."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment


def associate(
    track_offsets: Sequence[float], detection_offsets: Sequence[float], max_gap: float
) -> list[tuple[int, int]]:
    """Pairs (track index, detection index) minimising the summed squared lateral gaps.

    Gaps above ``max_gap`` are refused. Squared gaps on a line make the optimum order-preserving (a crossing
    pair can always be uncrossed without a larger cost or a larger gap), and the matched sides are paired in
    sorted order at the end so that ties cannot cross either: a lane never swaps with its neighbour.
    """
    tracks = np.asarray(track_offsets, dtype=np.float64)
    detections = np.asarray(detection_offsets, dtype=np.float64)
    if tracks.size == 0 or detections.size == 0:
        return []
    gaps = np.abs(tracks[:, None] - detections[None, :])
    allowed = gaps <= max_gap  # also False for NaN offsets
    # A refused pair costs more than any allowed one, so the solver only takes it when nothing else is left;
    # it is then dropped.
    refused_cost = 2.0 * max_gap**2 + 1.0
    cost = np.where(allowed, gaps**2, refused_cost)
    rows, cols = linear_sum_assignment(cost)
    keep = allowed[rows, cols]
    rows, cols = rows[keep], cols[keep]
    sorted_rows = rows[np.argsort(tracks[rows], kind="stable")]
    sorted_cols = cols[np.argsort(detections[cols], kind="stable")]
    return sorted(zip(sorted_rows.tolist(), sorted_cols.tolist(), strict=True))
