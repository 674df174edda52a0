"""launch_testing check of the installed launch file: ``launch_test test/launch/lane_detect_launch.py``.

The way a ROS 2 workspace tests a launch file (``colcon test`` runs such files through launch_testing): the
installed ``lane_detect.launch.py`` is included with the shipped demo model on the CPU; the test waits until
the node has loaded the model and waits for images, and after launch_testing has shut everything down
(SIGINT) every process must have exited cleanly. test/test_ros2_cli.py runs it; it is not a pytest module
(pytest here keeps launch_testing's plugin out).
"""

import unittest
from pathlib import Path

import launch_testing
import launch_testing.actions
import launch_testing.asserts
from launch import LaunchDescription
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

MODELS = Path(__file__).resolve().parents[2] / "models"
NAMESPACE = "launch_testing"
READY_TIMEOUT_S = 90.0  # torch import + model load on a loaded machine


def generate_test_description() -> LaunchDescription:
    lane_detect = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            PathJoinSubstitution([FindPackageShare("clrkdnet_ros"), "launch", "lane_detect.launch.py"])
        ),
        launch_arguments={
            "namespace": NAMESPACE,
            "image_topic": f"/{NAMESPACE}/image_raw",
            "preset": str(MODELS / "clrkdnet_resnet18_synthetic.yaml"),
            "weights": str(MODELS / "clrkdnet_resnet18_synthetic.pth"),
            "device": "cpu",
        }.items(),
    )
    return LaunchDescription([lane_detect, launch_testing.actions.ReadyToTest()])


class TestLaneDetectorComesUp(unittest.TestCase):
    def test_the_model_loads_and_the_node_waits_for_images(self, proc_output):
        proc_output.assertWaitFor("loaded clrkdnet_resnet18_synthetic", timeout=READY_TIMEOUT_S)
        proc_output.assertWaitFor(f"waiting for images on /{NAMESPACE}/image_raw", timeout=READY_TIMEOUT_S)


@launch_testing.post_shutdown_test()
class TestLaneDetectorShutsDownCleanly(unittest.TestCase):
    def test_every_process_exits_cleanly(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
