"""launch/lane_detect.launch.py and config/lane_detect.yaml against the node's declared parameters.

``launch``/``launch_ros`` are not installable as wheels, so the launch file is checked two ways: with the real
packages where they are importable (a ROS 2 install), and always by running ``generate_launch_description()``
against a recording stand-in of the few launch classes it uses, which exposes the declared arguments, the
substitutions, the node's parameters and remappings. The YAML file is loaded by the node itself (rcl's parser
and rclpy's type checks) in a real process.
"""

import importlib.util
import os
import re
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import ClassVar

import pytest
import yaml
from rclpy.parameter import Parameter

from clrkdnet_ros.lane_detector import PARAMETERS

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILE = ROOT / "launch" / "lane_detect.launch.py"
PARAMS_FILE = ROOT / "config" / "lane_detect.yaml"
RVIZ_FILE = ROOT / "config" / "lane_detect.rviz"

REQUIRED_ARGUMENTS = {
    "image_topic",
    "preset",
    "weights",
    "device",
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


# ---- the launch file against a recording stand-in of the launch API ----------------------------------------


class _Recorded:
    """Stands in for a launch class: keeps its arguments."""

    instances: ClassVar[list["_Recorded"]] = []

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs
        _Recorded.instances.append(self)


def _fake_launch_modules() -> dict[str, types.ModuleType]:
    classes = {
        "launch": ["LaunchDescription"],
        "launch.actions": ["DeclareLaunchArgument"],
        "launch.conditions": ["IfCondition"],
        "launch.substitutions": ["LaunchConfiguration", "PathJoinSubstitution"],
        "launch_ros": [],
        "launch_ros.actions": ["Node"],
        "launch_ros.descriptions": ["ParameterValue"],
        "launch_ros.substitutions": ["FindPackageShare"],
    }
    modules = {}
    for module_name, names in classes.items():
        module = types.ModuleType(module_name)
        for name in names:
            setattr(module, name, type(name, (_Recorded,), {}))
        modules[module_name] = module
    return modules


@pytest.fixture
def recorded(monkeypatch) -> dict[str, list[_Recorded]]:
    """Run generate_launch_description() on the stand-in; returns the recorded objects by class name."""
    for name, module in _fake_launch_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    _Recorded.instances = []
    spec = importlib.util.spec_from_file_location("lane_detect_launch_under_test", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    by_class: dict[str, list[_Recorded]] = {}
    for instance in _Recorded.instances:
        by_class.setdefault(type(instance).__name__, []).append(instance)
    assert by_class["LaunchDescription"] == [description]
    return by_class


def _declared(recorded) -> dict[str, _Recorded]:
    return {argument.args[0]: argument for argument in recorded["DeclareLaunchArgument"]}


def _detector_node(recorded) -> _Recorded:
    (node,) = [node for node in recorded["Node"] if node.kwargs["package"] == "clrkdnet_ros"]
    return node


def test_launch_declares_the_documented_arguments(recorded):
    declared = _declared(recorded)
    assert set(declared) >= REQUIRED_ARGUMENTS
    for name, argument in declared.items():
        assert argument.kwargs.get("description"), f"launch argument {name} has no description"
        choices = argument.kwargs.get("choices")
        if choices is not None:
            assert argument.kwargs["default_value"] in choices, name


def test_every_launch_configuration_is_declared(recorded):
    used = {configuration.args[0] for configuration in recorded["LaunchConfiguration"]}
    assert used <= set(_declared(recorded))
    assert set(_declared(recorded)) <= used, "a declared argument is never used"


def test_launch_description_contains_the_arguments_and_both_nodes(recorded):
    (description,) = recorded["LaunchDescription"]
    entities = description.args[0]
    assert set(entities) == set(recorded["DeclareLaunchArgument"]) | set(recorded["Node"])


def test_detector_node_matches_the_package_and_the_node(recorded):
    node = _detector_node(recorded)
    assert node.kwargs["executable"] == "lane_detector"
    assert "lane_detector = clrkdnet_ros.lane_detector:main" in (ROOT / "setup.py").read_text()
    params_file, overrides = node.kwargs["parameters"]
    assert params_file.args == ("params_file",)
    assert set(overrides) <= set(PARAMETERS) | {"use_sim_time"}
    for name, value in overrides.items():
        configuration = value.args[0]
        assert configuration.args == (name,), f"parameter {name} is not set from the launch argument {name}"
    assert [source for source, _ in node.kwargs["remappings"]] == ["image", "camera_info"]
    assert node.kwargs["namespace"].args == ("namespace",)


def test_default_files_exist(recorded):
    default = _declared(recorded)["params_file"].kwargs["default_value"]
    package_share, *parts = default.args[0]
    assert package_share.args == ("clrkdnet_ros",)
    assert ROOT.joinpath(*parts) == PARAMS_FILE
    rviz = _rviz_node(recorded)
    rviz_config = rviz.kwargs["arguments"][rviz.kwargs["arguments"].index("-d") + 1]
    assert ROOT.joinpath(*rviz_config.args[0][1:]) == RVIZ_FILE


def test_rviz_follows_the_namespace_and_the_image_topic(recorded):
    rviz = _rviz_node(recorded)
    assert rviz.kwargs["namespace"].args == ("namespace",)
    remappings = dict(rviz.kwargs["remappings"])
    config = yaml.safe_load(RVIZ_FILE.read_text())
    topics = [d["Topic"]["Value"] for d in config["Visualization Manager"]["Displays"] if "Topic" in d]
    assert set(remappings) == set(topics)
    assert remappings["/camera/image_raw"].args == ("image_topic",)
    # The detector's outputs, made relative so they resolve in the shared namespace.
    for topic in ("/lane_markers", "/lane_detector/debug/image", "/ego_left_path", "/ego_right_path"):
        assert remappings[topic] == topic.lstrip("/")
    fixed_frame = rviz.kwargs["arguments"][rviz.kwargs["arguments"].index("-f") + 1]
    assert fixed_frame.args == ("rviz_fixed_frame",)
    assert (
        _declared(recorded)["rviz_fixed_frame"].kwargs["default_value"]
        == config["Visualization Manager"]["Global Options"]["Fixed Frame"]
    )


def _rviz_node(recorded) -> _Recorded:
    (node,) = [node for node in recorded["Node"] if node.kwargs["package"] == "rviz2"]
    return node


def test_rviz_config_shows_camera_overlay_and_markers():
    config = yaml.safe_load(RVIZ_FILE.read_text())
    displays = {d["Name"]: d for d in config["Visualization Manager"]["Displays"]}
    assert displays["Camera"]["Class"] == "rviz_default_plugins/Image"
    assert displays["Lane overlay"]["Topic"]["Value"] == "/lane_detector/debug/image"
    assert displays["Lanes"]["Class"] == "rviz_default_plugins/MarkerArray"
    assert displays["Lanes"]["Topic"]["Value"] == "/lane_markers"


# ---- the real launch_ros, where it exists ------------------------------------------------------------------


def test_launch_file_with_real_launch_ros():
    if importlib.util.find_spec("launch_ros") is None:
        pytest.skip("launch_ros is not installed (it has no wheel); checked with the stand-in above")
    from launch.launch_description_sources import get_launch_description_from_python_launch_file

    description = get_launch_description_from_python_launch_file(str(LAUNCH_FILE))
    assert {argument.name for argument in description.get_launch_arguments()} >= REQUIRED_ARGUMENTS


# ---- the node loads the YAML file and the launch overrides -------------------------------------------------


@pytest.mark.ros
def test_node_starts_with_the_yaml_and_launch_overrides(ros_node, recorded, tmp_path):
    """The node parses config/lane_detect.yaml plus the launch overrides (at their defaults) cleanly."""
    from rcl_interfaces.srv import GetParameters, ListParameters

    declared = _declared(recorded)
    overrides = _detector_node(recorded).kwargs["parameters"][1]
    args = ["--params-file", str(PARAMS_FILE), "-p", "auto_start:=false"]
    for name in overrides:
        default = declared[name].kwargs["default_value"]
        args += ["-p", f"{name}:={default if default else str(tmp_path / 'model.pth')}"]
    namespace = f"/launch_check_{os.getpid()}"
    process = subprocess.Popen(
        [sys.executable, "-m", "clrkdnet_ros.lane_detector", "--ros-args", "-r", f"__ns:={namespace}", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
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
        assert process.poll() is None, process.communicate()[0]
    finally:
        process.terminate()
        output = process.communicate(timeout=20)[0]
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
