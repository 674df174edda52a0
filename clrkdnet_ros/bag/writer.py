"""``bag make``: a lane dataset as a rosbag2 bag (camera images, camera_info and GT lanes)."""

import array
import json
import shutil
from pathlib import Path

import cv2
from rclpy.serialization import serialize_message
from rosbags.rosbag2 import StoragePlugin, Writer, WriterError
from sensor_msgs.msg import CameraInfo, CompressedImage
from std_msgs.msg import Header
from tqdm import tqdm

from clrkdnet_core.errors import DatasetError
from clrkdnet_core.image import read_image
from clrkdnet_ros.bag.sources import DatasetSource
from clrkdnet_ros.bag.typestore import CAMERA_INFO, COMPRESSED_IMAGE, IMAGE, LANE_ARRAY, lane_typestore
from clrkdnet_ros.conversions import lanes_to_msg
from clrkdnet_ros.image_codec import bgr_to_image

# rosbag2 metadata version 8 (Jazzy's). Version 9 (Kilted) writes the offered QoS profiles as a YAML list,
# which Humble's and Jazzy's readers reject ("yaml-cpp: bad conversion"); every newer reader accepts 8.
METADATA_VERSION = 8

IMAGE_TOPIC = "/camera/image_raw"
COMPRESSED_TOPIC = "/camera/image_raw/compressed"
CAMERA_INFO_TOPIC = "/camera/camera_info"
GT_TOPIC = "/lanes_gt"
FRAME_ID = "camera"
# Metadata key (custom_data) of the per-frame CULane categories, a JSON list aligned with the images.
CATEGORIES_KEY = "clrkdnet_ros.categories"
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
# A fixed start time: the same dataset always gives the same bag.
_START_NS = 1_700_000_000 * 10**9
_JPEG_QUALITY = 95


def write_bag(
    source: DatasetSource, out: Path, storage: str = "mcap", rate: float = 30.0, compressed: bool = False
) -> int:
    """Write ``source`` to a new bag folder ``out``; returns the number of frames.

    Every frame gets the image (``bgr8`` Image, or jpeg CompressedImage with ``compressed``), a CameraInfo
    with the image size (uncalibrated: K is zero) and its GT as a LaneArray, all with the same header
    stamp, ``1/rate`` seconds apart.
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
    try:
        with Writer(out, version=METADATA_VERSION, storage_plugin=STORAGES[storage]) as writer:
            image_conn = writer.add_connection(
                COMPRESSED_TOPIC if compressed else IMAGE_TOPIC,
                COMPRESSED_IMAGE if compressed else IMAGE,
                typestore=typestore,
            )
            info_conn = writer.add_connection(CAMERA_INFO_TOPIC, CAMERA_INFO, typestore=typestore)
            gt_conn = writer.add_connection(GT_TOPIC, LANE_ARRAY, typestore=typestore)
            for index, frame in enumerate(tqdm(source.frames, desc=f"writing {out.name}", unit="frame")):
                image = read_image(frame.image_path, error=DatasetError)
                stamp_ns = _START_NS + index * period_ns
                header = Header(frame_id=FRAME_ID)
                header.stamp.sec, header.stamp.nanosec = divmod(stamp_ns, 10**9)
                height, width = image.shape[:2]
                image_msg = _compressed(image, header) if compressed else bgr_to_image(image, header)
                writer.write(image_conn, stamp_ns, serialize_message(image_msg))
                info = CameraInfo(header=header, height=height, width=width)
                writer.write(info_conn, stamp_ns, serialize_message(info))
                gt = lanes_to_msg(frame.lanes, header, width, height)
                writer.write(gt_conn, stamp_ns, serialize_message(gt))
            categories = [frame.category for frame in source.frames]
            if any(categories):
                writer.set_custom_data(CATEGORIES_KEY, json.dumps(categories))
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
