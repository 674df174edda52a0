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


def common_shift(
    track_offsets: Sequence[float],
    detection_offsets: Sequence[float],
    shift_std: float,
    residual_std: float,
    outlier_sigmas: float = 3.0,
    ambiguity: float = 2.0,
) -> float | None:
    """The lateral shift shared by all tracks that best lays them onto the detections (0 when none fits,
    None when two shifts a lane apart fit alike).

    After a long gap between processed frames the ego motion's error moves every predicted lane alike: the
    lanes keep their spacing while the whole pattern is off by up to a metre or more, beyond a per-lane gate
    but still well inside half a lane width. Each detection's nearest shifted track contributes its squared
    residual in ``residual_std`` units, truncated at ``outlier_sigmas`` (an unmatched detection costs that
    much), and the shift its prior ``(shift / shift_std)^2``. The candidates are every track-detection gap
    within ``outlier_sigmas * shift_std`` and 0; the best is refined as the mean residual of its inliers.
    Lanes are a periodic pattern: a shift by one lane width matches all but the outermost lanes, so the prior
    and the pattern's ends decide, and a shift far beyond ``shift_std`` is never taken. When another shift,
    which pairs the lanes differently, costs less than ``ambiguity`` more than the best (a likelihood ratio
    under e), the data cannot tell which lane is which: None, and the caller claims no identity across the
    gap.
    """
    tracks = np.asarray(track_offsets, dtype=np.float64)
    detections = np.asarray(detection_offsets, dtype=np.float64)
    tracks, detections = tracks[np.isfinite(tracks)], detections[np.isfinite(detections)]
    if tracks.size == 0 or detections.size == 0 or not shift_std > 0.0:
        return 0.0
    gaps = detections[:, None] - tracks[None, :]  # (D, T)
    candidates = np.concatenate([[0.0], gaps[np.abs(gaps) <= outlier_sigmas * shift_std]])
    # (C, D, T) residuals of each detection to each shifted track: a few lanes, a few dozen candidates.
    residuals = np.abs(gaps[None, :, :] - candidates[:, None, None]).min(axis=2) / residual_std
    costs = np.minimum(residuals, outlier_sigmas) ** 2
    totals = costs.sum(axis=1) + (candidates / shift_std) ** 2
    order = np.argsort(totals)
    best = candidates[order[0]]
    rivals = np.abs(candidates[order] - best) > 2.0 * outlier_sigmas * residual_std
    if rivals.any() and totals[order][rivals][0] - totals[order[0]] < ambiguity:
        return None
    shifted = np.abs(gaps - best)
    nearest = shifted.argmin(axis=1)
    inliers = shifted[np.arange(len(detections)), nearest] <= outlier_sigmas * residual_std
    if not inliers.any():
        return 0.0
    return float(np.mean(gaps[np.arange(len(detections)), nearest][inliers]))
