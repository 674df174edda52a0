"""Signed ego-relative position classes of lane boundaries (Lane.msg's POSITION_* values), the one copy.

The nearest boundary left of the vehicle is ``EGO_LEFT`` (-1), the next ``ADJACENT_LEFT`` (-2) and so on;
right of it +1, +2, +3; farther out ``POSITION_UNKNOWN`` (0). Without a ground projection the lanes are
compared where they meet the bottom image row, against the principal point's column (the vehicle's centre
line projects onto it when the camera looks straight ahead) or the middle of the image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

POSITION_UNKNOWN = 0
EGO_LEFT = -1
EGO_RIGHT = 1
POSITIONS_PER_SIDE = 3

# Number of lowest points used to extrapolate a lane down to the bottom row.
_EXTRAPOLATION_POINTS = 5


def bottom_x(points: np.ndarray, image_height: int) -> float:
    """Column where a lane (points (N,2) x,y, top to bottom) meets the bottom image row.

    Lanes often end above the bottom edge; the straight line through their lowest points is extended down to
    the last row so that lanes ending at different heights are compared at the same row.
    """
    lowest = points[np.argsort(points[:, 1])[-_EXTRAPOLATION_POINTS:]]
    if len(lowest) < 2 or np.ptp(lowest[:, 1]) < 1.0:
        return float(lowest[-1, 0])
    slope, intercept = np.polyfit(lowest[:, 1], lowest[:, 0], 1)
    return float(slope * (image_height - 1) + intercept)


def assign_positions(
    bottom_xs: Sequence[float], center_x: float, left: Sequence[bool] | None = None
) -> list[int]:
    """Signed position of each lane from a coordinate growing to the right (an image column, or -y on the
    ground) against the vehicle's ``center_x``; lanes farther out than the third on a side get 0.

    ``left`` overrides which side each lane is on (the tracker holds a lane's side for a moment after it
    crossed, so that a lane ridden on does not flicker between EGO_LEFT and EGO_RIGHT).
    """
    xs = np.asarray(bottom_xs, dtype=np.float64)
    is_left = xs < center_x if left is None else np.asarray(left, dtype=bool)
    positions = [POSITION_UNKNOWN] * len(xs)
    left_lanes = [i for i in np.argsort(-xs) if is_left[i]]  # nearest to the centre first
    right_lanes = [i for i in np.argsort(xs) if not is_left[i]]
    for rank, i in enumerate(left_lanes[:POSITIONS_PER_SIDE], start=1):
        positions[i] = -rank
    for rank, i in enumerate(right_lanes[:POSITIONS_PER_SIDE], start=1):
        positions[i] = rank
    return positions
