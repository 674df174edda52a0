"""The ego lane's two boundaries as ``nav_msgs/Path`` on flat ground (the shape Autoware VisionPilot uses).

Planners and RViz take a ``Path`` directly; a ``LaneArray`` needs this package's messages. Paths are only
meaningful on the ground, so they exist only when the ground projection is configured (``ground_frame_id``
set). A boundary that was not detected gives an empty path with a valid header, so that a subscriber sees
"no left boundary in this frame" instead of keeping the last one.
"""

from clrkdnet_msgs.msg import Lane as LaneMsg
from clrkdnet_msgs.msg import LaneArray
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Path
from std_msgs.msg import Header


def ego_boundary_path(lanes: LaneArray, position: int) -> Path:
    """The ground points of the lane at ``position`` (EGO_LEFT or EGO_RIGHT), nearest first, as a Path."""
    header = Header(stamp=lanes.header.stamp, frame_id=lanes.ground_frame_id)
    path = Path(header=header)
    lane = next((lane for lane in lanes.lanes if lane.position == position), None)
    if lane is None:
        return path
    for point in sorted(lane.ground_points, key=lambda p: p.x):
        pose = PoseStamped(header=header)
        pose.pose.position.x, pose.pose.position.y = float(point.x), float(point.y)
        pose.pose.orientation.w = 1.0
        path.poses.append(pose)
    return path


def ego_paths(lanes: LaneArray) -> tuple[Path, Path] | None:
    """(left, right) ego boundary paths, or None without a ground projection."""
    if not lanes.ground_frame_id:
        return None
    return ego_boundary_path(lanes, LaneMsg.EGO_LEFT), ego_boundary_path(lanes, LaneMsg.EGO_RIGHT)
