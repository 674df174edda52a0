"""Multi-lane tracker: one Kalman-filtered cubic per lane boundary, with stable ids across frames.

Per frame: tracks are predicted to the new stamp (moved with the ego motion when odometry is given,
otherwise a zero-motion model with more process noise), matched to the detections by their lateral gap at a
reference distance, updated, and managed: a track is confirmed after ``confirm_hits`` hits within its first
``confirm_window`` frames and deleted after ``max_misses`` consecutive misses or ``timeout_s`` without a
hit. Confirmed tracks survive frames the detector misses (predicted, ``measured=False``). Ids start at 1 and
are never reused by one tracker, not even after a reset.

Long gaps (a node under load processes only the newest frame: up to 0.8 s between updates): the prediction's
covariance grows with the ego motion's error over the gap (an unknown yaw acceleration turns and shifts every
lane alike), and once that common error is large the association first lays the predicted lane pattern onto
the detections as a whole (:func:`~clrkdnet_core.tracking.association.common_shift`) and corrects every
track by it: lanes are matched by their spacing, not each within ``max_gap`` of a prediction that is a metre
off. When two shifts a lane apart fit alike (a lane change hidden in the gap with an odometry that does not
tell it), no identity is claimed: the tracks end and the lanes start afresh, confirmed at once. A lane
changes side only when measured there, never by its prediction alone.

Modes: ``"ground"`` tracks cubics in the ground frame (metres, REP-103 x forward, y left); ``"image"``
tracks the image-row cubics :class:`clrkdnet_core.perception.ImageFrame` defines (no motion model: the
image moves with the vehicle in ways odometry alone does not describe).
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from clrkdnet_core.lane_curve import GroundCurve
from clrkdnet_core.lane_positions import assign_positions
from clrkdnet_core.tracking.association import associate, common_shift
from clrkdnet_core.tracking.kalman import CurveKalmanFilter, measurement_points
from clrkdnet_core.tracking.motion import EgoMotion, move_curve

MODES = ("ground", "image")
# Existence probabilities stay inside this band so that a long-lived lane still drops within a few misses
# and a long-missed one can come back.
_EXISTENCE_BOUNDS = (1e-3, 1.0 - 1e-3)


@dataclass(frozen=True)
class TrackerConfig:
    """Tracking parameters; metres in ground mode (image mode: the ImageFrame's units, alike in size).

    Attributes:
        confirm_hits, confirm_window: a track is confirmed (published) after ``confirm_hits`` hits within its
            first ``confirm_window`` frames (M of N); a tentative track that can no longer make it is dropped.
        max_misses: a confirmed track is deleted after this many consecutive frames without a detection.
        timeout_s: ... or after this many seconds without one (a slow or stalled camera).
        max_gap: largest lateral gap (m) at ``reference_x`` between a track and a detection it may take (lanes
            are 3-4 m apart: below half of that a neighbour is never taken).
        reference_x: distance ahead (m) where lateral gaps are compared: near enough to be seen in most
            frames, far enough to be in front of the hood.
        min_separation: two confirmed tracks closer than this at ``reference_x`` are one lane seen twice; the
            younger is dropped.
        measurement_samples: lateral positions taken from each detection's curve for the update.
        measurement_noise: standard deviation (m) of a detection's lateral position near the vehicle ...
        measurement_noise_growth: ... growing by this much per metre ahead (ground mode only: in the image a
            pixel's error does not grow with the row).
        process_noise: standard deviations per sqrt(second) of c0, c1, c2, c3 random walks with odometry (the
            road's own bending, odometry errors).
        unknown_motion_noise_scale: the process noise's factor without odometry (zero-motion model).
        initial_std: standard deviations of c0..c3 before a track's first detection.
        detection_probability, false_alarm_probability: the detector's hit rate on an existing lane and on a
            lane that is not there, for the existence probability's Bayesian update.
        side_hold_s, side_margin: a lane's side (left or right of the vehicle, the sign of y at x = 0) changes
            at once when it crosses, but not back within ``side_hold_s`` unless beyond ``side_margin`` (m):
            a lane change is reported once, not three times while the vehicle is on the line. Only a measured
            lane changes side: a prediction alone (through a long gap) never makes a lane change.
        gap_yaw_acceleration_std: the yaw acceleration (rad/s^2) the prediction does not know: it holds one
            yaw rate over ``dt`` (a node that processes only the newest frame predicts over up to 0.8 s with
            the newest odometry, at a curve's entry or in a lane change), off the interval's mean by about
            ``std * dt / 2``. That error turns and shifts every lane alike: c1's by ``std * dt^2 / 2`` and
            c0's by ``speed * std * dt^3 / 4``: nothing at 10-30 Hz, a metre at 8 m after 0.8 s.
        gap_yaw_rate_std, gap_lateral_speed_std: without odometry, the yaw rate (rad/s) and the lateral speed
            relative to the lanes (m/s, a lane change's peak: 2-3 m/s) the zero-motion model does not know:
            c1's error grows as ``gap_yaw_rate_std * dt`` and c0's as ``gap_lateral_speed_std * dt``. Broad
            enough that a lane change hidden in a 0.8 s gap leaves which lane is which open (re-acquired,
            the change judged by the offset's jump) rather than confidently one lane off.
        shift_search_std: from this predicted standard deviation (m) of that common error at ``reference_x``
            on, the association first finds the shift of the whole lane pattern that lays the tracks onto
            the detections (:func:`~clrkdnet_core.tracking.association.common_shift`): after a long gap the
            lanes are matched by their spacing, not each within ``max_gap`` of where it was predicted.
    """

    confirm_hits: int = 3
    confirm_window: int = 5
    max_misses: int = 10
    timeout_s: float = 1.0
    max_gap: float = 1.0
    reference_x: float = 8.0
    min_separation: float = 1.0
    measurement_samples: int = 8
    measurement_noise: float = 0.1
    measurement_noise_growth: float = 0.005
    process_noise: tuple[float, float, float, float] = (0.1, 0.02, 1e-3, 2e-5)
    unknown_motion_noise_scale: float = 6.0
    initial_std: tuple[float, float, float, float] = (1.0, 0.1, 2e-3, 5e-5)
    detection_probability: float = 0.9
    false_alarm_probability: float = 0.1
    side_hold_s: float = 0.5
    side_margin: float = 0.2
    gap_yaw_acceleration_std: float = 0.3
    gap_yaw_rate_std: float = 0.1
    gap_lateral_speed_std: float = 2.0
    shift_search_std: float = 0.25


@dataclass(frozen=True)
class LaneObservation:
    """One detection of this frame as a curve (ground: metres; image mode: ImageFrame units).

    ``index`` is its position in the detector's list; ``residual_rms`` the fit's residual, added to the
    measurement noise (a detection that is no clean cubic is trusted less).
    """

    curve: GroundCurve
    score: float
    index: int
    residual_rms: float = 0.0


@dataclass(frozen=True, eq=False)
class TrackedLane:
    """A confirmed track in this frame.

    Attributes:
        track_id: >= 1, never reused by one tracker.
        age: frames since the track started (0 in its first frame).
        measured: True when a detection was matched this frame; False when only predicted.
        existence: probability in [0, 1] that the lane exists, from its hits and misses.
        curve: the filtered cubic with its valid range.
        covariance: (4, 4) covariance of the curve's coefficients.
        index: the matched detection's index this frame, None when predicted.
        score: the latest matched detection's score.
        position: signed position class (-1 EGO_LEFT, +1 EGO_RIGHT, -2/+2, -3/+3, 0 unknown) from the sign of
            y at x = 0 (a side held for ``side_hold_s`` after the lane crossed, see :class:`TrackerConfig`).
    """

    track_id: int
    age: int
    measured: bool
    existence: float
    curve: GroundCurve
    covariance: np.ndarray
    index: int | None
    score: float
    position: int


class _Track:
    """A track's mutable state between frames."""

    def __init__(
        self, track_id: int, observation: LaneObservation, stamp_s: float, config: TrackerConfig
    ) -> None:
        self.track_id = track_id
        self.filter = _prior(observation, config)
        self.x_min, self.x_max = observation.curve.x_min, observation.curve.x_max
        self.age = 0
        self.hits: deque[bool] = deque(maxlen=config.confirm_window)
        self.confirmed = False
        self.misses = 0
        self.last_hit_s = stamp_s
        self.existence = 0.5
        self.score = observation.score
        self.index: int | None = None
        self.left: bool | None = None  # its side of the vehicle, held (see TrackerConfig.side_hold_s)
        self.side_changed_s = -math.inf  # when it last crossed

    def offset(self, x: float) -> float:
        c0, c1, c2, c3 = self.filter.coefficients
        return float(c0 + x * (c1 + x * (c2 + x * c3)))


class LaneTracker:
    """Tracks lane boundaries over frames; see the module docstring. ``update`` once per frame."""

    def __init__(self, config: TrackerConfig | None = None, mode: str = "ground") -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.config = config or TrackerConfig()
        self.mode = mode
        self.next_id = 1
        self._tracks: list[_Track] = []
        self._last_stamp_s: float | None = None

    def reset(self) -> None:
        """Forget every track (ids keep increasing: a new lane never gets an old lane's id)."""
        self._tracks = []
        self._last_stamp_s = None

    def update(
        self, observations: Sequence[LaneObservation], stamp_s: float, motion: EgoMotion | None = None
    ) -> list[TrackedLane]:
        """Advance to ``stamp_s`` and fuse this frame's detections; the confirmed tracks, left to right.

        A stamp earlier than the previous one (a bag played in a loop) resets the tracker first. ``motion`` is
        ignored when NaN or infinite, and in image mode.
        """
        if not math.isfinite(stamp_s):
            raise ValueError(f"stamp_s must be finite, got {stamp_s}")
        if self._last_stamp_s is not None and stamp_s < self._last_stamp_s:
            self.reset()
        common = np.zeros((4, 4))
        if self._last_stamp_s is not None:
            common = self._predict(stamp_s - self._last_stamp_s, motion)
        self._last_stamp_s = stamp_s
        self._tracks = [t for t in self._tracks if stamp_s - t.last_hit_s <= self.config.timeout_s]

        reference = self.config.reference_x
        reacquired = False
        track_offsets = np.array([track.offset(reference) for track in self._tracks])
        detection_offsets = [float(o.curve.y_at(reference)) for o in observations]
        at_reference = np.array([1.0, reference, reference**2, reference**3])
        common_at_reference = common @ at_reference
        shift_std = math.sqrt(max(float(at_reference @ common_at_reference), 0.0))
        if shift_std >= self.config.shift_search_std and len(self._tracks) > 0:
            # The ego motion's error moved all lanes alike: take it out first (all tracks, matched or not),
            # as the mean of that error given its value at reference_x (a yaw error turns the lanes and
            # shifts them: the correction does both, so the lanes are right at the vehicle too).
            shift = common_shift(track_offsets, detection_offsets, shift_std, self.config.max_gap / 3.0)
            if shift is None:
                # Which lane is which cannot be told after this gap (two shifts a lane apart fit alike): the
                # old identities end here, and the lanes, seen as a consistent pattern, start afresh at once.
                self._tracks, track_offsets, reacquired = [], np.zeros(0), True
            else:
                correction = common_at_reference * (shift / shift_std**2)
                for track in self._tracks:
                    track.filter.coefficients = track.filter.coefficients + correction
                track_offsets = track_offsets + shift
        pairs = associate(track_offsets, detection_offsets, self.config.max_gap)
        matched = dict(pairs)
        for i, track in enumerate(self._tracks):
            if i in matched:
                self._hit(track, observations[matched[i]], stamp_s)
            else:
                self._miss(track)
        taken = set(matched.values())
        for j, observation in enumerate(observations):
            if j not in taken:
                track = _Track(self.next_id, observation, stamp_s, self.config)
                self.next_id += 1
                track.confirmed = reacquired
                self._hit(track, observation, stamp_s)
                self._tracks.append(track)
        self._tracks = [t for t in self._tracks if self._alive(t)]
        self._drop_duplicates()
        return self._confirmed_lanes(stamp_s)

    def _predict(self, dt: float, motion: EgoMotion | None) -> np.ndarray:
        """Move the tracks ``dt`` s on; the covariance (4, 4) of the coefficients' error that the ego
        motion's uncertainty adds to every lane alike."""
        if not self._tracks:
            return np.zeros((4, 4))
        config = self.config
        moving = self.mode == "ground" and motion is not None and motion.valid()
        noise_scale = 1.0 if moving else config.unknown_motion_noise_scale
        process = np.diag(np.square(np.asarray(config.process_noise) * noise_scale)) * dt
        # The ego motion's error over dt, shared by all lanes: a yaw error turns them (c1) and, driven on at
        # the speed, shifts them (c0); fully correlated, so it enters as one rank-one term.
        if moving:
            # One yaw rate held over dt misses the interval's mean by about the acceleration * dt / 2.
            yaw_rate_error = config.gap_yaw_acceleration_std * dt / 2.0
            direction = yaw_rate_error * np.array([abs(motion.speed) * dt**2 / 2.0, dt, 0.0, 0.0])
            common = np.outer(direction, direction)
        else:
            common = np.diag(
                [(config.gap_lateral_speed_std * dt) ** 2, (config.gap_yaw_rate_std * dt) ** 2, 0.0, 0.0]
            )
        process = process + common
        for track in self._tracks:
            track.age += 1
        if not moving:
            for track in self._tracks:
                track.filter.predict(track.filter.coefficients, None, process)
            return common
        dx, dy, dyaw = motion.displacement(dt)
        # All lanes in one vectorised refit: the per-call overhead, not the arithmetic, is the cost here.
        moved, jacobians = move_curve(
            np.array([t.filter.coefficients for t in self._tracks]),
            dx,
            dy,
            dyaw,
            (np.array([t.x_min for t in self._tracks]), np.array([t.x_max for t in self._tracks])),
        )
        for track, coefficients, jacobian in zip(self._tracks, moved, jacobians, strict=True):
            track.filter.predict(coefficients, jacobian, process)
            # The range travels with the road: what was 20 m ahead is 20 - dx m ahead now.
            track.x_min -= dx
            track.x_max -= dx
        return common

    def _hit(self, track: _Track, observation: LaneObservation, stamp_s: float) -> None:
        config = self.config
        track.filter.update(*_measurement(observation, config, self.mode))
        track.x_min, track.x_max = observation.curve.x_min, observation.curve.x_max
        track.hits.append(True)
        track.confirmed = track.confirmed or sum(track.hits) >= config.confirm_hits
        track.misses = 0
        track.last_hit_s = stamp_s
        track.score = observation.score
        track.index = observation.index
        track.existence = self._existence(track.existence, hit=True)

    def _miss(self, track: _Track) -> None:
        track.hits.append(False)
        track.misses += 1
        track.index = None
        track.existence = self._existence(track.existence, hit=False)

    def _existence(self, prior: float, hit: bool) -> float:
        """Bayes' rule on "the lane exists" given a hit or a miss of the detector."""
        pd, pf = self.config.detection_probability, self.config.false_alarm_probability
        if hit:
            posterior = pd * prior / (pd * prior + pf * (1.0 - prior))
        else:
            posterior = (1.0 - pd) * prior / ((1.0 - pd) * prior + (1.0 - pf) * (1.0 - prior))
        return min(max(posterior, _EXISTENCE_BOUNDS[0]), _EXISTENCE_BOUNDS[1])

    def _alive(self, track: _Track) -> bool:
        config = self.config
        if track.confirmed:
            return track.misses < config.max_misses
        # Tentative: alive while the window can still hold confirm_hits hits.
        remaining = config.confirm_window - len(track.hits)
        return sum(track.hits) + remaining >= config.confirm_hits

    def _drop_duplicates(self) -> None:
        """One lane seen as two confirmed tracks (e.g. after a wrong spawn) keeps the older track."""
        reference = self.config.reference_x
        confirmed = sorted((t for t in self._tracks if t.confirmed), key=lambda t: t.offset(reference))
        dropped = set()
        for a, b in itertools.pairwise(confirmed):
            if abs(a.offset(reference) - b.offset(reference)) < self.config.min_separation:
                dropped.add(max(a.track_id, b.track_id))
        if dropped:
            self._tracks = [t for t in self._tracks if t.track_id not in dropped]

    def _update_side(self, track: _Track, stamp_s: float) -> None:
        if track.left is not None and track.index is None:
            return  # predicted only: where a lane went during a gap is no crossing until it is seen there
        offset = track.offset(0.0)
        left = offset > 0.0  # y = 0 counts as right, as a column at the centre does in the image
        if track.left is None:
            track.left = left
        elif left != track.left and (
            abs(offset) > self.config.side_margin or stamp_s - track.side_changed_s >= self.config.side_hold_s
        ):
            track.left, track.side_changed_s = left, stamp_s

    def _confirmed_lanes(self, stamp_s: float) -> list[TrackedLane]:
        confirmed = [t for t in self._tracks if t.confirmed]
        for track in confirmed:
            self._update_side(track, stamp_s)
        # Left to right: y is positive to the left, so descending y at x = 0.
        confirmed.sort(key=lambda t: -t.offset(0.0))
        positions = assign_positions([-t.offset(0.0) for t in confirmed], 0.0, [t.left for t in confirmed])
        return [
            TrackedLane(
                track_id=t.track_id,
                age=t.age,
                measured=t.index is not None,
                existence=t.existence,
                curve=GroundCurve(t.filter.coefficients, t.x_min, t.x_max),
                covariance=t.filter.covariance.copy(),
                index=t.index,
                score=t.score,
                position=position,
            )
            for t, position in zip(confirmed, positions, strict=True)
        ]


def detection_covariance(
    observation: LaneObservation, config: TrackerConfig | None = None, mode: str = "ground"
) -> np.ndarray:
    """Covariance (4, 4) of a lane's coefficients from this one detection: a fresh track's after its first
    update (what tracking off reports)."""
    config = config or TrackerConfig()
    kalman = _prior(observation, config)
    kalman.update(*_measurement(observation, config, mode))
    return kalman.covariance


def _prior(observation: LaneObservation, config: TrackerConfig) -> CurveKalmanFilter:
    """A track's filter before its first detection: centred on it, with the broad ``initial_std``."""
    return CurveKalmanFilter(observation.curve.coefficients, np.diag(np.square(config.initial_std)))


def _measurement(
    observation: LaneObservation, config: TrackerConfig, mode: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    growth = config.measurement_noise_growth if mode == "ground" else 0.0
    return measurement_points(
        observation.curve,
        config.measurement_samples,
        config.measurement_noise,
        growth,
        observation.residual_rms,
    )
