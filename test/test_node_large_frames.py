"""Full-size camera frames reach the node at its default parameters (issue: "real camera frames").

Every camera here is a separate process whose environment has no DDS configuration at all (no FASTDDS_*,
FASTRTPS_*, CYCLONEDDS_URI; the camera reports what it sees after the venv's start-up hooks ran). The node and
the cameras also run without conftest's ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST: with it rmw_fastrtps gives
every participant its own shared-memory transport, which loses large best-effort frames whatever the node
does (the node warns about it). The domain id still isolates parallel runs.
"""

import os
import re
import time
from pathlib import Path

import pytest
from ros_side import RosSide, diagnostics_status, status_values

from benchmarks.camera import DDS_VARIABLES, Camera
from clrkdnet_ros.node_process import NodeProcess, NodeProcessError, lane_detector_command, without_variables

pytestmark = [pytest.mark.ros, pytest.mark.slow]

PRESET = "clrkdnet_resnet18_culane"
FRAMES = 20
STARTUP_TIMEOUT_S = 180.0


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    import torch

    from clrkdnet_core.checkpoint import save_checkpoint
    from clrkdnet_core.models import build_model

    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("weights") / "student.pth", build_model(PRESET))


@pytest.fixture(scope="module")
def ros():
    side = RosSide()
    yield side
    side.close()


def start_node(namespace: str, weights: Path, log: Path, *params: str, env=None) -> NodeProcess:
    args = ["-r", f"__ns:={namespace}", "-p", f"weights:={weights}"]
    for param in params:
        args += ["-p", param]
    env = without_variables(DDS_VARIABLES) if env is None else env
    return NodeProcess(lane_detector_command(args), log, env=env)


def wait_for_line(node: NodeProcess, pattern: str, timeout_s: float = 60.0, after: int = 0) -> None:
    try:
        node.wait_until(
            lambda: re.search(pattern, node.output()[after:]), timeout_s, f"no log line /{pattern}/"
        )
    except NodeProcessError as exc:  # the log file goes with the test's tmp_path: show it here
        raise AssertionError(f"{exc}\n{node.output()[-3000:]}") from None


@pytest.fixture(scope="module")
def default_node(checkpoint, tmp_path_factory):
    """The node exactly as a user starts it: only the weights given (and a namespace for isolation)."""
    namespace = f"/large_{os.getpid()}"
    node = start_node(namespace, checkpoint, tmp_path_factory.mktemp("node") / "node.log")
    with node:
        wait_for_line(node, "waiting for images on", STARTUP_TIMEOUT_S)
        yield namespace, node


@pytest.mark.parametrize(
    ("size", "encoding", "reliable"),
    [((1640, 590), "bgr8", False), ((1920, 1080), "bgr8", False), ((1280, 720), "rgb8", True)],
    ids=["1640x590-bgr8-best-effort", "1920x1080-bgr8-best-effort", "1280x720-rgb8-reliable"],
)
def test_a_default_camera_process_gets_its_frames_answered(default_node, tmp_path, size, encoding, reliable):
    namespace, node = default_node
    assert "DDS: applied the large-frame Fast DDS profile" in node.output()
    with Camera(
        f"{namespace}/image", f"{namespace}/lanes", size, encoding, reliable, tmp_path / "cam.log"
    ) as cam:
        cam.wait_ready()
        assert cam.dds_environment == []
        results = [cam.frame() for _ in range(FRAMES)]
    answered = sum(result["answered"] for result in results)
    assert answered >= 0.9 * FRAMES, (answered, node.output()[-3000:])
    # image_qos auto: best effort for best-effort cameras (a reliable subscription would match none of them),
    # reliable once the only publisher is reliable.
    assert ("subscribing reliable to" in node.output()) == reliable


def test_auto_qos_follows_publishers_as_they_come_and_go(default_node, tmp_path):
    namespace, node = default_node
    topics = (f"{namespace}/image", f"{namespace}/lanes")
    mark = len(node.output())
    with Camera(*topics, (320, 120), "bgr8", True, tmp_path / "reliable.log") as reliable:
        reliable.wait_ready()
        wait_for_line(node, "subscribing reliable to", after=mark)
        mark = len(node.output())
        with Camera(*topics, (320, 120), "bgr8", False, tmp_path / "best_effort.log") as best_effort:
            wait_for_line(node, "subscribing best effort to", after=mark)
            best_effort.wait_ready()
            assert best_effort.frame()["answered"]
            mark = len(node.output())
        wait_for_line(node, "subscribing reliable to", after=mark)  # the best-effort camera left
        assert reliable.frame()["answered"]


def test_a_camera_that_stops_is_idle_not_lost(default_node, ros, tmp_path):
    from diagnostic_msgs.msg import DiagnosticStatus

    namespace, node = default_node
    mark = len(node.output())
    with Camera(
        f"{namespace}/image", f"{namespace}/lanes", (320, 120), "bgr8", False, tmp_path / "c.log"
    ) as cam:
        cam.wait_ready()
        assert cam.frame()["answered"] and cam.frame()["answered"]
        start = time.time()
        # The camera stays matched and sends nothing (a paused bag, a stopped stream): INFO, no warning.
        wait_for_line(
            node, r"\[INFO\].*no frames from \S+ for \d+ s; last one at \d{4}-\d\d-\d\d ", after=mark
        )
        idle = diagnostics_status(
            ros, f"{namespace}/lane_detector", start, lambda status: status.message.startswith("idle: ")
        )
        assert idle.level == DiagnosticStatus.OK and "no frames since" in idle.message
        assert cam.frame()["answered"]
        wait_for_line(node, "frames arrive on .* again", after=mark)
    output = node.output()[mark:]
    assert "likely lost in DDS transport" not in output, output  # the text of every lost-input warning
    assert len(re.findall("no frames from", output)) == 1


# A test-only Fast DDS profile that starves the node of full-size frames on purpose: UDPv4 alone (no shared
# memory), and datagrams received into a 16 KiB buffer. A default camera sends a large frame in ~64 KB
# fragments, each truncated on arrival, so none of its frames ever arrives; a frame under 16 KiB is one
# datagram and arrives. Discovery messages are far smaller, so the publisher still matches.
STARVING_PROFILE = """<?xml version="1.0" encoding="UTF-8"?>
<dds xmlns="http://www.eprosima.com">
  <profiles>
    <transport_descriptors>
      <transport_descriptor>
        <transport_id>starving_udpv4</transport_id>
        <type>UDPv4</type>
        <maxMessageSize>16384</maxMessageSize>
        <receiveBufferSize>16384</receiveBufferSize>
        <sendBufferSize>65536</sendBufferSize>
      </transport_descriptor>
    </transport_descriptors>
    <participant profile_name="starving" is_default_profile="true">
      <rtps>
        <useBuiltinTransports>false</useBuiltinTransports>
        <userTransports>
          <transport_id>starving_udpv4</transport_id>
        </userTransports>
      </rtps>
    </participant>
  </profiles>
</dds>
"""


def test_no_frames_are_reported_and_the_report_clears_when_frames_flow(ros, checkpoint, tmp_path):
    from diagnostic_msgs.msg import DiagnosticStatus

    WARN, OK = DiagnosticStatus.WARN, DiagnosticStatus.OK
    namespace = f"/starved_{os.getpid()}"
    node_name = f"{namespace}/lane_detector"
    topics = (f"{namespace}/image", f"{namespace}/lanes")
    profile = tmp_path / "starving.xml"
    profile.write_text(STARVING_PROFILE)
    env = {**without_variables(DDS_VARIABLES), "FASTDDS_DEFAULT_PROFILES_FILE": str(profile)}
    # The starving profile and a best-effort full-size camera: the frames cannot arrive.
    with start_node(namespace, checkpoint, tmp_path / "node.log", env=env) as node:
        wait_for_line(node, "waiting for images on", STARTUP_TIMEOUT_S)
        assert "the user's configuration is left alone" in node.output() and str(profile) in node.output()
        with Camera(*topics, (1640, 590), "bgr8", False, tmp_path / "big.log", answer_timeout_s=2.0) as big:
            big.wait_ready()
            start = time.time()
            assert not big.frame()["answered"]
            wait_for_line(node, r"matched but no frame arrived for \d+ s: large frames are likely lost")
            warned = diagnostics_status(
                ros, node_name, start, lambda status: status.level == WARN and "matched" in status.message
            )
            assert "matched but no frame arrived" in warned.message and "net.core.rmem_max" in warned.message
            assert status_values(warned)["DDS profile"] == "not applied"
            # Small frames fit the receive buffer: they flow, and the report goes away.
            with Camera(*topics, (80, 40), "bgr8", False, tmp_path / "small.log") as small:
                small.wait_ready()
                assert small.frame()["answered"]
                start = time.time()
                wait_for_line(node, "frames arrive on .* again")
                ok = diagnostics_status(ros, node_name, start, lambda status: status.level == OK)
                assert ok.message.startswith("processing at")


def test_a_users_profile_is_kept_and_named(checkpoint, tmp_path):
    profile = tmp_path / "my_profile.xml"
    profile.write_text('<?xml version="1.0"?>\n<dds xmlns="http://www.eprosima.com"><profiles/></dds>\n')
    env = {**without_variables(DDS_VARIABLES), "FASTDDS_DEFAULT_PROFILES_FILE": str(profile)}
    namespace = f"/user_profile_{os.getpid()}"
    with start_node(namespace, checkpoint, tmp_path / "node.log", env=env) as node:
        wait_for_line(node, "waiting for images on", STARTUP_TIMEOUT_S)
        output = node.output()
    assert "DDS: FASTDDS_DEFAULT_PROFILES_FILE is set; the user's configuration is left alone" in output
    assert str(profile) in output and "applied the large-frame" not in output
