"""Lane lists -> LaneArray/MarkerArray, ego positions, and the flat-ground projection geometry."""

import math

import numpy as np
import pytest
from clrkdnet_msgs.msg import Lane as LaneMsg
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from clrkdnet_core.errors import InputError
from clrkdnet_core.lane import Lane
from clrkdnet_ros.conversions import assign_positions, bottom_x, fit_ground_polynomial, lanes_to_msg
from clrkdnet_ros.ego_paths import ego_paths
from clrkdnet_ros.ground_projection import (
    MAX_GROUND_DISTANCE_M,
    CameraIntrinsics,
    CameraModel,
    CameraModelCache,
    GroundProjection,
)
from clrkdnet_ros.markers import lanes_to_markers

WIDTH, HEIGHT = 1640, 590
INTRINSICS = CameraIntrinsics(fx=1000.0, fy=1000.0, cx=800.0, cy=300.0)


def _straight_lane(x_bottom: float, x_top: float, y_top: float = 300.0, y_bottom: float = 589.0, score=0.9):
    """A lane along a straight line, points top to bottom like LaneDetector returns them."""
    ys = np.linspace(y_top, y_bottom, 30)
    xs = x_top + (x_bottom - x_top) * (ys - y_top) / (y_bottom - y_top)
    return Lane(np.stack([xs, ys], axis=1), score)


def _header() -> Header:
    header = Header(frame_id="front_camera_optical")
    header.stamp.sec, header.stamp.nanosec = 1_700_000_000, 123_456_789
    return header


# ---- ego positions and ordering ---------------------------------------------------------------------------


def test_bottom_x_extrapolates_a_lane_that_ends_above_the_bottom_row():
    lane = _straight_lane(x_bottom=200.0, x_top=700.0)
    short = Lane(lane.points[lane.points[:, 1] < 450], lane.score)  # stops 140 rows above the bottom
    assert bottom_x(short.points, HEIGHT) == pytest.approx(200.0, abs=1e-3)
    assert bottom_x(lane.points[:1], HEIGHT) == pytest.approx(700.0)  # a single point cannot be extended


def test_positions_count_outwards_from_the_centre():
    xs = [-300.0, 100.0, 500.0, 700.0, 900.0, 1300.0, 1700.0, 2100.0]
    assert assign_positions(xs, center_x=820.0) == [
        LaneMsg.POSITION_UNKNOWN,
        LaneMsg.THIRD_LEFT,
        LaneMsg.ADJACENT_LEFT,
        LaneMsg.EGO_LEFT,
        LaneMsg.EGO_RIGHT,
        LaneMsg.ADJACENT_RIGHT,
        LaneMsg.THIRD_RIGHT,
        LaneMsg.POSITION_UNKNOWN,
    ]
    assert assign_positions([900.0, 1200.0], center_x=820.0) == [LaneMsg.EGO_RIGHT, LaneMsg.ADJACENT_RIGHT]
    assert assign_positions([], center_x=820.0) == []


def test_lane_array_sorted_left_to_right_with_bottom_to_top_polylines():
    # Deliberately unsorted input, as the network returns lanes in score order.
    lanes = [
        _straight_lane(1300.0, 900.0, score=0.8),
        _straight_lane(300.0, 750.0, score=0.95),
        _straight_lane(1000.0, 850.0, y_top=320.0, score=0.7),
        _straight_lane(650.0, 800.0, score=0.6),
    ]
    header = _header()
    msg = lanes_to_msg(lanes, header, WIDTH, HEIGHT)

    assert msg.header == header
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
    assert first.type == LaneMsg.TYPE_UNKNOWN
    assert len(first.u) == len(first.v) == 30
    assert first.v[0] == pytest.approx(589.0) and first.v[-1] == pytest.approx(300.0)  # bottom to top
    assert first.u[0] == pytest.approx(300.0) and first.u[-1] == pytest.approx(750.0)
    assert np.all(np.diff(np.asarray(first.v)) < 0)
    assert len(first.ground_points) == 0
    assert np.isnan(first.ground_poly).all() and math.isnan(first.x_min) and math.isnan(first.x_max)


def test_empty_detection_keeps_the_header():
    msg = lanes_to_msg([], _header(), WIDTH, HEIGHT)
    assert msg.lanes == [] and msg.header == _header()


# ---- flat-ground projection ----------------------------------------------------------------------------


def _to_pixel(projection: GroundProjection, x: float, y: float) -> tuple[float, float]:
    """Forward model, written independently: ground point (x forward, y left, z=0) -> pixel."""
    h, p, k = projection.height, projection.pitch, projection.intrinsics
    # Camera-frame coordinates (x right, y down, z forward) of the point for a camera pitched down by p.
    right = -y
    down_level, forward_level = h, x
    y_cam = down_level * math.cos(p) - forward_level * math.sin(p)
    z_cam = down_level * math.sin(p) + forward_level * math.cos(p)
    return k.cx + k.fx * right / z_cam, k.cy + k.fy * y_cam / z_cam


def test_principal_point_lands_at_height_over_tan_pitch():
    projection = GroundProjection(INTRINSICS, height=1.5, pitch=0.1)
    point = projection.project(np.array([800.0]), np.array([300.0]))[0]
    np.testing.assert_allclose(point, [1.5 / math.tan(0.1), 0.0, 0.0], rtol=1e-5, atol=1e-6)


def test_horizon_row_and_above_do_not_reach_the_ground():
    projection = GroundProjection(INTRINSICS, height=1.5, pitch=0.05)
    horizon = projection.horizon_v()
    assert horizon == pytest.approx(300.0 - 1000.0 * math.tan(0.05))
    points = projection.project(np.array([800.0, 800.0, 800.0]), np.array([horizon, horizon - 10.0, 589.0]))
    assert np.isnan(points[:2]).all()
    assert np.isfinite(points[2]).all()


def test_level_camera_distance_follows_row_offset():
    # Pitch 0: a row d pixels below the principal point sees the road at fx * h / d.
    projection = GroundProjection(INTRINSICS, height=2.0, pitch=0.0)
    points = projection.project(np.array([800.0, 800.0]), np.array([400.0, 340.0]))
    np.testing.assert_allclose(points[:, 0], [20.0, 50.0], rtol=1e-5)
    assert np.isnan(projection.project(np.array([800.0]), np.array([310.0]))).all()  # 200 m > max distance
    assert MAX_GROUND_DISTANCE_M < 200.0


@pytest.mark.parametrize(("x", "y"), [(5.0, 0.0), (12.0, 1.8), (30.0, -3.5), (60.0, 5.0)])
def test_projection_inverts_the_camera_model(x, y):
    projection = GroundProjection(INTRINSICS, height=1.4, pitch=0.07)
    u, v = _to_pixel(projection, x, y)
    np.testing.assert_allclose(projection.project(np.array([u]), np.array([v]))[0], [x, y, 0.0], atol=1e-3)


def test_intrinsics_from_camera_info():
    info = CameraInfo(width=WIDTH, height=HEIGHT)
    info.k = [1100.0, 0.0, 820.0, 0.0, 1090.0, 295.0, 0.0, 0.0, 1.0]
    assert CameraIntrinsics.from_camera_info(info) == CameraIntrinsics(1100.0, 1090.0, 820.0, 295.0)
    with pytest.raises(InputError, match="no valid intrinsic matrix"):
        CameraIntrinsics.from_camera_info(CameraInfo(width=WIDTH, height=HEIGHT))


def _camera_info(width: int = WIDTH, height: int = HEIGHT) -> CameraInfo:
    info = CameraInfo(width=width, height=height)
    info.k = [1000.0, 0.0, 800.0, 0.0, 1000.0, 300.0, 0.0, 0.0, 1.0]
    return info


def test_camera_model_is_rebuilt_only_when_camera_info_or_the_mounting_changes():
    cache = CameraModelCache()
    first = cache.get(_camera_info(), WIDTH, HEIGHT, 1.5, 0.1)
    assert first.intrinsics == INTRINSICS and first.problem is None
    assert first.projection == GroundProjection(INTRINSICS, 1.5, 0.1)
    # camera_info comes with every frame: a new message with the same contents changes nothing.
    for _ in range(3):
        assert cache.get(_camera_info(), WIDTH, HEIGHT, 1.5, 0.1) is first
    assert cache.builds == 1
    assert cache.get(_camera_info(), WIDTH, HEIGHT, 1.5, 0.2).projection.pitch == 0.2
    assert cache.get(_camera_info(), WIDTH, HEIGHT, 2.0, 0.2).projection.height == 2.0
    moved = _camera_info()
    moved.k[2] = 810.0
    assert cache.get(moved, WIDTH, HEIGHT, 2.0, 0.2).intrinsics.cx == 810.0
    assert cache.get(moved, WIDTH, HEIGHT, 0.0, 0.2).projection is None  # height 0: projection off
    assert cache.builds == 5


def test_camera_model_says_why_camera_info_is_ignored():
    cache = CameraModelCache()
    assert cache.get(None, WIDTH, HEIGHT, 1.5, 0.1) == CameraModel()
    other_size = cache.get(_camera_info(640, 480), WIDTH, HEIGHT, 1.5, 0.1)
    assert other_size.projection is None and other_size.intrinsics is None
    assert (
        other_size.problem
        == "camera_info is for 640x480 images but the image is 1640x590; ignoring camera_info"
    )
    uncalibrated = _camera_info()
    uncalibrated.k = [0.0] * 9
    assert cache.get(uncalibrated, WIDTH, HEIGHT, 1.5, 0.1).problem.startswith("ignoring camera_info: ")


def test_cubic_fit_recovers_a_known_curve():
    x = np.linspace(5.0, 60.0, 40)
    y = 1.7 + 0.02 * x - 0.003 * x**2 + 0.00004 * x**3
    coefficients, x_min, x_max = fit_ground_polynomial(np.stack([x, y], axis=1))
    np.testing.assert_allclose(coefficients, [1.7, 0.02, -0.003, 0.00004], rtol=1e-3, atol=1e-6)
    assert (x_min, x_max) == (5.0, 60.0)
    line, _, _ = fit_ground_polynomial(np.array([[0.0, 1.0], [10.0, 2.0]]))
    np.testing.assert_allclose(line, [1.0, 0.1, 0.0, 0.0], atol=1e-6)
    assert np.isnan(fit_ground_polynomial(np.zeros((1, 2)))[0]).all()


def test_lane_array_with_ground_projection():
    projection = GroundProjection(INTRINSICS, height=1.5, pitch=0.08)
    # Two straight boundaries 1.75 m either side of the camera, from 6 m to 40 m ahead.
    lanes = []
    for y in (1.75, -1.75):
        pixels = np.array([_to_pixel(projection, x, y) for x in np.linspace(40.0, 6.0, 25)], dtype=np.float32)
        lanes.append(Lane(pixels, 0.9))
    msg = lanes_to_msg(lanes, _header(), WIDTH, HEIGHT, projection, "base_link")

    assert msg.ground_frame_id == "base_link"
    left, right = msg.lanes
    assert (left.position, right.position) == (LaneMsg.EGO_LEFT, LaneMsg.EGO_RIGHT)
    for lane, y in ((left, 1.75), (right, -1.75)):
        ground = np.array([[p.x, p.y, p.z] for p in lane.ground_points])
        assert len(ground) == 25
        np.testing.assert_allclose(ground[:, 1], y, atol=1e-3)
        assert ground[0, 0] == pytest.approx(6.0, abs=1e-3)  # bottom of the image = nearest point
        np.testing.assert_allclose(lane.ground_poly, [y, 0.0, 0.0, 0.0], atol=1e-3)
        assert (lane.x_min, lane.x_max) == (pytest.approx(6.0, abs=1e-3), pytest.approx(40.0, abs=1e-2))


# ---- markers ---------------------------------------------------------------------------------------------


def test_markers_in_the_image_plane_without_projection():
    lanes = [_straight_lane(300.0, 750.0), _straight_lane(1300.0, 900.0)]
    msg = lanes_to_msg(lanes, _header(), WIDTH, HEIGHT)
    markers = lanes_to_markers(msg).markers
    assert markers[0].action == Marker.DELETEALL
    assert [m.type for m in markers[1:]] == [Marker.LINE_STRIP] * 2
    assert [m.id for m in markers[1:]] == [0, 1]
    for marker in markers:
        assert marker.header.frame_id == "front_camera_optical"
        assert marker.header.stamp == _header().stamp
    bottom = markers[1].points[0]
    # Without camera_info: pixels centred and scaled by 1 / width on the plane z = 1 m.
    assert (bottom.x, bottom.y, bottom.z) == pytest.approx(((300 - 820) / WIDTH, (589 - 295) / WIDTH, 1.0))
    with_intrinsics = lanes_to_markers(msg, INTRINSICS).markers[1].points[0]
    assert (with_intrinsics.x, with_intrinsics.y) == pytest.approx(((300 - 800) / 1000, (589 - 300) / 1000))


def test_markers_on_the_ground_with_projection():
    projection = GroundProjection(INTRINSICS, height=1.5, pitch=0.08)
    pixels = np.array([_to_pixel(projection, x, 1.75) for x in np.linspace(30.0, 6.0, 10)], dtype=np.float32)
    msg = lanes_to_msg([Lane(pixels, 0.9)], _header(), WIDTH, HEIGHT, projection, "base_link")
    markers = lanes_to_markers(msg, INTRINSICS).markers
    assert [m.header.frame_id for m in markers] == ["base_link", "base_link"]
    assert markers[1].points[0].x == pytest.approx(6.0, abs=1e-3)
    assert markers[1].points[0].y == pytest.approx(1.75, abs=1e-3)
    assert markers[1].scale.x > 0.0 and markers[1].color.a == 1.0


def test_marker_lifetime():
    msg = lanes_to_msg([_straight_lane(300.0, 750.0)], _header(), WIDTH, HEIGHT)
    forever = lanes_to_markers(msg).markers[1].lifetime
    assert (forever.sec, forever.nanosec) == (0, 0)
    lifetime = lanes_to_markers(msg, lifetime_s=1.25).markers[1].lifetime
    assert (lifetime.sec, lifetime.nanosec) == (1, 250_000_000)


# ---- ego lane paths --------------------------------------------------------------------------------------


def test_ego_paths_follow_the_ego_boundaries_on_the_ground():
    projection = GroundProjection(INTRINSICS, height=1.5, pitch=0.08)

    def ground_lane(y: float) -> Lane:
        distances = np.linspace(30.0, 6.0, 10)  # top of the image (far) to bottom (near)
        return Lane(np.array([_to_pixel(projection, x, y) for x in distances], dtype=np.float32), 0.9)

    lanes = [ground_lane(5.25), ground_lane(1.75), ground_lane(-1.75)]  # left to right: y points left
    msg = lanes_to_msg(lanes, _header(), WIDTH, HEIGHT, projection, "base_link")
    left, right = ego_paths(msg)
    for path, y in ((left, 1.75), (right, -1.75)):
        assert path.header.frame_id == "base_link" and path.header.stamp == _header().stamp
        xs = [pose.pose.position.x for pose in path.poses]
        assert xs == sorted(xs) and xs[0] == pytest.approx(6.0, abs=1e-3)
        assert xs[-1] == pytest.approx(30.0, abs=1e-2)
        assert all(pose.pose.position.y == pytest.approx(y, abs=1e-3) for pose in path.poses)
        assert all(pose.header.frame_id == "base_link" for pose in path.poses)


def test_ego_paths_are_empty_for_a_missing_boundary_and_absent_without_projection():
    projection = GroundProjection(INTRINSICS, height=1.5, pitch=0.08)
    only_left = [_straight_lane(300.0, 750.0)]
    left, right = ego_paths(lanes_to_msg(only_left, _header(), WIDTH, HEIGHT, projection, "base_link"))
    assert len(left.poses) > 0 and len(right.poses) == 0
    assert right.header.frame_id == "base_link"
    assert ego_paths(lanes_to_msg(only_left, _header(), WIDTH, HEIGHT)) is None
