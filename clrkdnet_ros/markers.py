"""``LaneArray`` -> ``visualization_msgs/MarkerArray`` for RViz.

Each lane is a LINE_STRIP (namespace ``lanes``) with its id as a text label at its near end (``lane_ids``; a
predicted lane's label ends in "?"), and the ego lane's centre line is one more strip (``ego_centre``, on the
ground only). One DELETEALL comes first so that lanes of the previous frame never linger; a lifetime makes
them disappear when the node stops publishing.

* With a flat-ground projection (``LaneArray.ground_frame_id`` set) the strips are the lanes'
  ``ground_points`` in that frame, in metres.
* Otherwise they lie in the image plane 1 m in front of the camera, in the image's own (optical) frame: with
  ``camera_info`` each pixel is placed on its true viewing ray, so the strips overlay the camera image when
  RViz looks through the camera; without it pixels are centred and scaled by 1/image width (the image spans 1
  m). These are not metric road positions.
"""

import numpy as np
from clrkdnet_msgs.msg import Lane as LaneMsg
from clrkdnet_msgs.msg import LaneArray
from geometry_msgs.msg import Point
from rclpy.duration import Duration
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from clrkdnet_core.camera_model import CameraIntrinsics

GROUND_LINE_WIDTH_M = 0.15
IMAGE_PLANE_LINE_WIDTH_M = 0.004
# Text height of the id labels, and how far above the road they float.
GROUND_TEXT_HEIGHT_M = 1.0
GROUND_TEXT_LIFT_M = 0.5
IMAGE_PLANE_TEXT_HEIGHT_M = 0.03

_EGO_COLOUR = ColorRGBA(r=0.1, g=0.9, b=0.1, a=1.0)
_OTHER_COLOUR = ColorRGBA(r=1.0, g=0.8, b=0.0, a=1.0)
_UNKNOWN_COLOUR = ColorRGBA(r=0.3, g=0.6, b=1.0, a=1.0)
_CENTRE_COLOUR = ColorRGBA(r=1.0, g=1.0, b=1.0, a=0.8)
_TEXT_COLOUR = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)


def _colour(position: int) -> ColorRGBA:
    if position in (LaneMsg.EGO_LEFT, LaneMsg.EGO_RIGHT):
        return _EGO_COLOUR
    if position == LaneMsg.POSITION_UNKNOWN:
        return _UNKNOWN_COLOUR
    return _OTHER_COLOUR


def image_plane_points(
    lane: LaneMsg, image_width: int, image_height: int, intrinsics: CameraIntrinsics | None
) -> np.ndarray:
    """A lane's pixels as (N,3) points on the plane z = 1 m of the camera optical frame."""
    u, v = np.asarray(lane.u, np.float64), np.asarray(lane.v, np.float64)
    if intrinsics is not None:
        x, y = intrinsics.undistort(u, v)
    else:
        x, y = (u - image_width / 2.0) / image_width, (v - image_height / 2.0) / image_width
    return np.stack([x, y, np.ones_like(x)], axis=-1)


def lanes_to_markers(
    lanes: LaneArray,
    intrinsics: CameraIntrinsics | None = None,
    lifetime_s: float = 0.0,
    centre_line: np.ndarray | None = None,
) -> MarkerArray:
    """Markers for one ``LaneArray``: in ``ground_frame_id`` if set, else the image plane (module doc).

    ``centre_line``: the ego lane's centre line (N, 3) in ``ground_frame_id``, or None. ``lifetime_s`` 0
    keeps the markers until the next DELETEALL.
    """
    on_ground = bool(lanes.ground_frame_id)
    lifetime = Duration(nanoseconds=round(lifetime_s * 1e9)).to_msg()
    header = Header(stamp=lanes.header.stamp, frame_id=lanes.ground_frame_id or lanes.header.frame_id)

    def marker(ns: str, marker_id: int, marker_type: int, scale: float, colour: ColorRGBA) -> Marker:
        new = Marker(header=header, ns=ns, id=marker_id, type=marker_type, action=Marker.ADD, color=colour)
        new.pose.orientation.w = 1.0
        new.lifetime = lifetime
        new.scale.x = new.scale.y = new.scale.z = scale
        return new

    markers = [Marker(header=header, action=Marker.DELETEALL)]
    for lane in lanes.lanes:
        if on_ground:
            xyz = np.array([(p.x, p.y, p.z) for p in lane.ground_points], dtype=np.float64).reshape(-1, 3)
        else:
            xyz = image_plane_points(lane, lanes.image_width, lanes.image_height, intrinsics)
        if len(xyz) < 2:
            continue
        strip = marker(
            "lanes",
            int(lane.id),
            Marker.LINE_STRIP,
            GROUND_LINE_WIDTH_M if on_ground else IMAGE_PLANE_LINE_WIDTH_M,
            _colour(lane.position),
        )
        strip.points = [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in xyz]
        # The label at the lane's near end: its nearest ground point, or its bottom pixel (u, v go upwards).
        near = xyz[np.argmin(xyz[:, 0])] if on_ground else xyz[0]
        label = marker(
            "lane_ids",
            int(lane.id),
            Marker.TEXT_VIEW_FACING,
            GROUND_TEXT_HEIGHT_M if on_ground else IMAGE_PLANE_TEXT_HEIGHT_M,
            _TEXT_COLOUR,
        )
        label.text = f"{lane.id}" if lane.measured else f"{lane.id}?"
        label.pose.position.x, label.pose.position.y, label.pose.position.z = (float(c) for c in near)
        if on_ground:
            label.pose.position.z += GROUND_TEXT_LIFT_M
        markers += [strip, label]
    if on_ground and centre_line is not None and len(centre_line) >= 2:
        centre = marker("ego_centre", 0, Marker.LINE_STRIP, GROUND_LINE_WIDTH_M, _CENTRE_COLOUR)
        centre.points = [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in centre_line]
        markers.append(centre)
    return MarkerArray(markers=markers)
