"""ROS 2 node overhead: end-to-end latency of the ``lane_detector`` node against bare ``LaneDetector.detect``.

The node runs as its own process (``python -m clrkdnet_ros.lane_detector``) on the same device as an
in-process ``LaneDetector`` with the same seeded random weights. Each iteration sends one 1640 x 590 ``bgr8``
frame, waits for its ``LaneArray`` (end-to-end latency = receive time - header stamp: transport both ways,
decoding, inference, conversion, publishing), then times ``detect`` on the same image here. The two never run
at the same time, so they do not compete for the CPU, and the frame rate stays low enough that the node never
drops a frame. The overhead of a frame is its end-to-end latency minus that frame's bare ``detect`` time.

Markers and the debug image are drawn only for subscribers; there are none here, as with a consumer that only
reads ``lanes``. This module imports rclpy (inside the function): it measures the ROS layer.
"""

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from benchmarks import Timing

PRESET = "clrkdnet_resnet18_culane"
WIDTH, HEIGHT = 1640, 590
FRAMES = 20
WARMUP = 3
STARTUP_TIMEOUT_S = 180.0
ANSWER_TIMEOUT_S = 60.0
RESEND_AFTER_S = 10.0


def node_overhead_section(frames: int = FRAMES, warmup: int = WARMUP, device: str = "auto") -> str:
    """Markdown section (with its heading): median and p95 of the node's overhead over bare ``detect``."""
    title = "## ROS 2 node overhead over bare LaneDetector.detect (1640 x 590)"
    try:
        import rclpy  # noqa: F401
        from clrkdnet_msgs.msg import LaneArray  # noqa: F401
    except ImportError as exc:
        return f"{title}\n\nnot measured: {exc}\n"

    from clrkdnet_core.checkpoint import save_checkpoint
    from clrkdnet_core.data.synthetic import render_scene
    from clrkdnet_core.inference import LaneDetector
    from clrkdnet_core.models import build_model

    image, _ = render_scene(np.random.default_rng(3), WIDTH, HEIGHT)
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        weights = save_checkpoint(Path(tmp) / f"{PRESET}.pth", build_model(PRESET))
        detector = LaneDetector.from_preset(PRESET, weights, device=device)
        namespace = f"/benchmark_{os.getpid()}"
        with _DetectorProcess(namespace, weights, str(detector.device), Path(tmp) / "node.log") as node:
            client = _Client(namespace)
            try:
                node.wait_until_subscribed(client)
                samples = _measure(client, detector, image, frames, warmup)
            finally:
                client.close()

    end_to_end, in_node, bare = (Timing(tuple(values), 1) for values in zip(*samples, strict=True))
    overhead = Timing(tuple(e - b for e, _, b in samples), 1)
    transport = Timing(tuple(e - n for e, n, _ in samples), 1)
    rows = [
        ("bare `LaneDetector.detect` (this process)", bare),
        ("node end to end (publish -> `lanes` received)", end_to_end),
        ("node `~/debug/processing_time_ms` (decode -> publish)", in_node),
        ("**overhead** = end to end - bare detect", overhead),
        ("of which outside the node's callback (transport, hand-off)", transport),
    ]
    lines = [
        title,
        "",
        f"{frames} frames ({warmup} warm-up) of a generated road scene, `bgr8` over DDS on localhost, "
        f"{PRESET} (random weights), device {detector.device}, torch backend. Each frame is sent after the "
        "previous answer and the bare detect of the same image (on a worker thread, like the node); "
        "overhead is computed per frame.",
        "",
        "| measurement | p50 ms | p95 ms |",
        "|---|---|---|",
        *(f"| {name} | {timing.p50:.1f} | {timing.p95:.1f} |" for name, timing in rows),
        "",
        f"Node overhead: median {overhead.p50:.1f} ms, p95 {overhead.p95:.1f} ms "
        f"({100 * overhead.p50 / bare.p50:.0f} % of the median bare detect).",
        "",
    ]
    return "\n".join(lines)


def _measure(client: "_Client", detector, image: np.ndarray, frames: int, warmup: int) -> list[tuple]:
    """Per frame (end-to-end ms, in-node processing ms, bare detect ms), after ``warmup`` frames."""
    from std_msgs.msg import Header

    from clrkdnet_ros.image_codec import bgr_to_image

    def timed_detect() -> float:
        start = time.perf_counter()
        detector.detect(image)
        return (time.perf_counter() - start) * 1e3

    msg = bgr_to_image(image, Header(frame_id="benchmark_camera"))
    samples = []
    # detect runs on a worker thread, as in the node: on a busy CPU, torch's OpenMP pool is measurably slower
    # when driven from the main thread, which would make the node look faster than bare detect.
    with ThreadPoolExecutor(max_workers=1) as worker:
        for index in tqdm(range(warmup + frames), desc="node overhead", leave=False, unit="frame"):
            end_to_end, in_node = client.round_trip(msg)
            bare = worker.submit(timed_detect).result()
            if index >= warmup:
                samples.append((end_to_end, in_node, bare))
    return samples


class _Client:
    """The benchmark's ROS side: publishes frames, receives ``lanes`` and the node's processing time."""

    def __init__(self, namespace: str) -> None:
        import rclpy
        from clrkdnet_msgs.msg import LaneArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from std_msgs.msg import Float64

        self._context = rclpy.context.Context()
        rclpy.init(context=self._context)
        self.node = rclpy.create_node(f"node_overhead_benchmark_{os.getpid()}", context=self._context)
        self.publisher = self.node.create_publisher(
            Image, f"{namespace}/image", QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        )
        self._condition = threading.Condition()
        self._answers: dict[tuple[int, int], float] = {}
        self._processing: list[float] = []
        self.node.create_subscription(LaneArray, f"{namespace}/lanes", self._on_lanes, 10)
        self.node.create_subscription(
            Float64, f"{namespace}/lane_detector/debug/processing_time_ms", self._on_processing, 10
        )
        self._executor = SingleThreadedExecutor(context=self._context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._executor.spin, daemon=True)
        self._thread.start()

    def _on_lanes(self, msg) -> None:
        received = time.time()
        with self._condition:
            self._answers[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = received
            self._condition.notify_all()

    def _on_processing(self, msg) -> None:
        with self._condition:
            self._processing.append(msg.data)
            self._condition.notify_all()

    def round_trip(self, msg) -> tuple[float, float]:
        """Send the Image ``msg`` with a fresh stamp and wait for its answer: (end-to-end ms, in-node ms).

        A frame that gets no answer within a few seconds (e.g. sent before discovery finished on the node's
        side) is sent again with a new stamp.
        """
        deadline = time.monotonic() + ANSWER_TIMEOUT_S
        while time.monotonic() < deadline:
            stamp = self.node.get_clock().now()
            msg.header.stamp = stamp.to_msg()
            key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
            processed_before = len(self._processing)
            self.publisher.publish(msg)

            def answered(key=key, processed_before=processed_before) -> bool:
                return key in self._answers and len(self._processing) > processed_before

            with self._condition:
                if self._condition.wait_for(answered, RESEND_AFTER_S):
                    end_to_end = (self._answers.pop(key) - stamp.nanoseconds * 1e-9) * 1e3
                    return end_to_end, self._processing[-1]
        raise RuntimeError(f"the node did not answer a frame within {ANSWER_TIMEOUT_S} s")

    def close(self) -> None:
        import rclpy

        self._executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self._context)


class _DetectorProcess:
    """``python -m clrkdnet_ros.lane_detector`` in ``namespace``, stopped with SIGINT on exit."""

    def __init__(self, namespace: str, weights: Path, device: str, log: Path) -> None:
        self._log = log
        command = [
            sys.executable,
            "-m",
            "clrkdnet_ros.lane_detector",
            "--ros-args",
            "-r",
            f"__ns:={namespace}",
            "-p",
            f"preset:={PRESET}",
            "-p",
            f"weights:={weights}",
            "-p",
            f"device:={device}",
            # Reliable on both ends: a best-effort reader loses 2.9 MB frames whose UDP fragments overflow
            # the default socket buffers, and a lost frame would stall the measurement.
            "-p",
            "image_qos:=reliable",
        ]
        with open(log, "w") as handle:
            self.process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)

    def wait_until_subscribed(self, client: _Client) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while client.publisher.get_subscription_count() == 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the lane_detector node did not start:\n{self._log.read_text()[-2000:]}")
            time.sleep(0.1)

    def __enter__(self) -> "_DetectorProcess":
        return self

    def __exit__(self, *exc_info) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
