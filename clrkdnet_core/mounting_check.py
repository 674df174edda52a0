"""The camera's pitch as the lanes show it: a running check of the configured mounting.

On a flat road the two boundaries of the ego lane are parallel, so in the image they meet at a vanishing
point on the horizon, and the horizon's height fixes the camera's pitch. While both boundaries are straight,
each frame gives one pitch sample; the median of a window of recent samples is the estimate (Apollo's
lane-based calibrator does the same), which a node compares with the pitch of its tf2 transform or parameters.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from clrkdnet_core.camera_model import CameraIntrinsics, CameraPose

DEFAULT_THRESHOLD = math.radians(1.0)


def _straight_line(
    points_uv: np.ndarray | None, intrinsics: CameraIntrinsics, min_points: int, max_residual: float
) -> tuple[np.ndarray, float] | None:
    """Total-least-squares line through the undistorted normalized points of one lane, as a homogeneous line
    (a, b, c) with a x + b y + c = 0, and the lowest (largest y) point's y; None when the lane is too short
    or not straight (RMS distance to the line above ``max_residual``, normalized units)."""
    if points_uv is None:
        return None
    points_uv = np.asarray(points_uv, dtype=np.float64).reshape(-1, 2)
    xn, yn = intrinsics.undistort(points_uv[:, 0], points_uv[:, 1])
    keep = np.isfinite(xn) & np.isfinite(yn)
    if keep.sum() < min_points:
        return None
    points = np.stack([xn[keep], yn[keep]], axis=1)
    centre = points.mean(axis=0)
    # The eigenvector of the smallest eigenvalue of the scatter is the line's normal; the eigenvalue is the
    # mean squared distance of the points from the line.
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(points - centre, rowvar=False, bias=True))
    if eigenvalues[0] > max_residual**2:
        return None
    normal = eigenvectors[:, 0]
    return np.array([normal[0], normal[1], -normal @ centre]), float(points[:, 1].max())


def vanishing_point_pitch(
    left_uv: np.ndarray | None,
    right_uv: np.ndarray | None,
    intrinsics: CameraIntrinsics,
    pose: CameraPose,
    max_residual_px: float = 2.0,
    min_points: int = 8,
) -> float | None:
    """The camera body pitch (rad, positive down) implied by one frame's ego boundaries (pixel points (N, 2)),
    or None when either is missing, too short or not straight, or they do not converge above the lanes."""
    max_residual = max_residual_px / intrinsics.fx
    left = _straight_line(left_uv, intrinsics, min_points, max_residual)
    right = _straight_line(right_uv, intrinsics, min_points, max_residual)
    if left is None or right is None:
        return None
    x, y, w = np.cross(left[0], right[0])
    if abs(w) < 1e-12 * math.hypot(x, y):
        return None  # parallel in the image: no finite vanishing point
    vx, vy = x / w, y / w
    if vy >= min(left[1], right[1]):
        return None  # the lines meet below the lanes' lowest points: not two boundaries of one road
    # The boundaries run along the road, a horizontal direction, so the vanishing point's ray (vx, vy, 1)
    # has no vertical component in the ground frame. Which horizontal direction it is (the ground frame's x,
    # or an angle to it when the vehicle is not aligned with its lane) moves the point along the horizon and
    # says nothing about the pitch, so only "horizontal" is used. With the camera body
    # R = Rz(yaw) Ry(pitch) Rx(roll), and body <- optical taking the ray to (1, -vx, -vy), the ray's ground z
    # is that of Ry(pitch) Rx(roll) (1, -vx, -vy): yaw, a turn about z, drops out. Rx(roll) gives
    # (1, wy, wz) with wz = -(sin(roll) vx + cos(roll) vy); Ry(pitch) then makes
    # z = -sin(pitch) + cos(pitch) wz, zero for pitch = atan(wz).
    roll, _, _ = pose.body_rpy()
    return math.atan(-(math.sin(roll) * vx + math.cos(roll) * vy))


class MountingPitchCheck:
    """Running estimate of the camera pitch from the vanishing point of straight ego boundaries.

    ``window`` recent samples are kept and their median is :attr:`estimate` once at least ``min_samples`` were
    taken; a lane whose image points stray more than ``max_residual_px`` (RMS) from a straight line (a curve)
    gives no sample. :attr:`difference` is the estimate minus the pitch of the latest pose, and
    :attr:`mismatch` whether its size exceeds ``threshold`` (rad).
    """

    def __init__(
        self,
        window: int = 300,
        min_samples: int = 30,
        max_residual_px: float = 2.0,
        min_points: int = 8,
        threshold: float = DEFAULT_THRESHOLD,
    ) -> None:
        self.min_samples = min_samples
        self.max_residual_px = max_residual_px
        self.min_points = min_points
        self.threshold = threshold
        self._samples: deque[float] = deque(maxlen=window)
        self._estimate: float | None = None
        self._configured_pitch: float | None = None

    def update(
        self,
        left_uv: np.ndarray | None,
        right_uv: np.ndarray | None,
        intrinsics: CameraIntrinsics,
        pose: CameraPose,
    ) -> float | None:
        """Add this frame's ego boundaries (pixel points (N, 2), or None when missing) under the configured
        ``pose``; returns :attr:`estimate`."""
        self._configured_pitch = pose.body_rpy()[1]
        pitch = vanishing_point_pitch(
            left_uv, right_uv, intrinsics, pose, self.max_residual_px, self.min_points
        )
        if pitch is not None:
            self._samples.append(pitch)
            if len(self._samples) >= self.min_samples:
                self._estimate = float(np.median(self._samples))
        return self._estimate

    def reset(self) -> None:
        """Forget all samples (a new camera, or a mounting known to have changed)."""
        self._samples.clear()
        self._estimate = None

    @property
    def estimate(self) -> float | None:
        """Median pitch (rad, positive down) of the recent samples; None before ``min_samples``."""
        return self._estimate

    @property
    def samples(self) -> int:
        """Samples in the window."""
        return len(self._samples)

    @property
    def configured_pitch(self) -> float | None:
        """Pitch (rad) of the pose given to the latest :meth:`update`."""
        return self._configured_pitch

    @property
    def difference(self) -> float | None:
        """Estimate minus configured pitch (rad); None without an estimate."""
        if self._estimate is None or self._configured_pitch is None:
            return None
        return self._estimate - self._configured_pitch

    @property
    def mismatch(self) -> bool:
        """Whether the estimate and the configured pitch differ by more than ``threshold``."""
        return self.difference is not None and abs(self.difference) > self.threshold
