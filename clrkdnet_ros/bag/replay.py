"""``bag replay``: play a bag into the lane_detector node over DDS at the recorded rate and score its output.

The bag's images (and camera infos, odometry) are published as recorded, serialized bytes and all, paced by
the bag's timestamps (``rate`` scales the speed). Its static transforms are published first, once, on
``/tf_static`` with transient-local durability, as a static transform broadcaster latches them: a node that
starts listening later still gets them. The node's ``lanes`` and ``ego_lane`` are matched to the images by
header stamp: the node copies the image stamp to its output. A frame without output was dropped by the node
(it processes only the newest frame); the metrics cover the processed frames, a true lane change in a dropped
frame counting in the next processed one. With the node's tracking off they agree with an offline evaluation
of those frames; with tracking on (its default) the node publishes its tracks, and F1 scores those. Latency
here is end to end: publishing the image to receiving its lanes.
"""

import shlex
import time
from collections.abc import Callable
from pathlib import Path

from clrkdnet_msgs.msg import EgoLane, LaneArray
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from tqdm import tqdm

from clrkdnet_core.errors import ClrkdnetError
from clrkdnet_ros.bag.bagfile import BagFrame, LaneBag, lane_array_to_lanes
from clrkdnet_ros.bag.evaluate import BagCamera, FrameOutput, Scorer
from clrkdnet_ros.bag.typestore import CAMERA_INFO, COMPRESSED_IMAGE, IMAGE, ODOMETRY
from clrkdnet_ros.camera_pose import tf2_available
from clrkdnet_ros.node_process import NodeProcess, NodeProcessError, lane_detector_command, wait_until
from clrkdnet_ros.spinning_node import SpinningNode

_MSG_CLASSES = {IMAGE: Image, COMPRESSED_IMAGE: CompressedImage, CAMERA_INFO: CameraInfo, ODOMETRY: Odometry}
# Static transforms are latched: a late subscriber (the node's tf2 listener) still receives them.
_LATCHED = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
_POLL_S = 0.05  # while draining the last answers
# After the last image: stop waiting once no lanes arrived for this long.
_QUIET_S = 3.0
_DRAIN_LIMIT_S = 60.0
_EGO_GRACE_S = 1.0


class ReplayError(ClrkdnetError):
    """The node did not start, died, or never answered."""


def node_command(
    preset: str,
    weights: Path,
    device: str,
    image_topic: str,
    camera_info_topic: str | None,
    extra: str = "",
    camera: BagCamera | None = None,
) -> list[str]:
    """The lane_detector command for ``image_topic`` (raw, or ``.../compressed``: compressed transport).

    With the bag's ``camera`` pose, ``ground_frame_id`` is the root of its static transforms; where the node
    cannot use tf2 (``tf2_ros`` is not importable), the pose goes to it as its ``camera_pose`` parameter, so
    that the ground projection works everywhere.
    """
    compressed = image_topic.endswith("/compressed")
    raw_topic = image_topic.removesuffix("/compressed") if compressed else image_topic
    args = ["-p", f"preset:={preset}", "-p", f"weights:={weights}", "-p", f"device:={device}"]
    args += [
        "-p",
        f"image_transport:={'compressed' if compressed else 'raw'}",
        "-r",
        f"image:={raw_topic}",
    ]
    if camera_info_topic:
        args += ["-r", f"camera_info:={camera_info_topic}"]
    if camera is not None and camera.pose is not None:
        args += ["-p", f"ground_frame_id:={camera.ground_frame}"]
        if not tf2_available():
            values = [*camera.pose.translation, *camera.pose.body_rpy()]
            pose = "[" + ",".join(f"{value:.9f}" for value in values) + "]"  # always a YAML float
            print(
                f"INFO: tf2_ros is not importable here: the node gets the bag's static transform "
                f"{camera.ground_frame} <- {camera.camera_frame} as camera_pose:={pose}"
            )
            args += ["-p", f"camera_pose:={pose}"]
    return lane_detector_command(args + shlex.split(extra))


def replay_bag(
    bag: LaneBag,
    out_dir: Path,
    command: list[str] | None,
    lanes_topic: str = "/lanes",
    rate: float = 1.0,
    startup_timeout_s: float = 180.0,
    on_frame: Callable[[BagFrame, FrameOutput], None] | None = None,
    ego_topic: str = "/ego_lane",
    camera: BagCamera | None = None,
    tracking: bool | None = None,
) -> tuple[dict, list]:
    """Play ``bag`` to the node started with ``command`` (None: one already runs) and score its lanes and
    ego lane.

    The node's output goes to ``out_dir/node.log``. Returns the summary and the per-frame rows of the
    processed frames, as :func:`~clrkdnet_ros.bag.evaluate.evaluate_bag` does, plus the drop statistics.
    ``camera`` (the bag's, for the report) and ``tracking`` (whether the node tracks; None: unknown) are
    reported as given.
    """
    if rate <= 0:
        raise ReplayError(f"--rate must be positive, got {rate}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spinning = SpinningNode("lane_bag_replay")
    node = spinning.node
    received: dict[int, tuple[float, LaneArray]] = {}
    reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(
        LaneArray,
        lanes_topic,
        lambda msg: received.setdefault(_stamp(msg), (time.monotonic(), msg)),
        reliable,
    )
    egos: dict[int, EgoLane] = {}
    node.create_subscription(EgoLane, ego_topic, lambda msg: egos.setdefault(_stamp(msg), msg), reliable)
    publishers = {}
    process = None
    try:
        if command is not None:
            process = NodeProcess(command, out_dir / "node.log")
        published = _play(bag, node, publishers, process, lanes_topic, rate, startup_timeout_s)
        _drain(published, received)
        # The node publishes a frame's ego lane just after its lanes: the last one may still be on its way.
        deadline = time.monotonic() + _EGO_GRACE_S
        while egos and not received.keys() <= egos.keys() and time.monotonic() < deadline:
            time.sleep(_POLL_S)
    except NodeProcessError as exc:
        raise ReplayError(str(exc)) from None
    finally:
        if process is not None:
            process.stop()
        spinning.close()

    projection = None if camera is None else camera.description or f"none: {camera.reason}"
    scorer = Scorer(bag, tracking, projection)
    for frame in bag.frames():
        if frame.stamp_ns in received and frame.stamp_ns in published:
            arrival, msg = received[frame.stamp_ns]
            output = _node_output(msg, egos.get(frame.stamp_ns))
            scorer.add(frame, output, (arrival - published[frame.stamp_ns]) * 1000.0)
            if on_frame is not None:
                on_frame(frame, output)
        else:
            scorer.skip(frame)  # dropped by the node: a true lane change in it is due in the next answer
    summary = scorer.summary()
    played = len(published)
    if scorer.rows:
        # Throughput of the live system: processed frames per second of playback (not 1 / latency).
        span = max(arrival for arrival, _ in received.values()) - min(published.values())
        summary["fps"] = len(scorer.rows) / span if span > 0 else None
    summary.update(
        mode="live",
        latency_kind="end_to_end",
        rate=rate,
        frames_played=played,
        frames_dropped=played - len(scorer.rows),
        dropped_fraction=(played - len(scorer.rows)) / played if played else None,
    )
    return summary, scorer.rows


def _node_output(msg: LaneArray, ego: EgoLane | None) -> FrameOutput:
    """The node's answer to one image: its lanes with their ids and its ego lane (None: none published)."""
    lanes = lane_array_to_lanes(msg)
    return FrameOutput(
        detections=lanes,
        lanes=lanes,
        ids=[int(lane.id) for lane in msg.lanes],
        measured=[bool(lane.measured) for lane in msg.lanes],
        ego=ego,
    )


def _play(bag, node: Node, publishers, process: NodeProcess | None, lanes_topic, rate, startup_timeout_s):
    """Latch the static transforms, wait for the node, then publish every image, camera info and odometry on
    time; returns {stamp: publish time}."""
    static = bag.static_transforms_message()
    # Without tf2 the node gets the pose as a parameter (node_command), and tf2_msgs may not exist here.
    if static is not None and tf2_available():
        from tf2_msgs.msg import TFMessage

        # Kept in ``publishers`` so that it lives (and stays latched) until the replay ends.
        publishers["/tf_static"] = node.create_publisher(TFMessage, "/tf_static", _LATCHED)
        publishers["/tf_static"].publish(static)
    image_publisher = node.create_publisher(
        _MSG_CLASSES[bag.image_connection.msgtype], bag.image_topic, QoSProfile(depth=1)
    )
    # Until the node subscribes to the images and publishes lanes (model loaded, node active).
    wait_until(
        lambda: image_publisher.get_subscription_count() > 0 and node.count_publishers(lanes_topic) > 0,
        startup_timeout_s,
        f"no node subscribed to {image_publisher.topic_name} and published {lanes_topic}",
        process,
    )
    time.sleep(1.5)  # discovery in the other direction, and image_qos auto settling on reliable
    published: dict[int, float] = {}
    start = first = None
    for topic, msgtype, timestamp, stamp, raw in tqdm(
        bag.playback(), desc="replaying", unit="msg", total=None, leave=False
    ):
        if process is not None:
            process.check_running()
        if topic == bag.image_topic:
            publisher = image_publisher
        else:
            publisher = publishers.get(topic) or node.create_publisher(
                _MSG_CLASSES[msgtype], topic, QoSProfile(depth=1)
            )
            publishers[topic] = publisher
        if start is None:
            start, first = time.monotonic(), timestamp
        delay = start + (timestamp - first) / 1e9 / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        publisher.publish(raw)
        if publisher is image_publisher:
            published[stamp] = time.monotonic()
    return published


def _drain(published: dict[int, float], received: dict) -> None:
    """Wait for the lanes of the last frames: until all arrived or none came for a while."""
    deadline = time.monotonic() + _DRAIN_LIMIT_S
    last_count, last_change = len(received), time.monotonic()
    while not published.keys() <= received.keys() and time.monotonic() < deadline:
        time.sleep(_POLL_S)
        if len(received) != last_count:
            last_count, last_change = len(received), time.monotonic()
        elif time.monotonic() - last_change > _QUIET_S:
            break


def _stamp(msg: LaneArray) -> int:
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
