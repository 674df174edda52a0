"""``nav_msgs/Odometry`` on ``odom`` -> the ego motion the tracker predicts lanes with.

Speed is ``twist.twist.linear.x`` and yaw rate ``twist.twist.angular.z`` (the twist is in the odometry's
``child_frame_id``, the vehicle's body frame, REP-105). The node processes only the newest frame, so the
tracker predicts across the whole interval since the previous processed image (up to 0.8 s under load): it
gets the mean motion of the samples of that interval (:func:`~clrkdnet_core.tracking.motion.mean_motion`),
not the newest sample held over it (at a curve's entry that turns the lanes by the yaw rate at the interval's
end for the whole interval). The last :data:`HISTORY_S` of valid samples are kept for that.

When the interval holds no sample (the first image, odometry slower than the camera), the sample nearest to
the image counts, and only within :data:`MAX_AGE_S` of it; the interval's mean counts only when its newest
sample is that close. A stale or missing odometry leaves the tracker on its zero-motion model (more process
noise) rather than predicting with a speed the vehicle no longer has. Messages with NaN or infinite values
are dropped. A stamp more than :data:`MAX_AGE_S` older than the newest sample (a bag played in a loop)
starts the history afresh; a slightly older one (messages out of order) is put in its place.
"""

import bisect
import math
import threading
from collections import deque
from dataclasses import dataclass

from nav_msgs.msg import Odometry

from clrkdnet_core.tracking.motion import EgoMotion, mean_motion

MAX_AGE_S = 0.5
# Samples kept, in seconds before the newest one: more than the longest interval a busy node processes.
HISTORY_S = 2.0
# And in number (an odometry at 1 kHz for HISTORY_S), whatever the stamps say.
_MAX_SAMPLES = 2000


@dataclass(frozen=True)
class OdometrySample:
    stamp_s: float
    motion: EgoMotion


class OdometryInput:
    """The recent valid odometry; written by the subscription callback, read by the inference thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._samples: deque[OdometrySample] = deque(maxlen=_MAX_SAMPLES)  # by stamp, oldest first
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
            self._add(OdometrySample(stamp_s if stamp_s > 0.0 else now_s, motion))
        return None

    def _add(self, sample: OdometrySample) -> None:
        samples = self._samples
        if samples and sample.stamp_s < samples[-1].stamp_s - MAX_AGE_S:
            samples.clear()  # time went back (a bag loop): the old samples describe another drive
        if not samples or sample.stamp_s >= samples[-1].stamp_s:
            samples.append(sample)
        else:  # a little out of order: keep the history sorted
            if len(samples) == samples.maxlen:
                samples.popleft()
            samples.insert(bisect.bisect_right([s.stamp_s for s in samples], sample.stamp_s), sample)
        while samples[0].stamp_s < samples[-1].stamp_s - HISTORY_S:
            samples.popleft()

    def motion_at(self, stamp_s: float, since_s: float | None = None) -> tuple[EgoMotion | None, str | None]:
        """The ego motion to predict an image at ``stamp_s`` with, from the previous processed image at
        ``since_s`` (None: none): (motion, None); (None, why) when the odometry is too old or too new to
        describe it; (None, None) when no odometry came yet.

        The mean of the samples stamped in (since_s, stamp_s] when there are any and the newest of them is
        within :data:`MAX_AGE_S` of the image; otherwise the sample nearest to the image, within that age.
        """
        with self._lock:
            samples = list(self._samples)
        if not samples:
            return None, None
        if since_s is not None and since_s < stamp_s:
            interval = [s for s in samples if since_s < s.stamp_s <= stamp_s]
            if interval and stamp_s - interval[-1].stamp_s <= MAX_AGE_S:
                return mean_motion([s.motion for s in interval]), None
        nearest = min(samples, key=lambda s: abs(stamp_s - s.stamp_s))
        age = stamp_s - nearest.stamp_s
        if not math.isfinite(age) or abs(age) > MAX_AGE_S:
            relation = f"{age:.2f} s older" if age > 0.0 else f"{-age:.2f} s newer"
            return None, (
                f"the nearest odometry is {relation} than the image (more than {MAX_AGE_S} s): not used, "
                "lanes are predicted without ego motion (do the camera and odometry stamp with one clock?)"
            )
        return nearest.motion, None

    def reset(self) -> None:
        with self._lock:
            self._samples.clear()
