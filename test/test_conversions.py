"""The node's ROS layer without DDS: perception -> LaneArray/EgoLane, markers, ego paths, camera_info ->
camera model, the camera pose source and odometry.

The geometry, the perception and the tracker themselves are tested in the core (test_camera_model,
test_perception, test_tracking); here only what the ROS side adds.
"""

import math
import sys
import time
from dataclasses import replace

import numpy as np
import pytest
from clrkdnet_msgs.msg import EgoLane
from clrkdnet_msgs.msg import Lane as LaneMsg
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from clrkdnet_core.camera_model import CameraIntrinsics, CameraPose, GroundProjector
from clrkdnet_core.lane import Lane
from clrkdnet_core.lane_curve import GroundCurve
from clrkdnet_core.perception import LanePerception
from clrkdnet_core.tracking.ego_lane import SOURCE_MEASURED, SOURCE_RECONSTRUCTED, EgoLaneState
from clrkdnet_ros.camera_pose import PoseParameters, pose_problem
from clrkdnet_ros.conversions import EGO_FIELDS, ego_lane_to_msg, frame_to_msg
from clrkdnet_ros.ego_paths import PATH_STEP_M, ego_paths
from clrkdnet_ros.ground_projection import CameraModel, CameraModelCache, intrinsics_from_camera_info
from clrkdnet_ros.markers import lanes_to_markers
from clrkdnet_ros.odometry import HISTORY_S, MAX_AGE_S, OdometryInput

WIDTH, HEIGHT = 1640, 590
INTRINSICS = CameraIntrinsics.pinhole(WIDTH, HEIGHT, 1000.0, 1000.0, 800.0, 300.0)
POSE = CameraPose.from_height_pitch(1.5, 0.08)
PROJECTOR = GroundProjector(INTRINSICS, POSE)
STAMP_S = 1_700_000_000.123456789


def _straight_lane(x_bottom: float, x_top: float, y_top: float = 300.0, y_bottom: float = 589.0, score=0.9):
    """A lane along a straight line, points top to bottom like LaneDetector returns them."""
    ys = np.linspace(y_top, y_bottom, 30)
    xs = x_top + (x_bottom - x_top) * (ys - y_top) / (y_bottom - y_top)
    return Lane(np.stack([xs, ys], axis=1), score)


def _ground_lane(y: float, near: float = 6.0, far: float = 40.0, n: int = 25) -> Lane:
    """A straight boundary y metres left of the camera, as pixels (top = far first)."""
    xs = np.linspace(far, near, n)
    points = np.column_stack([xs, np.full(n, y), np.zeros(n)])
    return Lane(PROJECTOR.to_pixels(points).astype(np.float32), 0.9)


def _header() -> Header:
    header = Header(frame_id="front_camera_optical")
    header.stamp.sec, header.stamp.nanosec = 1_700_000_000, 123_456_789
    return header


# ---- LaneArray and EgoLane ---------------------------------------------------------------------------------


def test_untracked_lane_array_is_todays_left_to_right_order_with_bottom_to_top_polylines():
    # Deliberately unsorted input, as the network returns lanes in score order.
    lanes = [
        _straight_lane(1300.0, 900.0, score=0.8),
        _straight_lane(300.0, 750.0, score=0.95),
        _straight_lane(1000.0, 850.0, y_top=320.0, score=0.7),
        _straight_lane(650.0, 800.0, score=0.6),
    ]
    frame = LanePerception(tracking=False).update(lanes, (WIDTH, HEIGHT), STAMP_S)
    msg = frame_to_msg(frame, _header(), WIDTH, HEIGHT)

    assert msg.header == _header()
    assert (msg.image_width, msg.image_height, msg.ground_frame_id) == (WIDTH, HEIGHT, "")
    assert [lane.id for lane in msg.lanes] == [0, 1, 2, 3]
    assert [round(lane.score, 2) for lane in msg.lanes] == [0.95, 0.6, 0.7, 0.8]
    assert [lane.position for lane in msg.lanes] == [
        LaneMsg.ADJACENT_LEFT,
        LaneMsg.EGO_LEFT,
        LaneMsg.EGO_RIGHT,
        LaneMsg.ADJACENT_RIGHT,
    ]
    first = msg.lanes[0]
    assert (first.age, first.measured, first.existence_probability) == (0, True, pytest.approx(0.95))
    assert first.type == LaneMsg.TYPE_UNKNOWN
    assert len(first.u) == len(first.v) == 30
    assert first.v[0] == pytest.approx(589.0) and first.v[-1] == pytest.approx(300.0)  # bottom to top
    assert first.u[0] == pytest.approx(300.0) and first.u[-1] == pytest.approx(750.0)
    assert len(first.ground_points) == 0
    assert np.isnan(first.ground_poly).all() and math.isnan(first.x_min) and math.isnan(first.x_max)
    assert frame.ego is None  # no ego lane without the ground


def test_empty_detection_keeps_the_header():
    frame = LanePerception(tracking=False).update([], (WIDTH, HEIGHT), STAMP_S)
    msg = frame_to_msg(frame, _header(), WIDTH, HEIGHT)
    assert msg.lanes == [] and msg.header == _header()


def test_tracked_lane_array_on_the_ground_carries_track_ids_and_filtered_curves():
    perception = LanePerception(tracking=True)
    lanes = [_ground_lane(1.75), _ground_lane(-1.75)]
    for k in range(4):  # a track is confirmed in its third frame
        frame = perception.update(lanes, (WIDTH, HEIGHT), STAMP_S + 0.1 * k, PROJECTOR)
    msg = frame_to_msg(frame, _header(), WIDTH, HEIGHT, "base_link")

    assert msg.ground_frame_id == "base_link"
    left, right = msg.lanes
    assert (left.position, right.position) == (LaneMsg.EGO_LEFT, LaneMsg.EGO_RIGHT)
    assert left.id >= 1 and right.id >= 1 and left.id != right.id
    assert left.measured and left.age == 3 and 0.0 < left.existence_probability <= 1.0
    for lane, y in ((left, 1.75), (right, -1.75)):
        ground = np.array([[p.x, p.y, p.z] for p in lane.ground_points])
        assert len(ground) == 25
        np.testing.assert_allclose(ground[:, 1], y, atol=1e-3)
        assert ground[0, 0] == pytest.approx(6.0, abs=1e-3)  # bottom of the image = nearest point
        np.testing.assert_allclose(lane.ground_poly, [y, 0.0, 0.0, 0.0], atol=1e-2)
        assert lane.x_min == pytest.approx(6.0, abs=0.5) and lane.x_max == pytest.approx(40.0, abs=0.5)

    ego = ego_lane_to_msg(frame.ego, Header(stamp=_header().stamp, frame_id="base_link"))
    assert ego.valid and ego.header.frame_id == "base_link" and ego.header.stamp == _header().stamp
    assert ego.lateral_offset == pytest.approx(0.0, abs=0.01)
    assert ego.width == pytest.approx(3.5, abs=0.01)
    assert (ego.left_id, ego.right_id) == (left.id, right.id)
    assert ego.left_source == ego.right_source == EgoLane.SOURCE_MEASURED


def test_every_ego_lane_field_comes_from_the_state():
    state_fields = set(EgoLaneState.__dataclass_fields__)
    assert set(EGO_FIELDS) <= state_fields
    assert set(EGO_FIELDS) == set(EgoLane.get_fields_and_field_types()) - {"header"}
    invalid = ego_lane_to_msg(EgoLaneState.invalid(), Header(frame_id="base_link"))
    assert not invalid.valid and math.isnan(invalid.lateral_offset) and math.isnan(invalid.width_variance)
    assert (invalid.left_id, invalid.left_source, invalid.lane_change) == (
        EgoLane.NO_TRACK,
        EgoLane.SOURCE_NONE,
        EgoLane.LANE_CHANGE_NONE,
    )


def _untracked_msg(lanes: list[Lane]):
    return frame_to_msg(
        LanePerception(tracking=False).update(lanes, (WIDTH, HEIGHT), STAMP_S), _header(), WIDTH, HEIGHT
    )


# ---- markers -----------------------------------------------------------------------------------------------


def test_markers_in_the_image_plane_without_projection():
    lanes = [_straight_lane(300.0, 750.0), _straight_lane(1300.0, 900.0)]
    msg = frame_to_msg(
        LanePerception(tracking=False).update(lanes, (WIDTH, HEIGHT), STAMP_S), _header(), WIDTH, HEIGHT
    )
    markers = lanes_to_markers(msg).markers
    assert markers[0].action == Marker.DELETEALL
    strips = [m for m in markers if m.ns == "lanes"]
    labels = [m for m in markers if m.ns == "lane_ids"]
    assert [m.type for m in strips] == [Marker.LINE_STRIP] * 2 and [m.id for m in strips] == [0, 1]
    assert [m.text for m in labels] == ["0", "1"] and labels[0].type == Marker.TEXT_VIEW_FACING
    for marker in markers:
        assert marker.header.frame_id == "front_camera_optical"
        assert marker.header.stamp == _header().stamp
    bottom = strips[0].points[0]
    # Without camera_info: pixels centred and scaled by 1 / width on the plane z = 1 m.
    assert (bottom.x, bottom.y, bottom.z) == pytest.approx(((300 - 820) / WIDTH, (589 - 295) / WIDTH, 1.0))
    assert (labels[0].pose.position.x, labels[0].pose.position.y) == pytest.approx((bottom.x, bottom.y))
    with_intrinsics = lanes_to_markers(msg, INTRINSICS).markers[1].points[0]
    assert (with_intrinsics.x, with_intrinsics.y) == pytest.approx(((300 - 800) / 1000, (589 - 300) / 1000))


def test_image_plane_markers_undo_the_lens_distortion():
    distorted = CameraIntrinsics.from_values(
        WIDTH, HEIGHT, INTRINSICS.k, [-0.3, 0.1, 0.001, -0.002, 0.0], "plumb_bob"
    )
    ray = np.array([[-0.5, 0.25]])
    u, v = distorted.distort(ray[:, 0], ray[:, 1])
    lane = Lane(np.array([[u[0], v[0] - 50.0], [u[0], v[0]]], np.float32), 0.9)
    msg = frame_to_msg(
        LanePerception(tracking=False).update([lane], (WIDTH, HEIGHT), STAMP_S), _header(), WIDTH, HEIGHT
    )
    point = lanes_to_markers(msg, distorted).markers[1].points[0]
    assert (point.x, point.y) == pytest.approx(tuple(ray[0]), abs=1e-6)


def test_markers_on_the_ground_show_ids_predicted_lanes_and_the_centre_line():
    perception = LanePerception(tracking=True)
    lanes = [_ground_lane(1.75), _ground_lane(-1.75)]
    for k in range(3):
        perception.update(lanes, (WIDTH, HEIGHT), STAMP_S + 0.1 * k, PROJECTOR)
    frame = perception.update(lanes[:1], (WIDTH, HEIGHT), STAMP_S + 0.3, PROJECTOR)  # the right one missed
    msg = frame_to_msg(frame, _header(), WIDTH, HEIGHT, "base_link")
    centre = np.column_stack([np.linspace(5.0, 40.0, 8), np.zeros(8), np.zeros(8)])
    markers = lanes_to_markers(msg, INTRINSICS, centre_line=centre).markers
    assert {m.header.frame_id for m in markers} == {"base_link"}
    strips = [m for m in markers if m.ns == "lanes"]
    assert strips[0].points[0].x == pytest.approx(6.0, abs=1e-3)
    assert strips[0].points[0].y == pytest.approx(1.75, abs=1e-3)
    assert strips[0].scale.x > 0.0 and strips[0].color.a == 1.0
    labels = {m.id: m.text for m in markers if m.ns == "lane_ids"}
    left, right = msg.lanes
    assert not right.measured
    assert labels == {left.id: f"{left.id}", right.id: f"{right.id}?"}  # "?": predicted this frame
    (line,) = [m for m in markers if m.ns == "ego_centre"]
    assert line.type == Marker.LINE_STRIP and len(line.points) == 8


def test_marker_lifetime():
    frame = LanePerception(tracking=False).update([_straight_lane(300.0, 750.0)], (WIDTH, HEIGHT), STAMP_S)
    msg = frame_to_msg(frame, _header(), WIDTH, HEIGHT)
    forever = lanes_to_markers(msg).markers[1].lifetime
    assert (forever.sec, forever.nanosec) == (0, 0)
    lifetime = lanes_to_markers(msg, lifetime_s=1.25).markers[1].lifetime
    assert (lifetime.sec, lifetime.nanosec) == (1, 250_000_000)


# ---- ego lane paths ----------------------------------------------------------------------------------------


def _ego_state(left_source: int, right_source: int) -> EgoLaneState:
    return replace(
        EgoLaneState.invalid(),
        valid=True,
        left_source=left_source,
        right_source=right_source,
        left_boundary=GroundCurve(np.array([1.75, 0.01, 0.0, 0.0]), 6.0, 30.5),
        right_boundary=GroundCurve(np.array([-1.75, 0.01, 0.0, 0.0]), 6.0, 30.5),
    )


def test_ego_paths_sample_the_tracked_boundaries():
    header = Header(stamp=_header().stamp, frame_id="base_link")
    left, right = ego_paths(_ego_state(SOURCE_MEASURED, SOURCE_MEASURED), header)
    for path, y in ((left, 1.75), (right, -1.75)):
        assert path.header == header
        xs = np.array([pose.pose.position.x for pose in path.poses])
        assert xs[0] == pytest.approx(6.0) and xs[-1] == pytest.approx(30.5)
        assert np.diff(xs).max() == pytest.approx(PATH_STEP_M)
        ys = np.array([pose.pose.position.y for pose in path.poses])
        np.testing.assert_allclose(ys, y + 0.01 * xs)
        # Each pose faces along the curve: yaw atan(0.01).
        yaw = 2.0 * math.atan2(path.poses[3].pose.orientation.z, path.poses[3].pose.orientation.w)
        assert yaw == pytest.approx(math.atan(0.01))
        assert all(pose.header == header for pose in path.poses)


def test_a_reconstructed_boundary_gives_an_empty_path():
    header = Header(stamp=_header().stamp, frame_id="base_link")
    left, right = ego_paths(_ego_state(SOURCE_MEASURED, SOURCE_RECONSTRUCTED), header)
    assert len(left.poses) > 0 and len(right.poses) == 0 and right.header == header


# ---- camera_info -> camera model ---------------------------------------------------------------------------


def _camera_info(width: int = WIDTH, height: int = HEIGHT) -> CameraInfo:
    info = CameraInfo(width=width, height=height, distortion_model="plumb_bob")
    info.k = [1000.0, 0.0, 800.0, 0.0, 1000.0, 300.0, 0.0, 0.0, 1.0]
    info.d = [0.0] * 5
    return info


def test_intrinsics_from_camera_info_keep_the_distortion():
    info = _camera_info()
    info.distortion_model, info.d = "rational_polynomial", [-0.2, 0.05, 0.001, 0.0, 0.0, 0.01, 0.0, 0.0]
    intrinsics = intrinsics_from_camera_info(info)
    assert (intrinsics.fx, intrinsics.cy, intrinsics.width) == (1000.0, 300.0, WIDTH)
    assert intrinsics.has_distortion and intrinsics.distortion_model == "rational_polynomial"


def test_camera_model_is_rebuilt_only_when_camera_info_or_the_pose_changes():
    cache = CameraModelCache()
    first = cache.get(_camera_info(), WIDTH, HEIGHT, POSE)
    assert first.problem is None and first.projector.pose is POSE
    # camera_info comes with every frame: a new message with the same contents changes nothing.
    for _ in range(3):
        again = cache.get(_camera_info(), WIDTH, HEIGHT, CameraPose.from_height_pitch(1.5, 0.08))
        assert again.intrinsics is first.intrinsics and again.projector is first.projector
    assert cache.builds == 1
    assert cache.get(_camera_info(), WIDTH, HEIGHT, CameraPose.from_height_pitch(1.5, 0.1)).projector is not (
        first.projector
    )
    moved = _camera_info()
    moved.k[2] = 810.0
    assert cache.get(moved, WIDTH, HEIGHT, POSE).intrinsics.cx == 810.0
    assert cache.get(moved, WIDTH, HEIGHT, None).projector is None  # no pose: pixels only
    assert cache.builds == 2


def test_camera_model_says_why_camera_info_is_ignored():
    cache = CameraModelCache()
    assert cache.get(None, WIDTH, HEIGHT, POSE) == CameraModel()
    other_size = cache.get(_camera_info(640, 480), WIDTH, HEIGHT, POSE)
    assert other_size.projector is None and other_size.intrinsics is None
    assert other_size.problem.startswith("camera_info is for 640x480 images but the image is 1640x590")
    uncalibrated = _camera_info()
    uncalibrated.k = [0.0] * 9
    problem = cache.get(uncalibrated, WIDTH, HEIGHT, POSE).problem
    assert problem.startswith("ignoring camera_info: ") and "pixels only" in problem


# ---- the camera pose ---------------------------------------------------------------------------------------


def test_pose_parameters_rule():
    assert not PoseParameters(None, 0.0, 0.1).define_pose and PoseParameters(None, 0.0, 0.1).pose() is None
    by_height = PoseParameters(None, 1.4, 0.05)
    assert by_height.define_pose and by_height.pose().translation[2] == pytest.approx(1.4)
    assert "camera_height 1.400 m" in by_height.describe() and "tf2 is not consulted" in by_height.describe()
    full = PoseParameters((1.2, 0.3, 1.5, 0.0, 0.05, 0.02), 1.4, 0.05)  # camera_pose wins
    np.testing.assert_allclose(full.pose().translation, [1.2, 0.3, 1.5])
    assert full.pose().body_rpy()[1] == pytest.approx(0.05)
    assert "camera_height and camera_pitch are ignored" in full.describe()


def test_a_transform_that_cannot_see_the_road_is_named():
    looking_up = CameraPose.from_transform((0.0, 0.0, 1.5), (0.0, 0.0, 0.0, 1.0))  # optical z = ground z: up
    assert "is camera_link the optical frame" in pose_problem(looking_up, "base_link", "camera_link")
    below = CameraPose.from_xyz_rpy(0.0, 0.0, 1.0, 0.0, 0.1, 0.0)
    below = CameraPose(below.rotation, np.array([0.0, 0.0, -0.3]))
    assert "z <= 0" in pose_problem(below, "base_link", "cam")
    assert pose_problem(POSE, "base_link", "cam") is None


# ---- odometry ----------------------------------------------------------------------------------------------


def _odometry(speed: float, yaw_rate: float, stamp_s: float) -> Odometry:
    msg = Odometry()
    msg.header.stamp.sec = int(stamp_s)
    msg.header.stamp.nanosec = round((stamp_s - int(stamp_s)) * 1e9)
    msg.twist.twist.linear.x, msg.twist.twist.angular.z = speed, yaw_rate
    return msg


def test_odometry_gives_the_motion_while_fresh():
    odometry = OdometryInput()
    assert odometry.motion_at(100.0) == (None, None)  # none yet: zero-motion prediction, nothing to say
    assert odometry.update(_odometry(12.0, 0.05, 100.0), now_s=500.0) is None
    motion, problem = odometry.motion_at(100.2)
    assert (motion.speed, motion.yaw_rate, problem) == (12.0, 0.05, None)
    motion, problem = odometry.motion_at(100.0 + MAX_AGE_S + 0.1)
    assert motion is None and "the nearest odometry is 0.60 s older than the image" in problem
    motion, problem = odometry.motion_at(100.0 - MAX_AGE_S - 0.1)
    assert motion is None and "the nearest odometry is 0.60 s newer than the image" in problem


def test_odometry_with_nan_is_dropped_and_an_unstamped_one_gets_the_clock():
    odometry = OdometryInput()
    assert "non-finite speed or yaw rate" in odometry.update(_odometry(float("nan"), 0.0, 100.0), 500.0)
    assert odometry.motion_at(100.0) == (None, None) and (odometry.received, odometry.rejected) == (1, 1)
    odometry.update(_odometry(5.0, 0.0, 0.0), now_s=500.0)  # stamp 0: taken when it arrived
    assert odometry.motion_at(500.1)[0].speed == 5.0
    odometry.reset()
    assert odometry.motion_at(500.1) == (None, None)


def _fill(odometry: OdometryInput, start_s: float, end_s: float, rate_hz: float, yaw_rate) -> None:
    """Samples at ``rate_hz`` from ``start_s`` to ``end_s``; speed 10 m/s, yaw rate ``yaw_rate(t)``."""
    for k in range(round((end_s - start_s) * rate_hz) + 1):
        t = start_s + k / rate_hz
        assert odometry.update(_odometry(10.0, yaw_rate(t), t), now_s=0.0) is None


def test_odometry_gives_the_mean_over_the_interval_since_the_previous_image():
    """A curve begins during a 0.8 s interval: the mean yaw rate of its samples, not the newest one."""
    odometry = OdometryInput()
    _fill(odometry, 100.0, 101.0, 50.0, lambda t: 0.0 if t < 100.61 else 0.2)  # yaw rate steps up after 100.6
    motion, problem = odometry.motion_at(101.0, since_s=100.2)
    # (100.2, 101.0]: 40 samples, 20 of them at 0.2 rad/s.
    assert problem is None and motion.speed == pytest.approx(10.0)
    assert motion.yaw_rate == pytest.approx(0.1, abs=1e-9)
    assert odometry.motion_at(101.0)[0].yaw_rate == pytest.approx(0.2)  # no previous image: the nearest
    # A NaN sample is dropped and leaves the mean alone.
    odometry.update(_odometry(float("nan"), 5.0, 100.99), now_s=0.0)
    assert odometry.motion_at(101.0, since_s=100.2)[0].yaw_rate == pytest.approx(0.1, abs=1e-9)


def test_odometry_falls_back_to_the_nearest_sample_when_the_interval_holds_none():
    odometry = OdometryInput()
    odometry.update(_odometry(8.0, 0.01, 100.0), now_s=0.0)
    odometry.update(_odometry(9.0, 0.02, 100.5), now_s=0.0)
    # Odometry slower than the camera: nothing in (100.55, 100.6], the nearest (100.5) is 0.1 s old.
    motion, problem = odometry.motion_at(100.6, since_s=100.55)
    assert (motion.speed, motion.yaw_rate, problem) == (9.0, 0.02, None)
    # A sample just after the image is nearer than the ones before it.
    odometry.update(_odometry(11.0, 0.03, 100.65), now_s=0.0)
    assert odometry.motion_at(100.62, since_s=100.61)[0].speed == 11.0
    # Nothing within MAX_AGE_S: no motion, and the reason.
    motion, problem = odometry.motion_at(101.3, since_s=101.2)
    assert motion is None and "the nearest odometry is 0.65 s older than the image" in problem


def test_odometry_interval_mean_needs_a_sample_within_the_age_rule():
    """Odometry that stopped early in a long interval is stale for this image, mean or not."""
    odometry = OdometryInput()
    _fill(odometry, 100.0, 100.1, 50.0, lambda t: 0.1)
    motion, problem = odometry.motion_at(100.8, since_s=99.9)
    assert motion is None and "0.70 s older" in problem
    motion, problem = odometry.motion_at(100.5, since_s=99.9)  # 0.4 s after the last sample: used
    assert problem is None and motion.yaw_rate == pytest.approx(0.1)


def test_odometry_keeps_a_bounded_history_and_starts_afresh_when_time_goes_back():
    odometry = OdometryInput()
    _fill(odometry, 100.0, 105.0, 100.0, lambda t: 0.0 if t < 102.0 else 0.3)
    # Only the last HISTORY_S are kept: an interval reaching back further averages what is left.
    assert len(odometry._samples) == round(HISTORY_S * 100.0) + 1
    assert odometry.motion_at(105.0, since_s=90.0)[0].yaw_rate == pytest.approx(0.3)
    # Out of order by a little: put in place, the history stays sorted.
    odometry.update(_odometry(20.0, 0.0, 104.995), now_s=0.0)
    stamps = [sample.stamp_s for sample in odometry._samples]
    assert stamps == sorted(stamps)
    # A bag played again: its first samples replace the old drive's.
    _fill(odometry, 10.0, 10.2, 100.0, lambda t: -0.1)
    assert min(sample.stamp_s for sample in odometry._samples) == pytest.approx(10.0)
    assert odometry.motion_at(10.2, since_s=10.0)[0].yaw_rate == pytest.approx(-0.1)
    odometry.reset()
    assert odometry.motion_at(10.2, since_s=10.0) == (None, None)


# ---- the pose source in a node (a private rclpy context) --------------------------------------------------


def _pose_node(ros_node, **values):
    from rclpy.parameter import Parameter

    from clrkdnet_ros import parameters

    parameters.declare_parameters(ros_node)
    ros_node.set_parameters([Parameter(name, value=value) for name, value in values.items()])
    return ros_node


def _optical_transform(parent: str, child: str, pose: CameraPose, stamp_s: float = 0.0):
    from geometry_msgs.msg import TransformStamped
    from rclpy.time import Time
    from scipy.spatial.transform import Rotation

    msg = TransformStamped()
    msg.header.frame_id, msg.child_frame_id = parent, child
    msg.header.stamp = Time(nanoseconds=round(stamp_s * 1e9)).to_msg()
    t, r = msg.transform.translation, msg.transform.rotation
    t.x, t.y, t.z = (float(v) for v in pose.translation)
    r.x, r.y, r.z, r.w = (float(v) for v in Rotation.from_matrix(pose.rotation).as_quat())
    return msg


@pytest.mark.ros
def test_pose_parameters_are_read_for_every_frame_and_tf2_is_not_consulted(ros_node):
    from rclpy.parameter import Parameter
    from rclpy.time import Time

    from clrkdnet_ros.camera_pose import CameraPoseSource

    node = _pose_node(ros_node, camera_height=1.4, camera_pitch=0.05)
    source = CameraPoseSource(node)
    line = source.open()
    assert line.startswith("camera pose: from camera_height 1.400 m")
    assert source.description == "camera_height/camera_pitch parameters"
    assert source._tf is None  # no listener: tf2 is not consulted
    assert source.pose("base_link", "cam", Time()).translation[2] == pytest.approx(1.4)
    # A run-time change applies to the next frame (the executor's follow() only reports it).
    node.set_parameters([Parameter("camera_pose", value=[1.0, 0.0, 1.6, 0.0, 0.02, 0.0])])
    assert source.pose("base_link", "cam", Time()).translation[0] == pytest.approx(1.0)
    assert "the camera_pose parameter: x 1.000" in source.follow()
    assert source.follow() is None  # nothing changed since
    source.close()


@pytest.mark.ros
def test_without_tf2_ros_start_up_names_the_fix(ros_node, monkeypatch):
    from rclpy.time import Time

    from clrkdnet_ros.camera_pose import CameraPoseSource

    monkeypatch.setitem(sys.modules, "tf2_ros", None)  # import tf2_ros raises ImportError
    source = CameraPoseSource(_pose_node(ros_node))
    line = source.open()
    assert "camera pose: none" in line and "set camera_pose:=[x, y, z, roll, pitch, yaw]" in line
    assert "pixels only" in line and source.description == "none"
    assert source.pose("base_link", "cam", Time()) is None


def _tf2_importable() -> bool:
    try:
        import tf2_ros  # noqa: F401
    except ImportError:
        return False
    return True


needs_tf2 = pytest.mark.skipif(
    not _tf2_importable(), reason="tf2_ros is not importable (make setup builds it from ../shared/ros2_tf)"
)


@pytest.mark.ros
@needs_tf2
def test_tf2_pose_static_latest_and_missing(ros_node):
    from rclpy.time import Time

    from clrkdnet_ros.camera_pose import CameraPoseSource, PoseUnavailable

    source = CameraPoseSource(_pose_node(ros_node))
    assert source.open() == "camera pose: from tf2, the transform base_link <- each image's frame_id"
    buffer = source._tf._buffer
    mount = CameraPose.from_xyz_rpy(1.2, -0.1, 1.45, 0.01, 0.04, -0.02)
    buffer.set_transform_static(_optical_transform("base_link", "cam", mount), "test")
    pose = source.pose("base_link", "cam", Time(seconds=1234.5))  # static: any stamp
    np.testing.assert_allclose(pose.rotation, mount.rotation, atol=1e-9)
    np.testing.assert_allclose(pose.translation, mount.translation, atol=1e-9)
    # A moving mount whose transform is a little older than the image: after a short wait, the latest one.
    buffer.set_transform(_optical_transform("base_link", "moving", mount, stamp_s=100.0), "test")
    start = time.monotonic()
    assert source.pose("base_link", "moving", Time(seconds=100.5)).translation[2] == pytest.approx(1.45)
    assert time.monotonic() - start < 0.5
    # Much older: it no longer says where the camera is.
    with pytest.raises(PoseUnavailable, match=r"base_link <- moving is 99.50 s older than the image"):
        source.pose("base_link", "moving", Time(seconds=199.5))
    with pytest.raises(PoseUnavailable, match="no transform base_link <- nowhere from tf2"):
        source.pose("base_link", "nowhere", Time(seconds=1.0))
    looking_up = CameraPose.from_transform((0.0, 0.0, 1.5), (0.0, 0.0, 0.0, 1.0))
    buffer.set_transform_static(_optical_transform("base_link", "camera_link", looking_up), "test")
    with pytest.raises(PoseUnavailable, match="is camera_link the optical frame"):
        source.pose("base_link", "camera_link", Time())
    source.close()  # at deactivate: the listener goes
    assert source._tf is None and source.description == "none"


# ---- lasting problems in the log ---------------------------------------------------------------------------


def test_a_lasting_problem_is_logged_when_it_starts_now_and_then_and_when_it_ends():
    from clrkdnet_ros.diagnostics import Condition

    log = []
    condition = Condition(lambda m: log.append(("warn", m)), lambda m: log.append(("info", m)), "fine again")
    condition.report(None)
    for frame in range(50):  # 50 frames of one problem, its details changing: one warning
        condition.report(f"no transform (frame {frame})")
    condition.report(None)
    condition.report(None)
    assert log == [("warn", "no transform (frame 0)"), ("info", "fine again")]
    assert condition.problem is None and condition.count == 50
    reminded = Condition(lambda m: log.append(("warn", m)), lambda m: None, repeat_s=0.0)
    log.clear()
    reminded.report("stale")
    reminded.report("stale")
    assert log == [("warn", "stale")] * 2
