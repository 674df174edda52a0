"""``LaneArray`` -> ``visualization_msgs/MarkerArray`` for RViz.

Each lane is a LINE_STRIP, preceded by one DELETEALL so that lanes of the previous frame never linger; a
lifetime makes them disappear when the node stops publishing.

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

from clrkdnet_ros.ground_projection import CameraIntrinsics

GROUND_LINE_WIDTH_M = 0.15
IMAGE_PLANE_LINE_WIDTH_M = 0.004

_EGO_COLOUR = ColorRGBA(r=0.1, g=0.9, b=0.1, a=1.0)
_OTHER_COLOUR = ColorRGBA(r=1.0, g=0.8, b=0.0, a=1.0)
_UNKNOWN_COLOUR = ColorRGBA(r=0.3, g=0.6, b=1.0, a=1.0)


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
        x, y = intrinsics.normalized(u, v)
    else:
        x, y = (u - image_width / 2.0) / image_width, (v - image_height / 2.0) / image_width
    return np.stack([x, y, np.ones_like(x)], axis=-1)


def lanes_to_markers(
    lanes: LaneArray, intrinsics: CameraIntrinsics | None = None, lifetime_s: float = 0.0
) -> MarkerArray:
    """Markers for one ``LaneArray``: in ``ground_frame_id`` if set, else the image plane (module doc).

    ``lifetime_s`` 0 keeps the markers until the next DELETEALL.
    """
    on_ground = bool(lanes.ground_frame_id)
    lifetime = Duration(nanoseconds=round(lifetime_s * 1e9)).to_msg()
    header = Header(stamp=lanes.header.stamp, frame_id=lanes.ground_frame_id or lanes.header.frame_id)
    markers = [Marker(header=header, action=Marker.DELETEALL)]
    for lane in lanes.lanes:
        if on_ground:
            points = [Point(x=float(p.x), y=float(p.y), z=float(p.z)) for p in lane.ground_points]
        else:
            xyz = image_plane_points(lane, lanes.image_width, lanes.image_height, intrinsics)
            points = [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in xyz]
        if len(points) < 2:
            continue
        marker = Marker(header=header, ns="lanes", id=int(lane.id), type=Marker.LINE_STRIP, action=Marker.ADD)
        marker.pose.orientation.w = 1.0
        marker.lifetime = lifetime
        marker.scale.x = GROUND_LINE_WIDTH_M if on_ground else IMAGE_PLANE_LINE_WIDTH_M
        marker.color = _colour(lane.position)
        marker.points = points
        markers.append(marker)
    return MarkerArray(markers=markers)
