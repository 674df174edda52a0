"""``sensor_msgs`` images <-> NumPy without cv_bridge.

cv_bridge's Python binding is built against NumPy 1.x on Humble/Jazzy and breaks next to PyTorch's NumPy 2, so
the node decodes the bytes itself: ``np.frombuffer`` honouring ``step`` for raw images, ``cv2.imdecode`` for
compressed ones. Every decoder returns a contiguous HxWx3 uint8 BGR array, the colour order the network
expects. A JPEG can be decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling: much less work than a full
decode and a resize) when the network needs no more detail; :func:`decode_frame` then reports the camera
image's size next to the reduced image, so that lanes are still given in the camera's pixels.
"""

import array
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from clrkdnet_core.errors import InputError
from clrkdnet_core.image import check_image

# encoding -> (bytes per pixel, OpenCV conversion to BGR or None when the bytes already are BGR).
# OpenCV names Bayer patterns after the second row's first two pixels, hence ROS rggb = OpenCV BG.
_RAW_ENCODINGS = {
    "bgr8": (3, None),
    "rgb8": (3, cv2.COLOR_RGB2BGR),
    "bgra8": (4, cv2.COLOR_BGRA2BGR),
    "rgba8": (4, cv2.COLOR_RGBA2BGR),
    "mono8": (1, cv2.COLOR_GRAY2BGR),
    "yuv422": (2, cv2.COLOR_YUV2BGR_UYVY),
    "yuv422_yuy2": (2, cv2.COLOR_YUV2BGR_YUY2),
    "bayer_rggb8": (1, cv2.COLOR_BayerBG2BGR),
    "bayer_bggr8": (1, cv2.COLOR_BayerRG2BGR),
    "bayer_gbrg8": (1, cv2.COLOR_BayerGR2BGR),
    "bayer_grbg8": (1, cv2.COLOR_BayerGB2BGR),
}

SUPPORTED_ENCODINGS = tuple(_RAW_ENCODINGS)

# scale -> the imdecode flag that decodes a JPEG at 1/scale of its size
_REDUCED_FLAGS = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}
# JPEG start-of-frame markers (SOF0-SOF15 without DHT, JPG and DAC), which carry the image size.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


@dataclass(frozen=True)
class DecodedFrame:
    """A decoded camera frame: ``image`` (HxWx3 uint8 BGR, possibly reduced) and the camera image's size."""

    image: np.ndarray
    width: int
    height: int

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the camera image."""
        return self.width, self.height

    @property
    def reduced(self) -> bool:
        """Whether ``image`` is smaller than the camera image."""
        return self.image.shape[:2] != (self.height, self.width)


def decode_frame(
    msg: Image | CompressedImage, reduction: Callable[[int, int], int] | None = None
) -> DecodedFrame:
    """Decode a camera message; a JPEG at the reduction ``reduction(width, height)`` (1, 2, 4 or 8) asks for.

    Raw images and PNGs are always decoded in full: they offer no cheaper reduced decode.

    Raises:
        InputError: as :func:`image_to_bgr` and :func:`compressed_to_bgr`.
    """
    if isinstance(msg, Image):
        image = image_to_bgr(msg)
        return DecodedFrame(image, image.shape[1], image.shape[0])
    size = jpeg_size(msg.data) if reduction is not None else None
    if size is None:
        image = compressed_to_bgr(msg)
        return DecodedFrame(image, image.shape[1], image.shape[0])
    return DecodedFrame(compressed_to_bgr(msg, reduction(*size)), *size)


def jpeg_size(data: bytes | bytearray | memoryview) -> tuple[int, int] | None:
    """(width, height) from a JPEG's start-of-frame header; None when ``data`` is no (valid) JPEG."""
    data = memoryview(data)
    if len(data) < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return None
    offset = 2
    while offset + 9 <= len(data):
        if data[offset] != 0xFF:
            return None
        marker = data[offset + 1]
        if marker == 0xFF:  # fill byte before a marker
            offset += 1
            continue
        if marker in _SOF_MARKERS:
            height = (data[offset + 5] << 8) | data[offset + 6]
            width = (data[offset + 7] << 8) | data[offset + 8]
            return (width, height) if width and height else None
        if marker == 0xDA:  # start of scan: no frame header before the image data
            return None
        offset += 2 + ((data[offset + 2] << 8) | data[offset + 3])
    return None


def image_to_bgr(msg: Image) -> np.ndarray:
    """Decode a ``sensor_msgs/Image`` (:data:`SUPPORTED_ENCODINGS`, any row step) to HxWx3 uint8 BGR.

    ``is_bigendian`` is ignored: it has no meaning for 8-bit channels.

    Raises:
        InputError: unknown encoding, empty image, or ``data``/``step`` inconsistent with width and height.
    """
    if msg.encoding not in _RAW_ENCODINGS:
        raise InputError(
            f"unsupported image encoding '{msg.encoding}' (supported: {', '.join(SUPPORTED_ENCODINGS)})"
        )
    bytes_per_pixel, conversion = _RAW_ENCODINGS[msg.encoding]
    height, width, step = msg.height, msg.width, msg.step
    if height == 0 or width == 0:
        raise InputError(f"empty image ({width}x{height}, encoding '{msg.encoding}')")
    if msg.encoding.startswith("yuv422") and width % 2:
        raise InputError(f"encoding '{msg.encoding}' needs an even width, got {width}")
    row_bytes = width * bytes_per_pixel
    if step < row_bytes:
        raise InputError(
            f"image step {step} is smaller than width {width} x {bytes_per_pixel} bytes "
            f"(encoding '{msg.encoding}')"
        )
    if len(msg.data) != step * height:
        raise InputError(
            f"image data has {len(msg.data)} bytes, expected step x height = "
            f"{step} x {height} = {step * height}"
        )
    rows = np.frombuffer(msg.data, dtype=np.uint8).reshape(height, step)
    # One-byte encodings stay 2-D: demosaicing accepts nothing else.
    pixels = rows[:, :row_bytes].reshape(
        (height, width, bytes_per_pixel) if bytes_per_pixel > 1 else (height, width)
    )
    if conversion is None:
        return pixels.copy()  # never alias the message buffer: callers may draw on the image
    return cv2.cvtColor(pixels, conversion)


def compressed_to_bgr(msg: CompressedImage, scale: int = 1) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage`` (jpeg or png, colour or grey) to HxWx3 uint8 BGR.

    ``scale`` 2, 4 or 8 decodes at that fraction of the size (a JPEG's is ceil(size / scale)).

    Raises:
        InputError: empty or undecodable data.
    """
    if len(msg.data) == 0:
        raise InputError(f"compressed image (format '{msg.format}') has no data")
    image = cv2.imdecode(np.frombuffer(msg.data, dtype=np.uint8), _REDUCED_FLAGS[scale])
    if image is None:
        raise InputError(
            f"compressed image (format '{msg.format}', {len(msg.data)} bytes) could not be decoded"
        )
    return image


def bgr_to_image(image: np.ndarray, header: Header) -> Image:
    """Wrap an HxWx3 uint8 BGR array in a ``bgr8`` ``sensor_msgs/Image`` with the given header."""
    height, width = check_image(image).shape[:2]
    msg = Image(header=header, height=height, width=width, encoding="bgr8", is_bigendian=0, step=width * 3)
    # Building the array from bytes is a single memcpy; passing the ndarray would check every element.
    msg.data = array.array("B", np.ascontiguousarray(image).tobytes())
    return msg
