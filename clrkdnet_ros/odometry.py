"""``nav_msgs/Odometry`` on ``odom`` -> the ego motion the tracker predicts lanes with.

Speed is ``twist.twist.linear.x`` and yaw rate ``twist.twist.angular.z`` (the twist is in the odometry's
``child_frame_id``, the vehicle's body frame, REP-105). Only the newest message counts, and only for an image
within :data:`MAX_AGE_S` of it: a stale or missing odometry leaves the tracker on its zero-motion model (more
process noise) rather than predicting with a speed the vehicle no longer has. Messages with NaN or infinite
values are dropped.
"""

import math
import threading
from dataclasses import dataclass

from nav_msgs.msg import Odometry

from clrkdnet_core.tracking.motion import EgoMotion

MAX_AGE_S = 0.5


@dataclass(frozen=True)
class OdometrySample:
    stamp_s: float
    motion: EgoMotion


class OdometryInput:
    """The newest valid odometry; written by the subscription callback, read by the inference thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: OdometrySample | None = None
        self.received = 0
        self.rejected = 0

    def update(self, msg: Odometry, now_s: float) -> str | None:
        """Take one message (``now_s``: the node's clock, the stamp of an unstamped message); returns why it
        was dropped, or None."""
        twist = msg.twist.twist
        motion = EgoMotion(speed=float(twist.linear.x), yaw_rate=float(twist.angular.z))
        stamp_s = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        with self._lock:
            self.received += 1
            if not motion.valid():
                self.rejected += 1
                return (
                    "ignoring odometry with a non-finite speed or yaw rate "
                    f"({motion.speed}, {motion.yaw_rate}); lanes are predicted without ego motion meanwhile"
                )
            self._latest = OdometrySample(stamp_s if stamp_s > 0.0 else now_s, motion)
        return None

    def motion_at(self, stamp_s: float) -> tuple[EgoMotion | None, str | None]:
        """(motion, None) for an image at ``stamp_s``; (None, why) when the odometry is too old or too new to
        describe it; (None, None) when no odometry came yet."""
        with self._lock:
            latest = self._latest
        if latest is None:
            return None, None
        age = stamp_s - latest.stamp_s
        if not math.isfinite(age) or abs(age) > MAX_AGE_S:
            relation = f"{age:.2f} s older" if age > 0.0 else f"{-age:.2f} s newer"
            return None, (
                f"the newest odometry is {relation} than the image (more than {MAX_AGE_S} s): not used, "
                "lanes are predicted without ego motion (do the camera and odometry stamp with one clock?)"
            )
        return latest.motion, None

    def reset(self) -> None:
        with self._lock:
            self._latest = None
