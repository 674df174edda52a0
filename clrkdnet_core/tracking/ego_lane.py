"""The ego lane's state at the vehicle (msg/msg/EgoLane.msg) from the tracked EGO_LEFT/EGO_RIGHT boundaries.

The centre line is the mean of the two boundary cubics; offset, heading, curvature and its rate are read
from it at x = 0. A missing side is reconstructed from the other one and a slowly filtered lane width
(openpilot keeps such a width for the same reason). The lateral velocity comes from a constant-velocity
Kalman filter on the offset, the time to crossing from it, and a lane change is the ego crossing a boundary:
the track that was on one side is now on the other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import numpy as np

from clrkdnet_core.lane_curve import GroundCurve
from clrkdnet_core.lane_positions import EGO_LEFT, EGO_RIGHT
from clrkdnet_core.tracking.tracker import TrackedLane

# EgoLane.msg's constants.
LANE_CHANGE_NONE = 0
LANE_CHANGE_LEFT = 1
LANE_CHANGE_RIGHT = -1
SOURCE_NONE = 0
SOURCE_MEASURED = 1
SOURCE_PREDICTED = 2
SOURCE_RECONSTRUCTED = 3
NO_TRACK = 0

_NAN = float("nan")


@dataclass(frozen=True)
class EgoLaneConfig:
    """Ego lane estimation parameters.

    Attributes:
        default_width: lane width (m) assumed before both boundaries were seen together (a motorway lane).
        min_width, max_width: a measured width outside these (m) is a wrong pair of boundaries, not a lane.
        width_noise: random-walk standard deviation (m per sqrt(s)) of the filtered width: lanes widen and
            narrow slowly, so one noisy frame moves it little.
        lateral_acceleration_noise: white-noise lateral acceleration (m/s^2 per sqrt(Hz)) of the offset's
            constant-velocity filter: about a lane change's.
        offset_noise_floor: smallest standard deviation (m) of the offset fed to that filter.
        predicted_weight, reconstructed_weight: a side's share of its confidence when predicted through a
            missed frame or reconstructed from the other side (1 when measured).
    """

    default_width: float = 3.5
    min_width: float = 2.0
    max_width: float = 6.0
    width_noise: float = 0.05
    lateral_acceleration_noise: float = 1.0
    offset_noise_floor: float = 0.05
    predicted_weight: float = 0.7
    reconstructed_weight: float = 0.3


@dataclass(frozen=True, eq=False)
class EgoLaneState:
    """msg/msg/EgoLane.msg without its header (see there for each field); floats NaN when ``valid`` is False.

    ``center_line``, ``left_boundary`` and ``right_boundary`` are the curves the values were read from (a
    reconstructed boundary included), for markers and paths; None when not known.
    """

    valid: bool
    lateral_offset: float
    heading: float
    curvature: float
    curvature_rate: float
    width: float
    left_distance: float
    right_distance: float
    left_time_to_crossing: float
    right_time_to_crossing: float
    lateral_velocity: float
    left_id: int
    right_id: int
    left_source: int
    right_source: int
    lane_change: int
    confidence: float
    lateral_offset_variance: float
    heading_variance: float
    curvature_variance: float
    width_variance: float
    center_line: GroundCurve | None = None
    left_boundary: GroundCurve | None = None
    right_boundary: GroundCurve | None = None

    @classmethod
    def invalid(cls) -> EgoLaneState:
        """The state while neither ego boundary is known."""
        return cls(
            valid=False,
            **{field.name: _NAN for field in fields(cls) if field.type == "float"},
            left_id=NO_TRACK,
            right_id=NO_TRACK,
            left_source=SOURCE_NONE,
            right_source=SOURCE_NONE,
            lane_change=LANE_CHANGE_NONE,
        )


@dataclass(frozen=True)
class _Side:
    """One ego boundary as used this frame."""

    coefficients: np.ndarray
    covariance: np.ndarray
    x_min: float
    x_max: float
    track_id: int
    source: int
    existence: float


class _OffsetFilter:
    """Constant-velocity Kalman filter on the centre line's offset: its rate is the lateral velocity."""

    def __init__(self, acceleration_noise: float) -> None:
        self.acceleration_noise = acceleration_noise
        self.state: np.ndarray | None = None  # [offset, d offset / dt]
        self.covariance = np.zeros((2, 2))

    def predicted_offset(self, dt: float) -> float | None:
        return None if self.state is None else float(self.state[0] + self.state[1] * dt)

    def update(self, offset: float, variance: float, dt: float) -> None:
        if self.state is None:
            self.state = np.array([offset, 0.0])
            self.covariance = np.diag([variance, 1.0])  # 1 m/s: about a lane change's lateral speed
            return
        f = np.array([[1.0, dt], [0.0, 1.0]])
        q = self.acceleration_noise**2 * np.array([[dt**3 / 3.0, dt**2 / 2.0], [dt**2 / 2.0, dt]])
        self.state = f @ self.state
        self.covariance = f @ self.covariance @ f.T + q
        s = self.covariance[0, 0] + variance
        gain = self.covariance[:, 0] / s
        self.state = self.state + gain * (offset - self.state[0])
        self.covariance = self.covariance - np.outer(gain, self.covariance[0])

    def shift(self, offset: float) -> None:
        """The centre line jumped to the next lane's: the offset restarts there, the velocity carries on."""
        if self.state is not None:
            self.state[0] = offset


class EgoLaneEstimator:
    """Per frame, the ego lane's state from the tracked lanes; ``update`` once per frame.

    ``persistent_ids``: the lanes' ids are track ids (a lane change is a track moving to the other side).
    Without tracking they are indices within one frame: a lane change is recognised instead by the centre
    line jumping by more than half a lane width, and ``left_id``/``right_id`` stay ``NO_TRACK``.
    """

    def __init__(self, config: EgoLaneConfig | None = None, persistent_ids: bool = True) -> None:
        self.config = config or EgoLaneConfig()
        self.persistent_ids = persistent_ids
        self.reset()

    def reset(self) -> None:
        """Forget the filtered width, the lateral velocity and the previous ego boundaries."""
        self._width = self.config.default_width
        self._width_variance = 0.25  # +-0.5 m around the default until a width is measured
        self._offset_filter = _OffsetFilter(self.config.lateral_acceleration_noise)
        self._previous_ids = (NO_TRACK, NO_TRACK)
        self._last_stamp_s: float | None = None

    def update(self, tracks: Sequence[TrackedLane], stamp_s: float) -> EgoLaneState:
        """The state at ``stamp_s`` from this frame's tracks (their ``position`` says which are the ego's)."""
        if self._last_stamp_s is not None and stamp_s < self._last_stamp_s:
            self.reset()
        dt = 0.0 if self._last_stamp_s is None else stamp_s - self._last_stamp_s
        self._last_stamp_s = stamp_s
        self._width_variance += self.config.width_noise**2 * dt

        left = next((_side(t) for t in tracks if t.position == EGO_LEFT), None)
        right = next((_side(t) for t in tracks if t.position == EGO_RIGHT), None)
        if left is None and right is None:
            self._offset_filter = _OffsetFilter(self.config.lateral_acceleration_noise)
            self._previous_ids = (NO_TRACK, NO_TRACK)
            return EgoLaneState.invalid()
        if left is not None and right is not None:
            self._update_width(left, right)
        left = left or self._reconstruct(right, +1.0)
        right = right or self._reconstruct(left, -1.0)
        return self._state(left, right, dt)

    def _update_width(self, left: _Side, right: _Side) -> None:
        width = float(left.coefficients[0] - right.coefficients[0])
        if not self.config.min_width <= width <= self.config.max_width:
            return
        variance = float(left.covariance[0, 0] + right.covariance[0, 0])
        gain = self._width_variance / (self._width_variance + variance)
        self._width += gain * (width - self._width)
        self._width_variance *= 1.0 - gain

    def _reconstruct(self, other: _Side, sign: float) -> _Side:
        """The missing boundary: the other one shifted by the filtered width (left: +, right: -)."""
        coefficients = other.coefficients.copy()
        coefficients[0] += sign * self._width
        covariance = other.covariance.copy()
        covariance[0, 0] += self._width_variance
        return replace(
            other,
            coefficients=coefficients,
            covariance=covariance,
            track_id=NO_TRACK,
            source=SOURCE_RECONSTRUCTED,
        )

    def _state(self, left: _Side, right: _Side, dt: float) -> EgoLaneState:
        config = self.config
        center = (left.coefficients + right.coefficients) / 2.0
        reconstructed = SOURCE_RECONSTRUCTED in (left.source, right.source)
        if reconstructed:
            # Both sides share one track's error: the centre's covariance is that track's (+ width / 2).
            tracked = left if right.source == SOURCE_RECONSTRUCTED else right
            center_covariance = tracked.covariance.copy()
            center_covariance[0, 0] += self._width_variance / 4.0
            width, width_variance = self._width, self._width_variance
        else:
            center_covariance = (left.covariance + right.covariance) / 4.0
            width = float(left.coefficients[0] - right.coefficients[0])
            width_variance = float(left.covariance[0, 0] + right.covariance[0, 0])
        offset = float(center[0])
        offset_variance = float(center_covariance[0, 0])

        lane_change = self._lane_change(left, right, offset, dt)
        if lane_change != LANE_CHANGE_NONE:
            self._offset_filter.shift(offset)
        self._offset_filter.update(offset, max(offset_variance, config.offset_noise_floor**2), dt)
        # The centre moving right (offset falling) is the vehicle moving left.
        lateral_velocity = -float(self._offset_filter.state[1])
        left_distance = float(left.coefficients[0])
        right_distance = -float(right.coefficients[0])

        c1, c2 = center[1], center[2]
        q = 1.0 + c1**2
        # First-order propagation of the coefficients' covariance through atan(c1) and 2 c2 / q^1.5.
        heading_gradient = np.array([0.0, 1.0 / q, 0.0, 0.0])
        curvature_gradient = np.array([0.0, -6.0 * c1 * c2 / q**2.5, 2.0 / q**1.5, 0.0])
        x_min = max(left.x_min, right.x_min)
        x_max = min(left.x_max, right.x_max)
        if x_max <= x_min:
            x_min, x_max = min(left.x_min, right.x_min), max(left.x_max, right.x_max)
        center_line = GroundCurve(center, x_min, x_max)
        return EgoLaneState(
            valid=True,
            lateral_offset=offset,
            heading=float(center_line.heading_at(0.0)),
            curvature=float(center_line.curvature_at(0.0)),
            curvature_rate=float(center_line.curvature_rate_at(0.0)),
            width=width,
            left_distance=left_distance,
            right_distance=right_distance,
            left_time_to_crossing=_time_to_crossing(left_distance, lateral_velocity),
            right_time_to_crossing=_time_to_crossing(right_distance, -lateral_velocity),
            lateral_velocity=lateral_velocity,
            left_id=left.track_id if self.persistent_ids else NO_TRACK,
            right_id=right.track_id if self.persistent_ids else NO_TRACK,
            left_source=left.source,
            right_source=right.source,
            lane_change=lane_change,
            confidence=(self._side_confidence(left) + self._side_confidence(right)) / 2.0,
            lateral_offset_variance=offset_variance,
            heading_variance=float(heading_gradient @ center_covariance @ heading_gradient),
            curvature_variance=float(curvature_gradient @ center_covariance @ curvature_gradient),
            width_variance=width_variance,
            center_line=center_line,
            left_boundary=GroundCurve(left.coefficients, left.x_min, left.x_max),
            right_boundary=GroundCurve(right.coefficients, right.x_min, right.x_max),
        )

    def _lane_change(self, left: _Side, right: _Side, offset: float, dt: float) -> int:
        previous_left, previous_right = self._previous_ids
        self._previous_ids = (left.track_id, right.track_id)
        if self.persistent_ids:
            # Only a boundary measured on its new side is a crossing (a track predicted through a gap is no
            # evidence of where the vehicle went).
            measured = (left.source == SOURCE_MEASURED, right.source == SOURCE_MEASURED)
            if right.track_id != NO_TRACK and right.track_id == previous_left and measured[1]:
                return LANE_CHANGE_LEFT
            if left.track_id != NO_TRACK and left.track_id == previous_right and measured[0]:
                return LANE_CHANGE_RIGHT
            carried = {left.track_id, right.track_id} & {previous_left, previous_right}
            if carried - {NO_TRACK} or (previous_left, previous_right) == (NO_TRACK, NO_TRACK):
                return LANE_CHANGE_NONE
            # Neither boundary carried over (the tracker could not tell the lanes apart after a gap and
            # started afresh): judged by the jump of the offset, as without tracking.
        predicted = self._offset_filter.predicted_offset(dt)
        if predicted is None:
            return LANE_CHANGE_NONE
        # Moving into the left lane puts its centre, half a width left of the vehicle, in place of the old
        # centre half a width right of it: the offset jumps up by a lane width.
        jump = offset - predicted
        if jump > self._width / 2.0:
            return LANE_CHANGE_LEFT
        if jump < -self._width / 2.0:
            return LANE_CHANGE_RIGHT
        return LANE_CHANGE_NONE

    def _side_confidence(self, side: _Side) -> float:
        weight = {
            SOURCE_MEASURED: 1.0,
            SOURCE_PREDICTED: self.config.predicted_weight,
            SOURCE_RECONSTRUCTED: self.config.reconstructed_weight,
        }[side.source]
        return weight * side.existence


def _side(track: TrackedLane) -> _Side:
    return _Side(
        coefficients=np.asarray(track.curve.coefficients, dtype=np.float64),
        covariance=np.asarray(track.covariance, dtype=np.float64),
        x_min=track.curve.x_min,
        x_max=track.curve.x_max,
        track_id=track.track_id,
        source=SOURCE_MEASURED if track.measured else SOURCE_PREDICTED,
        existence=track.existence,
    )


def _time_to_crossing(distance: float, approach_speed: float) -> float:
    """Seconds until a boundary ``distance`` m away is reached at ``approach_speed`` m/s (inf: not
    approaching)."""
    if not approach_speed > 0.0:
        return math.inf
    return max(distance, 0.0) / approach_speed
