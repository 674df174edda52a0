"""The per-frame lane perception pipeline the node, ``predict --track`` and the bag evaluation share.

Detector lanes (image pixels) -> lanes on the ground (with a :class:`GroundProjector`) -> tracks with stable
ids -> the ego lane's state. Each lane is seen in both frames at once, with its track id and position class
(Apollo's lane object does the same).

With tracking off the output is the node's historical one: lanes sorted left to right where they meet the
bottom image row, ids = that index, positions against the principal point's column (or the image centre),
every lane measured, age 0, existence = score. With tracking on every published lane is a confirmed track;
one the detector missed this frame is predicted, and its image points are its tracked curve reprojected. A
detection that gives no curve (fewer than two points on the road, or no extent) cannot be tracked and is
not published with tracking on.

Without a ground projection the tracker works in image coordinates (:class:`ImageFrame`) and there is no
ego lane state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from clrkdnet_core.camera_model import GroundProjector
from clrkdnet_core.lane import Lane
from clrkdnet_core.lane_curve import GroundCurve
from clrkdnet_core.lane_positions import assign_positions, bottom_x
from clrkdnet_core.tracking.ego_lane import EgoLaneConfig, EgoLaneEstimator, EgoLaneState
from clrkdnet_core.tracking.motion import EgoMotion
from clrkdnet_core.tracking.tracker import (
    LaneObservation,
    LaneTracker,
    TrackedLane,
    TrackerConfig,
    detection_covariance,
)

# Points along a predicted lane's curve when it is drawn back into the image.
_REPROJECTED_POINTS = 36


@dataclass(frozen=True)
class ImageFrame:
    """Image-mode tracking coordinates: a lane's column as a cubic of its row, in a left-positive form.

    x = (height - 1 - v) / height * 100: percent of the image height above the bottom row (0 at the bottom);
    y = -(u - width / 2) / width * 10: tenths of the image width left of the centre column. Both have the
    size of metres for a typical forward camera, so :class:`TrackerConfig`'s defaults fit this mode too, and
    y at x = 0 is where the lane meets the bottom row, relative to the centre: its position class's sign.
    """

    width: int
    height: int

    def to_curve_xy(self, points: np.ndarray) -> np.ndarray:
        """Pixels (N, 2) u, v -> (N, 2) x, y."""
        points = np.asarray(points, dtype=np.float64)
        x = (self.height - 1 - points[:, 1]) / self.height * 100.0
        y = -(points[:, 0] - self.width / 2.0) / self.width * 10.0
        return np.stack([x, y], axis=-1)

    def to_pixels(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) x, y -> pixels (N, 2) u, v."""
        xy = np.asarray(xy, dtype=np.float64)
        u = self.width / 2.0 - xy[:, 1] / 10.0 * self.width
        v = self.height - 1 - xy[:, 0] / 100.0 * self.height
        return np.stack([u, v], axis=-1)


@dataclass(frozen=True, eq=False)
class PerceivedLane:
    """One lane boundary in this frame, in the image and (with a projection) on the ground.

    Attributes:
        lane: image points (original pixels, top to bottom) and the latest detection score; a predicted lane's
            points are its tracked curve reprojected.
        track_id: the track's id (>= 1, stable), or with tracking off the index left to right from 0.
        age: frames since the track started (0 with tracking off).
        measured: False when predicted through a frame the detector missed (always True with tracking off).
        existence: the track's existence probability (the detection score with tracking off).
        position: signed position class (Lane.msg's POSITION_*).
        ground_points: (N, 3) points on the road (near to far), None without a projection.
        curve: the lane's ground cubic (tracked, or fitted with tracking off), None without a projection.
    """

    lane: Lane
    track_id: int
    age: int
    measured: bool
    existence: float
    position: int
    ground_points: np.ndarray | None
    curve: GroundCurve | None


@dataclass(frozen=True)
class FramePerception:
    """One frame's lanes, left to right, and the ego lane's state (None without a ground projection)."""

    lanes: list[PerceivedLane]
    ego: EgoLaneState | None


@dataclass(frozen=True)
class _Detection:
    """A detector lane with what this frame derived from it."""

    index: int
    lane: Lane
    ground_points: np.ndarray | None
    observation: LaneObservation | None


class LanePerception:
    """Per-frame lane perception with or without tracking; ``update`` once per frame, in stamp order."""

    def __init__(
        self,
        tracking: bool = True,
        config: TrackerConfig | None = None,
        ego_config: EgoLaneConfig | None = None,
    ) -> None:
        self.tracking = tracking
        self.config = config or TrackerConfig()
        self._tracker = LaneTracker(self.config, mode="ground")
        self._ego = EgoLaneEstimator(ego_config, persistent_ids=tracking)

    def reset(self) -> None:
        """Forget the tracks and the ego lane's filters (track ids keep increasing)."""
        self._tracker.reset()
        self._ego.reset()

    def update(
        self,
        lanes: Sequence[Lane],
        image_size: tuple[int, int],
        stamp_s: float,
        projector: GroundProjector | None = None,
        motion: EgoMotion | None = None,
    ) -> FramePerception:
        """This frame's perceived lanes from the detector's ``lanes`` of an image of ``image_size`` (w, h)."""
        width, height = image_size
        frame = ImageFrame(width, height)
        # Tracking off without a projection needs no curves: the lanes are passed on as detected.
        fit = self.tracking or projector is not None
        detections = [
            _detect(i, lane, frame, projector, fit) for i, lane in enumerate(lanes) if len(lane.points) > 0
        ]
        if not self.tracking:
            perceived = _untracked(detections, frame, projector, self.config)
        else:
            perceived = self._tracked(detections, frame, stamp_s, projector, motion)
        ego = None
        if projector is not None:
            ego = self._ego.update([tracked for tracked, _ in perceived if tracked is not None], stamp_s)
        return FramePerception(lanes=[lane for _, lane in perceived], ego=ego)

    def _tracked(
        self,
        detections: list[_Detection],
        frame: ImageFrame,
        stamp_s: float,
        projector: GroundProjector | None,
        motion: EgoMotion | None,
    ) -> list[tuple[TrackedLane, PerceivedLane]]:
        mode = "ground" if projector is not None else "image"
        if mode != self._tracker.mode:
            # Curves of one mode mean nothing in the other: start over, ids still never reused.
            next_id = self._tracker.next_id
            self._tracker = LaneTracker(self.config, mode=mode)
            self._tracker.next_id = next_id
            self._ego.reset()
        by_index = {d.index: d for d in detections}
        tracks = self._tracker.update(
            [d.observation for d in detections if d.observation is not None], stamp_s, motion
        )
        perceived = []
        for track in tracks:
            if track.index is not None:
                detection = by_index[track.index]
                lane, ground_points = detection.lane, detection.ground_points
            else:
                lane, ground_points = _reproject(track, frame, projector)
            perceived.append(
                (
                    track,
                    PerceivedLane(
                        lane=lane,
                        track_id=track.track_id,
                        age=track.age,
                        measured=track.measured,
                        existence=track.existence,
                        position=track.position,
                        ground_points=ground_points,
                        curve=track.curve if projector is not None else None,
                    ),
                )
            )
        return perceived


def _detect(
    index: int, lane: Lane, frame: ImageFrame, projector: GroundProjector | None, fit: bool
) -> _Detection:
    """Project a detector lane onto the ground (or into image coordinates) and, if ``fit``, fit its curve."""
    if projector is not None:
        bottom_up = lane.points[::-1]  # near to far, as ground points are listed
        ground = projector.project(bottom_up[:, 0], bottom_up[:, 1])
        ground = ground[np.isfinite(ground[:, 0])]
        xy = ground[:, :2]
    else:
        ground = None
        xy = frame.to_curve_xy(lane.points)
    curve = GroundCurve.fit(xy) if fit else None
    observation = None
    if curve is not None:
        residual = float(np.sqrt(np.mean((curve.y_at(xy[:, 0]) - xy[:, 1]) ** 2)))
        observation = LaneObservation(curve, lane.score, index, residual)
    return _Detection(index, lane, ground, observation)


def _untracked(
    detections: list[_Detection], frame: ImageFrame, projector: GroundProjector | None, config: TrackerConfig
) -> list[tuple[TrackedLane | None, PerceivedLane]]:
    """Tracking off: the node's historical lanes (see the module docstring), and per-frame lanes for the ego
    lane state, whose covariance is one detection's."""
    xs = [bottom_x(d.lane.points, frame.height) for d in detections]
    order = np.argsort(xs, kind="stable")
    center_x = projector.intrinsics.cx if projector is not None else frame.width / 2.0
    positions = assign_positions([xs[i] for i in order], center_x)
    perceived = []
    for lane_id, (i, position) in enumerate(zip(order, positions, strict=True)):
        detection = detections[i]
        observation = detection.observation
        lane = detection.lane
        as_track = None
        if observation is not None:
            as_track = TrackedLane(
                track_id=lane_id,
                age=0,
                measured=True,
                existence=lane.score,
                curve=observation.curve,
                covariance=detection_covariance(observation, config),
                index=detection.index,
                score=lane.score,
                position=position,
            )
        perceived.append(
            (
                as_track,
                PerceivedLane(
                    lane=lane,
                    track_id=lane_id,
                    age=0,
                    measured=True,
                    existence=lane.score,
                    position=position,
                    ground_points=detection.ground_points,
                    curve=observation.curve if observation is not None else None,
                ),
            )
        )
    return perceived


def _reproject(
    track: TrackedLane, frame: ImageFrame, projector: GroundProjector | None
) -> tuple[Lane, np.ndarray | None]:
    """A predicted track's image polyline (top to bottom, in the image) and ground points (near to far)."""
    xs = np.linspace(track.curve.x_min, track.curve.x_max, _REPROJECTED_POINTS)
    xy = track.curve.sample(xs)
    if projector is not None:
        ground = np.column_stack([xy, np.zeros(len(xy))])
        pixels = projector.to_pixels(ground)
    else:
        ground = None
        pixels = frame.to_pixels(xy)
    inside = (
        np.isfinite(pixels).all(axis=1)
        & (pixels[:, 0] >= 0.0)
        & (pixels[:, 0] <= frame.width - 1)
        & (pixels[:, 1] >= 0.0)
        & (pixels[:, 1] <= frame.height - 1)
    )
    pixels = pixels[inside]
    pixels = pixels[np.argsort(pixels[:, 1], kind="stable")]
    return Lane(pixels, track.score), ground
