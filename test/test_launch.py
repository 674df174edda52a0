"""launch/lane_detect.launch.py and config/lane_detect.yaml against the node's declared parameters.

The launch file is evaluated with the real ``launch``/``launch_ros`` (a ROS 2 install, or the wheels set-up
installs from ../shared/ros2_cli; skipped without them): its arguments, and what each node gets from them.
The YAML file is loaded by the node itself (rcl's parser and rclpy's type checks) in a real process.
"""

import collections
import importlib.util
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from rclpy.parameter import Parameter

from clrkdnet_core.backend_options import AUTO, BACKENDS, PRECISIONS
from clrkdnet_ros.node_process import NodeProcess, lane_detector_command
from clrkdnet_ros.parameters import PARAMETERS

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILE = ROOT / "launch" / "lane_detect.launch.py"
PARAMS_FILE = ROOT / "config" / "lane_detect.yaml"
RVIZ_FILE = ROOT / "config" / "lane_detect.rviz"

REQUIRED_ARGUMENTS = {
    "image_topic",
    "preset",
    "weights",
    "device",
    "backend",
    "precision",
    "params_file",
    "namespace",
    "use_sim_time",
    "rviz",
    "image_transport",
    "log_level",
}
# Parameters declared without a default: left out of the YAML they take the preset's value.
PRESET_DEFAULT_PARAMETERS = {
    name for name, (value, _) in PARAMETERS.items() if isinstance(value, Parameter.Type)
}


def _yaml_parameters() -> dict:
    document = yaml.safe_load(PARAMS_FILE.read_text())
    assert list(document) == ["/**"], "parameters must apply to the node under any name and namespace"
    return document["/**"]["ros__parameters"]


# ---- the YAML file -----------------------------------------------------------------------------------------


def test_yaml_sets_every_parameter_that_has_a_default():
    assert set(_yaml_parameters()) == set(PARAMETERS) - PRESET_DEFAULT_PARAMETERS


def test_yaml_documents_the_preset_default_parameters():
    text = PARAMS_FILE.read_text()
    for name in PRESET_DEFAULT_PARAMETERS:
        assert re.search(rf"^\s*# {name}: \S+", text, re.MULTILINE), (
            f"{name} is not shown (commented) in the YAML"
        )


def test_yaml_values_have_the_declared_types_and_ranges():
    for name, value in _yaml_parameters().items():
        default, descriptor = PARAMETERS[name]
        assert type(value) is type(default), f"{name}: YAML {value!r} vs declared default {default!r}"
        for bounds in (*descriptor.floating_point_range, *descriptor.integer_range):
            assert bounds.from_value <= value <= bounds.to_value, name


# ---- the launch file under the real launch API -------------------------------------------------------------
# The description is evaluated the way `ros2 launch` does before it starts processes: the arguments' values
# (defaults, or the given ones) go into a LaunchContext and each Node performs its substitutions. Starting
# it for real is test/test_ros2_cli.py.

_NO_LAUNCH = importlib.util.find_spec("launch_ros") is None
needs_launch = pytest.mark.skipif(
    _NO_LAUNCH, reason="launch_ros is not installed (set-up installs it from ../shared/ros2_cli)"
)


@dataclass
class EvaluatedNode:
    """What a launch_ros Node turns into: its package, namespace, remappings, parameters and arguments."""

    package: str
    namespace: str
    remappings: dict[str, str]
    params_files: list[Path]
    overrides: dict
    arguments: list[str]
    enabled: bool


def _launch_description():
    from launch.launch_description_sources import get_launch_description_from_python_launch_file

    return get_launch_description_from_python_launch_file(str(LAUNCH_FILE))


def _evaluate(**values: str) -> dict[str, EvaluatedNode]:
    """The launch file's nodes by package, with the launch arguments at ``values`` (others: defaults)."""
    from launch import LaunchContext
    from launch.utilities import normalize_to_list_of_substitutions, perform_substitutions
    from launch_ros.actions import Node

    description = _launch_description()
    context = LaunchContext()
    # The name/namespace rules `ros2 launch` fills in when it executes the node.
    context.extend_locals({"ros_specific_arguments": collections.defaultdict(str)})
    for argument in description.get_launch_arguments():
        default = perform_substitutions(context, argument.default_value)
        context.launch_configurations[argument.name] = values.pop(argument.name, default)
    assert not values, f"not launch arguments: {values}"
    nodes = {}
    for node in (entity for entity in description.entities if isinstance(entity, Node)):
        node._perform_substitutions(context)  # what Node.execute() does first, without starting a process
        command = [perform_substitutions(context, part) for part in node.cmd[1:]]
        files = [Path(command[i + 1]) for i, part in enumerate(command) if part == "--params-file"]
        # Parameters given as a dict land in a temporary parameter file of their own, after the YAML file.
        *params_files, overrides_file = files
        package = perform_substitutions(context, normalize_to_list_of_substitutions(node.node_package))
        nodes[package] = EvaluatedNode(
            package=package,
            namespace=node.expanded_node_namespace,
            remappings=dict(node.expanded_remapping_rules or []),
            params_files=params_files,
            overrides=_only_value(yaml.safe_load(overrides_file.read_text()))["ros__parameters"],
            arguments=command[: command.index("--ros-args", 1) if "--ros-args" in command[1:] else None],
            enabled=node.condition is None or node.condition.evaluate(context),
        )
    return nodes


def _only_value(document: dict):
    (value,) = document.values()  # keyed by the node's fully qualified name, or /** without a namespace
    return value


@needs_launch
def test_launch_declares_the_documented_arguments():
    declared = {argument.name: argument for argument in _launch_description().get_launch_arguments()}
    assert set(declared) >= REQUIRED_ARGUMENTS
    for name, argument in declared.items():
        assert argument.description, f"launch argument {name} has no description"
        if argument.choices is not None:
            from launch import LaunchContext
            from launch.utilities import perform_substitutions

            assert perform_substitutions(LaunchContext(), argument.default_value) in argument.choices, name


@needs_launch
def test_backend_and_precision_arguments_offer_the_parameters_choices_and_override_the_yaml():
    """Their choices are the node's (auto plus clrkdnet_core.backend_options), their default the parameter's;
    each value reaches the node as a string, over the params file's."""
    declared = {argument.name: argument for argument in _launch_description().get_launch_arguments()}
    for name, choices in (("backend", (AUTO, *BACKENDS)), ("precision", (AUTO, *PRECISIONS))):
        assert tuple(declared[name].choices) == choices, name
        assert _evaluate()["clrkdnet_ros"].overrides[name] == PARAMETERS[name][0] == AUTO
        for choice in choices:
            assert _evaluate(**{name: choice})["clrkdnet_ros"].overrides[name] == choice
    assert set(_yaml_parameters()) >= {"backend", "precision"}  # the launch value comes after the YAML's


@needs_launch
def test_every_free_launch_argument_reaches_a_node(tmp_path):
    """Each argument without choices, set to a marker, shows up in a node's namespace, remappings,
    parameters or arguments (the choice arguments are checked one by one below)."""
    declared = {a.name: a for a in _launch_description().get_launch_arguments() if a.choices is None}
    params_file = tmp_path / "params.yaml"
    params_file.write_text(PARAMS_FILE.read_text())
    values = {name: f"marker_{name}" for name in declared} | {"params_file": str(params_file), "rviz": "true"}
    values["camera_pose"] = "[0.125, 0.0, 1.5, 0.0, 0.0625, 0.0]"  # typed: a marker that is a pose
    nodes = _evaluate(**values)
    seen = " ".join(
        f"{node.namespace} {node.remappings} {node.overrides} {node.arguments} {node.params_files}"
        for node in nodes.values()
    )
    for name in declared:
        assert values[name] in seen, f"launch argument {name} is not used"


@needs_launch
def test_detector_node_gets_the_yaml_the_overrides_and_the_remappings():
    detector = _evaluate(
        namespace="front", image_topic="/front/cam/image_raw", weights="culane_r18.pth", use_sim_time="true"
    )["clrkdnet_ros"]
    assert "lane_detector = clrkdnet_ros.lane_detector:main" in (ROOT / "setup.py").read_text()
    assert detector.namespace == "/front"
    assert detector.remappings == {
        "image": "/front/cam/image_raw",
        "camera_info": "/camera/camera_info",
        "odom": "/odom",
    }
    # The default parameter file is the installed config: the repo's file (a symlink to it in install/).
    (params_file,) = detector.params_files
    assert params_file.parts[-3:] == ("clrkdnet_ros", "config", "lane_detect.yaml")
    assert params_file.read_bytes() == PARAMS_FILE.read_bytes()
    assert set(detector.overrides) <= set(PARAMETERS) | {"use_sim_time"}
    assert detector.overrides["weights"] == "culane_r18.pth"
    assert detector.overrides["use_sim_time"] is True
    assert detector.arguments == ["--ros-args", "--log-level", "info"]
    assert detector.enabled


@needs_launch
def test_typed_overrides_keep_their_types():
    """A numeric-looking weights name stays a string; an empty one too (the node then names the problem)."""
    assert _evaluate(weights="2024")["clrkdnet_ros"].overrides["weights"] == "2024"
    assert _evaluate()["clrkdnet_ros"].overrides["weights"] == ""
    # camera_pose: [] by default, which leaves the parameter unset (tf2 or camera_height give the pose).
    assert _evaluate()["clrkdnet_ros"].overrides["camera_pose"] == []
    pose = _evaluate(camera_pose="[1.2, 0.0, 1.5, 0.0, 0.05, 0.0]")["clrkdnet_ros"].overrides["camera_pose"]
    assert pose == [1.2, 0.0, 1.5, 0.0, 0.05, 0.0]
    assert _evaluate(tracking="false")["clrkdnet_ros"].overrides["tracking"] is False


@needs_launch
def test_rviz_follows_the_namespace_and_the_image_topic():
    rviz = _evaluate(namespace="front", image_topic="/front/cam/image_raw", rviz="true")["rviz2"]
    assert rviz.enabled and not _evaluate()["rviz2"].enabled
    assert rviz.namespace == "/front"
    config = yaml.safe_load(RVIZ_FILE.read_text())
    topics = [d["Topic"]["Value"] for d in config["Visualization Manager"]["Displays"] if "Topic" in d]
    assert set(rviz.remappings) == set(topics)
    assert rviz.remappings["/camera/image_raw"] == "/front/cam/image_raw"
    # The detector's outputs, made relative so they resolve in the shared namespace.
    for topic in ("/lane_markers", "/lane_detector/debug/image", "/ego_left_path", "/ego_right_path"):
        assert rviz.remappings[topic] == topic.lstrip("/")
    config_file = Path(rviz.arguments[rviz.arguments.index("-d") + 1])
    assert config_file.parts[-3:] == ("clrkdnet_ros", "config", "lane_detect.rviz")
    assert config_file.read_bytes() == RVIZ_FILE.read_bytes()
    fixed_frame = rviz.arguments[rviz.arguments.index("-f") + 1]
    assert fixed_frame == config["Visualization Manager"]["Global Options"]["Fixed Frame"]


def test_rviz_config_shows_camera_overlay_and_markers():
    config = yaml.safe_load(RVIZ_FILE.read_text())
    displays = {d["Name"]: d for d in config["Visualization Manager"]["Displays"]}
    assert displays["Camera"]["Class"] == "rviz_default_plugins/Image"
    assert displays["Lane overlay"]["Topic"]["Value"] == "/lane_detector/debug/image"
    assert displays["Lanes"]["Class"] == "rviz_default_plugins/MarkerArray"
    assert displays["Lanes"]["Topic"]["Value"] == "/lane_markers"


# ---- the node loads the YAML file and the launch overrides -------------------------------------------------


@pytest.mark.ros
@needs_launch
def test_node_starts_with_the_yaml_and_launch_overrides(ros_node, tmp_path):
    """The node parses config/lane_detect.yaml plus the launch overrides (at their defaults) cleanly."""
    from rcl_interfaces.srv import GetParameters, ListParameters

    detector = _evaluate(weights=str(tmp_path / "model.pth"))["clrkdnet_ros"]
    args = [arg for path in detector.params_files for arg in ("--params-file", str(path))]
    for name, value in detector.overrides.items():
        args += ["-p", f"{name}:={str(value).lower() if isinstance(value, bool) else value}"]
    args += ["-p", "auto_start:=false"]  # last: the YAML file sets it too
    namespace = f"/launch_check_{os.getpid()}"
    command = lane_detector_command(["-r", f"__ns:={namespace}", *args])
    with NodeProcess(command, tmp_path / "node.log") as node:
        client = ros_node.create_client(ListParameters, f"{namespace}/lane_detector/list_parameters")
        names = _call(ros_node, client, ListParameters.Request()).result.names
        expected = set(PARAMETERS) | {"use_sim_time"}
        assert expected <= set(names)
        client = ros_node.create_client(GetParameters, f"{namespace}/lane_detector/get_parameters")
        values = _call(ros_node, client, GetParameters.Request(names=["camera_height", "image_qos"])).values
        assert (values[0].double_value, values[1].string_value) == (
            _yaml_parameters()["camera_height"],
            _yaml_parameters()["image_qos"],
        )
        assert node.process.poll() is None, node.output()
    output = node.output()
    assert "error" not in output.lower(), output


def _call(node, client, request, timeout: float = 20.0):
    from rclpy.executors import SingleThreadedExecutor

    deadline = time.monotonic() + timeout
    while not client.wait_for_service(timeout_sec=0.5):
        assert time.monotonic() < deadline, f"service {client.srv_name} did not appear"
    future = client.call_async(request)
    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    executor.spin_until_future_complete(future, timeout_sec=timeout)
    executor.remove_node(node)
    assert future.done(), f"no answer from {client.srv_name}"
    return future.result()


# ---- stopping: a terminal's Ctrl-C under ros2 launch -------------------------------------------------------


@pytest.mark.ros
@pytest.mark.parametrize("gap_s", [0.0, 0.2])
def test_node_stopped_by_two_sigints_exits_cleanly_without_a_traceback(tmp_path, gap_s):
    """Ctrl-C in a terminal signals the process group and ros2 launch then sends the node its own SIGINT: the
    second one lands in the node's clean-up or its interpreter's exit (torch's atexit finalizer printed a
    KeyboardInterrupt traceback; the teardown's default handler killed it). Exit code 0, nothing printed."""
    model = ROOT / "models"
    namespace = f"/sigint_check_{os.getpid()}"
    args = ["-r", f"__ns:={namespace}", "-p", f"preset:={model / 'clrkdnet_resnet18_synthetic.yaml'}"]
    args += ["-p", f"weights:={model / 'clrkdnet_resnet18_synthetic.pth'}", "-p", "device:=cpu"]
    node = NodeProcess(lane_detector_command(args), tmp_path / "node.log")
    try:
        node.wait_until(lambda: "waiting for images" in node.output(), 120, "the node loading its model")
        node.process.send_signal(signal.SIGINT)
        time.sleep(gap_s)
        node.process.send_signal(signal.SIGINT)
        code = node.process.wait(timeout=30)
    finally:
        node.stop()
    output = node.output()
    assert code == 0, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output and "interrupted" not in output
