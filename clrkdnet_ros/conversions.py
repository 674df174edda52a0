"""One frame's :class:`~clrkdnet_core.perception.FramePerception` -> ``LaneArray`` and ``EgoLane``.

The perception (ordering, ids, positions, ground points and curves, the ego lane's state) is the core's
:class:`~clrkdnet_core.perception.LanePerception`; this module only fills the messages: polylines bottom to
top as ``Lane.msg`` asks, NaN curves when there is no ground projection, ``EgoLane`` field by field.
"""

import array

import numpy as np
from clrkdnet_msgs.msg import EgoLane, LaneArray
from clrkdnet_msgs.msg import Lane as LaneMsg
from geometry_msgs.msg import Point32
from std_msgs.msg import Header

from clrkdnet_core.perception import FramePerception, PerceivedLane
from clrkdnet_core.tracking.ego_lane import EgoLaneState

_NAN_POLY = np.full(4, np.nan, dtype=np.float32)
# EgoLane's fields but the header, with the Python type each is set from (EgoLaneState has the same names).
_CASTS = {"boolean": bool, "float": float, "double": float}
EGO_FIELDS = {
    name: _CASTS.get(kind, int)
    for name, kind in EgoLane.get_fields_and_field_types().items()
    if name != "header"
}


def lane_to_msg(perceived: PerceivedLane) -> LaneMsg:
    """One lane: its image polyline reversed to bottom -> top, and its ground points and curve when known."""
    lane = perceived.lane
    msg = LaneMsg(
        id=int(perceived.track_id),
        age=int(perceived.age),
        measured=bool(perceived.measured),
        existence_probability=float(perceived.existence),
        score=float(lane.score),
        position=int(perceived.position),
        type=LaneMsg.TYPE_UNKNOWN,
    )
    # Filled from bytes: rclpy checks every element of a Python list, an array.array it takes as is.
    msg.u = array.array("f", np.ascontiguousarray(lane.points[::-1, 0], dtype=np.float32).tobytes())
    msg.v = array.array("f", np.ascontiguousarray(lane.points[::-1, 1], dtype=np.float32).tobytes())
    if perceived.ground_points is not None:
        msg.ground_points = _points32(perceived.ground_points)
    curve = perceived.curve
    if curve is None:
        msg.ground_poly = _NAN_POLY
        msg.x_min = msg.x_max = float("nan")
    else:
        msg.ground_poly = curve.coefficients.astype(np.float32)
        msg.x_min, msg.x_max = curve.x_min, curve.x_max
    return msg


_CHECK_FIELDS = Point32()._check_fields


def _points32(points: np.ndarray) -> list[Point32]:
    """``Point32(x, y, 0)`` per row of ``points`` (N, >= 2), the same messages as the keyword constructor
    builds, in a sixth of its time: its per-instance argument checks and property setters cost about 3 us a
    point, 0.5 ms a frame of five lanes."""
    new = Point32.__new__
    out = []
    for x, y in np.asarray(points, dtype=np.float64)[:, :2].tolist():
        point = new(Point32)
        point._check_fields = _CHECK_FIELDS
        point._x, point._y, point._z = x, y, 0.0
        out.append(point)
    return out


def frame_to_msg(
    frame: FramePerception, header: Header, image_width: int, image_height: int, ground_frame_id: str = ""
) -> LaneArray:
    """The ``LaneArray`` of one image: the header copied, the lanes left to right as perceived.

    ``ground_frame_id`` names the frame of the ground points; pass "" when the frame had no ground projection.
    """
    return LaneArray(
        header=header,
        image_width=image_width,
        image_height=image_height,
        ground_frame_id=ground_frame_id,
        lanes=[lane_to_msg(lane) for lane in frame.lanes],
    )


def ego_lane_to_msg(ego: EgoLaneState, header: Header) -> EgoLane:
    """``EgoLane`` with ``header`` (the image's stamp, the ground frame) and every field of ``ego``."""
    msg = EgoLane(header=header)
    for name, cast in EGO_FIELDS.items():
        setattr(msg, name, cast(getattr(ego, name)))
    return msg
