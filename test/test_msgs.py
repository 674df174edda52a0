"""clrkdnet_msgs: the generated Python types and a LaneArray round trip between two processes over DDS."""

import json
import math
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from clrkdnet_msgs.msg import EgoLane, Lane, LaneArray

MSG_DIR = Path(__file__).resolve().parent.parent / "msg" / "msg"

# A separate process that takes one LaneArray from TOPIC and prints it as JSON.
SUBSCRIBER = textwrap.dedent(
    """
    import json, sys
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from clrkdnet_msgs.msg import LaneArray

    rclpy.init()
    node = rclpy.create_node("lane_array_listener")
    received = []
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(LaneArray, sys.argv[1], received.append, qos)
    while not received:
        rclpy.spin_once(node, timeout_sec=0.1)
    msg = received[0]
    print(json.dumps({
        "stamp": [msg.header.stamp.sec, msg.header.stamp.nanosec],
        "frame_id": msg.header.frame_id,
        "size": [msg.image_width, msg.image_height],
        "ground_frame_id": msg.ground_frame_id,
        "lanes": [{
            "id": lane.id, "age": lane.age, "measured": lane.measured,
            "existence_probability": lane.existence_probability,
            "score": lane.score, "position": lane.position, "type": lane.type,
            "u": list(lane.u), "v": list(lane.v),
            "ground_points": [[p.x, p.y, p.z] for p in lane.ground_points],
            "ground_poly": [float(c) for c in lane.ground_poly],
            "x_min": lane.x_min, "x_max": lane.x_max,
        } for lane in msg.lanes],
    }), flush=True)
    """
)


def make_lane_array() -> LaneArray:
    from geometry_msgs.msg import Point32

    msg = LaneArray()
    msg.header.stamp.sec = 1700000000
    msg.header.stamp.nanosec = 123456789
    msg.header.frame_id = "camera_optical"
    msg.image_width, msg.image_height = 1640, 590
    msg.ground_frame_id = "base_link"
    ego_left = Lane(
        id=7,
        age=42,
        measured=False,
        existence_probability=0.9375,
        score=0.875,
        position=Lane.EGO_LEFT,
        type=Lane.TYPE_UNKNOWN,
    )
    ego_left.u = np.linspace(400.0, 700.0, 30, dtype=np.float32)
    ego_left.v = np.linspace(589.0, 270.0, 30, dtype=np.float32)
    ego_left.ground_points = [Point32(x=float(x), y=1.75, z=0.0) for x in range(5, 10)]
    ego_left.ground_poly = np.array([1.75, 0.01, -0.002, 1e-5], dtype=np.float32)
    ego_left.x_min, ego_left.x_max = 5.0, 9.0
    ego_right = Lane(id=1, score=0.5, position=Lane.EGO_RIGHT, type=Lane.TYPE_UNKNOWN)
    ego_right.u = np.array([1200.5, 1000.25], dtype=np.float32)
    ego_right.v = np.array([589.0, 300.0], dtype=np.float32)
    ego_right.ground_poly = np.full(4, np.nan, dtype=np.float32)
    ego_right.x_min = ego_right.x_max = math.nan
    msg.lanes = [ego_left, ego_right]
    return msg


def test_constants_match_the_interface_design():
    assert (Lane.POSITION_UNKNOWN, Lane.EGO_LEFT, Lane.EGO_RIGHT) == (0, -1, 1)
    assert (Lane.ADJACENT_LEFT, Lane.ADJACENT_RIGHT, Lane.THIRD_LEFT, Lane.THIRD_RIGHT) == (-2, 2, -3, 3)
    assert Lane.TYPE_UNKNOWN == 0
    assert len({Lane.TYPE_UNKNOWN, Lane.TYPE_SOLID, Lane.TYPE_DASHED, Lane.TYPE_DOUBLE, Lane.TYPE_CURB}) == 5


@pytest.mark.parametrize("name", ["Lane.msg", "LaneArray.msg", "EgoLane.msg"])
def test_every_field_and_constant_is_documented(name):
    """Each field or constant belongs to a block (no blank line between) that starts with a comment."""
    documented = False
    for line in (MSG_DIR / name).read_text().splitlines():
        stripped = line.strip()
        if not stripped:
            documented = False
        elif stripped.startswith("#"):
            documented = True
        else:
            assert documented, f"{name}: '{stripped}' has no comment above it"


def make_ego_lane() -> EgoLane:
    msg = EgoLane(valid=True, lateral_offset=0.25, heading=-0.01, curvature=0.002, width=3.5)
    msg.header.stamp.sec, msg.header.frame_id = 1700000000, "base_link"
    msg.left_distance, msg.right_distance = 2.0, 1.5
    msg.left_time_to_crossing, msg.right_time_to_crossing = math.inf, 3.25  # inf: not approaching
    msg.lateral_velocity = -0.5
    msg.left_id, msg.right_id = 7, EgoLane.NO_TRACK
    msg.left_source, msg.right_source = EgoLane.SOURCE_MEASURED, EgoLane.SOURCE_RECONSTRUCTED
    msg.lane_change = EgoLane.LANE_CHANGE_RIGHT
    msg.confidence, msg.curvature_rate, msg.width_variance = 0.625, math.nan, 0.01
    return msg


def test_ego_lane_constants():
    assert (EgoLane.LANE_CHANGE_NONE, EgoLane.LANE_CHANGE_LEFT, EgoLane.LANE_CHANGE_RIGHT) == (0, 1, -1)
    assert (EgoLane.SOURCE_NONE, EgoLane.SOURCE_MEASURED, EgoLane.SOURCE_PREDICTED) == (0, 1, 2)
    assert (EgoLane.SOURCE_RECONSTRUCTED, EgoLane.NO_TRACK) == (3, 0)


def test_ego_lane_round_trip_through_rclpy_and_rosbags():
    from rclpy.serialization import deserialize_message, serialize_message
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    msg = make_ego_lane()
    back = deserialize_message(serialize_message(msg), EgoLane)
    assert back.header == msg.header and back.left_time_to_crossing == math.inf
    assert math.isnan(back.curvature_rate) and back.lane_change == EgoLane.LANE_CHANGE_RIGHT
    typestore = get_typestore(Stores.ROS2_KILTED)
    typestore.register(get_types_from_msg((MSG_DIR / "EgoLane.msg").read_text(), "clrkdnet_msgs/msg/EgoLane"))
    decoded = typestore.deserialize_cdr(serialize_message(msg), "clrkdnet_msgs/msg/EgoLane")
    assert (decoded.left_id, decoded.right_source, decoded.valid) == (7, EgoLane.SOURCE_RECONSTRUCTED, True)
    assert decoded.width == pytest.approx(3.5) and decoded.right_time_to_crossing == pytest.approx(3.25)


def test_arrays_fill_from_numpy():
    lane = Lane()
    xs = np.arange(72, dtype=np.float32) * 1.5
    lane.u = xs
    lane.v = xs[::-1]
    np.testing.assert_array_equal(np.frombuffer(lane.u, dtype=np.float32), xs)
    np.testing.assert_array_equal(np.frombuffer(lane.v, dtype=np.float32), xs[::-1])
    assert lane.ground_poly.shape == (4,)
    assert lane.ground_points == []


def test_serialization_round_trip():
    from rclpy.serialization import deserialize_message, serialize_message

    msg = make_lane_array()
    back = deserialize_message(serialize_message(msg), LaneArray)
    assert back.header == msg.header
    assert (back.lanes[0].id, back.lanes[0].age, back.lanes[0].measured) == (7, 42, False)
    assert back.lanes[0].existence_probability == 0.9375
    assert back.lanes[0].u == msg.lanes[0].u
    assert back.lanes[0].ground_points == msg.lanes[0].ground_points
    assert np.isnan(back.lanes[1].ground_poly).all()


def test_rosbags_decodes_what_rclpy_encodes():
    """Offline bag tools decode with rosbags from the .msg text; both must agree on the CDR bytes."""
    from rclpy.serialization import deserialize_message, serialize_message
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    typestore = get_typestore(Stores.ROS2_KILTED)
    for path in sorted(MSG_DIR.glob("*.msg")):
        typestore.register(get_types_from_msg(path.read_text(), f"clrkdnet_msgs/msg/{path.stem}"))
    msg = make_lane_array()
    raw = serialize_message(msg)
    decoded = typestore.deserialize_cdr(raw, "clrkdnet_msgs/msg/LaneArray")
    assert decoded.header.frame_id == "camera_optical"
    assert decoded.lanes[0].position == Lane.EGO_LEFT
    np.testing.assert_array_equal(decoded.lanes[0].u, np.frombuffer(msg.lanes[0].u, dtype=np.float32))
    assert decoded.lanes[0].ground_points[4].x == 9.0
    # And back (bytes may differ in the alignment padding, so compare messages).
    again = deserialize_message(
        bytes(typestore.serialize_cdr(decoded, "clrkdnet_msgs/msg/LaneArray")), LaneArray
    )
    assert again.header == msg.header
    assert again.lanes[0] == msg.lanes[0]
    assert again.lanes[1].u == msg.lanes[1].u


def test_nothing_sourced_import():
    """A clean environment (no ROS variables at all) still finds the built interfaces."""
    code = "from clrkdnet_msgs.msg import LaneArray, Lane; import rclpy; print(LaneArray.__module__)"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "clrkdnet_msgs.msg._lane_array"


@pytest.mark.ros
def test_publish_subscribe_between_processes(ros_node):
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    topic = f"/lanes_{uuid.uuid4().hex[:8]}"
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    publisher = ros_node.create_publisher(LaneArray, topic, qos)
    msg = make_lane_array()
    listener = subprocess.Popen(
        [sys.executable, "-c", SUBSCRIBER, topic], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        # Publish until the listener has one message: discovery time varies with machine load.
        deadline = time.monotonic() + 60
        while listener.poll() is None and time.monotonic() < deadline:
            publisher.publish(msg)
            time.sleep(0.1)
        stdout, stderr = listener.communicate(timeout=10)
    finally:
        listener.kill()
    assert listener.returncode == 0, stderr
    got = json.loads(stdout)

    assert got["stamp"] == [1700000000, 123456789]
    assert got["frame_id"] == "camera_optical"
    assert got["size"] == [1640, 590]
    assert got["ground_frame_id"] == "base_link"
    left, right = got["lanes"]
    assert (left["id"], left["position"], left["type"]) == (7, Lane.EGO_LEFT, Lane.TYPE_UNKNOWN)
    assert (left["age"], left["measured"], left["existence_probability"]) == (42, False, 0.9375)
    assert left["score"] == pytest.approx(0.875)
    np.testing.assert_array_equal(np.float32(left["u"]), np.frombuffer(msg.lanes[0].u, dtype=np.float32))
    np.testing.assert_array_equal(np.float32(left["v"]), np.frombuffer(msg.lanes[0].v, dtype=np.float32))
    assert left["ground_points"] == [[float(x), 1.75, 0.0] for x in range(5, 10)]
    np.testing.assert_allclose(left["ground_poly"], [1.75, 0.01, -0.002, 1e-5], rtol=1e-6)
    assert (left["x_min"], left["x_max"]) == (5.0, 9.0)
    assert (right["id"], right["position"], right["u"], right["v"]) == (
        1,
        Lane.EGO_RIGHT,
        [1200.5, 1000.25],
        [589.0, 300.0],
    )
    assert right["ground_points"] == []
    assert all(math.isnan(c) for c in right["ground_poly"])
    assert math.isnan(right["x_min"]) and math.isnan(right["x_max"])
