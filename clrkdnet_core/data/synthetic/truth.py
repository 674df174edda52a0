"""The truth of a synthetic drive, frame by frame: what a lane tracker and ego-lane estimator should report.

Frames (REP-103): ``base_link`` is on the road directly below the camera, x forward (the camera's heading
projected on the road), y left, z up. The scene model (:mod:`~clrkdnet_core.data.synthetic.scene`) measures
lateral positions to the *right*, so every lateral quantity changes sign here.

- **Camera.** An ideal pinhole (no distortion), fx = fy = ``Camera.focal``. The renderer draws the unrolled
  camera and then rotates the image by ``roll`` about the image centre ``((W-1)/2, (H-1)/2)``
  (:meth:`Camera.roll_matrix`, OpenCV's counter-clockwise-positive angle). For square pixels, rotating the
  image about the *principal point* by +roll is exactly the camera turned by +roll about its optical axis
  (right-handed about z forward, i.e. about base_link's x: the right side goes down and the picture turns
  counter-clockwise). Rotating about another centre adds a shift of the whole image, which is a principal
  point shift: the rendered frame is exactly a pinhole camera rolled by ``roll`` whose principal point is the
  unrolled one carried by the same rotation, ``roll_matrix() @ (cx, cy, 1)``. :class:`CameraTruth` gives that
  point, so the truth is exact without changing a pixel. It moves with the per-frame roll sway by under
  0.3 px at CULane's 1640 px width (bags carry each frame's exact K in its camera_info).
- **Pose** ``[x, y, z, roll, pitch, yaw]`` of the camera body (x forward, y left, z up) in base_link,
  fixed-axis roll-pitch-yaw as tf2/URDF: ``[0, 0, mount_height, roll, pitch, 0]``, pitch positive looking
  down. Roll is applied after pitch, about the pitched forward axis: that is what R = Ry(pitch) Rx(roll)
  means. ``mount`` is the static mounting without the body's pitch and roll sway (what a URDF and
  ``/tf_static`` say).
- **Lanes.** Every painted marking is exactly the cubic y = c0 + c1 x + c2 x² + c3 x³ in base_link (the road
  model is a clothoid's cubic expansion; markings are lateral shifts of it). Its ``id`` is its index in the
  drive's layout, left to right, from 1: the same marking keeps its id for the whole drive, and on a lane
  change it changes side. ``position`` is the Lane.msg class at x = 0 (-1 EGO_LEFT, +1 EGO_RIGHT, -2/+2 ...).
- **Ego lane** (as clrkdnet_msgs/EgoLane): the lane between the nearest markings left and right of the origin
  at x = 0; its centre line is the mean of their cubics.
- **Motion**: speed (m/s) and yaw rate (rad/s, counter-clockwise positive) in the drive's clock
  (``index / fps`` seconds), consistent with how the road moves between frames (:meth:`Drive.motion_at`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

import numpy as np

from clrkdnet_core.data.synthetic.drive import Drive
from clrkdnet_core.data.synthetic.scene import Camera, Scene
from clrkdnet_core.lane_curve import GroundCurve
from clrkdnet_core.lane_positions import EGO_LEFT, EGO_RIGHT, assign_positions
from clrkdnet_core.tracking.ego_lane import LANE_CHANGE_LEFT, LANE_CHANGE_NONE, LANE_CHANGE_RIGHT, NO_TRACK


@dataclass(frozen=True)
class CameraTruth:
    """Pinhole intrinsics of the rendered image (pixels); the renderer has no lens distortion."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    def k(self) -> np.ndarray:
        """The 3×3 intrinsic matrix (CameraInfo.k)."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class LaneTruth:
    """One painted marking: its drive-wide id, its position class and its exact ground cubic."""

    id: int
    position: int
    curve: GroundCurve


@dataclass(frozen=True)
class EgoLaneTruth:
    """The ego lane's true state at x = 0, fields named as clrkdnet_msgs/EgoLane's (NaN when not valid)."""

    valid: bool
    lateral_offset: float  # m, y of the centre line, left positive
    heading: float  # rad, atan of the centre line's slope, counter-clockwise positive
    curvature: float  # 1/m, positive bending left
    curvature_rate: float  # 1/m², along x
    width: float  # m, between the two boundaries
    left_distance: float  # m, y of the left boundary
    right_distance: float  # m, -y of the right boundary
    left_id: int  # LaneTruth.id of the boundaries, NO_TRACK when missing
    right_id: int
    lane_change: int  # LANE_CHANGE_* in the frame the origin crossed a boundary
    lateral_velocity: float = math.nan  # m/s of the origin relative to the centre line, left positive
    left_time_to_crossing: float = math.nan  # s at that velocity; +inf when not approaching
    right_time_to_crossing: float = math.nan


@dataclass(frozen=True)
class FrameTruth:
    """Everything true about one frame of a drive (see the module docstring for frames and conventions)."""

    index: int
    time: float  # s since the drive's start, index / fps
    fps: float  # frames per second of the drive: the clock of time, speed, yaw rate and times to crossing
    camera: CameraTruth
    pose: tuple[float, float, float, float, float, float]  # camera body in base_link: x y z roll pitch yaw
    mount: tuple[float, float, float, float, float, float]  # the static mounting (no body sway)
    speed: float  # m/s
    yaw_rate: float  # rad/s, counter-clockwise positive
    lanes: tuple[LaneTruth, ...]  # every marking, left to right
    ego: EgoLaneTruth
    image: str = ""  # the image file relative to the dataset root (set by the writer)
    gt_lane_ids: tuple[int, ...] = ()  # ids of the GT lanes the writer labelled, in the label file's order

    def lane(self, lane_id: int) -> LaneTruth | None:
        """The marking with ``lane_id``, if any."""
        return next((lane for lane in self.lanes if lane.id == lane_id), None)

    def to_json(self) -> str:
        """One JSON line (the ``truth.jsonl`` record); curves as coefficients [c0..c3], x_min, x_max."""
        record = asdict(self)
        record["lanes"] = [
            {
                "id": lane.id,
                "position": lane.position,
                "coefficients": [float(c) for c in lane.curve.coefficients],
                "x_min": lane.curve.x_min,
                "x_max": lane.curve.x_max,
            }
            for lane in self.lanes
        ]
        return json.dumps(record)

    @classmethod
    def from_json(cls, line: str) -> FrameTruth:
        """Inverse of :meth:`to_json`; raises KeyError, TypeError or ValueError on a malformed record."""
        record = json.loads(line)
        lanes = tuple(
            LaneTruth(
                int(lane["id"]),
                int(lane["position"]),
                GroundCurve(np.asarray(lane["coefficients"], np.float64), lane["x_min"], lane["x_max"]),
            )
            for lane in record["lanes"]
        )
        return cls(
            index=int(record["index"]),
            time=float(record["time"]),
            fps=float(record["fps"]),
            camera=CameraTruth(**record["camera"]),
            pose=tuple(float(v) for v in record["pose"]),
            mount=tuple(float(v) for v in record["mount"]),
            speed=float(record["speed"]),
            yaw_rate=float(record["yaw_rate"]),
            lanes=lanes,
            ego=EgoLaneTruth(**record["ego"]),
            image=str(record.get("image", "")),
            gt_lane_ids=tuple(int(i) for i in record.get("gt_lane_ids", ())),
        )


def camera_truth(camera: Camera) -> CameraTruth:
    """The exact intrinsics of a rendered (rolled) image: the principal point carried by the roll rotation."""
    cx, cy = camera.roll_matrix() @ np.array([camera.cx, camera.cy, 1.0])
    return CameraTruth(camera.width, camera.height, camera.focal, camera.focal, float(cx), float(cy))


def camera_pose(camera: Camera) -> tuple[float, float, float, float, float, float]:
    """[x, y, z, roll, pitch, yaw] of the camera body in base_link."""
    return (0.0, 0.0, float(camera.mount_height), float(camera.roll), float(camera.pitch), 0.0)


def lane_truths(scene: Scene) -> tuple[LaneTruth, ...]:
    """Every marking of ``scene`` as a ground cubic in base_link with its id and position class."""
    road, cam = scene.road, scene.camera
    # Labels run from the image's bottom row (before the roll) to the label distance.
    x_min = float(cam.ground_distance(np.array([cam.height - 1.0]))[0])
    offsets = np.array([m.offset for m in scene.markings], dtype=np.float64)
    at_origin = -(road.offset + offsets)  # y at x = 0, left positive
    # A marking exactly at y = 0 counts as right, as the writer's CULane slots count it.
    positions = assign_positions(-at_origin, 0.0)
    # The road frame is right positive: y(x) = -(offset + d + heading x + curvature/2 x² + rate/6 x³).
    higher = [-road.heading, -road.curvature / 2.0, -road.curvature_rate / 6.0]
    return tuple(
        LaneTruth(k + 1, positions[k], GroundCurve(np.array([y0, *higher]), x_min, scene.label_distance))
        for k, y0 in enumerate(at_origin)
    )


def ego_lane_truth(
    lanes: tuple[LaneTruth, ...], previous: EgoLaneTruth | None = None, speed: float = math.nan
) -> EgoLaneTruth:
    """The ego lane between the EGO_LEFT and EGO_RIGHT markings; ``previous`` (the frame before) tells
    a lane change: the boundary that was on one side is now on the other. Driving at ``speed`` along x, the
    origin moves relative to the centre line at -speed × its slope: the lateral velocity."""
    left = next((lane for lane in lanes if lane.position == EGO_LEFT), None)
    right = next((lane for lane in lanes if lane.position == EGO_RIGHT), None)
    if left is None or right is None:
        nan = math.nan
        return EgoLaneTruth(False, nan, nan, nan, nan, nan, nan, nan, NO_TRACK, NO_TRACK, LANE_CHANGE_NONE)
    centre = GroundCurve(
        (left.curve.coefficients + right.curve.coefficients) / 2.0, left.curve.x_min, left.curve.x_max
    )
    change = LANE_CHANGE_NONE
    if previous is not None and previous.valid:
        if right.id == previous.left_id:
            change = LANE_CHANGE_LEFT
        elif left.id == previous.right_id:
            change = LANE_CHANGE_RIGHT
    y_left, y_right = float(left.curve.y_at(0.0)), float(right.curve.y_at(0.0))
    lateral_velocity = -speed * float(centre.slope_at(0.0))
    return EgoLaneTruth(
        valid=True,
        lateral_offset=float(centre.y_at(0.0)),
        heading=float(centre.heading_at(0.0)),
        curvature=float(centre.curvature_at(0.0)),
        curvature_rate=float(centre.curvature_rate_at(0.0)),
        width=y_left - y_right,
        left_distance=y_left,
        right_distance=-y_right,
        left_id=left.id,
        right_id=right.id,
        lane_change=change,
        lateral_velocity=lateral_velocity,
        left_time_to_crossing=y_left / lateral_velocity if lateral_velocity > 0.0 else math.inf,
        right_time_to_crossing=-y_right / -lateral_velocity if lateral_velocity < 0.0 else math.inf,
    )


def drive_truth(drive: Drive, index: int) -> FrameTruth:
    """The truth of frame ``index`` of ``drive`` (renders nothing; the frame before is consulted for the
    lane-change event)."""
    scene = drive.scene_at(index)
    lanes = lane_truths(scene)
    previous = ego_lane_truth(lane_truths(drive.scene_at(index - 1))) if index > 0 else None
    speed, yaw_rate = drive.motion_at(index)
    return FrameTruth(
        index=index,
        time=index / drive.fps,
        fps=drive.fps,
        camera=camera_truth(scene.camera),
        pose=camera_pose(scene.camera),
        mount=camera_pose(drive.camera),
        speed=speed,
        yaw_rate=yaw_rate,
        lanes=lanes,
        ego=ego_lane_truth(lanes, previous, speed),
    )
