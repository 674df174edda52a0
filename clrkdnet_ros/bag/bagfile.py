"""Reading a camera bag for evaluation: the image topic, the GT lanes and frames in recording order.

Works on bags written by ``bag make`` and by ``ros2 bag record`` (sqlite3 or mcap, Humble to Kilted): message
definitions embedded in the bag are used when present, else the standard types plus ``clrkdnet_msgs``.
"""

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.interfaces import Connection
from rosbags.rosbag2 import ReaderError
from rosbags.serde import SerdeError

from clrkdnet_core.errors import DatasetError, InputError
from clrkdnet_core.lane import Lane
from clrkdnet_ros.bag.typestore import CAMERA_INFO, COMPRESSED_IMAGE, IMAGE, LANE_ARRAY, lane_typestore
from clrkdnet_ros.bag.writer import CATEGORIES_KEY, GT_TOPIC
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
    """One camera image of the bag with its GT lanes (None when the bag has no GT topic)."""

    index: int
    stamp_ns: int
    image: np.ndarray
    gt_lanes: list[Lane] | None
    category: str | None


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
        """Decoded images in recording order with the GT of the same header stamp."""
        try:
            gt = self._read_gt() if self.gt_connection is not None else None
            categories = self._categories()
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
                yield BagFrame(
                    index=index,
                    stamp_ns=stamp,
                    image=image,
                    gt_lanes=None if gt is None else gt.get(stamp, []),
                    category=categories[index] if index < len(categories) else None,
                )
        except _BAG_ERRORS as exc:
            raise DatasetError(f"cannot read bag {self.path} (damaged or truncated): {exc}") from exc

    def playback(self) -> Iterator[tuple[str, str, int, int, bytes]]:
        """(topic, msgtype, bag time ns, header stamp ns, serialized message) of the images and camera
        infos, in recording order: what a live replay publishes."""
        connections = [self.image_connection]
        connections += [conn for conn in self._reader.connections if conn.topic == self.camera_info_topic]
        try:
            for connection, timestamp, raw in self._reader.messages(connections=connections):
                header = self._reader.deserialize(raw, connection.msgtype).header
                yield connection.topic, connection.msgtype, timestamp, _stamp_ns(header), bytes(raw)
        except _BAG_ERRORS as exc:
            raise DatasetError(f"cannot read bag {self.path} (damaged or truncated): {exc}") from exc

    def _read_gt(self) -> dict[int, list[Lane]]:
        gt = {}
        for connection, _, raw in self._reader.messages(connections=[self.gt_connection]):
            msg = self._reader.deserialize(raw, connection.msgtype)
            gt[_stamp_ns(msg.header)] = lane_array_to_lanes(msg)
        return gt

    def _categories(self) -> list[str | None]:
        """Per-frame CULane categories that ``bag make`` stored in metadata.yaml's custom_data, else []."""
        metadata = self.path / "metadata.yaml"
        if not metadata.is_file():
            return []
        info = yaml.safe_load(metadata.read_text()).get("rosbag2_bagfile_information", {})
        custom = info.get("custom_data") or {}
        return json.loads(custom[CATEGORIES_KEY]) if CATEGORIES_KEY in custom else []


def _stamp_ns(header) -> int:
    return header.stamp.sec * 10**9 + header.stamp.nanosec
