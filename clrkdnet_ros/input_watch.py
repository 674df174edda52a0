"""Whether a matched camera's frames flow, have stopped (idle) or never arrive (lost): never wait in silence,
never cry wolf.

Large raw frames over DDS are lost without an error on either side (socket buffers, shared-memory segments).
A matched publisher none of whose frames arrived since it matched, or DDS reporting more frames lost than
received, is that failure: the node logs a throttled warning and ``/diagnostics`` goes WARN, both with the
text of :func:`assess_input`. A publisher whose frames arrived and then stopped (the bag ended, ``ros2 bag
play`` paused, the camera stopped streaming) is idle, not broken: one INFO line and an OK diagnostic.
"""

import time
from dataclasses import dataclass
from datetime import datetime, timezone

# A matched publisher without a frame for this long is reported.
QUIET_S = 3.0

FIXES = (
    "large frames are likely lost in DDS transport. Fixes: keep the node's DDS profile on "
    "(dds_profile:=true, no FASTDDS_* override), raise net.core.rmem_max, publish reliable from the camera "
    "(image_qos auto follows it), or use compressed input (image_transport:=compressed)"
)

FLOWING, IDLE, LOST = "flowing", "idle", "lost"


@dataclass(frozen=True)
class InputState:
    """``kind``: :data:`FLOWING` (or nothing to say), :data:`IDLE` or :data:`LOST`; ``message`` says why."""

    kind: str = FLOWING
    message: str = ""


def assess_input(
    publishers: int,
    quiet_s: float,
    arrived_since_match: bool,
    received: int,
    lost: int,
    context: str = "",
) -> InputState:
    """What the subscription's input looks like now.

    Args:
        publishers: publishers matched with the image subscription.
        quiet_s: seconds since the last frame arrived, or since the publisher matched when none did.
        arrived_since_match: whether a frame arrived since the publishers matched.
        received: frames received in the recent window.
        lost: frames DDS reported lost in the same window (``message_lost`` events).
        context: appended to the lost message in parentheses, e.g. the DDS profile and the kernel's
            buffer cap.
    """
    if publishers == 0:
        return InputState()
    if quiet_s >= QUIET_S and not arrived_since_match:
        what = f"{publishers} image publisher(s) matched but no frame arrived for {quiet_s:.0f} s"
    elif lost > received:
        what = f"DDS lost {lost} of the last {lost + received} frames"
    elif quiet_s >= QUIET_S:
        return InputState(IDLE, f"no frames for {quiet_s:.0f} s")
    else:
        return InputState()
    return InputState(LOST, f"{what}: {FIXES}" + (f" ({context})" if context else ""))


def wall_time_of(monotonic_s: float) -> str:
    """A ``time.monotonic()`` instant as UTC wall-clock time, ``2026-12-07 04:51:02.123 UTC``."""
    wall = time.time() - (time.monotonic() - monotonic_s)
    return datetime.fromtimestamp(wall, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"
