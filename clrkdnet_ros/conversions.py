"""Core :class:`~clrkdnet_core.lane.Lane` lists -> ``clrkdnet_msgs/LaneArray``.

Lanes are sorted left to right by where they meet the bottom image row and get a signed position relative to
the vehicle: the nearest boundary left of the centre column is ``EGO_LEFT`` (-1), the next ``ADJACENT_LEFT``
(-2) and so on; right of it +1, +2, +3. The centre column is the principal point ``cx`` when the camera is
calibrated (with the mounting model of :mod:`clrkdnet_ros.ground_projection` the vehicle's centre line
projects onto that column), else the middle of the image.
"""

import array
from collections.abc import Sequence

import numpy as np
from clrkdnet_msgs.msg import Lane as LaneMsg
from clrkdnet_msgs.msg import LaneArray
from geometry_msgs.msg import Point32
from std_msgs.msg import Header

from clrkdnet_core.lane import Lane
from clrkdnet_ros.ground_projection import GroundProjection

# Number of lowest points used to extrapolate a lane down to the bottom row.
_EXTRAPOLATION_POINTS = 5
_POSITIONS_PER_SIDE = 3


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


def assign_positions(bottom_xs: Sequence[float], center_x: float) -> list[int]:
    """Signed ego-relative position of each lane from its bottom-row column (see the module docstring).

    Lanes farther out than the third on a side get ``POSITION_UNKNOWN``.
    """
    xs = np.asarray(bottom_xs, dtype=np.float64)
    positions = [LaneMsg.POSITION_UNKNOWN] * len(xs)
    left = [i for i in np.argsort(-xs) if xs[i] < center_x]  # nearest to the centre first
    right = [i for i in np.argsort(xs) if xs[i] >= center_x]
    for rank, i in enumerate(left[:_POSITIONS_PER_SIDE], start=1):
        positions[i] = -rank
    for rank, i in enumerate(right[:_POSITIONS_PER_SIDE], start=1):
        positions[i] = rank
    return positions


def fit_ground_polynomial(ground_xy: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Fit y = c0 + c1 x + c2 x^2 + c3 x^3 to ground points (N,2); returns (c0..c3, x_min, x_max).

    Fewer than four points get a lower-degree fit (higher coefficients 0); fewer than two give NaNs.
    """
    if len(ground_xy) < 2:
        return np.full(4, np.nan, dtype=np.float32), float("nan"), float("nan")
    degree = min(3, len(ground_xy) - 1)
    coefficients = np.zeros(4, dtype=np.float32)
    # polyfit returns the highest power first; the message stores c0 first.
    coefficients[: degree + 1] = np.polyfit(ground_xy[:, 0], ground_xy[:, 1], degree)[::-1]
    return coefficients, float(ground_xy[:, 0].min()), float(ground_xy[:, 0].max())


def lane_to_msg(lane: Lane, lane_id: int, position: int, projection: GroundProjection | None) -> LaneMsg:
    """One lane as a message: polyline reversed to bottom->top; ground points and fit with a projection."""
    u = np.ascontiguousarray(lane.points[::-1, 0], dtype=np.float32)
    v = np.ascontiguousarray(lane.points[::-1, 1], dtype=np.float32)
    msg = LaneMsg(id=lane_id, score=float(lane.score), position=position, type=LaneMsg.TYPE_UNKNOWN)
    msg.u = array.array("f", u.tobytes())
    msg.v = array.array("f", v.tobytes())
    if projection is None:
        msg.ground_poly = np.full(4, np.nan, dtype=np.float32)
        msg.x_min = msg.x_max = float("nan")
        return msg
    ground = projection.project(u, v)
    ground = ground[np.isfinite(ground[:, 0])]
    msg.ground_points = [Point32(x=float(x), y=float(y), z=0.0) for x, y, _ in ground]
    msg.ground_poly, msg.x_min, msg.x_max = fit_ground_polynomial(ground[:, :2])
    return msg


def lanes_to_msg(
    lanes: Sequence[Lane],
    header: Header,
    image_width: int,
    image_height: int,
    projection: GroundProjection | None = None,
    ground_frame_id: str = "",
) -> LaneArray:
    """The ``LaneArray`` of one image: header copied, lanes sorted left to right with ids and positions.

    ``ground_frame_id`` is written only when ``projection`` is given (it names the frame of
    ``ground_points``).
    """
    lanes = [lane for lane in lanes if len(lane.points) > 0]
    xs = [bottom_x(lane.points, image_height) for lane in lanes]
    order = np.argsort(xs, kind="stable")
    center_x = projection.intrinsics.cx if projection is not None else image_width / 2.0
    positions = assign_positions([xs[i] for i in order], center_x)
    return LaneArray(
        header=header,
        image_width=image_width,
        image_height=image_height,
        ground_frame_id=ground_frame_id if projection is not None else "",
        lanes=[
            lane_to_msg(lanes[i], lane_id, position, projection)
            for lane_id, (i, position) in enumerate(zip(order, positions, strict=True))
        ],
    )
