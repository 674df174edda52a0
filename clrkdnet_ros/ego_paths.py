"""The ego lane's two boundaries as ``nav_msgs/Path`` on flat ground (the shape Autoware VisionPilot uses).

Planners and RViz take a ``Path`` directly; a ``LaneArray`` needs this package's messages. Paths are only
meaningful on the ground, so they exist only with the ground projection. Each is the tracked boundary's curve
(measured this frame, or predicted through a frame the detector missed) sampled every :data:`PATH_STEP_M` over
its valid range, each pose facing along the curve. A boundary that is not tracked (none, or only
reconstructed from the other side: ``EgoLane`` reports that one) gives an empty path with a valid header, so
that a subscriber sees "no left boundary in this frame" instead of keeping the last one.
"""

import math

import numpy as np
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Path
from std_msgs.msg import Header

from clrkdnet_core.lane_curve import GroundCurve
from clrkdnet_core.tracking.ego_lane import SOURCE_MEASURED, SOURCE_PREDICTED, EgoLaneState

PATH_STEP_M = 1.0
_TRACKED = (SOURCE_MEASURED, SOURCE_PREDICTED)


def sample_curve(curve: GroundCurve, step_m: float = PATH_STEP_M) -> np.ndarray:
    """(N, 2) points x, y of ``curve`` from ``x_min`` to ``x_max`` (both included), ``step_m`` apart."""
    xs = np.append(np.arange(curve.x_min, curve.x_max, step_m), curve.x_max)
    return curve.sample(xs)


def curve_path(curve: GroundCurve | None, header: Header) -> Path:
    """``curve`` as a Path (empty for None), nearest pose first, each facing the next."""
    path = Path(header=header)
    if curve is None:
        return path
    points = sample_curve(curve)
    yaws = np.arctan(curve.slope_at(points[:, 0]))
    for (x, y), yaw in zip(points, yaws, strict=True):
        pose = PoseStamped(header=header)
        pose.pose.position.x, pose.pose.position.y = float(x), float(y)
        pose.pose.orientation.z, pose.pose.orientation.w = math.sin(yaw / 2.0), math.cos(yaw / 2.0)
        path.poses.append(pose)
    return path


def ego_paths(ego: EgoLaneState, header: Header) -> tuple[Path, Path]:
    """(left, right) paths of the tracked ego boundaries; ``header``: the image's stamp, the ground frame."""
    left = ego.left_boundary if ego.left_source in _TRACKED else None
    right = ego.right_boundary if ego.right_source in _TRACKED else None
    return curve_path(left, header), curve_path(right, header)
