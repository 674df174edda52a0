"""Why a matched camera's frames do not arrive: the node must never wait in silence.

Large raw frames over DDS are lost without an error on either side (socket buffers, shared-memory segments).
When a publisher is matched but frames stay away, or DDS reports more frames lost than received, the node
logs a throttled warning and ``/diagnostics`` goes WARN, both with the text of :func:`starvation_reason`.
"""

# A matched publisher without a frame for this long is reported.
QUIET_S = 3.0

FIXES = (
    "large frames are likely lost in DDS transport. Fixes: keep the node's DDS profile on "
    "(dds_profile:=true, no FASTDDS_* override), raise net.core.rmem_max, publish reliable from the camera "
    "(image_qos auto follows it), or use compressed input (image_transport:=compressed)"
)


def starvation_reason(
    publishers: int, quiet_s: float, received: int, lost: int, context: str = ""
) -> str | None:
    """The warning text, or None while frames flow.

    Args:
        publishers: publishers matched with the image subscription.
        quiet_s: seconds since the last frame arrived, or since the publisher matched when none did.
        received: frames received in the recent window.
        lost: frames DDS reported lost in the same window (``message_lost`` events).
        context: appended in parentheses, e.g. the DDS profile and the kernel's buffer cap.
    """
    if publishers == 0:
        return None
    if quiet_s >= QUIET_S:
        what = f"{publishers} image publisher(s) matched but no frame arrived for {quiet_s:.0f} s"
    elif lost > received:
        what = f"DDS lost {lost} of the last {lost + received} frames"
    else:
        return None
    return f"{what}: {FIXES}" + (f" ({context})" if context else "")
