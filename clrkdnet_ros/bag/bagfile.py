"""Reading a camera bag for evaluation: the image topic, the GT lanes and frames in recording order.

Works on bags written by ``bag make`` and by ``ros2 bag record`` (sqlite3 or mcap, Humble to Kilted): message
definitions embedded in the bag are used when present, else the standard types plus ``clrkdnet_msgs``.

Each :class:`BagFrame` also carries what the bag knows about that moment: the camera_info of its stamp, the
odometry nearest to it, and, in a synthetic drive's bag, the true ego lane (``/ego_lane_gt``) and the true
marking ids of its GT lanes. The bag's ``/tf_static`` transforms are :meth:`LaneBag.static_transforms`.
"""

import bisect
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import yaml
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.interfaces import Connection
from rosbags.rosbag2 import ReaderError
from rosbags.serde import SerdeError

from clrkdnet_core.data.synthetic.truth import EgoLaneTruth
from clrkdnet_core.errors import DatasetError, InputError
from clrkdnet_core.lane import Lane
from clrkdnet_core.tracking.motion import EgoMotion
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
from clrkdnet_ros.bag.writer import (
    CATEGORIES_KEY,
    EGO_GT_TOPIC,
    GT_IDS_KEY,
    GT_TOPIC,
    ODOM_TOPIC,
    TF_STATIC_TOPIC,
)
from clrkdnet_ros.image_codec import compressed_to_bgr, image_to_bgr

# What a damaged or cut-off bag raises inside rosbags and its storage back-ends.
_BAG_ERRORS = (
    AnyReaderError,
    ReaderError,
    SerdeError,
    sqlite3.DatabaseError,
    EOFError,
    OSError,
    ValueError,
    KeyError,
)


@dataclass(frozen=True)
class BagFrame:
    """One camera image of the bag with its GT lanes (None when the bag has no GT topic) and what else the
    bag knows at its stamp (each None when the bag lacks it).

    Attributes:
        camera_info: the sensor_msgs/CameraInfo of the image's stamp (the latest before it otherwise), as
            rosbags deserializes it (``k``, ``d``, ``distortion_model``, ``width``, ``height``, ``header``).
        odometry: the nav_msgs/Odometry nearest in stamp; ``motion`` its speed and yaw rate.
        gt_ids: the true marking id of each of ``gt_lanes`` (same order), only in bags whose GT lanes carry
            true ids (synthetic drives); ``gt_positions`` their true Lane.msg position classes.
        ego_truth: the true ego lane (``/ego_lane_gt``), field names as clrkdnet_msgs/EgoLane.
    """

    index: int
    stamp_ns: int
    image: np.ndarray
    gt_lanes: list[Lane] | None
    category: str | None
    camera_info: object | None = None
    odometry: object | None = None
    motion: EgoMotion | None = None
    gt_ids: list[int] | None = None
    gt_positions: list[int] | None = None
    ego_truth: EgoLaneTruth | None = None


@dataclass(frozen=True)
class _GroundTruth:
    """One GT LaneArray: its lanes with their ids and positions, in message order."""

    lanes: list[Lane]
    ids: list[int]
    positions: list[int]


def lane_array_to_lanes(msg) -> list[Lane]:
    """The lanes of a LaneArray (rclpy or rosbags message) as core Lanes, points top to bottom."""
    lanes = []
    for lane in msg.lanes:
        points = np.stack([np.asarray(lane.u, np.float32), np.asarray(lane.v, np.float32)], axis=1)
        lanes.append(Lane(points[::-1], lane.score))  # messages run bottom to top
    return lanes


class LaneBag:
    """An open bag: use as a context manager, then iterate :meth:`frames`."""

    def __init__(self, path: Path, image_topic: str | None = None) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise DatasetError(f"bag not found: {self.path}")
        self._reader = AnyReader([self.path], default_typestore=lane_typestore())
        try:
            self._reader.open()
        except _BAG_ERRORS as exc:
            raise DatasetError(
                f"cannot read bag {self.path} (damaged, truncated or not a rosbag2 bag): {exc}"
            ) from exc
        try:
            self._select_topics(image_topic)
        except DatasetError:
            self._reader.close()
            raise

    def __enter__(self) -> "LaneBag":
        return self

    def __exit__(self, *exc_info) -> None:
        self._reader.close()

    def _select_topics(self, image_topic: str | None) -> None:
        if self._reader.message_count == 0:
            raise DatasetError(f"bag {self.path} contains no messages")
        by_topic = {conn.topic: conn for conn in self._reader.connections}
        images = {
            topic: conn for topic, conn in by_topic.items() if conn.msgtype in (IMAGE, COMPRESSED_IMAGE)
        }
        listing = ", ".join(f"{topic} ({conn.msgtype})" for topic, conn in sorted(by_topic.items()))
        if image_topic is not None:
            if image_topic not in images:
                raise DatasetError(f"bag {self.path} has no image topic '{image_topic}' (topics: {listing})")
            self.image_connection = images[image_topic]
        elif len(images) == 1:
            self.image_connection = next(iter(images.values()))
        elif not images:
            raise DatasetError(
                f"bag {self.path} has no sensor_msgs/Image or CompressedImage topic (topics: {listing})"
            )
        else:
            names = ", ".join(sorted(images))
            raise DatasetError(f"bag {self.path} has several image topics ({names}); pick one with --topic")
        if self.image_connection.msgcount == 0:
            raise DatasetError(
                f"image topic {self.image_connection.topic} of bag {self.path} has no messages"
            )
        lane_topics = [conn for conn in self._reader.connections if conn.msgtype == LANE_ARRAY]
        named = [conn for conn in lane_topics if conn.topic == GT_TOPIC]
        self.gt_connection: Connection | None = (named or lane_topics or [None])[0]

    @property
    def image_topic(self) -> str:
        return self.image_connection.topic

    @property
    def gt_topic(self) -> str | None:
        return self.gt_connection.topic if self.gt_connection is not None else None

    @property
    def camera_info_topic(self) -> str | None:
        """The bag's first CameraInfo topic, if any."""
        topics = sorted(conn.topic for conn in self._reader.connections if conn.msgtype == CAMERA_INFO)
        return topics[0] if topics else None

    @property
    def num_frames(self) -> int:
        return self.image_connection.msgcount

    def frames(self) -> Iterator[BagFrame]:
        """Decoded images in recording order with the GT, camera_info, odometry and true ego lane of their
        header stamp."""
        try:
            gt = self._read_gt() if self.gt_connection is not None else None
            true_ids = GT_IDS_KEY in self._custom_data()
            categories = self._categories()
            infos = self._by_stamp(self._connections(CAMERA_INFO, self.camera_info_topic))
            info_stamps = sorted(infos)
            odometry = self._by_stamp(self._connections(ODOMETRY, ODOM_TOPIC))
            odometry_stamps = sorted(odometry)
            egos = self._by_stamp(self._connections(EGO_LANE, EGO_GT_TOPIC))
            messages = self._reader.messages(connections=[self.image_connection])
            for index, (connection, _, raw) in enumerate(messages):
                msg = self._reader.deserialize(raw, connection.msgtype)
                try:
                    image = (
                        compressed_to_bgr(msg)
                        if connection.msgtype == COMPRESSED_IMAGE
                        else image_to_bgr(msg)
                    )
                except InputError as exc:
                    raise DatasetError(f"bag {self.path}, {connection.topic} message {index}: {exc}") from exc
                stamp = _stamp_ns(msg.header)
                truth = gt.get(stamp, _GroundTruth([], [], [])) if gt is not None else None
                odom = odometry.get(_nearest(odometry_stamps, stamp))
                ego = egos.get(stamp)
                yield BagFrame(
                    index=index,
                    stamp_ns=stamp,
                    image=image,
                    gt_lanes=None if truth is None else truth.lanes,
                    category=categories[index] if index < len(categories) else None,
                    camera_info=infos.get(_latest(info_stamps, stamp)),
                    odometry=odom,
                    motion=None if odom is None else _motion(odom),
                    gt_ids=truth.ids if truth is not None and true_ids else None,
                    gt_positions=truth.positions if truth is not None and true_ids else None,
                    ego_truth=None if ego is None else _ego_truth(ego),
                )
        except _BAG_ERRORS as exc:
            raise DatasetError(f"cannot read bag {self.path} (damaged or truncated): {exc}") from exc

    def camera_info(self):
        """The bag's first CameraInfo message (rosbags-deserialized), or None without a camera_info topic."""
        connections = self._connections(CAMERA_INFO, self.camera_info_topic)
        if not connections:  # rosbags reads every topic for an empty list
            return None
        try:
            for connection, _, raw in self._reader.messages(connections=connections):
                return self._reader.deserialize(raw, connection.msgtype)
        except _BAG_ERRORS as exc:
            raise DatasetError(f"cannot read bag {self.path} (damaged or truncated): {exc}") from exc
        return None

    def static_transforms(self) -> list:
        """Every geometry_msgs/TransformStamped of the bag's ``/tf_static`` messages (parent
        ``header.frame_id`` <- ``child_frame_id``), rosbags-deserialized, in recording order; [] without."""
        connections = [conn for conn in self._reader.connections if conn.msgtype == TF_MESSAGE]
        connections = [conn for conn in connections if conn.topic == TF_STATIC_TOPIC]
        transforms = []
        if not connections:  # rosbags reads every topic for an empty list
            return transforms
        try:
            for connection, _, raw in self._reader.messages(connections=connections):
                transforms += self._reader.deserialize(raw, connection.msgtype).transforms
        except _BAG_ERRORS as exc:
            raise DatasetError(f"cannot read bag {self.path} (damaged or truncated): {exc}") from exc
        return transforms

    def static_transforms_message(self) -> bytes | None:
        """All of :meth:`static_transforms` as one serialized tf2_msgs/TFMessage (what a live replay latches
        on ``/tf_static``; rclpy publishes bytes as they are), or None without static transforms."""
        transforms = self.static_transforms()
        if not transforms:
            return None
        typestore = lane_typestore()
        message = typestore.types[TF_MESSAGE](transforms=transforms)
        return bytes(typestore.serialize_cdr(message, TF_MESSAGE))

    def playback(self) -> Iterator[tuple[str, str, int, int, bytes]]:
        """(topic, msgtype, bag time ns, header stamp ns, serialized message) of the images, camera infos and
        odometry, in recording order: what a live replay publishes (the static transforms are
        :meth:`static_transforms_message`)."""
        connections = [self.image_connection]
        connections += self._connections(CAMERA_INFO, self.camera_info_topic)
        connections += self._connections(ODOMETRY, ODOM_TOPIC)
        try:
            for connection, timestamp, raw in self._reader.messages(connections=connections):
                header = self._reader.deserialize(raw, connection.msgtype).header
                yield connection.topic, connection.msgtype, timestamp, _stamp_ns(header), bytes(raw)
        except _BAG_ERRORS as exc:
            raise DatasetError(f"cannot read bag {self.path} (damaged or truncated): {exc}") from exc

    def _read_gt(self) -> dict[int, _GroundTruth]:
        gt = {}
        for connection, _, raw in self._reader.messages(connections=[self.gt_connection]):
            msg = self._reader.deserialize(raw, connection.msgtype)
            ids = [int(lane.id) for lane in msg.lanes]
            positions = [int(lane.position) for lane in msg.lanes]
            gt[_stamp_ns(msg.header)] = _GroundTruth(lane_array_to_lanes(msg), ids, positions)
        return gt

    def _connections(self, msgtype: str, topic: str | None) -> list[Connection]:
        """The connections of ``topic`` with ``msgtype``; ``topic`` picks among several topics of the type."""
        of_type = [conn for conn in self._reader.connections if conn.msgtype == msgtype]
        topics = {conn.topic for conn in of_type}
        chosen = topic if topic in topics else (min(topics) if topics else None)
        return [conn for conn in of_type if conn.topic == chosen]

    def _by_stamp(self, connections: list[Connection]) -> dict[int, object]:
        """Header stamp -> deserialized message of ``connections`` (the last one of a stamp wins)."""
        messages = {}
        if not connections:  # rosbags reads every topic for an empty list
            return messages
        for connection, _, raw in self._reader.messages(connections=connections):
            msg = self._reader.deserialize(raw, connection.msgtype)
            messages[_stamp_ns(msg.header)] = msg
        return messages

    def _custom_data(self) -> dict[str, str]:
        """metadata.yaml's custom_data (what ``bag make`` stores there), {} without."""
        metadata = self.path / "metadata.yaml"
        if not metadata.is_file():
            return {}
        info = yaml.safe_load(metadata.read_text()).get("rosbag2_bagfile_information", {})
        return info.get("custom_data") or {}

    def _categories(self) -> list[str | None]:
        """Per-frame CULane categories that ``bag make`` stored in metadata.yaml's custom_data, else []."""
        custom = self._custom_data()
        return json.loads(custom[CATEGORIES_KEY]) if CATEGORIES_KEY in custom else []


def _stamp_ns(header) -> int:
    return header.stamp.sec * 10**9 + header.stamp.nanosec


def _nearest(stamps: list[int], stamp: int) -> int | None:
    """The element of sorted ``stamps`` nearest to ``stamp`` (the earlier on a tie), None when empty."""
    i = bisect.bisect_left(stamps, stamp)
    candidates = stamps[max(i - 1, 0) : i + 1]
    return min(candidates, key=lambda s: abs(s - stamp)) if candidates else None


def _latest(stamps: list[int], stamp: int) -> int | None:
    """The last of sorted ``stamps`` at or before ``stamp`` (the first one when all are later)."""
    i = bisect.bisect_right(stamps, stamp)
    return stamps[max(i - 1, 0)] if stamps else None


def _motion(odometry) -> EgoMotion:
    twist = odometry.twist.twist
    return EgoMotion(float(twist.linear.x), float(twist.angular.z))


def _ego_truth(msg) -> EgoLaneTruth:
    """An EgoLane message as the core's truth type (the same field names)."""
    return EgoLaneTruth(**{field.name: getattr(msg, field.name) for field in fields(EgoLaneTruth)})
