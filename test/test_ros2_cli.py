"""The real ROS 2 command line against the installed package: ros2 launch, run, param, lifecycle, topic.

One ``ros2 launch`` (namespace + remapped image topic, the shipped demo model on the CPU) serves the tests in
file order; the SIGINT test stops it. The tools come from a ROS 2 install or from the wheels set-up
installs from ../shared/ros2_cli; where they are missing the file skips with that reason. Every ``ros2`` call
runs with ``--no-daemon`` and a discovery spin time, so no daemon is started and none is left behind. The last
test runs test/launch/lane_detect_launch.py with launch_testing's ``launch_test``.
"""

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "models" / "clrkdnet_resnet18_synthetic.pth"
PRESET = REPO / "models" / "clrkdnet_resnet18_synthetic.yaml"
NAMESPACE = f"cli_{os.getpid()}"
NODE = f"/{NAMESPACE}/lane_detector"
IMAGE_TOPIC = f"/{NAMESPACE}/cam/image_raw"
READY_TIMEOUT_S = 90  # torch import + model load on a loaded 2-core machine
DISCOVERY = ["--no-daemon", "--spin-time", "3"]


def _ros2_executable() -> str | None:
    # The venv's console script first: the tests must run the tools set-up installed, sourced or not.
    return shutil.which("ros2", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))


def _missing_tools() -> str | None:
    for module in ("ros2cli", "ros2launch", "launch_ros", "composition_interfaces", "ros2lifecycle"):
        if importlib.util.find_spec(module) is None:
            return f"the ROS 2 command line is not installed ({module} missing; set-up installs it from "
    if _ros2_executable() is None:
        return "no ros2 executable "
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    try:
        get_package_prefix("clrkdnet_ros")
    except PackageNotFoundError:
        return (
            "clrkdnet_ros is not installed in an ament prefix on AMENT_PREFIX_PATH (make setup installs it) "
        )
    return None


_REASON = _missing_tools()
pytestmark = [
    pytest.mark.ros,
    pytest.mark.skipif(
        _REASON is not None, reason=f"{_REASON}(../shared/ros2_cli or a sourced ROS 2 install)"
    ),
]
ROS2 = _ros2_executable()


def ros2(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """One ros2 command; output is stdout and stderr together."""
    return subprocess.run(
        [ROS2, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout
    )


def ros2_on_node(*args: str, expect: str, attempts: int = 4) -> str:
    """A command on the launched node, retried while discovery has not seen it yet; returns its output."""
    for _ in range(attempts):
        result = ros2(*args, *DISCOVERY)
        if expect in result.stdout:
            return result.stdout
        assert "not found" in result.stdout.lower() or "not available" in result.stdout.lower(), result.stdout
    raise AssertionError(f"ros2 {' '.join(args)}: no {expect!r} after {attempts} attempts: {result.stdout}")


class Launched:
    """A running `ros2 launch` and its log file."""

    def __init__(self, process: subprocess.Popen, log: Path):
        self.process, self.log = process, log

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def node_pid(self) -> int:
        return int(
            re.search(r"lane_detector-1\]: process started with pid \[(\d+)\]", self.output()).group(1)
        )


@pytest.fixture(scope="module")
def launched(tmp_path_factory) -> Launched:
    log = tmp_path_factory.mktemp("launch") / "launch.log"
    arguments = [f"namespace:={NAMESPACE}", f"image_topic:={IMAGE_TOPIC}", f"preset:={PRESET}"]
    arguments += [f"weights:={MODEL}", "device:=cpu"]
    with log.open("w") as out:
        process = subprocess.Popen(
            [ROS2, "launch", "clrkdnet_ros", "lane_detect.launch.py", *arguments],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the SIGINT test checks nothing of it survives
        )
    launched = Launched(process, log)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while f"waiting for images on {IMAGE_TOPIC}" not in launched.output():
        assert process.poll() is None, f"ros2 launch ended with {process.returncode}:\n{launched.output()}"
        assert time.monotonic() < deadline, f"the node did not become ready:\n{launched.output()}"
        time.sleep(0.5)
    yield launched
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


class Camera:
    """Publishes small frames on the remapped image topic and collects what arrives on /<ns>/lanes."""

    def __init__(self, node):
        from clrkdnet_msgs.msg import LaneArray
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image

        self.node, self.received = node, []
        self.publisher = node.create_publisher(Image, IMAGE_TOPIC, qos_profile_sensor_data)
        node.create_subscription(LaneArray, f"/{NAMESPACE}/lanes", self.received.append, 10)
        self.image = Image(height=120, width=320, encoding="bgr8", step=320 * 3)
        self.image.data = np.random.default_rng(0).integers(0, 255, 120 * 320 * 3, dtype=np.uint8).tobytes()
        self.sent = 0

    def run(self, seconds: float, until_received: bool) -> None:
        """Publish at 10 Hz for ``seconds`` (or until a LaneArray arrives, when ``until_received``)."""
        from rclpy.executors import SingleThreadedExecutor

        executor = SingleThreadedExecutor(context=self.node.context)
        executor.add_node(self.node)
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline and not (until_received and self.received):
                self.sent += 1
                self.image.header.frame_id = "camera"
                self.image.header.stamp.sec = self.sent
                self.publisher.publish(self.image)
                executor.spin_once(timeout_sec=0.1)
        finally:
            executor.remove_node(self.node)


@pytest.fixture
def camera(ros_node) -> Camera:
    return Camera(ros_node)


def test_launch_with_a_namespace_and_a_remapped_image_topic_answers_on_the_namespaced_lanes(launched, camera):
    camera.run(60, until_received=True)
    assert camera.received, f"no LaneArray on /{NAMESPACE}/lanes:\n{launched.output()}"
    lanes = camera.received[0]
    assert (lanes.image_width, lanes.image_height, lanes.header.frame_id) == (320, 120, "camera")
    assert 1 <= lanes.header.stamp.sec <= camera.sent


def test_param_describe_shows_the_ranges(launched):
    output = ros2_on_node("param", "describe", NODE, "score_threshold", expect="Constraints")
    assert "Type: double" in output
    assert "Min value: 0.0" in output and "Max value: 1.0" in output


def test_param_set_changes_a_threshold_at_run_time(launched):
    assert "Set parameter successful" in ros2_on_node(
        "param", "set", NODE, "score_threshold", "0.55", expect="successful"
    )
    assert "Double value is: 0.55" in ros2_on_node("param", "get", NODE, "score_threshold", expect="value")
    refused = ros2_on_node("param", "set", NODE, "score_threshold", "1.5", expect="failed")
    assert "out of range" in refused
    assert "Double value is: 0.55" in ros2_on_node("param", "get", NODE, "score_threshold", expect="value")


def test_lifecycle_deactivate_stops_and_activate_restarts_the_processing(launched, camera):
    assert "active [3]" in ros2_on_node("lifecycle", "get", NODE, expect="[")
    ros2_on_node("lifecycle", "set", NODE, "deactivate", expect="Transitioning successful")
    assert "inactive [2]" in ros2_on_node("lifecycle", "get", NODE, expect="[")
    camera.run(4, until_received=False)
    assert camera.received == [], "an inactive node published lanes"
    ros2_on_node("lifecycle", "set", NODE, "activate", expect="Transitioning successful")
    camera.run(60, until_received=True)
    assert camera.received, f"no lanes after activate:\n{launched.output()}"


def test_topic_echo_once_shows_the_node_in_the_diagnostics(launched):
    result = ros2("topic", "echo", "--once", "/diagnostics", *DISCOVERY, "--timeout", "30", timeout=60)
    assert result.returncode == 0, result.stdout
    assert f"name: '{NODE}: lane detection'" in result.stdout
    assert "frames processed" in result.stdout


def test_sigint_to_ros2_launch_ends_the_node_within_seconds_and_leaves_no_process(launched):
    """Ctrl-C in a terminal: SIGINT to the whole process group, so the node gets launch's SIGINT too, during
    its clean-up or its interpreter's exit; it still finishes cleanly, without a traceback."""
    node_pid = launched.node_pid()
    os.killpg(launched.process.pid, signal.SIGINT)
    started = time.monotonic()
    launched.process.wait(timeout=30)
    elapsed = time.monotonic() - started
    assert elapsed < 15, f"ros2 launch took {elapsed:.1f} s to stop"
    assert launched.process.returncode == 0, launched.output()
    output = launched.output()
    assert f"process has finished cleanly [pid {node_pid}]" in output, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    assert not Path(f"/proc/{node_pid}").exists(), "the lane_detector process survived"
    survivors = [
        p.name for p in Path("/proc").iterdir() if p.name.isdigit() and _session(p) == launched.process.pid
    ]
    assert survivors == [], f"processes of the launch survived: {survivors}"


def _session(proc: Path) -> int | None:
    try:
        return os.getsid(int(proc.name))
    except OSError:  # ended meanwhile
        return None


def test_ros2_run_with_a_missing_weights_file_exits_non_zero_naming_it(tmp_path):
    missing = tmp_path / "no_such_model.pth"
    result = ros2(
        "run", "clrkdnet_ros", "lane_detector", "--ros-args", "-r", f"__ns:=/{NAMESPACE}_missing",
        "-p", f"weights:={missing}", timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert f"weights file not found: {missing}" in result.stdout


def test_ros2_run_lane_bag():
    result = ros2("run", "clrkdnet_ros", "lane_bag", "--help", timeout=120)
    assert result.returncode == 0, result.stdout
    assert "replay" in result.stdout and "eval" in result.stdout


@pytest.mark.parametrize(("argument", "value"), [("image_transport", "jpeg"), ("use_sim_time", "yes")])
def test_launch_refuses_a_wrong_argument_choice(argument, value):
    result = ros2("launch", "clrkdnet_ros", "lane_detect.launch.py", f"{argument}:={value}", timeout=120)
    assert result.returncode != 0
    assert re.search(rf"Argument .{argument}. provided value .{value}. is not valid", result.stdout), (
        result.stdout
    )
    assert "lane_detector" not in result.stdout, "the node was started despite the wrong argument"


def test_ros2_interface_show_finds_the_messages():
    result = ros2("interface", "show", "clrkdnet_msgs/msg/LaneArray")
    assert result.returncode == 0, result.stdout
    assert re.search(r"^Lane\[\] lanes$", result.stdout, re.MULTILINE), result.stdout


def test_launch_testing_runs_the_launch_file():
    """test/launch/lane_detect_launch.py under the real launch_testing: the node comes up, exits cleanly."""
    launch_test = shutil.which("launch_test", path=Path(ROS2).parent)
    assert launch_test, f"no launch_test beside {ROS2}"
    result = subprocess.run(
        [launch_test, str(REPO / "test" / "launch" / "lane_detect_launch.py")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:]
    assert result.stdout.count("\nOK\n") == 2, "the active and the post-shutdown tests both pass"
