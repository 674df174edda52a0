"""Soak: the node at its defaults under a 30 Hz 1640 x 590 camera for minutes, with a camera restart and
lifecycle cycles; frames answered, latency and the node's memory per minute.

    python -m benchmarks.soak [--minutes 5] [--out BENCHMARKS.md]   (replaces its block there)

The node is a process at its default parameters (the shipped demo model, so that the lanes are real). This
process is the camera: it publishes a generated road scene as best-effort ``sensor_msgs/Image`` (bgr8) at
30 Hz, each with a fresh stamp, and records when each frame's ``LaneArray`` arrives. Events, at fixed
fractions of the run: the camera restarts (its ROS node destroyed, a pause, a new one: a new publisher); the
node is deactivated and activated; the node is cleaned up, configured and activated (the model is loaded
again). The node's resident memory (``VmRSS``) is read at the end of every minute; the goal is that it stays
flat (within 64 MB) after the first minute: no leak per frame, per restart or per lifecycle cycle.
"""

import argparse
import array
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from clrkdnet_core.cli import run_cli
from clrkdnet_core.report_blocks import replace_block
from clrkdnet_core.timing import percentile

BLOCK = "soak"
REPO = Path(__file__).resolve().parents[1]
PRESET = REPO / "models" / "clrkdnet_resnet18_synthetic.yaml"
WEIGHTS = REPO / "models" / "clrkdnet_resnet18_synthetic.pth"
SIZE = (1640, 590)
RATE_HZ = 30.0
STARTUP_TIMEOUT_S = 180.0
GOAL_RSS_GROWTH_MB = 64.0
CAMERA_PAUSE_S = 2.0
# (fraction of the run, event)
EVENTS = ((0.3, "camera restart"), (0.5, "deactivate + activate"), (0.7, "cleanup + configure + activate"))


@dataclass
class Bin:
    """One reporting interval."""

    sent: int = 0
    answered: int = 0
    latency_ms: list[float] = field(default_factory=list)
    rss_mb: float | None = None
    events: list[str] = field(default_factory=list)


def soak_section(minutes: float = 5.0) -> str:
    """Markdown section (with its heading) of a soak of ``minutes``."""
    title = f"## Soak: the node at its defaults, 30 Hz 1640 x 590 for {minutes:g} min"
    try:
        import rclpy  # noqa: F401
        from clrkdnet_msgs.msg import LaneArray  # noqa: F401
    except ImportError as exc:
        return f"{title}\n\nnot measured: {exc}\n"
    bins, backend, interval_s = run_soak(minutes * 60.0)
    lines = [
        title,
        "",
        f"The node at its default parameters (it ran {backend}; the shipped demo model) and a best-effort "
        f"bgr8 camera at {RATE_HZ:.0f} Hz in the benchmark process; latency: the frame's stamp -> its lanes "
        "received. "
        "Events at 30 %, 50 % and 70 % of the run: a camera restart (a new publisher after a "
        f"{CAMERA_PAUSE_S:.0f} s pause), deactivate + activate, cleanup + configure + activate (the model "
        "loaded again) while the camera keeps streaming. Node RSS: VmRSS at the end of each interval.",
        "",
        "| interval (s) | frames sent | answered | latency p50 / p99 ms | node RSS MB | events |",
        "|---|---|---|---|---|---|",
    ]
    for index, entry in enumerate(bins):
        latency = (
            f"{percentile(entry.latency_ms, 50):.1f} / {percentile(entry.latency_ms, 99):.1f}"
            if entry.latency_ms
            else "n/a"
        )
        rss = "n/a" if entry.rss_mb is None else f"{entry.rss_mb:.0f}"
        lines.append(
            f"| {index * interval_s:.0f}-{(index + 1) * interval_s:.0f} | {entry.sent} | {entry.answered} "
            f"| {latency} | {rss} | "
            f"{', '.join(entry.events) or '-'} |"
        )
    settled = [entry.rss_mb for entry in bins[1:] if entry.rss_mb is not None]
    growth = max(settled) - min(settled) if settled else float("nan")
    verdict = "met" if settled and growth <= GOAL_RSS_GROWTH_MB else "missed"
    total_sent, total_answered = sum(b.sent for b in bins), sum(b.answered for b in bins)
    lines += [
        "",
        "Goals:",
        "",
        f"- node RSS flat within {GOAL_RSS_GROWTH_MB:.0f} MB after the first interval: {verdict} "
        f"({growth:.0f} MB between its lowest and highest); {total_answered} of {total_sent} frames answered",
        "",
    ]
    return "\n".join(lines)


def run_soak(duration_s: float) -> tuple[list[Bin], str, float]:
    """Run the node and the camera for ``duration_s``: the results per interval (a minute, or a fifth of a
    shorter run), the backend the node ran and the interval in seconds."""
    import re
    import tempfile

    from clrkdnet_msgs.msg import LaneArray
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from clrkdnet_ros.node_process import NodeProcess, lane_detector_command
    from clrkdnet_ros.spinning_node import SpinningNode

    interval_s = 60.0 if duration_s >= 300.0 else duration_s / 5.0
    bins = [Bin() for _ in range(max(1, round(duration_s / interval_s)))]
    namespace = f"/soak_{os.getpid()}"
    spinning = SpinningNode("soak", MultiThreadedExecutor)
    node, context = spinning.node, spinning.context
    sent: dict[int, float] = {}
    start = time.monotonic()

    def bin_at(instant: float) -> Bin:
        return bins[min(int((instant - start) / interval_s), len(bins) - 1)]

    def on_lanes(msg: LaneArray) -> None:
        stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        published = sent.pop(stamp, None)
        if published is not None:
            entry = bin_at(published)
            entry.answered += 1
            entry.latency_ms.append((time.time() - stamp / 1e9) * 1e3)

    node.create_subscription(
        LaneArray,
        f"{namespace}/lanes",
        on_lanes,
        QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE),
    )
    args = ["-r", f"__ns:={namespace}", "-p", f"preset:={PRESET}", "-p", f"weights:={WEIGHTS}"]
    with (
        tempfile.TemporaryDirectory() as tmp,
        NodeProcess(lane_detector_command(args), Path(tmp) / "node.log") as process,
    ):
        lifecycle = _Lifecycle(node, f"{namespace}/lane_detector")
        camera = _Camera(context, f"{namespace}/image")
        try:
            process.wait_until(camera.matched, STARTUP_TIMEOUT_S, "the node did not subscribe to the camera")
            start = time.monotonic()
            events = [(start + fraction * duration_s, name) for fraction, name in EVENTS]
            current = 0  # the interval whose end has not been reached yet
            next_frame = start
            cycling: threading.Thread | None = None
            while (now := time.monotonic()) < start + duration_s:
                process.check_running()
                if events and now >= events[0][0]:
                    name = events.pop(0)[1]
                    bin_at(now).events.append(name)
                    if name == "camera restart":
                        camera.restart(CAMERA_PAUSE_S)
                    else:  # the camera streams on during the transitions, as a real one would
                        cycling = threading.Thread(target=lifecycle.cycle, args=("cleanup" in name,))
                        cycling.start()
                while current < len(bins) - 1 and now >= start + (current + 1) * interval_s:
                    bins[current].rss_mb = _rss_mb(process.process.pid)  # at the end of each interval
                    current += 1
                stamp = camera.publish()
                sent[stamp] = now
                bin_at(now).sent += 1
                # Paced at the rate; after a pause (the camera restart) it goes on without a catch-up burst.
                next_frame = max(next_frame + 1.0 / RATE_HZ, time.monotonic())
                time.sleep(max(0.0, next_frame - time.monotonic()))
            if cycling is not None:
                cycling.join()
            time.sleep(1.0)  # the last frames' answers
            bins[-1].rss_mb = _rss_mb(process.process.pid)
        finally:
            camera.close()
            spinning.close()
        ran = re.search(r"\((\w+) backend, (\w+)\)", process.output())
    return bins, f"{ran[1]} {ran[2]}" if ran else "an unknown backend", interval_s


class _Camera:
    """A best-effort bgr8 camera as its own rclpy node (so that a restart makes a new publisher)."""

    def __init__(self, context, topic: str) -> None:
        from sensor_msgs.msg import Image

        from benchmarks.camera import road_frame

        pixels = road_frame(*SIZE)
        self.msg = Image(height=SIZE[1], width=SIZE[0], encoding="bgr8", step=SIZE[0] * 3)
        self.msg.data = array.array("B", pixels.tobytes())
        self.context, self.topic = context, topic
        self._open()

    def _open(self) -> None:
        import rclpy
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image

        self.node = rclpy.create_node(f"soak_camera_{time.monotonic_ns()}", context=self.context)
        self.publisher = self.node.create_publisher(Image, self.topic, qos_profile_sensor_data)

    def matched(self) -> bool:
        return self.publisher.get_subscription_count() > 0

    def publish(self) -> int:
        """Publish the frame with the current time as its stamp; the stamp in nanoseconds."""
        now = time.time_ns()
        self.msg.header.stamp.sec, self.msg.header.stamp.nanosec = divmod(now, 10**9)
        self.publisher.publish(self.msg)
        return now

    def restart(self, pause_s: float) -> None:
        self.close()
        time.sleep(pause_s)
        self._open()

    def close(self) -> None:
        self.node.destroy_node()


class _Lifecycle:
    """Lifecycle transitions of the node through its ``change_state`` service."""

    def __init__(self, node, node_name: str) -> None:
        from lifecycle_msgs.srv import ChangeState

        self.client = node.create_client(ChangeState, f"{node_name}/change_state")

    def cycle(self, cleanup: bool) -> None:
        from lifecycle_msgs.msg import Transition

        steps = [Transition.TRANSITION_DEACTIVATE]
        if cleanup:
            steps += [Transition.TRANSITION_CLEANUP, Transition.TRANSITION_CONFIGURE]
        for step in [*steps, Transition.TRANSITION_ACTIVATE]:
            self._change(step)

    def _change(self, transition_id: int) -> None:
        from lifecycle_msgs.srv import ChangeState

        if not self.client.wait_for_service(timeout_sec=30.0):
            raise RuntimeError("the node's change_state service is not there")
        request = ChangeState.Request()
        request.transition.id = transition_id
        future = self.client.call_async(request)
        _wait(future.done, STARTUP_TIMEOUT_S)
        if not future.result().success:
            raise RuntimeError(f"lifecycle transition {transition_id} failed")


def _wait(done: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no answer within {timeout_s} s")
        time.sleep(0.01)


def _rss_mb(pid: int) -> float | None:
    """Resident memory of process ``pid`` in MB (None where /proc is not there)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="duration (default 5)")
    parser.add_argument(
        "--out", type=Path, default=REPO / "BENCHMARKS.md", help="report whose soak block is replaced"
    )
    args = parser.parse_args(argv)
    section = soak_section(args.minutes)
    print(section)
    args.out.write_text(replace_block(args.out.read_text() if args.out.is_file() else "", BLOCK, section))
    print(f"wrote the {BLOCK} block of {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
