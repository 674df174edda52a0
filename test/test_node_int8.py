"""The lane_detector node as a real process with ``backend:=openvino precision:=int8``; bag calibration."""

import os
import time
from pathlib import Path

import numpy as np
import pytest
from ros_side import Inbox, RosSide

from clrkdnet_ros.node_process import NodeProcess, lane_detector_command

pytestmark = [pytest.mark.ros, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
PRESET = REPO / "models" / "clrkdnet_resnet18_synthetic.yaml"
WEIGHTS = REPO / "models" / "clrkdnet_resnet18_synthetic.pth"
WIDTH, HEIGHT = 410, 148  # a quarter of 1640 x 590: small frames, the same crop
STARTUP_TIMEOUT_S = 240.0  # includes quantizing on the calibration images


def frame(seed: int):
    """A generated road scene as a bgr8 sensor_msgs/Image."""
    import array

    from sensor_msgs.msg import Image

    from clrkdnet_core.data.synthetic import render_scene

    image, _ = render_scene(np.random.default_rng(seed), WIDTH, HEIGHT)
    msg = Image(height=HEIGHT, width=WIDTH, encoding="bgr8", is_bigendian=0, step=3 * WIDTH)
    msg.data = array.array("B", image.tobytes())
    return msg


def test_node_runs_openvino_int8_and_finds_lanes(tmp_path):
    from clrkdnet_msgs.msg import LaneArray
    from lifecycle_msgs.srv import GetState
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from clrkdnet_core.calibration import MIN_CALIBRATION_IMAGES
    from clrkdnet_core.data.synthetic import generate_dataset

    calibration = generate_dataset(
        tmp_path / "calibration", "culane", MIN_CALIBRATION_IMAGES, seed=11, split=(1, 0, 0), progress=False
    )
    namespace = f"/lane_int8_{os.getpid()}"
    arguments = ["-r", f"__ns:={namespace}"]
    for param in (
        f"preset:={PRESET}",
        f"weights:={WEIGHTS}",
        "device:=cpu",
        "backend:=openvino",
        "precision:=int8",
        f"calibration:={calibration}",
        "tracking:=false",  # every frame's detections, not tracks confirmed from the third frame on
    ):
        arguments += ["-p", param]
    environment = {**os.environ, "CLRKDNET_CACHE_DIR": str(tmp_path / "cache")}
    ros = RosSide()
    node = NodeProcess(lane_detector_command(arguments), tmp_path / "node.log", env=environment)
    try:
        name = f"{namespace}/lane_detector"

        def active() -> bool:
            return ros.call(GetState, f"{name}/get_state", GetState.Request()).current_state.label == "active"

        node.wait_until(active, STARTUP_TIMEOUT_S, f"{name} not active")
        assert "(openvino backend" in node.output() and "int8 against fp32" in node.output()
        publisher = ros.node.create_publisher(Image, f"{namespace}/image", qos_profile_sensor_data)
        lanes: Inbox = ros.inbox(LaneArray, f"{namespace}/lanes")
        answered = []
        deadline = time.monotonic() + 60
        while len(answered) < 3 and time.monotonic() < deadline:
            msg = ros.stamp(frame(len(answered)))
            publisher.publish(msg)
            found = lanes.wait_for(lambda m, header=msg.header: m.header == header, timeout=4.0)
            if found is not None:
                answered.append(found)
        assert len(answered) == 3, node.output()[-3000:]
        assert all(len(answer.lanes) >= 1 for answer in answered)
    finally:
        node.stop(timeout_s=20)
        ros.close()


def test_a_bag_calibrates_through_the_ros_side(tmp_path):
    from clrkdnet_core.calibration import MIN_CALIBRATION_IMAGES
    from clrkdnet_core.data.synthetic import generate_dataset
    from clrkdnet_core.inference import LaneDetector
    from clrkdnet_ros.bag.__main__ import main as bag_main
    from clrkdnet_ros.calibration import calibration_source

    scenes = generate_dataset(tmp_path / "scenes", "culane", 24, seed=11, split=(0, 0, 1), progress=False)
    bag = tmp_path / "bag"
    assert bag_main(["make", "--from", "synthetic", str(scenes), "--out", str(bag), "--compressed"]) == 0
    frames = calibration_source(str(bag))
    assert len(frames) == 24 >= MIN_CALIBRATION_IMAGES and frames[0].shape == (590, 1640, 3)
    assert calibration_source("") is None and calibration_source(str(scenes)) == str(scenes)
    detector = LaneDetector.from_preset(
        PRESET, WEIGHTS, "cpu", "onnxruntime", "int8", frames, cache_dir=tmp_path / "cache"
    )
    assert detector.runner.agreement.passes
