"""``bag make``: a lane dataset as a rosbag2 bag (camera images, camera_info and GT lanes).

A synthetic drive (a dataset with ``truth.jsonl``) also gets what a robot's own recording would carry, from
its truth: a calibrated ``camera_info`` (K, P, R = I, plumb_bob with zero D) in ``camera_optical_frame``,
``/tf_static`` (``base_link`` -> ``camera_optical_frame``, the camera's static mounting, offered
transient-local as a static broadcaster latches it), ``/odom`` (``odom`` -> ``base_link``, speed and yaw rate,
the pose integrated from them), GT lanes with their true marking ids and positions, and the true ego lane on
``/ego_lane_gt``. Bags of CULane and TuSimple keep the uncalibrated (all-zero) camera_info in frame
``camera``: that is what those datasets know.

A drive's clock is ``index / fps`` of the generator; the bag's is ``--rate``. Velocities and times are
converted to the bag's clock (a 10 fps drive written at 30 Hz plays three times as fast, and ``/odom``
reports the speed that the bag's images show).
"""

import array
import json
import math
import shutil
from pathlib import Path

import cv2
import numpy as np
from geometry_msgs.msg import Quaternion
from nav_msgs.msg import Odometry
from rclpy.serialization import serialize_message
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer, WriterError
from rosbags.typesys.store import Typestore
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, CompressedImage
from std_msgs.msg import Header
from tqdm import tqdm

from clrkdnet_core.camera_model import CameraPose
from clrkdnet_core.data.synthetic.truth import EgoLaneTruth, FrameTruth
from clrkdnet_core.errors import DatasetError
from clrkdnet_core.image import read_image
from clrkdnet_core.lane import Lane
from clrkdnet_core.perception import FramePerception, LanePerception, PerceivedLane
from clrkdnet_core.tracking.ego_lane import SOURCE_MEASURED, SOURCE_NONE, EgoLaneState
from clrkdnet_core.tracking.motion import EgoMotion
from clrkdnet_ros.bag.sources import DatasetSource, SourceFrame
from clrkdnet_ros.bag.typestore import (
    CAMERA_INFO,
    COMPRESSED_IMAGE,
    EGO_LANE,
    IMAGE,
    LANE_ARRAY,
    ODOMETRY,
    TF_MESSAGE,
    lane_typestore,
)
from clrkdnet_ros.conversions import ego_lane_to_msg, frame_to_msg
from clrkdnet_ros.image_codec import bgr_to_image

# rosbag2 metadata version 8 (Jazzy's). Version 9 (Kilted) writes the offered QoS profiles as a YAML list,
# which Humble's and Jazzy's readers reject ("yaml-cpp: bad conversion"); every newer reader accepts 8.
METADATA_VERSION = 8

IMAGE_TOPIC = "/camera/image_raw"
COMPRESSED_TOPIC = "/camera/image_raw/compressed"
CAMERA_INFO_TOPIC = "/camera/camera_info"
GT_TOPIC = "/lanes_gt"
EGO_GT_TOPIC = "/ego_lane_gt"
TF_STATIC_TOPIC = "/tf_static"
ODOM_TOPIC = "/odom"
FRAME_ID = "camera"
# Frames of a synthetic drive's bag (REP-103/105 names, as a URDF with an optical frame would have them).
OPTICAL_FRAME_ID = "camera_optical_frame"
BASE_FRAME_ID = "base_link"
ODOM_FRAME_ID = "odom"
# Metadata key (custom_data) of the per-frame CULane categories, a JSON list aligned with the images.
CATEGORIES_KEY = "clrkdnet_ros.categories"
# Metadata key (custom_data) present when the GT lanes' ids are true marking ids (a synthetic drive's).
GT_IDS_KEY = "clrkdnet_ros.gt_lane_ids"
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
# A fixed start time: the same dataset always gives the same bag.
_START_NS = 1_700_000_000 * 10**9
_JPEG_QUALITY = 95
_NO_TIME = QosTime(0, 0)  # deadline, lifespan, lease: the RMW default (none)
# What tf2's StaticTransformBroadcaster offers: ``ros2 bag play`` then latches /tf_static for late joiners.
_LATCHED = Qos(
    QosHistory.KEEP_LAST,
    1,
    QosReliability.RELIABLE,
    QosDurability.TRANSIENT_LOCAL,
    _NO_TIME,
    _NO_TIME,
    QosLiveliness.AUTOMATIC,
    _NO_TIME,
    False,
)


def write_bag(
    source: DatasetSource, out: Path, storage: str = "mcap", rate: float = 30.0, compressed: bool = False
) -> int:
    """Write ``source`` to a new bag folder ``out``; returns the number of frames.

    Every frame gets the image (``bgr8`` Image, or jpeg CompressedImage with ``compressed``), a CameraInfo
    with the image size and its GT as a LaneArray, all with the same header stamp, ``1/rate`` seconds apart.
    Without truth the CameraInfo is uncalibrated (K is zero); with a synthetic drive's truth, see the module
    docstring.
    """
    out = Path(out)
    if storage not in STORAGES:
        raise DatasetError(f"unknown bag storage '{storage}' (expected one of {', '.join(STORAGES)})")
    if rate <= 0:
        raise DatasetError(f"--rate must be positive, got {rate}")
    if out.exists():
        raise DatasetError(f"output bag {out} exists already; choose another --out or remove it")
    out.parent.mkdir(parents=True, exist_ok=True)
    typestore = lane_typestore()
    period_ns = round(1e9 / rate)
    with_truth = all(frame.truth is not None for frame in source.frames)
    try:
        with Writer(out, version=METADATA_VERSION, storage_plugin=STORAGES[storage]) as writer:
            image_conn = writer.add_connection(
                COMPRESSED_TOPIC if compressed else IMAGE_TOPIC,
                COMPRESSED_IMAGE if compressed else IMAGE,
                typestore=typestore,
            )
            info_conn = writer.add_connection(CAMERA_INFO_TOPIC, CAMERA_INFO, typestore=typestore)
            gt_conn = writer.add_connection(GT_TOPIC, LANE_ARRAY, typestore=typestore)
            truth_topics = _TruthTopics(writer, typestore, rate) if with_truth else None
            for index, frame in enumerate(tqdm(source.frames, desc=f"writing {out.name}", unit="frame")):
                image = read_image(frame.image_path, error=DatasetError)
                stamp_ns = _START_NS + index * period_ns
                header = Header(frame_id=OPTICAL_FRAME_ID if with_truth else FRAME_ID)
                header.stamp.sec, header.stamp.nanosec = divmod(stamp_ns, 10**9)
                height, width = image.shape[:2]
                image_msg = _compressed(image, header) if compressed else bgr_to_image(image, header)
                writer.write(image_conn, stamp_ns, serialize_message(image_msg))
                info = CameraInfo(header=header, height=height, width=width)
                if with_truth:
                    _calibrate(info, frame.truth)
                writer.write(info_conn, stamp_ns, serialize_message(info))
                if with_truth:
                    gt = frame_to_msg(_true_lanes(frame), header, width, height, BASE_FRAME_ID)
                else:
                    gt = frame_to_msg(_indexed_lanes(frame.lanes, width, height), header, width, height)
                writer.write(gt_conn, stamp_ns, serialize_message(gt))
                if truth_topics is not None:
                    truth_topics.write(frame.truth, header, stamp_ns)
            categories = [frame.category for frame in source.frames]
            if any(categories):
                writer.set_custom_data(CATEGORIES_KEY, json.dumps(categories))
            if with_truth:
                writer.set_custom_data(GT_IDS_KEY, "true marking ids, stable over the drive")
    except WriterError as exc:
        shutil.rmtree(out, ignore_errors=True)
        raise DatasetError(f"cannot write bag {out}: {exc}") from exc
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)  # no half-written bag left behind
        raise
    return len(source.frames)


def _compressed(image, header: Header) -> CompressedImage:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
    if not ok:
        raise DatasetError("jpeg encoding failed")
    return CompressedImage(header=header, format="jpeg", data=array.array("B", encoded.tobytes()))


def _calibrate(info: CameraInfo, truth: FrameTruth) -> None:
    """The rendered camera: an ideal pinhole, so R is the identity, D zero and P = [K | 0]."""
    k = truth.camera.k()
    info.k = k.ravel().tolist()
    info.p = np.hstack([k, np.zeros((3, 1))]).ravel().tolist()
    info.r = np.eye(3).ravel().tolist()
    info.distortion_model = "plumb_bob"
    info.d = [0.0] * 5


def _indexed_lanes(lanes: list[Lane], width: int, height: int) -> FramePerception:
    """GT lanes as the node publishes untracked lanes: left to right, ids their index, positions by where
    they meet the bottom row (no ground projection: a dataset's camera is unknown)."""
    return LanePerception(tracking=False).update(lanes, (width, height), 0.0)


def _true_lanes(frame: SourceFrame) -> FramePerception:
    """GT lanes of a synthetic drive, left to right, with their marking's id, true position and exact ground
    cubic in base_link."""
    truth = frame.truth
    lanes = []
    for marking_id, lane in zip(truth.gt_lane_ids, frame.lanes, strict=True):
        marking = truth.lane(marking_id)
        lanes.append(PerceivedLane(lane, marking.id, 0, True, 1.0, marking.position, None, marking.curve))
    lanes.sort(key=lambda perceived: -float(perceived.curve.y_at(0.0)))
    return FramePerception(lanes=lanes, ego=None)


class _TruthTopics:
    """``/tf_static`` (once, before the first frame), ``/odom`` and ``/ego_lane_gt`` of a synthetic drive."""

    def __init__(self, writer: Writer, typestore: Typestore, rate: float) -> None:
        self.writer, self.typestore, self.rate = writer, typestore, rate
        self.tf_conn = writer.add_connection(
            TF_STATIC_TOPIC, TF_MESSAGE, typestore=typestore, offered_qos_profiles=[_LATCHED]
        )
        self.odom_conn = writer.add_connection(ODOM_TOPIC, ODOMETRY, typestore=typestore)
        self.ego_conn = writer.add_connection(EGO_GT_TOPIC, EGO_LANE, typestore=typestore)
        self.pose = (0.0, 0.0, 0.0)  # x, y, yaw of base_link in odom
        self.static_written = False

    def write(self, truth: FrameTruth, header: Header, stamp_ns: int) -> None:
        # Velocities in the drive's clock times this are velocities in the bag's clock.
        scale = self.rate / truth.fps
        if not self.static_written:
            self.writer.write(self.tf_conn, stamp_ns, self._tf_static(truth, header))
            self.static_written = True
        motion = EgoMotion(truth.speed * scale, truth.yaw_rate * scale)
        self.writer.write(self.odom_conn, stamp_ns, serialize_message(self._odometry(motion, header)))
        ego = ego_lane_to_msg(
            _ego_state(truth.ego, scale), Header(stamp=header.stamp, frame_id=BASE_FRAME_ID)
        )
        self.writer.write(self.ego_conn, stamp_ns, serialize_message(ego))
        # Integrated over the interval to the next frame at this frame's speed and yaw rate.
        dx, dy, dyaw = motion.displacement(1.0 / self.rate)
        x, y, yaw = self.pose
        c, s = math.cos(yaw), math.sin(yaw)
        self.pose = (x + c * dx - s * dy, y + s * dx + c * dy, yaw + dyaw)

    def _tf_static(self, truth: FrameTruth, header: Header) -> bytes:
        """base_link -> camera_optical_frame from the static mounting, built with rosbags' types: tf2_msgs'
        Python package is not there on every machine that makes bags."""
        pose = CameraPose.from_xyz_rpy(*truth.mount)
        types = self.typestore.types
        qx, qy, qz, qw = Rotation.from_matrix(pose.rotation).as_quat()
        transform = types["geometry_msgs/msg/TransformStamped"](
            header=types["std_msgs/msg/Header"](
                stamp=types["builtin_interfaces/msg/Time"](header.stamp.sec, header.stamp.nanosec),
                frame_id=BASE_FRAME_ID,
            ),
            child_frame_id=OPTICAL_FRAME_ID,
            transform=types["geometry_msgs/msg/Transform"](
                translation=types["geometry_msgs/msg/Vector3"](*(float(v) for v in pose.translation)),
                rotation=types["geometry_msgs/msg/Quaternion"](float(qx), float(qy), float(qz), float(qw)),
            ),
        )
        message = types[TF_MESSAGE](transforms=[transform])
        return bytes(self.typestore.serialize_cdr(message, TF_MESSAGE))

    def _odometry(self, motion: EgoMotion, header: Header) -> Odometry:
        x, y, yaw = self.pose
        odom = Odometry(
            header=Header(stamp=header.stamp, frame_id=ODOM_FRAME_ID), child_frame_id=BASE_FRAME_ID
        )
        odom.pose.pose.position.x, odom.pose.pose.position.y = x, y
        odom.pose.pose.orientation = Quaternion(z=math.sin(yaw / 2.0), w=math.cos(yaw / 2.0))
        odom.twist.twist.linear.x = motion.speed
        odom.twist.twist.angular.z = motion.yaw_rate
        return odom


def _ego_state(truth: EgoLaneTruth, scale: float) -> EgoLaneState:
    """The true ego lane as the estimator's state (exact: zero variances, full confidence, both sides
    measured), velocities and times in the bag's clock."""
    return EgoLaneState(
        valid=truth.valid,
        lateral_offset=truth.lateral_offset,
        heading=truth.heading,
        curvature=truth.curvature,
        curvature_rate=truth.curvature_rate,
        width=truth.width,
        left_distance=truth.left_distance,
        right_distance=truth.right_distance,
        left_time_to_crossing=truth.left_time_to_crossing / scale,
        right_time_to_crossing=truth.right_time_to_crossing / scale,
        lateral_velocity=truth.lateral_velocity * scale,
        left_id=truth.left_id,
        right_id=truth.right_id,
        left_source=SOURCE_MEASURED if truth.valid else SOURCE_NONE,
        right_source=SOURCE_MEASURED if truth.valid else SOURCE_NONE,
        lane_change=truth.lane_change,
        confidence=1.0 if truth.valid else 0.0,
        lateral_offset_variance=0.0,
        heading_variance=0.0,
        curvature_variance=0.0,
        width_variance=0.0,
    )
