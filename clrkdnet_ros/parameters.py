"""The lane_detector node's parameters: one table of names, defaults, descriptions and ranges.

``config/lane_detect.yaml``, the launch file and the README are checked against :data:`PARAMETERS`; the
node declares them with :func:`declare_parameters`, which turns rclpy's type and range errors into one
:class:`~clrkdnet_core.errors.InputError` line.
"""

import math
import re
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.parameter import Parameter

from clrkdnet_core.backend_options import AUTO, BACKENDS, PRECISIONS
from clrkdnet_core.errors import InputError
from clrkdnet_core.lane_format import NUM_PRIORS
from clrkdnet_ros import dds_setup

IMAGE_QOS_CHOICES = ("auto", "sensor_data", "reliable", "system_default")
IMAGE_TRANSPORT_CHOICES = ("raw", "compressed")


def _double_range(low: float, high: float) -> list[FloatingPointRange]:
    return [FloatingPointRange(from_value=low, to_value=high, step=0.0)]


def _int_range(low: int, high: int) -> list[IntegerRange]:
    return [IntegerRange(from_value=low, to_value=high, step=1)]


# name -> (default value, or a Parameter.Type for "unset means the preset's value", descriptor).
# config/lane_detect.yaml and the README are checked against this table.
PARAMETERS: dict[str, tuple[Any, ParameterDescriptor]] = {
    "preset": (
        "clrkdnet_resnet18_culane",
        ParameterDescriptor(
            description="Model preset name (clrkdnet_core/presets) or path to a preset YAML file",
            read_only=True,
        ),
    ),
    "weights": (
        "",
        ParameterDescriptor(
            description="Checkpoint file (.pth) trained for the preset, or an official file name in the "
            "weights cache (python -m clrkdnet_core.weights); required",
            read_only=True,
        ),
    ),
    "device": (
        "auto",
        ParameterDescriptor(
            description="auto, cpu, cuda or cuda:N; unavailable CUDA falls back to the CPU with a warning",
            read_only=True,
        ),
    ),
    "backend": (
        AUTO,
        ParameterDescriptor(
            description="Inference backend passed to LaneDetector; auto: the fastest installed one for the "
            "device (exact fp32: backend torch, precision fp32)",
            additional_constraints="one of: " + ", ".join((AUTO, *BACKENDS)),
            read_only=True,
        ),
    ),
    "precision": (
        AUTO,
        ParameterDescriptor(
            description="auto (the backend's best for the device, never int8); fp32; fp16 (CUDA); bf16 "
            "(openvino, CPUs that have it); int8 (onnxruntime, openvino; needs calibration): int8 is used "
            "only when asked",
            additional_constraints="one of: " + ", ".join((AUTO, *PRECISIONS)),
            read_only=True,
        ),
    ),
    "calibration": (
        "",
        ParameterDescriptor(
            description="int8 calibration images: a folder (searched recursively), a dataset root or a bag",
            read_only=True,
        ),
    ),
    "score_threshold": (
        Parameter.Type.DOUBLE,
        ParameterDescriptor(
            description="Minimum lane confidence; unset: the preset's test.conf_threshold. Run-time settable",
            floating_point_range=_double_range(0.0, 1.0),
        ),
    ),
    "nms_threshold": (
        Parameter.Type.DOUBLE,
        ParameterDescriptor(
            description="Lane NMS overlap threshold in pixels of the 800-wide network input; unset: the "
            "preset's test.nms_thres. Run-time settable",
            floating_point_range=_double_range(0.0, 800.0),
        ),
    ),
    "max_lanes": (
        Parameter.Type.INTEGER,
        ParameterDescriptor(
            description="Maximum lanes per image; unset: the preset's test.max_lanes. Run-time settable",
            integer_range=_int_range(1, NUM_PRIORS),
        ),
    ),
    "crop_ratio": (
        Parameter.Type.DOUBLE,
        ParameterDescriptor(
            description="Fraction of the image height cut from the top before inference (the sky); unset: "
            "the preset's cut_height / ori_img_h (270/590 for CULane)",
            floating_point_range=_double_range(0.0, 0.9),
            read_only=True,
        ),
    ),
    "tracking": (
        True,
        ParameterDescriptor(
            description="Track lanes across frames: Lane.id is a track id kept while the lane is tracked, a "
            "lane the detector misses for a frame is predicted, ground curves are filtered, and ego_lane is "
            "published; false: ids are each frame's indices left to right. Run-time settable (a change "
            "starts the tracks afresh)",
        ),
    ),
    "camera_pose": (
        Parameter.Type.DOUBLE_ARRAY,
        ParameterDescriptor(
            description="Pose of the camera body in ground_frame_id: [x, y, z, roll, pitch, yaw] (m, rad; "
            "REP-103 body axes x forward, y left, z up; fixed-axis roll-pitch-yaw as in URDF; positive pitch "
            "looks down; the node applies the optical rotation). Set, it defines the pose and tf2 is not "
            "consulted; unset (the default): camera_height/camera_pitch if camera_height > 0, else tf2 "
            "(ground_frame_id <- the image's frame_id). Run-time settable",
            additional_constraints="6 finite values, z > 0",
        ),
    ),
    "camera_height": (
        0.0,
        ParameterDescriptor(
            description="Camera height above the road in metres (with camera_pitch: a camera on the x axis "
            "of ground_frame_id, no roll or yaw), used when camera_pose is unset; 0: not set (tf2 gives the "
            "pose)",
            floating_point_range=_double_range(0.0, 20.0),
        ),
    ),
    "camera_pitch": (
        0.0,
        ParameterDescriptor(
            description="Camera pitch in radians, positive looking down at the road (with camera_height)",
            floating_point_range=_double_range(-1.5, 1.5),
        ),
    ),
    "ground_frame_id": (
        "base_link",
        ParameterDescriptor(
            description="Ground frame on the road (z = 0 is the road; REP-103 x forward, y left, z up, e.g. "
            "base_link or base_footprint): frame of ground points, ego_lane, the ego paths and ground "
            "markers; without a pose parameter tf2 gives the transform ground_frame_id <- the image's "
            "frame_id"
        ),
    ),
    "image_qos": (
        "auto",
        ParameterDescriptor(
            description="QoS of the image subscription (keep last 1): auto (reliable while every matched "
            "publisher is, else best effort; re-evaluated as publishers come and go), sensor_data (best "
            "effort, accepts reliable and best-effort publishers), reliable or system_default",
            additional_constraints="one of: " + ", ".join(IMAGE_QOS_CHOICES),
            read_only=True,
        ),
    ),
    "image_transport": (
        "raw",
        ParameterDescriptor(
            description="raw: subscribe to image (sensor_msgs/Image); compressed: to image/compressed "
            "(sensor_msgs/CompressedImage, jpeg or png)",
            additional_constraints="one of: " + ", ".join(IMAGE_TRANSPORT_CHOICES),
            read_only=True,
        ),
    ),
    dds_setup.PARAMETER: (
        True,
        ParameterDescriptor(
            description="Apply the package's Fast DDS profile for large frames to this node's participant "
            "(UDPv4, 4 MiB receive buffer) unless FASTDDS_*/FASTRTPS_*/CYCLONEDDS_URI or another RMW is "
            "configured; read from the command line before rclpy.init",
            read_only=True,
        ),
    ),
    "auto_start": (
        True,
        ParameterDescriptor(
            description="Configure and activate at start-up; false waits for a lifecycle manager",
            read_only=True,
        ),
    ),
}

# Run-time thresholds -> LaneDetector.set_thresholds keyword and the preset's TestConfig field.
THRESHOLDS = {
    "score_threshold": "conf_threshold",
    "nms_threshold": "nms_thres",
    "max_lanes": "max_lanes",
}


def declare_parameters(node: Node) -> None:
    """Declare every parameter of :data:`PARAMETERS` on ``node``.

    Raises:
        InputError: a value from ``--ros-args`` or a params file has the wrong type or is out of range.
    """
    for name, (value, descriptor) in PARAMETERS.items():
        try:
            node.declare_parameter(name, value, descriptor)
        except ParameterException as exc:
            reason = str(exc).removesuffix(f": {name}")
            if re.search(r"of type 'INTEGER(_ARRAY)?', expecting type 'DOUBLE(_ARRAY)?'", reason):
                reason += " (write doubles with a decimal point, e.g. 1.0)"
            raise InputError(f"parameter '{name}': {reason}") from None


def check_choices(node: Node) -> None:
    """Raise :class:`InputError` when a parameter with choices (image_qos, backend, ...) has another value."""
    for name, choices in (
        ("image_qos", IMAGE_QOS_CHOICES),
        ("image_transport", IMAGE_TRANSPORT_CHOICES),
        ("backend", (AUTO, *BACKENDS)),
        ("precision", (AUTO, *PRECISIONS)),
    ):
        value = node.get_parameter(name).value
        if value not in choices:
            raise InputError(f"parameter '{name}': invalid value {value!r}; use one of {', '.join(choices)}")


def invalid_reason(parameter: Parameter) -> str | None:
    """Why a value is refused that the table's ranges cannot express (start-up and run-time changes)."""
    if parameter.name == "camera_pitch" and not math.isfinite(parameter.value):
        return "camera_pitch must be finite"
    if parameter.name == "ground_frame_id" and not parameter.value:
        return "ground_frame_id must not be empty"
    if parameter.name == "camera_pose" and parameter.type_ != Parameter.Type.NOT_SET:
        return _camera_pose_problem(list(parameter.value))
    return None


def _camera_pose_problem(values: list[float]) -> str | None:
    if len(values) != 6:
        return f"camera_pose needs 6 values [x, y, z, roll, pitch, yaw], got {len(values)}"
    if not all(math.isfinite(v) for v in values):
        return "camera_pose values must be finite"
    if values[2] <= 0.0:
        return f"camera_pose z (the camera's height above the road) must be > 0, got {values[2]}"
    return None


def optional_parameter(node: Node, name: str) -> Any:
    """Value of a parameter declared without a default, or None while it is unset."""
    parameter = node.get_parameter_or(name, Parameter(name, Parameter.Type.NOT_SET))
    return None if parameter.type_ == Parameter.Type.NOT_SET else parameter.value
