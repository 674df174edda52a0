"""Pixels -> metres on a flat road, from ``camera_info`` plus the camera's mounting height and pitch.

Frames: the camera optical frame is x right, y down, z forward (REP-103 optical convention). The ground frame
(``ground_frame_id``, e.g. ``base_link``) has its origin on the road directly below the camera, x forward, y
left, z up, and differs from the camera only by the mounting height and a pitch about the camera's x axis (no
roll, no yaw, no lateral offset). Lens distortion is ignored: use rectified images or a lens with little
distortion.
"""

from dataclasses import dataclass

import numpy as np
from sensor_msgs.msg import CameraInfo

from clrkdnet_core.errors import InputError

# Beyond this a lane point is a few pixels from the horizon and a 0.1 degree pitch error moves it by metres.
MAX_GROUND_DISTANCE_M = 100.0


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole focal lengths and principal point in pixels."""

    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def from_camera_info(cls, msg: CameraInfo) -> "CameraIntrinsics":
        """Read the intrinsic matrix ``k``; an uncalibrated (all-zero) matrix raises :class:`InputError`."""
        fx, fy, cx, cy = float(msg.k[0]), float(msg.k[4]), float(msg.k[2]), float(msg.k[5])
        if fx <= 0.0 or fy <= 0.0:
            raise InputError(
                f"camera_info has no valid intrinsic matrix k (fx={fx}, fy={fy}); is the camera calibrated?"
            )
        return cls(fx=fx, fy=fy, cx=cx, cy=cy)

    def normalized(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel -> point on the image plane at 1 m depth (x right, y down, in metres)."""
        return (np.asarray(u, np.float64) - self.cx) / self.fx, (
            np.asarray(v, np.float64) - self.cy
        ) / self.fy


@dataclass(frozen=True)
class GroundProjection:
    """Flat-ground projection of a camera ``height`` m above the road, pitched down by ``pitch`` radians."""

    intrinsics: CameraIntrinsics
    height: float
    pitch: float

    def horizon_v(self) -> float:
        """Image row of the horizon: rows at or above it never hit the ground."""
        return self.intrinsics.cy - self.intrinsics.fy * np.tan(self.pitch)

    def project(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Project pixels onto the road; returns (N, 3) float32 (x forward, y left, z=0) in the ground frame.

        Rows whose ray does not reach the road within :data:`MAX_GROUND_DISTANCE_M` (at or above the horizon)
        are NaN.
        """
        x_right, y_down = self.intrinsics.normalized(u, v)
        cos_p, sin_p = np.cos(self.pitch), np.sin(self.pitch)
        # Rotate the ray (x_right, y_down, 1) into a level frame: pitching down tilts forward towards down.
        down = y_down * cos_p + sin_p
        forward = -y_down * sin_p + cos_p
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(down > 0.0, self.height / down, np.nan)
        points = np.stack([scale * forward, -scale * x_right, np.zeros_like(scale)], axis=-1)
        points[~(points[:, 0] <= MAX_GROUND_DISTANCE_M)] = np.nan
        return points.astype(np.float32)


@dataclass(frozen=True)
class CameraModel:
    """What the latest ``camera_info`` and the mounting give a frame: intrinsics and the ground projection
    (None when missing or unusable), and why ``camera_info`` is ignored, if it is."""

    intrinsics: CameraIntrinsics | None = None
    projection: GroundProjection | None = None
    problem: str | None = None


class CameraModelCache:
    """:class:`CameraModel` for each frame, rebuilt only when ``camera_info``, the image size or the mounting
    parameters change (``camera_info`` usually comes with every frame, with the same contents)."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._model = CameraModel()
        self.builds = 0

    def get(
        self, info: CameraInfo | None, width: int, height: int, camera_height: float, camera_pitch: float
    ) -> CameraModel:
        calibration = None if info is None else (info.width, info.height, tuple(info.k))
        key = (calibration, width, height, camera_height, camera_pitch)
        if key != self._key:
            self._key, self._model = key, _camera_model(info, width, height, camera_height, camera_pitch)
            self.builds += 1
        return self._model


def _camera_model(
    info: CameraInfo | None, width: int, height: int, camera_height: float, camera_pitch: float
) -> CameraModel:
    if info is None:
        return CameraModel()
    if (info.width, info.height) != (width, height):
        return CameraModel(
            problem=f"camera_info is for {info.width}x{info.height} images but the image is "
            f"{width}x{height}; ignoring camera_info"
        )
    try:
        intrinsics = CameraIntrinsics.from_camera_info(info)
    except InputError as exc:
        return CameraModel(problem=f"ignoring camera_info: {exc}")
    projection = GroundProjection(intrinsics, camera_height, camera_pitch) if camera_height > 0.0 else None
    return CameraModel(intrinsics, projection)
