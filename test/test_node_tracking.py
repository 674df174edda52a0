"""Tracking, the camera's pose and the ego lane through the lane_detector node, as real processes over DDS.

Full-size 1640x590 frames of the demo's synthetic drive (seed 7) with its truth, the shipped demo model, two
nodes started once for the module, in parallel:

* ``tf``: no pose parameter, so the camera's pose comes from tf2: ``/tf_static`` (base_link -> camera_link ->
  camera_optical_frame, the drive's mounting) is published by a separate process. It checks ``ego_lane``
  against the truth, ids through a frame without lanes, markers, a missing transform, and a lane change (the
  same drive at 5 frames per second, changing lane to the left). Skipped with the reason when ``tf2_ros``
  cannot be imported (set-up builds it from ../shared/ros2_tf).
* ``params``: ``camera_pose`` set to the mounting and ``tracking:=false``: ids by index, and bad input (NaN
  odometry, stamps going back, a ``camera_info`` of another size) that the node survives and names.

The test process is the camera (image, camera_info, odometry): each frame is sent after the previous one was
answered, so the tracker sees every frame.
"""

import functools
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ros_side import RosSide, diagnostics_status, status_values

from clrkdnet_ros.node_process import NodeProcess, NodeProcessError, lane_detector_command

pytestmark = [pytest.mark.ros, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
PRESET = REPO / "models" / "clrkdnet_resnet18_synthetic.yaml"
WEIGHTS = REPO / "models" / "clrkdnet_resnet18_synthetic.pth"
WIDTH, HEIGHT = 1640, 590
SEED = 7
FRAMES = 8  # the tracker confirms a lane in its 3rd frame; the rest are compared with the truth
LANE_CHANGE_FRAMES = 16  # at 5 fps: 0.8 s straight, the change over 2 s (crossing in frame 10), then settled
CAMERA_FRAME = "camera_optical_frame"
STARTUP_TIMEOUT_S = 180.0
ANSWER_TIMEOUT_S = 60.0

try:
    import tf2_ros  # noqa: F401

    TF2_MISSING = None
except ImportError as exc:
    TF2_MISSING = f"tf2_ros is not importable ({exc}); make setup builds it from ../shared/ros2_tf"


# ---- the drive -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriveFrame:
    image: np.ndarray
    truth: Any  # clrkdnet_core.data.synthetic.truth.FrameTruth


def _render(synthetic: Any, frames: int) -> list[DriveFrame]:
    from clrkdnet_core.data.synthetic.render import draw_scene
    from clrkdnet_core.data.synthetic.truth import drive_truth

    return [DriveFrame(draw_scene(synthetic.scene_at(i)), drive_truth(synthetic, i)) for i in range(frames)]


@functools.cache
def drive() -> list[DriveFrame]:
    from clrkdnet_core.data.synthetic.drive import Drive

    return _render(Drive(SEED, WIDTH, HEIGHT, fps=10.0), FRAMES)


@functools.cache
def lane_change_drive() -> list[DriveFrame]:
    from clrkdnet_core.data.synthetic.drive import Drive, LaneChange

    change = LaneChange(at=0.8, direction="left", duration=2.0)
    return _render(Drive(SEED, WIDTH, HEIGHT, fps=5.0, lane_change=change), LANE_CHANGE_FRAMES)


def blank_image() -> np.ndarray:
    """A frame in which the detector finds no lane: a uniform grey road."""
    return np.full((HEIGHT, WIDTH, 3), 110, np.uint8)


# ---- the camera (this process) and the transform publisher -------------------------------------------------

TF_PUBLISHER = """
import math, sys
import rclpy
from geometry_msgs.msg import TransformStamped
from scipy.spatial.transform import Rotation
from tf2_ros import StaticTransformBroadcaster

x, y, z, roll, pitch, yaw = (float(v) for v in sys.argv[1:7])
rclpy.init()
node = rclpy.create_node("camera_mount_tf")

def transform(parent, child, xyz, rpy):
    msg = TransformStamped()
    msg.header.stamp = node.get_clock().now().to_msg()
    msg.header.frame_id, msg.child_frame_id = parent, child
    t, r = msg.transform.translation, msg.transform.rotation
    t.x, t.y, t.z = xyz
    r.x, r.y, r.z, r.w = Rotation.from_euler("xyz", rpy).as_quat()
    return msg

broadcaster = StaticTransformBroadcaster(node)
broadcaster.sendTransform([
    transform("base_link", "camera_link", (x, y, z), (roll, pitch, yaw)),
    # The optical frame of a URDF camera: z forward, x right, y down.
    transform("camera_link", "camera_optical_frame", (0.0, 0.0, 0.0), (-math.pi / 2, 0.0, -math.pi / 2)),
])
print("published", flush=True)
try:
    rclpy.spin(node)
except KeyboardInterrupt:
    pass
rclpy.try_shutdown()
"""


class CameraSide:
    """Publishers of one node's inputs and inboxes of its outputs, in the test's ROS side."""

    def __init__(self, ros: RosSide, namespace: str) -> None:
        from clrkdnet_msgs.msg import EgoLane, LaneArray
        from nav_msgs.msg import Odometry
        from rclpy.qos import QoSProfile
        from sensor_msgs.msg import CameraInfo, Image
        from visualization_msgs.msg import MarkerArray

        node = ros.node
        self.ros = ros
        self.image = node.create_publisher(Image, f"{namespace}/image", QoSProfile(depth=1))
        self.camera_info = node.create_publisher(CameraInfo, f"{namespace}/camera_info", 10)
        self.odom = node.create_publisher(Odometry, f"{namespace}/odom", 10)
        self.lanes = ros.inbox(LaneArray, f"{namespace}/lanes")
        self.ego = ros.inbox(EgoLane, f"{namespace}/ego_lane")
        self.markers = ros.inbox(MarkerArray, f"{namespace}/lane_markers", QoSProfile(depth=5))
        self.base = time.time()

    def wait_for_node(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while self.image.get_subscription_count() == 0 or self.odom.get_subscription_count() == 0:
            assert time.monotonic() < deadline, f"nobody subscribed to {self.image.topic_name}"
            time.sleep(0.1)

    def camera_info_msg(self, truth: Any, width: int = WIDTH, height: int = HEIGHT) -> Any:
        from sensor_msgs.msg import CameraInfo

        info = CameraInfo(width=width, height=height, distortion_model="plumb_bob")
        info.k = truth.camera.k().ravel().tolist()
        info.d = [0.0] * 5
        return info

    def send(
        self,
        image: np.ndarray,
        stamp_s: float,
        info: Any = None,
        speed_yaw_rate: tuple[float, float] | None = None,
        frame_id: str = CAMERA_FRAME,
    ) -> Any:
        """Publish camera_info, odometry and the image at ``stamp_s``; returns the LaneArray answer."""
        import array

        from nav_msgs.msg import Odometry
        from rclpy.time import Time
        from sensor_msgs.msg import Image

        stamp = Time(nanoseconds=round(stamp_s * 1e9)).to_msg()
        if info is not None:
            info.header.stamp, info.header.frame_id = stamp, frame_id
            self.camera_info.publish(info)
        if speed_yaw_rate is not None:
            odom = Odometry()
            odom.header.stamp, odom.header.frame_id, odom.child_frame_id = stamp, "odom", "base_link"
            odom.twist.twist.linear.x, odom.twist.twist.angular.z = speed_yaw_rate
            self.odom.publish(odom)
        if info is not None or speed_yaw_rate is not None:
            # Ahead of the frame: a full-size frame fills the node's socket buffer for a moment, and a small
            # message arriving meanwhile is dropped (best effort) or resent seconds later (reliable).
            time.sleep(0.05)
        msg = Image(height=HEIGHT, width=WIDTH, encoding="bgr8", is_bigendian=0, step=WIDTH * 3)
        msg.header.stamp, msg.header.frame_id = stamp, frame_id
        msg.data = array.array("B", np.ascontiguousarray(image).tobytes())
        deadline = time.monotonic() + ANSWER_TIMEOUT_S
        while time.monotonic() < deadline:
            self.image.publish(msg)
            found = self.lanes.wait_for(lambda m: m.header.stamp == stamp, timeout=10.0)
            if found is not None:
                return found
        raise AssertionError(f"no lanes for the frame stamped {stamp_s}")

    def send_drive_frame(
        self, index: int, stamp_offset_s: float = 0.0, frames: list[DriveFrame] | None = None
    ) -> tuple[Any, Any]:
        """Frame ``index`` of the drive (or ``frames``) with its camera_info and odometry; (LaneArray, its
        truth)."""
        frame = (frames or drive())[index]
        truth = frame.truth
        stamp_s = self.base + stamp_offset_s + truth.time
        lanes = self.send(frame.image, stamp_s, self.camera_info_msg(truth), (truth.speed, truth.yaw_rate))
        return lanes, truth

    def ego_for(self, lanes: Any, timeout: float = 5.0) -> Any:
        return self.ego.wait_for(lambda m: m.header.stamp == lanes.header.stamp, timeout)


# ---- the node processes ------------------------------------------------------------------------------------


@dataclass
class Detector:
    namespace: str
    node: NodeProcess
    ready_at: float = 0.0  # time.monotonic() when it waited for images (its tf2 listener had started)

    @property
    def name(self) -> str:
        return f"{self.namespace}/lane_detector"

    def output(self) -> str:
        return self.node.output()

    def wait_for_line(self, text: str, timeout_s: float = 30.0, after: int = 0) -> None:
        try:
            self.node.wait_until(lambda: text in self.output()[after:], timeout_s, f"no log line '{text}'")
        except NodeProcessError as exc:
            raise AssertionError(f"{exc}\n{self.output()[-3000:]}") from None


def start_detector(namespace: str, log: Path, *params: str) -> Detector:
    args = ["-r", f"__ns:={namespace}"]
    # Reliable like this process's camera from the start: image_qos auto would re-make the subscription once
    # it sees the publisher, and a frame sent meanwhile would be lost.
    for param in (f"preset:={PRESET}", f"weights:={WEIGHTS}", "device:=cpu", "image_qos:=reliable", *params):
        args += ["-p", param]
    return Detector(namespace, NodeProcess(lane_detector_command(args), log))


def set_parameter(ros: RosSide, detector: Detector, name: str, value: Any) -> bool:
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
    (result,) = ros.call(SetParameters, f"{detector.name}/set_parameters", request).results
    return result.successful


def pose_parameter(mount: tuple[float, ...]) -> str:
    return "camera_pose:=[" + ", ".join(f"{v!r}" for v in mount) + "]"


@pytest.fixture(scope="module")
def ros():
    side = RosSide()
    yield side
    side.close()


@pytest.fixture(scope="module")
def detectors(tmp_path_factory):
    """Both nodes (the ``tf`` one only with tf2_ros), started together and waiting for images."""
    logs = tmp_path_factory.mktemp("logs")
    mount = drive()[0].truth.mount
    started = {}
    try:
        if TF2_MISSING is None:
            started["tf"] = start_detector(f"/track_tf_{os.getpid()}", logs / "tf.log")
        started["params"] = start_detector(
            f"/track_params_{os.getpid()}", logs / "params.log", pose_parameter(mount), "tracking:=false"
        )
        for detector in started.values():
            detector.wait_for_line("waiting for images on", STARTUP_TIMEOUT_S)
            detector.ready_at = time.monotonic()
        yield started
    finally:
        for detector in started.values():
            detector.node.stop(timeout_s=20)


@pytest.fixture(scope="module")
def tf_publisher(tmp_path_factory):
    if TF2_MISSING is not None:
        pytest.skip(TF2_MISSING)
    mount = drive()[0].truth.mount
    log = tmp_path_factory.mktemp("tf") / "tf.log"
    process = NodeProcess(
        [sys.executable, "-c", TF_PUBLISHER, *(repr(v) for v in mount)], log, "the tf2 publisher"
    )
    with process:
        process.wait_until(lambda: "published" in process.output(), 60.0, "no static transform published")
        yield process


@pytest.fixture(scope="module")
def tf_camera(ros, detectors, tf_publisher):
    camera = CameraSide(ros, detectors["tf"].namespace)
    camera.wait_for_node()
    return camera


@pytest.fixture(scope="module")
def params_camera(ros, detectors):
    camera = CameraSide(ros, detectors["params"].namespace)
    camera.wait_for_node()
    return camera


@pytest.fixture(scope="module")
def tracked_drive(tf_camera):
    """The drive through the ``tf`` node: [(LaneArray, EgoLane or None, truth)] for every frame."""
    results = []
    for index in range(FRAMES):
        lanes, truth = tf_camera.send_drive_frame(index)
        results.append((lanes, tf_camera.ego_for(lanes), truth))
    return results


# ---- tf2 node: the pose from /tf_static, tracks and the ego lane -----------------------------------------


def test_start_up_names_tf2_as_the_pose_source(detectors, tf_publisher):
    output = detectors["tf"].output()
    assert "camera pose: from tf2, the transform base_link <- each image's frame_id" in output


def test_ego_lane_follows_the_truth_with_the_pose_from_tf2(tracked_drive):
    confirmed = [(lanes, ego, truth) for lanes, ego, truth in tracked_drive if lanes.lanes]
    assert len(confirmed) >= FRAMES - 3, [len(lanes.lanes) for lanes, _, _ in tracked_drive]
    for lanes, ego, truth in confirmed[-3:]:
        assert lanes.ground_frame_id == "base_link"
        assert all(
            len(lane.ground_points) > 0 and np.isfinite(lane.ground_poly).all() for lane in lanes.lanes
        )
        assert ego is not None, "no ego_lane for a frame with lanes"
        assert ego.header.frame_id == "base_link" and ego.header.stamp == lanes.header.stamp
        assert ego.valid
        expected = truth.ego
        assert ego.lateral_offset == pytest.approx(expected.lateral_offset, abs=0.15)
        assert ego.width == pytest.approx(expected.width, abs=0.25)
        assert math.degrees(ego.heading) == pytest.approx(math.degrees(expected.heading), abs=1.5)
        assert abs(ego.curvature) < 0.01
        ids = {lane.id for lane in lanes.lanes}
        assert ego.left_id in ids and ego.right_id in ids
        assert ego.left_distance == pytest.approx(expected.left_distance, abs=0.2)


def test_track_ids_are_stable_and_ages_grow(tracked_drive):
    confirmed = [lanes for lanes, _, _ in tracked_drive if lanes.lanes]
    first, last = confirmed[0], confirmed[-1]
    assert [lane.id for lane in first.lanes] == [lane.id for lane in last.lanes]
    assert all(lane.id >= 1 and lane.measured for lane in last.lanes)
    assert [lane.age for lane in last.lanes] == [lane.age + len(confirmed) - 1 for lane in first.lanes]
    assert all(0.0 < lane.existence_probability <= 1.0 for lane in last.lanes)


def test_markers_show_track_ids_and_the_ego_centre_line(tracked_drive, tf_camera):
    from visualization_msgs.msg import Marker

    lanes = tracked_drive[-1][0]
    markers = tf_camera.markers.wait_for(
        lambda m: m.markers and m.markers[0].header.stamp == lanes.header.stamp, 10.0
    )
    assert markers is not None, "no markers for the last frame"
    labels = [m for m in markers.markers if m.ns == "lane_ids"]
    assert sorted(m.text for m in labels) == sorted(str(lane.id) for lane in lanes.lanes)
    assert all(m.type == Marker.TEXT_VIEW_FACING and m.header.frame_id == "base_link" for m in labels)
    (centre,) = [m for m in markers.markers if m.ns == "ego_centre"]
    assert centre.type == Marker.LINE_STRIP and len(centre.points) >= 2


def test_ids_survive_a_frame_without_lanes(tracked_drive, tf_camera):
    before = tracked_drive[-1][0]
    last_truth = tracked_drive[-1][2]
    blank = tf_camera.send(blank_image(), tf_camera.base + last_truth.time + 0.1)
    assert [lane.id for lane in blank.lanes] == [lane.id for lane in before.lanes]
    assert blank.lanes and not any(lane.measured for lane in blank.lanes)  # predicted through the miss
    assert all(len(lane.u) > 0 for lane in blank.lanes)  # reprojected into the image
    # The drive goes on (stamps after the blank frame's): the same tracks, measured again.
    after, _ = tf_camera.send_drive_frame(FRAMES - 1, stamp_offset_s=0.2)
    assert [lane.id for lane in after.lanes] == [lane.id for lane in before.lanes]
    assert all(lane.measured for lane in after.lanes)


def test_a_missing_transform_is_one_warning_and_lanes_stay_in_pixels(
    ros, tracked_drive, tf_camera, detectors
):
    from clrkdnet_ros.camera_pose import TF_STARTUP_S

    detector = detectors["tf"]
    # A transform missing in the listener's first seconds is not reported (it may still come).
    time.sleep(max(0.0, detector.ready_at + TF_STARTUP_S - time.monotonic()))
    assert set_parameter(ros, detector, "ground_frame_id", "nowhere")
    try:
        answers = [tf_camera.send_drive_frame(FRAMES - 1, stamp_offset_s=0.3 + 0.1 * k)[0] for k in range(3)]
        for lanes in answers:
            assert lanes.ground_frame_id == ""
            assert all(len(lane.ground_points) == 0 for lane in lanes.lanes)
            assert tf_camera.ego_for(lanes, timeout=1.0) is None  # no ego lane without the ground
        # Tracks in the image start afresh (ground curves mean nothing there) and are confirmed in their 3rd
        # frame.
        assert answers[-1].lanes
        output = detector.output()
        assert output.count(f"no transform nowhere <- {CAMERA_FRAME}") == 1, output[-3000:]
    finally:
        set_parameter(ros, detector, "ground_frame_id", "base_link")
    lanes, _ = tf_camera.send_drive_frame(FRAMES - 1, stamp_offset_s=0.7)
    assert lanes.ground_frame_id == "base_link"
    detector.wait_for_line("camera pose available again")


def test_a_lane_change_moves_the_ego_boundaries_not_the_track_ids(tracked_drive, tf_camera):
    from clrkdnet_msgs.msg import EgoLane, Lane

    frames = lane_change_drive()
    offset = 10.0  # after every stamp sent so far; the tracks of the earlier frames time out
    results = []
    for index in range(LANE_CHANGE_FRAMES):
        lanes, truth = tf_camera.send_drive_frame(index, offset, frames)
        results.append((lanes, tf_camera.ego_for(lanes), truth))
    change = next(i for i, (_, _, truth) in enumerate(results) if truth.ego.lane_change)
    assert results[change][2].ego.lane_change == EgoLane.LANE_CHANGE_LEFT
    before = [ego for _, ego, _ in results[: change - 1] if ego is not None and ego.valid]
    after = [ego for _, ego, _ in results[change + 2 :] if ego is not None and ego.valid]
    assert before and after
    old_left, old_right = before[-1].left_id, before[-1].right_id
    # The marking that was the ego lane's left boundary is now its right one: the same track, the same id.
    assert after[-1].right_id == old_left and after[-1].left_id not in (old_left, old_right)
    reported = [i for i, (_, ego, _) in enumerate(results) if ego is not None and ego.lane_change]
    assert len(reported) == 1 and abs(reported[0] - change) <= 5, (reported, change)
    assert results[reported[0]][1].lane_change == EgoLane.LANE_CHANGE_LEFT
    last = results[-1][0]
    assert {lane.id: lane.position for lane in last.lanes}.get(old_left) == Lane.EGO_RIGHT


def test_diagnostics_show_the_pose_source_and_the_mounting_check(ros, tracked_drive, detectors):
    start = time.time()
    name = f"{detectors['tf'].name}: camera mounting"
    deadline = time.monotonic() + 20.0
    status = None
    while status is None and time.monotonic() < deadline:
        for _, msg in ros.diagnostics.since(start):
            status = next((s for s in msg.status if s.name == name), status)
        time.sleep(0.2)
    assert status is not None, "no camera mounting status"
    values = status_values(status)
    mount_pitch = math.degrees(drive()[0].truth.mount[4])
    assert float(values["configured pitch (deg)"]) == pytest.approx(mount_pitch, abs=0.01)
    assert values["pose source"] == "tf2 transform" and int(values["samples"]) >= 0


# ---- parameter node: tracking off, bad input ---------------------------------------------------------------


def test_start_up_names_the_pose_parameter(detectors):
    assert "camera pose: from the camera_pose parameter" in detectors["params"].output()


def test_tracking_off_gives_ids_by_index(params_camera):
    for index in range(2):
        lanes, truth = params_camera.send_drive_frame(index)
        assert lanes.lanes and [lane.id for lane in lanes.lanes] == list(range(len(lanes.lanes)))
        assert all(lane.measured and lane.age == 0 for lane in lanes.lanes)
        assert all(lane.existence_probability == pytest.approx(lane.score) for lane in lanes.lanes)
        assert lanes.ground_frame_id == "base_link"
        ego = params_camera.ego_for(lanes)
        assert ego is not None and ego.valid
        assert ego.lateral_offset == pytest.approx(truth.ego.lateral_offset, abs=0.2)


def test_tracking_switched_on_at_run_time_never_reuses_an_id(ros, params_camera, detectors):
    detector = detectors["params"]

    def tracked_ids(start_s: float) -> set[int]:
        for k in range(4):  # tracks are confirmed in their third frame
            lanes, _ = params_camera.send_drive_frame(2 + k, start_s)
        assert lanes.lanes and all(lane.id >= 1 for lane in lanes.lanes)
        return {lane.id for lane in lanes.lanes}

    assert set_parameter(ros, detector, "tracking", True)
    try:
        first = tracked_ids(5.0)
        assert set_parameter(ros, detector, "tracking", False)
        lanes, _ = params_camera.send_drive_frame(2, 6.0)
        assert [lane.id for lane in lanes.lanes] == list(range(len(lanes.lanes)))
        assert set_parameter(ros, detector, "tracking", True)
        second = tracked_ids(7.0)
        assert min(second) > max(first)
    finally:
        set_parameter(ros, detector, "tracking", False)
    detector.wait_for_line("tracking on: lanes start afresh")


def test_a_wrong_mounting_pitch_is_one_warning_with_both_values(ros, params_camera, detectors):
    from diagnostic_msgs.msg import DiagnosticStatus

    detector = detectors["params"]
    mount = list(drive()[0].truth.mount)
    wrong = [*mount[:4], mount[4] + math.radians(2.0), mount[5]]
    assert set_parameter(ros, detector, "camera_pose", wrong)
    try:
        # The check needs 30 samples (one per frame with two straight ego boundaries); tracking is off here,
        # so the drive's frames can come round again.
        for k in range(32):
            frame = drive()[k % FRAMES]
            info = params_camera.camera_info_msg(frame.truth) if k == 0 else None
            params_camera.send(frame.image, params_camera.base + 20.0 + 0.1 * k, info)
        detector.wait_for_line("the lanes show a camera pitch of")
        output = detector.output()
        assert output.count("the lanes show a camera pitch of") == 1
        line = next(line for line in output.splitlines() if "the lanes show a camera pitch of" in line)
        assert f"camera_pose parameter gives {math.degrees(wrong[4]):.2f} deg" in line
        estimate = float(line.split("camera pitch of ")[1].split(" deg")[0])
        assert estimate == pytest.approx(math.degrees(mount[4]), abs=0.3)
        name = f"{detector.name}: camera mounting"
        status = diagnostics_status(ros, detector.name, time.time())  # the detector's own status first
        start = time.time()
        deadline = time.monotonic() + 10.0
        mounting = None
        while mounting is None and time.monotonic() < deadline:
            for _, msg in ros.diagnostics.since(start):
                mounting = next((s for s in msg.status if s.name == name), mounting)
            time.sleep(0.2)
        assert status is not None and mounting is not None and mounting.level == DiagnosticStatus.WARN
        values = status_values(mounting)
        assert float(values["configured pitch (deg)"]) == pytest.approx(math.degrees(wrong[4]), abs=0.01)
        assert int(values["samples"]) >= 30
    finally:
        set_parameter(ros, detector, "camera_pose", mount)
    params_camera.send(drive()[0].image, params_camera.base + 30.0)
    detector.wait_for_line("camera pitch agrees with the lanes again")


def test_bad_input_is_survived_and_named(ros, params_camera, detectors):
    from nav_msgs.msg import Odometry

    detector = detectors["params"]
    frame = drive()[2]
    info = params_camera.camera_info_msg(frame.truth)
    stamp = params_camera.base + 100.0
    # Odometry with NaN: dropped with a warning, the frame is processed.
    odom = Odometry()
    odom.twist.twist.linear.x = float("nan")
    params_camera.odom.publish(odom)
    params_camera.send(frame.image, stamp, info)
    detector.wait_for_line("ignoring odometry with a non-finite speed or yaw rate")
    # Stamps going back (a bag that starts again): tracks start afresh, said once at INFO.
    lanes = params_camera.send(frame.image, stamp - 50.0, info)
    assert lanes.lanes
    detector.wait_for_line("image stamps went back by 50.000 s")
    # A camera_info for another image size: ignored with a warning, the lanes stay in pixels.
    # (camera_info first and alone: on two topics, a small message may overtake a full-size frame.)
    params_camera.camera_info.publish(params_camera.camera_info_msg(frame.truth, WIDTH // 2, HEIGHT // 2))
    time.sleep(0.5)
    lanes = params_camera.send(frame.image, stamp - 49.9)
    assert lanes.ground_frame_id == "" and lanes.lanes
    detector.wait_for_line(f"camera_info is for {WIDTH // 2}x{HEIGHT // 2} images but the image is {WIDTH}x")
    params_camera.camera_info.publish(info)  # and a good one again
    time.sleep(0.5)
    lanes = params_camera.send(frame.image, stamp - 49.8)
    assert lanes.ground_frame_id == "base_link"
    assert detector.node.process.poll() is None
    assert "Traceback" not in detector.output()
    status = diagnostics_status(ros, detector.name, time.time())
    assert status_values(status)["odometry"].endswith("1 rejected (NaN)")
