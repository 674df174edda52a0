"""Counters and timings of the lane detector, reported as ``diagnostic_msgs/DiagnosticStatus``.

``diagnostic_updater`` has no Python wheel, so this is the small part of it the node needs: thread-safe
counters updated by the subscription callback and the inference thread, summarised once per second.
"""

import threading
import time
from collections import deque

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from clrkdnet_core.timing import percentile

# Latency percentiles and rates are computed over the most recent frames / seconds.
_LATENCY_WINDOW = 100
_RATE_WINDOW_S = 5.0


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
