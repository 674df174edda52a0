"""ROS 2 node overhead: a camera process to the ``lane_detector`` node, against bare ``LaneDetector.detect``
and next to the bare rclpy floor.

The node runs as its own process at its default parameters (``python -m clrkdnet_ros.lane_detector``, so with
its DDS profile) on the same device as an in-process ``LaneDetector`` with the same seeded random weights.
The camera is another process with default DDS settings (``benchmarks.camera``: no FASTDDS_*, FASTRTPS_* or
CYCLONEDDS_URI in its environment) publishing a generated road scene; it sends one frame, waits for its
``LaneArray`` and reports the end-to-end latency (receive time - header stamp: transport both ways, decoding,
inference, conversion, publishing). The floor is the same camera and frame to a plain rclpy subscriber
process that answers each image with an empty ``LaneArray`` (same DDS set-up as the node, nothing else). Per
iteration the node frame and the floor frame go in rotated order, then ``detect`` runs here on the same image;
they never run at the same time, and the frame rate stays low enough that the node never drops a frame. The
overhead of a frame is its end-to-end latency minus that frame's bare ``detect`` time.

Markers and the debug image are drawn only for subscribers; there are none here, as with a consumer that only
reads ``lanes``. This module imports rclpy (inside the function): it measures the ROS layer.
"""

import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from benchmarks import Timing
from benchmarks.camera import DDS_VARIABLES, Camera, road_frame

PRESET = "clrkdnet_resnet18_culane"
FRAMES = 20
WARMUP = 3
STARTUP_TIMEOUT_S = 180.0
# (label, size, reliable camera)
CASES = (
    ("1640 x 590 bgr8, best effort", (1640, 590), False),
    ("1640 x 590 bgr8, reliable", (1640, 590), True),
    ("1920 x 1080 bgr8, best effort", (1920, 1080), False),
)
GOAL_OVERHEAD_FLOOR_RATIO = 1.5
GOAL_OVERHEAD_MS = 10.0


def node_overhead_section(frames: int = FRAMES, warmup: int = WARMUP, device: str = "auto") -> str:
    """Markdown section (with its heading): frames answered, latency, overhead and rclpy floor per case."""
    title = "## ROS 2 node overhead over bare LaneDetector.detect, next to the bare rclpy floor"
    try:
        import rclpy  # noqa: F401
        from clrkdnet_msgs.msg import LaneArray  # noqa: F401
    except ImportError as exc:
        return f"{title}\n\nnot measured: {exc}\n"

    from clrkdnet_core.checkpoint import save_checkpoint
    from clrkdnet_core.inference import LaneDetector
    from clrkdnet_core.models import build_model
    from clrkdnet_ros.node_process import NodeProcess, lane_detector_command, without_variables

    env = without_variables(DDS_VARIABLES)
    results = []
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        torch.manual_seed(0)
        weights = save_checkpoint(tmp / f"{PRESET}.pth", build_model(PRESET))
        detector = LaneDetector.from_preset(PRESET, weights, device=device)
        node_ns, floor_ns = f"/benchmark_{os.getpid()}", f"/benchmark_floor_{os.getpid()}"
        args = ["-r", f"__ns:={node_ns}", "-p", f"preset:={PRESET}", "-p", f"weights:={weights}"]
        args += ["-p", f"device:={detector.device}"]
        with NodeProcess(lane_detector_command(args), tmp / "node.log", env=env):
            for label, size, reliable in CASES:
                node_topics = (f"{node_ns}/image", f"{node_ns}/lanes")
                floor_topics = (f"{floor_ns}/image", f"{floor_ns}/lanes")
                echo = [sys.executable, "-m", "benchmarks.camera", "echo", *floor_topics]
                echo += ["--reliable"] if reliable else []
                with (
                    NodeProcess(echo, tmp / "echo.log", "the rclpy echo process", env=env),
                    Camera(*node_topics, size, "bgr8", reliable, tmp / "node_camera.log") as node,
                    Camera(*floor_topics, size, "bgr8", reliable, tmp / "floor_camera.log") as floor,
                ):
                    node.wait_ready(STARTUP_TIMEOUT_S)
                    floor.wait_ready(STARTUP_TIMEOUT_S)
                    image = road_frame(*size)
                    results.append((label, _measure(node, floor, detector, image, frames, warmup, label)))

    lines = [
        title,
        "",
        f"{frames} frames per case ({warmup} warm-up) of a generated road scene from a camera process "
        "with default DDS settings, over DDS on localhost, to the node at its default parameters; "
        f"{PRESET} (random weights), device {detector.device}, torch backend. The floor is the same camera "
        "and frame to a plain rclpy subscriber process (the node's DDS set-up) that answers with an empty "
        "`LaneArray`. Overhead = end to end - bare detect of the same frame, per frame.",
        "",
        "| case | answered | end to end p50 / p95 ms | bare detect p50 ms | **overhead** p50 / p95 ms "
        "| rclpy floor p50 / p95 ms | overhead / floor |",
        "|---|---|---|---|---|---|---|",
    ]
    goals = []
    for label, result in results:
        end_to_end, bare, overhead, floor = (Timing(tuple(values), 1) for values in result["timings"])
        ratio = overhead.p50 / floor.p50 if floor.p50 > 0 else float("inf")
        answered = f"{result['answered']} of {result['sent']}"
        lines.append(
            f"| {label} | {answered} | {end_to_end.p50:.1f} / {end_to_end.p95:.1f} | {bare.p50:.1f} "
            f"| {overhead.p50:.1f} / {overhead.p95:.1f} | {floor.p50:.1f} / {floor.p95:.1f} | {ratio:.2f} |"
        )
        met = (
            result["answered"] == result["sent"]
            and ratio <= GOAL_OVERHEAD_FLOOR_RATIO
            and overhead.p50 <= GOAL_OVERHEAD_MS
        )
        goals.append(
            f"- {label}: every frame answered, median overhead <= {GOAL_OVERHEAD_FLOOR_RATIO}x the floor "
            f"and <= {GOAL_OVERHEAD_MS:.0f} ms: {'met' if met else 'missed'} ({answered}, "
            f"{overhead.p50:.1f} ms, {ratio:.2f}x)"
        )
    return "\n".join([*lines, "", "Goals:", "", *goals, ""])


def _measure(node: Camera, floor: Camera, detector, image: np.ndarray, frames: int, warmup: int, label: str):
    """Frames sent and answered by the node, and per answered frame (end to end, bare, overhead, floor) ms."""

    def timed_detect() -> float:
        start = time.perf_counter()
        detector.detect(image)
        return (time.perf_counter() - start) * 1e3

    timings: list[tuple[float, float, float, float]] = []
    answered = 0
    # detect runs on a worker thread, as in the node: on a busy CPU, torch's OpenMP pool is measurably slower
    # when driven from the main thread, which would make the node look faster than bare detect.
    with ThreadPoolExecutor(max_workers=1) as worker:
        for index in tqdm(range(warmup + frames), desc=label, leave=False, unit="frame"):
            order = (node, floor) if index % 2 == 0 else (floor, node)
            reports = {id(camera): camera.frame() for camera in order}
            bare = worker.submit(timed_detect).result()
            node_report, floor_report = reports[id(node)], reports[id(floor)]
            if index < warmup:
                continue
            answered += node_report["answered"]
            if node_report["answered"] and floor_report["answered"]:
                end_to_end = node_report["latency_ms"]
                timings.append((end_to_end, bare, end_to_end - bare, floor_report["latency_ms"]))
    if not timings:
        raise RuntimeError(f"{label}: the node answered none of {frames} frames")
    return {"sent": frames, "answered": answered, "timings": list(zip(*timings, strict=True))}
