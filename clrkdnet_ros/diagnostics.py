"""Counters and timings of the lane detector, reported as ``diagnostic_msgs/DiagnosticStatus``.

``diagnostic_updater`` has no Python wheel, so this is the small part of it the node needs: thread-safe
counters updated by the subscription callback and the inference thread, summarised once per second; the camera
mounting check's status; and :class:`Condition`, the log discipline of a problem that lasts (a missing
transform, stale odometry): one warning when it starts, a reminder now and then, one line when it ends.
"""

import math
import threading
import time
from collections import deque
from collections.abc import Callable

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from clrkdnet_core.timing import percentile

# Latency percentiles and rates are computed over the most recent frames / seconds.
_LATENCY_WINDOW = 100
_RATE_WINDOW_S = 5.0
# A lasting problem is logged again after this long (once per frame would flood the log at 30 Hz).
CONDITION_REPEAT_S = 30.0


class DetectorStats:
    """Thread-safe statistics: received, processed, dropped and bad frames, inference errors, latencies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: deque[float] = deque()
        self._processed: deque[float] = deque()
        self._lost: deque[tuple[float, int]] = deque()
        self._processing_ms: deque[float] = deque(maxlen=_LATENCY_WINDOW)
        self._latency_ms: deque[float] = deque(maxlen=_LATENCY_WINDOW)
        self.received = 0
        self.processed = 0
        self.dropped = 0
        self.bad_input = 0
        self.errors = 0
        self.lost = 0
        self.last_frame: float | None = None  # time.monotonic() of the newest frame
        self._problems_reported = 0

    def frame_received(self, dropped_previous: bool) -> None:
        with self._lock:
            self.received += 1
            self.last_frame = time.monotonic()
            self._received.append(self.last_frame)
            self.dropped += int(dropped_previous)

    def frames_lost(self, count: int) -> None:
        """``count`` frames DDS reported lost before they reached the subscription."""
        with self._lock:
            self.lost += count
            self._lost.append((time.monotonic(), count))

    def recent_input(self) -> tuple[int, int]:
        """(frames received, frames lost) in the rate window."""
        now = time.monotonic()
        with self._lock:
            _rate(self._received, now)
            while self._lost and self._lost[0][0] < now - _RATE_WINDOW_S:
                self._lost.popleft()
            return len(self._received), sum(count for _, count in self._lost)

    def frame_processed(self, processing_ms: float, latency_ms: float) -> None:
        with self._lock:
            self.processed += 1
            self._processed.append(time.monotonic())
            self._processing_ms.append(processing_ms)
            self._latency_ms.append(latency_ms)

    def bad_frame(self) -> None:
        with self._lock:
            self.bad_input += 1

    def inference_error(self) -> None:
        with self._lock:
            self.errors += 1

    def status(
        self,
        name: str,
        hardware_id: str,
        state: str,
        extra: dict[str, str],
        input_problem: str | None = None,
        input_idle: str | None = None,
    ) -> DiagnosticStatus:
        """Summarise; WARN when frames failed since the previous call, with ``input_problem`` (frames of a
        matched publisher missing), or when active without input; OK with ``input_idle`` (frames arrived and
        stopped: the camera or bag is idle, nothing is broken)."""
        now = time.monotonic()
        with self._lock:
            received_hz = _rate(self._received, now)
            processed_hz = _rate(self._processed, now)
            processing = np.asarray(self._processing_ms)
            latency = np.asarray(self._latency_ms)
            problems = self.bad_input + self.errors
            new_problems = problems - self._problems_reported
            self._problems_reported = problems
            values = {
                "state": state,
                "input rate (Hz)": f"{received_hz:.2f}",
                "output rate (Hz)": f"{processed_hz:.2f}",
                "processing time p50 (ms)": _percentile(processing, 50),
                "processing time p95 (ms)": _percentile(processing, 95),
                "pipeline latency p50 (ms)": _percentile(latency, 50),
                "pipeline latency p95 (ms)": _percentile(latency, 95),
                "frames received": str(self.received),
                "frames processed": str(self.processed),
                "frames dropped": str(self.dropped),
                "frames lost in transport": str(self.lost),
                "bad input frames": str(self.bad_input),
                "inference errors": str(self.errors),
                **extra,
            }
        if new_problems:
            level, message = DiagnosticStatus.WARN, f"{new_problems} frame(s) failed since the last report"
        elif state == "active" and input_problem:
            level, message = DiagnosticStatus.WARN, input_problem
        elif state == "active" and input_idle:
            level, message = DiagnosticStatus.OK, f"idle: {input_idle}"
        elif state == "active" and received_hz == 0.0:
            level, message = DiagnosticStatus.WARN, "active but no images received"
        elif state == "active":
            level, message = DiagnosticStatus.OK, f"processing at {processed_hz:.1f} Hz"
        else:
            level, message = DiagnosticStatus.OK, state
        return DiagnosticStatus(
            level=level,
            name=name,
            message=message,
            hardware_id=hardware_id,
            values=[KeyValue(key=key, value=value) for key, value in values.items()],
        )


def _rate(stamps: deque[float], now: float) -> float:
    while stamps and stamps[0] < now - _RATE_WINDOW_S:
        stamps.popleft()
    return len(stamps) / _RATE_WINDOW_S


def _percentile(values: np.ndarray, q: float) -> str:
    return f"{percentile(values, q):.1f}" if len(values) else "n/a"


class Condition:
    """A problem that may last many frames, logged once when it starts, every ``repeat_s`` while it lasts
    (whatever its message's details), and once when it ends; :attr:`problem` is the latest message.

    ``warn`` and ``info`` are logger methods; ``ended`` is the line logged when the problem goes away (none:
    silence).
    """

    def __init__(
        self,
        warn: Callable[[str], object],
        info: Callable[[str], object],
        ended: str | None = None,
        repeat_s: float = CONDITION_REPEAT_S,
    ) -> None:
        self._warn, self._info, self._ended, self._repeat_s = warn, info, ended, repeat_s
        self._lock = threading.Lock()
        self._logged_at: float | None = None
        self.problem: str | None = None
        self.count = 0  # frames that had the problem

    def report(self, problem: str | None) -> None:
        """This frame's state: the problem's message, or None when all is well."""
        now = time.monotonic()
        with self._lock:
            ended = problem is None and self.problem is not None
            self.problem = problem
            warn = False
            if problem is None:
                self._logged_at = None
            else:
                self.count += 1
                # _logged_at is None when the problem starts: the first frame is always logged.
                warn = self._logged_at is None or now - self._logged_at >= self._repeat_s
                if warn:
                    self._logged_at = now
        if warn:
            self._warn(problem)
        elif ended and self._ended:
            self._info(self._ended)


def mounting_status(
    name: str, estimate: float | None, configured: float | None, samples: int, mismatch: bool, source: str
) -> DiagnosticStatus:
    """The camera pitch the lanes show against the configured one (radians in, degrees out)."""

    def degrees(value: float | None) -> str:
        return "n/a" if value is None else f"{math.degrees(value):.2f}"

    if estimate is None:
        level, message = DiagnosticStatus.OK, "collecting samples (straight ego boundaries)"
    elif mismatch:
        level = DiagnosticStatus.WARN
        message = (
            f"the lanes show a camera pitch of {degrees(estimate)} deg, the {source} gives "
            f"{degrees(configured)} deg"
        )
    else:
        level, message = DiagnosticStatus.OK, "the lanes agree with the configured pitch"
    values = {
        "estimated pitch (deg)": degrees(estimate),
        "configured pitch (deg)": degrees(configured),
        "samples": str(samples),
        "pose source": source,
    }
    return DiagnosticStatus(
        level=level,
        name=name,
        message=message,
        hardware_id="camera",
        values=[KeyValue(key=key, value=value) for key, value in values.items()],
    )
