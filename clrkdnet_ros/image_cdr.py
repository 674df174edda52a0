"""A reader of serialized ``sensor_msgs/Image`` (CDR), for subscriptions with ``raw=True``.

rclpy deserializes an Image in two copies of ``data`` (CDR into the C message, the C message into a Python
``array``): 7 ms for a 1640x590 bgr8 frame here, against 1.5 ms for one copy. A raw subscription hands over
the serialized bytes instead; this reader finds the fields in them and exposes ``data`` as a view, so
:func:`~clrkdnet_ros.image_codec.image_to_bgr` makes the only copy.

Layout (the same in classic CDR and XCDR2's plain encoding, as the type has no 8-byte fields): a 4-byte
encapsulation header (``00 01`` little endian, ``00 00`` big endian; XCDR2 ``00 07`` / ``00 06``), then
``header.stamp`` (int32 sec, uint32 nanosec), ``header.frame_id``, uint32 ``height`` and ``width``,
``encoding``, uint8 ``is_bigendian``, uint32 ``step`` and ``data`` (uint32 length + bytes). Strings are a
uint32 length counting the terminating NUL, then the bytes; integers are aligned to their size from the end
of the encapsulation header.
"""

import struct
from dataclasses import dataclass

from builtin_interfaces.msg import Time
from std_msgs.msg import Header

from clrkdnet_core.errors import InputError

_BYTE_ORDERS = {b"\x00\x01": "<", b"\x00\x07": "<", b"\x00\x00": ">", b"\x00\x06": ">"}
_ENCAPSULATION_BYTES = 4


@dataclass(frozen=True)
class SerializedImage:
    """The fields of a serialized ``sensor_msgs/Image``; ``data`` is a view into the serialized bytes."""

    header: Header
    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: memoryview


class _Reader:
    def __init__(self, buffer: memoryview, byte_order: str) -> None:
        self._buffer = buffer
        self._order = byte_order
        self._offset = _ENCAPSULATION_BYTES

    def _take(self, size: int, alignment: int) -> memoryview:
        start = self._offset + (-(self._offset - _ENCAPSULATION_BYTES) % alignment)
        end = start + size
        if end > len(self._buffer):
            raise InputError(
                f"serialized sensor_msgs/Image is truncated: {end} bytes needed, {len(self._buffer)} received"
            )
        self._offset = end
        return self._buffer[start:end]

    def uint32(self) -> int:
        return struct.unpack(self._order + "I", self._take(4, 4))[0]

    def int32(self) -> int:
        return struct.unpack(self._order + "i", self._take(4, 4))[0]

    def uint8(self) -> int:
        return self._take(1, 1)[0]

    def string(self) -> str:
        raw = self._take(self.uint32(), 1)
        return bytes(raw).rstrip(b"\x00").decode("utf-8", errors="replace")

    def octets(self) -> memoryview:
        return self._take(self.uint32(), 1)


def read_image(serialized: bytes) -> SerializedImage:
    """Parse the CDR bytes of a ``sensor_msgs/Image`` as a ``raw=True`` subscription delivers them.

    Raises:
        InputError: an unknown encapsulation or a buffer that ends inside a field.
    """
    buffer = memoryview(serialized)
    byte_order = _BYTE_ORDERS.get(bytes(buffer[:2]))
    if byte_order is None or len(buffer) < _ENCAPSULATION_BYTES:
        raise InputError(
            f"not a CDR-serialized sensor_msgs/Image (header {bytes(buffer[:4]).hex() or 'empty'})"
        )
    reader = _Reader(buffer, byte_order)
    stamp = Time(sec=reader.int32(), nanosec=reader.uint32())
    header = Header(stamp=stamp, frame_id=reader.string())
    height, width = reader.uint32(), reader.uint32()
    encoding = reader.string()
    is_bigendian = reader.uint8()
    step = reader.uint32()
    return SerializedImage(header, height, width, encoding, is_bigendian, step, reader.octets())
