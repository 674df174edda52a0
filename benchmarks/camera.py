"""A camera process with default DDS settings, and a bare rclpy echo: the two ends of the node measurements.

``python -m benchmarks.camera camera ...`` publishes a generated road scene as ``sensor_msgs/Image`` with the
asked size, encoding and reliability, one frame per ``frame`` line on stdin, and answers each line with one
JSON line on stdout: ``{"answered": bool, "latency_ms": float | null}`` (its ``LaneArray`` arrived on the
answer topic within the timeout; latency from the frame's stamp to that arrival). Its first line reports
readiness and the DDS variables it runs with, so a caller can check that none leaked in.

``python -m benchmarks.camera echo ...`` is the bare rclpy floor: a plain subscriber that answers every image
with an empty ``LaneArray`` carrying the image's header, with the node's DDS set-up (``dds_setup``) and
nothing else.

:class:`Camera` starts a camera process from the caller's side (tests and ``benchmarks.node``).
"""

import argparse
import array
import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from clrkdnet_ros.node_process import NodeProcess, without_variables

# The variables that configure DDS; the camera runs without any of them (the discovery range too: with
# LOCALHOST rmw_fastrtps replaces every participant's transports by its own, see clrkdnet_ros.dds_setup).
DDS_VARIABLES = (
    "FASTDDS_",
    "FASTRTPS_",
    "CYCLONEDDS_URI",
    "ROS_AUTOMATIC_DISCOVERY_RANGE",
    "ROS_LOCALHOST_ONLY",
)
_CONVERSIONS = {"bgr8": None, "rgb8": cv2.COLOR_BGR2RGB, "mono8": cv2.COLOR_BGR2GRAY}
READY_TIMEOUT_S = 180.0
SETTLE_S = 2.0


def road_frame(width: int, height: int, seed: int = 3) -> np.ndarray:
    """The generated BGR road scene every process of a measurement uses."""
    from clrkdnet_core.data.synthetic import render_scene

    image, _ = render_scene(np.random.default_rng(seed), width, height)
    return image


class Camera:
    """A camera process publishing to ``image_topic`` and waiting for answers on ``answer_topic``."""

    def __init__(
        self,
        image_topic: str,
        answer_topic: str,
        size: tuple[int, int],
        encoding: str,
        reliable: bool,
        log: Path,
        answer_timeout_s: float = 20.0,
    ) -> None:
        command = [
            sys.executable,
            "-m",
            "benchmarks.camera",
            "camera",
            image_topic,
            answer_topic,
            f"--size={size[0]}x{size[1]}",
            f"--encoding={encoding}",
            f"--answer-timeout={answer_timeout_s}",
        ] + (["--reliable"] if reliable else [])
        self.process = NodeProcess(
            command, log, "the camera process", env=without_variables(DDS_VARIABLES), interactive=True
        )
        self.dds_environment: list[str] = []

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until the camera sees a subscriber for its frames and a publisher of answers."""
        line = _read_line(self.process, timeout_s, "the camera did not see the node")
        self.dds_environment = json.loads(line)["dds_environment"]

    def frame(self) -> dict:
        """Send one frame; ``{"answered": bool, "latency_ms": float | None}``."""
        self.process.stdin.write("frame\n")
        self.process.stdin.flush()
        return json.loads(_read_line(self.process, 120.0, "the camera did not report a frame"))

    def close(self) -> None:
        """End of input: the camera leaves the graph cleanly (a killed one stays in the others' graph until
        its DDS lease expires, and would still count as a publisher for image_qos auto)."""
        self.process.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.process.wait(timeout=20)
        self.process.stop()

    def __enter__(self) -> "Camera":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _read_line(process: NodeProcess, timeout_s: float, waiting_for: str) -> str:
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()), daemon=True)
    reader.start()
    process.wait_until(lambda: not reader.is_alive(), timeout_s, waiting_for)
    if not lines or not lines[0]:
        process.check_running()
        raise RuntimeError(f"{process.name} closed its output; see {process.log}")
    return lines[0]


# ---- the processes -----------------------------------------------------------------------------------------


def _camera(args: argparse.Namespace) -> None:
    import os

    from clrkdnet_msgs.msg import LaneArray
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from clrkdnet_ros.spinning_node import SpinningNode

    width, height = (int(v) for v in args.size.split("x"))
    image = road_frame(width, height)
    conversion = _CONVERSIONS[args.encoding]
    pixels = image if conversion is None else cv2.cvtColor(image, conversion)
    msg = Image(height=height, width=width, encoding=args.encoding, step=pixels.strides[0])
    msg.data = array.array("B", pixels.tobytes())

    with SpinningNode(f"benchmark_camera_{os.getpid()}") as spinning:
        node = spinning.node
        qos = (
            QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
            if args.reliable
            else qos_profile_sensor_data
        )
        publisher = node.create_publisher(type(msg), args.image_topic, qos)
        condition, answers = threading.Condition(), {}

        def on_answer(answer: LaneArray) -> None:
            with condition:
                answers[answer.header.frame_id] = time.time()
                condition.notify_all()

        subscription = node.create_subscription(LaneArray, args.answer_topic, on_answer, 10)
        while publisher.get_subscription_count() == 0 or subscription.get_publisher_count() == 0:
            time.sleep(0.05)
        time.sleep(SETTLE_S)  # the node's image_qos auto re-evaluates once a second
        dds = sorted(name for name in os.environ if name.startswith(DDS_VARIABLES))
        print(json.dumps({"ready": True, "dds_environment": dds}), flush=True)
        for index, line in enumerate(sys.stdin):
            if line.strip() != "frame":
                continue
            msg.header.frame_id = f"benchmark_camera_{index}"
            sent = time.time()
            msg.header.stamp.sec, msg.header.stamp.nanosec = int(sent), int(sent % 1 * 1e9)
            publisher.publish(msg)
            with condition:
                condition.wait_for(lambda: msg.header.frame_id in answers, args.answer_timeout)
                arrival = answers.pop(msg.header.frame_id, None)
            latency = None if arrival is None else (arrival - sent) * 1e3
            print(json.dumps({"answered": arrival is not None, "latency_ms": latency}), flush=True)


def _echo(args: argparse.Namespace) -> None:
    import rclpy
    from clrkdnet_msgs.msg import LaneArray
    from rclpy.executors import ExternalShutdownException
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from clrkdnet_ros import dds_setup

    dds_setup.apply_to_this_process([])
    rclpy.init()
    node = rclpy.create_node("benchmark_echo")
    reliability = ReliabilityPolicy.RELIABLE if args.reliable else ReliabilityPolicy.BEST_EFFORT
    publisher = node.create_publisher(
        LaneArray, args.answer_topic, QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    )
    node.create_subscription(
        Image,
        args.image_topic,
        lambda image: publisher.publish(LaneArray(header=image.header)),
        QoSProfile(depth=1, reliability=reliability),
    )
    with contextlib.suppress(KeyboardInterrupt, ExternalShutdownException):
        rclpy.spin(node)
    rclpy.try_shutdown()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.camera", description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=("camera", "echo"))
    parser.add_argument("image_topic")
    parser.add_argument("answer_topic")
    parser.add_argument("--size", default="1640x590", help="WIDTHxHEIGHT")
    parser.add_argument("--encoding", default="bgr8", choices=tuple(_CONVERSIONS))
    parser.add_argument("--reliable", action="store_true", help="reliable instead of best effort")
    parser.add_argument("--answer-timeout", type=float, default=20.0)
    args = parser.parse_args(argv)
    (_camera if args.role == "camera" else _echo)(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
