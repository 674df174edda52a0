"""Image/CompressedImage <-> NumPy conversion of the ROS node (no cv_bridge)."""

import array

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from clrkdnet_core.errors import InputError
from clrkdnet_ros.image_codec import (
    SUPPORTED_ENCODINGS,
    bgr_to_image,
    compressed_to_bgr,
    decode_frame,
    image_to_bgr,
    jpeg_size,
)

HEIGHT, WIDTH = 7, 5


@pytest.fixture
def bgr() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


def _raw(pixels: np.ndarray, encoding: str, padding: int = 0) -> Image:
    """An Image of ``pixels`` (HxWxC bytes in the encoding's order), ``padding`` bytes after each row."""
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1)
    rows = np.concatenate([rows, np.full((height, padding), 77, np.uint8)], axis=1)
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=0, step=rows.shape[1])
    msg.data = array.array("B", rows.tobytes())
    return msg


def _encode(bgr: np.ndarray, encoding: str) -> np.ndarray:
    """The bytes a camera driver would send for ``bgr`` in ``encoding``, independently of the codec."""
    b, g, r = bgr[..., 0], bgr[..., 1], bgr[..., 2]
    alpha = np.full_like(b, 200)
    return {
        "bgr8": bgr,
        "rgb8": np.stack([r, g, b], -1),
        "bgra8": np.stack([b, g, r, alpha], -1),
        "rgba8": np.stack([r, g, b, alpha], -1),
        "mono8": g[..., None],
    }[encoding]


EXACT_ENCODINGS = ("bgr8", "rgb8", "bgra8", "rgba8", "mono8")


def test_supported_encodings():
    assert set(SUPPORTED_ENCODINGS) == {
        *EXACT_ENCODINGS,
        "yuv422",
        "yuv422_yuy2",
        "bayer_rggb8",
        "bayer_bggr8",
        "bayer_gbrg8",
        "bayer_grbg8",
    }


@pytest.mark.parametrize("padding", [0, 3])
@pytest.mark.parametrize("encoding", EXACT_ENCODINGS)
def test_every_encoding_decodes_to_bgr(bgr, encoding, padding):
    decoded = image_to_bgr(_raw(_encode(bgr, encoding), encoding, padding))
    assert decoded.shape == (HEIGHT, WIDTH, 3)
    assert decoded.dtype == np.uint8
    assert decoded.flags.c_contiguous
    expected = np.repeat(bgr[..., 1:2], 3, axis=2) if encoding == "mono8" else bgr
    np.testing.assert_array_equal(decoded, expected)


@pytest.mark.parametrize(
    ("encoding", "packing"),
    [("yuv422", cv2.COLOR_BGR2YUV_UYVY), ("yuv422_yuy2", cv2.COLOR_BGR2YUV_YUY2)],
)
def test_yuv422_byte_orders(encoding, packing):
    # Strongly coloured but smooth, so chroma subsampling costs little and a swapped byte order shows.
    smooth = np.zeros((8, 16, 3), np.uint8)
    smooth[...] = (40, 90, 210)
    smooth[:, :, 1] += np.arange(16, dtype=np.uint8)[None, :] * 4
    packed = cv2.cvtColor(smooth, packing)  # OpenCV's encoder: (H, W, 2)
    decoded = image_to_bgr(_raw(packed, encoding, padding=4))
    assert np.abs(decoded.astype(int) - smooth.astype(int)).max() <= 6


def _mosaic(bgr: np.ndarray, pattern: str) -> np.ndarray:
    """The raw sensor bytes of a Bayer camera with ``pattern`` (e.g. 'rggb': R G on even rows, G B on odd)."""
    channel = {"b": 0, "g": 1, "r": 2}
    raw = np.empty(bgr.shape[:2], np.uint8)
    for index, colour in enumerate(pattern):
        row, col = divmod(index, 2)
        raw[row::2, col::2] = bgr[row::2, col::2, channel[colour]]
    return raw


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer_patterns(pattern):
    flat = np.zeros((10, 12, 3), np.uint8)
    flat[...] = (30, 120, 220)
    decoded = image_to_bgr(_raw(_mosaic(flat, pattern)[..., None], f"bayer_{pattern}8"))
    # Away from the border a flat colour is demosaiced exactly; a wrong pattern would swap red and blue.
    np.testing.assert_array_equal(decoded[2:-2, 2:-2], flat[2:-2, 2:-2])


def test_yuv422_needs_an_even_width():
    msg = _raw(np.zeros((2, 3, 2), np.uint8), "yuv422")
    with pytest.raises(InputError, match="needs an even width"):
        image_to_bgr(msg)


def test_big_endian_flag_is_irrelevant_for_8_bit(bgr):
    msg = _raw(_encode(bgr, "rgb8"), "rgb8")
    msg.is_bigendian = 1
    np.testing.assert_array_equal(image_to_bgr(msg), bgr)


def test_decoding_does_not_alias_the_message_buffer(bgr):
    msg = _raw(bgr, "bgr8")
    decoded = image_to_bgr(msg)
    decoded[:] = 0
    np.testing.assert_array_equal(image_to_bgr(msg), bgr)


def test_unknown_encoding_is_named(bgr):
    msg = _raw(bgr, "bgr8")
    msg.encoding = "32FC1"
    with pytest.raises(InputError, match="unsupported image encoding '32FC1'"):
        image_to_bgr(msg)


def test_short_data_is_rejected(bgr):
    msg = _raw(bgr, "bgr8")
    msg.data = msg.data[:-1]
    with pytest.raises(InputError, match=r"image data has 104 bytes, expected step x height"):
        image_to_bgr(msg)


def test_step_smaller_than_a_row_is_rejected(bgr):
    msg = _raw(bgr, "bgr8")
    msg.step = WIDTH * 3 - 1
    msg.data = msg.data[: msg.step * HEIGHT]
    with pytest.raises(InputError, match="image step 14 is smaller than width 5 x 3 bytes"):
        image_to_bgr(msg)


def test_empty_image_is_rejected():
    with pytest.raises(InputError, match="empty image"):
        image_to_bgr(Image(height=0, width=0, encoding="bgr8", step=0))


@pytest.mark.parametrize("extension", [".png", ".jpg"])
def test_compressed_decodes_to_bgr(extension):
    # A smooth image survives JPEG almost unchanged; PNG is lossless.
    bgr = np.zeros((32, 48, 3), np.uint8)
    bgr[..., 0] = np.arange(48, dtype=np.uint8)[None, :] * 5
    bgr[..., 2] = 200
    ok, encoded = cv2.imencode(extension, bgr)
    assert ok
    msg = CompressedImage(format=extension[1:])
    msg.data = array.array("B", encoded.tobytes())
    decoded = compressed_to_bgr(msg)
    assert decoded.shape == bgr.shape
    tolerance = 0 if extension == ".png" else 8
    assert np.abs(decoded.astype(int) - bgr.astype(int)).max() <= tolerance


def test_compressed_grey_png_becomes_three_channels():
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
    msg = CompressedImage(format="png")
    msg.data = array.array("B", cv2.imencode(".png", grey)[1].tobytes())
    np.testing.assert_array_equal(compressed_to_bgr(msg), np.repeat(grey[..., None], 3, axis=2))


def test_garbage_compressed_data_is_rejected():
    msg = CompressedImage(format="jpeg")
    msg.data = array.array("B", b"\xff\xd8 definitely not a jpeg")
    with pytest.raises(InputError, match="could not be decoded"):
        compressed_to_bgr(msg)
    with pytest.raises(InputError, match="has no data"):
        compressed_to_bgr(CompressedImage(format="jpeg"))


def _compressed(bgr: np.ndarray, extension: str, params: tuple[int, ...] = ()) -> CompressedImage:
    msg = CompressedImage(format=extension[1:])
    msg.data = array.array("B", cv2.imencode(extension, bgr, list(params))[1].tobytes())
    return msg


def test_jpeg_size_reads_the_frame_header():
    bgr = np.zeros((59, 164, 3), np.uint8)
    assert jpeg_size(_compressed(bgr, ".jpg").data) == (164, 59)
    progressive = _compressed(bgr, ".jpg", (cv2.IMWRITE_JPEG_PROGRESSIVE, 1))
    assert jpeg_size(progressive.data) == (164, 59)
    assert jpeg_size(_compressed(bgr, ".png").data) is None
    assert jpeg_size(b"\xff\xd8\xff\xda\x00\x02") is None and jpeg_size(b"") is None


@pytest.mark.parametrize(
    ("scale", "size"), [(1, (1640, 590)), (2, (820, 295)), (4, (410, 148)), (8, (205, 74))]
)
def test_a_jpeg_is_decoded_at_the_reduction_asked_for_with_the_camera_size(scale, size):
    smooth = np.random.default_rng(1).integers(0, 256, (6, 16, 3), np.uint8)
    bgr = cv2.resize(smooth, (1640, 590), interpolation=cv2.INTER_LINEAR)
    asked = []
    frame = decode_frame(
        _compressed(bgr, ".jpg"), lambda width, height: asked.append((width, height)) or scale
    )
    assert asked == [(1640, 590)] and frame.size == (1640, 590)
    assert frame.image.shape == (size[1], size[0], 3) and frame.reduced == (scale > 1)
    full = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(frame.image.astype(int) - full).mean() < 4  # the same picture, averaged


def test_raw_images_and_pngs_are_decoded_in_full():
    bgr = np.full((40, 60, 3), 9, np.uint8)
    for msg in (_raw(bgr, "bgr8"), _compressed(bgr, ".png")):
        frame = decode_frame(msg, lambda width, height: 2)
        assert frame.image.shape == (40, 60, 3) and frame.size == (60, 40) and not frame.reduced
    assert decode_frame(_compressed(bgr, ".jpg")).image.shape == (40, 60, 3)  # no reduction given


def test_bgr_to_image_round_trip(bgr):
    header = Header(frame_id="camera_optical")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    msg = bgr_to_image(bgr, header)
    assert (msg.encoding, msg.width, msg.height, msg.step) == ("bgr8", WIDTH, HEIGHT, WIDTH * 3)
    assert msg.header == header
    np.testing.assert_array_equal(image_to_bgr(msg), bgr)
    with pytest.raises(InputError, match="expected an HxWx3 uint8 BGR image"):
        bgr_to_image(bgr[..., 0], header)
