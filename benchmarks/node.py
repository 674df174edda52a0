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


# ---- the node at its defaults against exact fp32, replaying the demo bag ---------------------------------

DEFAULTS_BLOCK = "defaults"
REPO = Path(__file__).resolve().parents[1]
DEMO_PRESET = REPO / "models" / "clrkdnet_resnet18_synthetic.yaml"
DEMO_WEIGHTS = REPO / "models" / "clrkdnet_resnet18_synthetic.pth"
# (label, backend, precision): the node's defaults, and the exact fp32 of the official code's results.
DEFAULTS_CASES = (("defaults", "auto", "auto"), ("backend:=torch precision:=fp32", "torch", "fp32"))
GOAL_PROCESSED = 0.9
GOAL_LATENCY_BARE_RATIO = 1.5
SPLIT_STEPS = ("decode", "pre-process", "network", "lanes", "perception", "messages")
GOAL_STARTUP_S = 1.0
STARTUP_RUNS = 3


def defaults_section(bag: Path | None = None) -> str:
    """Markdown section: the node at its defaults against ``backend:=torch precision:=fp32``, each replaying
    the demo bag (``bag``, default :func:`demo_bag`) at 30 Hz, with the per-frame cost split."""
    title = "## The node at its defaults against exact fp32 (the demo bag at 30 Hz)"
    try:
        from clrkdnet_ros.bag.replay import node_command, replay_bag  # noqa: F401
    except ImportError as exc:
        return f"{title}\n\nnot measured: {exc}\n"
    bag = bag or demo_bag()
    if bag is None:
        return f"{title}\n\nnot measured: no demo bag (run `make demo` once, it makes build/demo/*_bag)\n"
    rows = []
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        startup = startup_times(tmp)
        for label, backend, precision in DEFAULTS_CASES:
            live = _replay_live(bag, tmp / label.replace(" ", "_"), backend, precision)
            rows.append((label, live, cost_split(bag, backend, precision)))
    lines = [
        title,
        "",
        f"`python -m clrkdnet_ros.bag replay` of the demo bag `{bag.name}` ({DEMO_WEIGHTS.name}, "
        "1640 x 590 JPEG frames at 30 Hz) into the node at its default parameters, then with "
        "`-p backend:=torch -p precision:=fp32`, in one run. Latency: bag publish -> lanes received. "
        "The cost split is measured in this process on the bag's frames, step by step as the node runs "
        "them (p50 per step, ms): JPEG decode (at the reduced scale the node uses), pre-process (crop, "
        "resize), network, lanes (decoding, NMS), perception (tracking, ground projection with the bag's "
        "camera, ego lane), messages (LaneArray and EgoLane built and serialized); node processing: the "
        "node's own per-frame time (`~/debug/processing_time_ms`) during the replay. "
        "Bare detect: `LaneDetector.detect` on the fully decoded image.",
        "",
        f'Start-up: process start -> "waiting for images" (model loaded, warm caches), p50 of '
        f"{STARTUP_RUNS} starts per node, interleaved.",
        "",
        "| node | runs | processed of played | latency p50 / p95 ms | decode | pre-process | network | lanes "
        "| perception | messages | node processing p50 ms | bare detect p50 ms | start-up p50 s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    goals = []
    for label, live, split in rows:
        summary = live["summary"]
        latency = summary.get("latency_ms") or {}
        processed, played = summary.get("frames", 0), summary.get("frames_played", 0)
        steps = [split[step].p50 for step in SPLIT_STEPS]
        p50, p95 = latency.get("p50", float("nan")), latency.get("p95", float("nan"))
        lines.append(
            f"| {label} | {live['backend']} | {processed} of {played} | {p50:.1f} / {p95:.1f} | "
            + " | ".join(f"{value:.1f}" for value in steps)
            + f" | {_number(live['processing_ms'])} | {split['bare detect'].p50:.1f} "
            f"| {startup[label].p50 / 1e3:.1f} |"
        )
        if label == "defaults":
            ratio = p50 / split["bare detect"].p50
            met = played > 0 and processed >= GOAL_PROCESSED * played and ratio <= GOAL_LATENCY_BARE_RATIO
            slower_s = (startup[label].p50 - startup[DEFAULTS_CASES[1][0]].p50) / 1e3
            goals.append(
                f"- defaults: start-up within {GOAL_STARTUP_S:.0f} s of torch fp32's: "
                f"{'met' if slower_s <= GOAL_STARTUP_S else 'missed'} ({slower_s:+.1f} s)"
            )
            goals.append(
                f"- defaults: at least {GOAL_PROCESSED:.0%} of the frames processed and latency p50 <= "
                f"{GOAL_LATENCY_BARE_RATIO}x the bare detect of the chosen backend: "
                f"{'met' if met else 'missed'} ({processed} of {played}, {ratio:.2f}x)"
            )
    return "\n".join([*lines, "", "Goals:", "", *goals, ""])


def demo_bag() -> Path | None:
    """The bag ``make demo`` left in build/demo (its newest 300-frame one), or None."""
    bags = sorted((REPO / "build" / "demo").glob("*drive_300_bag"), key=lambda path: path.stat().st_mtime)
    return bags[-1] if bags else None


def startup_times(tmp: Path) -> dict[str, Timing]:
    """Per case: ms from starting a node process to its "waiting for images" line, warm caches (one untimed
    start per case fills them)."""
    from clrkdnet_ros.node_process import NodeProcess, lane_detector_command

    samples: dict[str, list[float]] = {label: [] for label, _, _ in DEFAULTS_CASES}
    for run in range(STARTUP_RUNS + 1):
        for label, backend, precision in DEFAULTS_CASES[:: 1 if run % 2 else -1]:
            args = ["-r", f"__ns:=/startup_{os.getpid()}", "-p", f"preset:={DEMO_PRESET}"]
            args += [
                "-p",
                f"weights:={DEMO_WEIGHTS}",
                "-p",
                f"backend:={backend}",
                "-p",
                f"precision:={precision}",
            ]
            start = time.monotonic()
            with NodeProcess(lane_detector_command(args), tmp / "startup.log") as node:
                node.wait_until(
                    lambda n=node: "waiting for images on" in n.output(), STARTUP_TIMEOUT_S, "start-up"
                )
                if run > 0:
                    samples[label].append((time.monotonic() - start) * 1e3)
    return {label: Timing(tuple(values), 1) for label, values in samples.items()}


def _replay_live(bag: Path, out: Path, backend: str, precision: str) -> dict:
    """Replay ``bag`` into a node process; its summary, the backend it ran and its processing time p50."""
    import re

    from clrkdnet_ros.bag.bagfile import LaneBag
    from clrkdnet_ros.bag.replay import node_command, replay_bag

    samples: list[float] = []
    with LaneBag(bag) as lane_bag, _ProcessingTimes(samples):
        extra = f"-p backend:={backend} -p precision:={precision}"
        command = node_command(
            str(DEMO_PRESET), DEMO_WEIGHTS, "cpu", lane_bag.image_topic, lane_bag.camera_info_topic, extra
        )
        summary, _ = replay_bag(lane_bag, out, command)
    log = (out / "node.log").read_text()
    ran = re.search(r"\((\w+) backend, (\w+)\)", log)
    return {
        "summary": summary,
        "backend": f"{ran[1]} {ran[2]}" if ran else "unknown",
        "processing_ms": Timing(tuple(samples), 1).p50 if samples else None,
    }


class _ProcessingTimes:
    """Collects the node's ``~/debug/processing_time_ms`` (node ``/lane_detector``) while in the block."""

    def __init__(self, samples: list[float]) -> None:
        self.samples = samples

    def __enter__(self) -> "_ProcessingTimes":
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from std_msgs.msg import Float64

        from clrkdnet_ros.spinning_node import SpinningNode

        self.spinning = SpinningNode("benchmark_processing_times")
        self.spinning.node.create_subscription(
            Float64,
            "/lane_detector/debug/processing_time_ms",
            lambda msg: self.samples.append(msg.data),
            QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE),
        )
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.spinning.close()


def cost_split(bag: Path, backend: str, precision: str, frames: int = 60) -> dict[str, Timing]:
    """Per-frame cost of the node's steps on the bag's first ``frames`` JPEG frames, in this process.

    Steps (:data:`SPLIT_STEPS`) as ``LaneDetectorNode._process`` runs them, and bare detect
    (``LaneDetector.detect`` on the fully decoded image) after each frame's steps.
    """
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import CompressedImage
    from std_msgs.msg import Header

    from clrkdnet_core.inference import LaneDetector
    from clrkdnet_core.perception import LanePerception
    from clrkdnet_core.postprocess.decode import decode_predictions
    from clrkdnet_ros.bag.bagfile import LaneBag
    from clrkdnet_ros.bag.evaluate import bag_camera
    from clrkdnet_ros.conversions import ego_lane_to_msg, frame_to_msg
    from clrkdnet_ros.image_codec import compressed_to_bgr, decode_frame

    detector = LaneDetector.from_preset(DEMO_PRESET, DEMO_WEIGHTS, "cpu", backend, precision)
    perception = LanePerception()
    with LaneBag(bag) as lane_bag:
        projector = bag_camera(lane_bag).projector
        messages = [
            deserialize_message(raw, CompressedImage)
            for topic, _, _, _, raw in lane_bag.playback()
            if topic == lane_bag.image_topic
        ][:frames]
    samples: dict[str, list[float]] = {step: [] for step in (*SPLIT_STEPS, "bare detect")}
    for index, msg in enumerate(messages):
        clock = [time.perf_counter()]
        frame = decode_frame(msg, detector.reduced_decode_scale)
        clock.append(time.perf_counter())
        batch = detector.preprocess([frame.image])
        clock.append(time.perf_counter())
        predictions = detector.runner(batch)
        clock.append(time.perf_counter())
        geometry = detector.preset.geometry.scaled_to(*frame.size)
        (lanes,) = decode_predictions(predictions, [geometry], detector.test, detector.nms)
        clock.append(time.perf_counter())
        stamp_s = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        perceived = perception.update(lanes, frame.size, stamp_s, projector)
        clock.append(time.perf_counter())
        serialize_message(frame_to_msg(perceived, msg.header, *frame.size, "ground"))
        if perceived.ego is not None:
            serialize_message(ego_lane_to_msg(perceived.ego, Header(stamp=msg.header.stamp)))
        clock.append(time.perf_counter())
        full = compressed_to_bgr(msg)
        start = time.perf_counter()
        detector.detect(full)
        bare = (time.perf_counter() - start) * 1e3
        if index < WARMUP:
            continue
        for step, begin, end in zip(SPLIT_STEPS, clock[:-1], clock[1:], strict=True):
            samples[step].append((end - begin) * 1e3)
        samples["bare detect"].append(bare)
    return {step: Timing(tuple(values), 1) for step, values in samples.items()}


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.node [--demo-bag B] [--out BENCHMARKS.md]``: the defaults block alone."""
    import argparse

    from clrkdnet_core.report_blocks import replace_block

    parser = argparse.ArgumentParser(prog="python -m benchmarks.node", description=defaults_section.__doc__)
    parser.add_argument("--demo-bag", type=Path, help="bag to replay (default: the one `make demo` made)")
    parser.add_argument(
        "--out", type=Path, default=REPO / "BENCHMARKS.md", help="report whose block is replaced"
    )
    args = parser.parse_args(argv)
    section = defaults_section(args.demo_bag)
    print(section)
    text = args.out.read_text() if args.out.is_file() else ""
    args.out.write_text(replace_block(text, DEFAULTS_BLOCK, section))
    print(f"wrote the {DEFAULTS_BLOCK} block of {args.out}")
    return 0


if __name__ == "__main__":
    from clrkdnet_core.cli import run_cli

    sys.exit(run_cli(main))
