"""The camera model of each frame: ``sensor_msgs/CameraInfo`` -> :class:`CameraIntrinsics`, plus the camera's
pose -> :class:`GroundProjector` (the geometry is :mod:`clrkdnet_core.camera_model`'s; this is its ROS side).

``camera_info`` usually comes with every frame with the same contents, and the pose from parameters or a
static transform does not change: :class:`CameraModelCache` rebuilds the intrinsics only when
``camera_info`` or the image size change, and the projector only when the intrinsics or the pose do.
"""

from dataclasses import dataclass

import numpy as np
from sensor_msgs.msg import CameraInfo

from clrkdnet_core.camera_model import CameraIntrinsics, CameraPose, GroundProjector
from clrkdnet_core.errors import InputError


def intrinsics_from_camera_info(msg: CameraInfo) -> CameraIntrinsics:
    """``k``, ``d`` and ``distortion_model`` of a ``camera_info``; raises :class:`InputError` (one line) for
    an uncalibrated (all-zero) matrix or an unsupported distortion model."""
    return CameraIntrinsics.from_values(
        msg.width,
        msg.height,
        np.asarray(msg.k, dtype=np.float64).reshape(3, 3),
        np.asarray(msg.d, dtype=np.float64),
        msg.distortion_model,
    )


@dataclass(frozen=True)
class CameraModel:
    """What a frame gets: the intrinsics and the ground projector (None when missing or unusable), and why
    ``camera_info`` is ignored, if it is."""

    intrinsics: CameraIntrinsics | None = None
    projector: GroundProjector | None = None
    problem: str | None = None


class CameraModelCache:
    """:class:`CameraModel` for each frame, rebuilt only when its inputs change (module docstring)."""

    def __init__(self) -> None:
        self._intrinsics_key: tuple | None = None
        self._intrinsics: CameraIntrinsics | None = None
        self._problem: str | None = None
        self._projector_key: tuple | None = None
        self._projector: GroundProjector | None = None
        self.builds = 0

    def get(self, info: CameraInfo | None, width: int, height: int, pose: CameraPose | None) -> CameraModel:
        """The model of a ``width`` x ``height`` frame; no projector without ``pose`` or usable intrinsics."""
        intrinsics, problem = self._intrinsics_for(info, width, height)
        if intrinsics is None or pose is None:
            return CameraModel(intrinsics, None, problem)
        key = (id(intrinsics), pose.rotation.tobytes(), pose.translation.tobytes())
        if key != self._projector_key:
            self._projector_key = key
            self._projector = GroundProjector(intrinsics, pose)
        return CameraModel(intrinsics, self._projector, problem)

    def _intrinsics_for(
        self, info: CameraInfo | None, width: int, height: int
    ) -> tuple[CameraIntrinsics | None, str | None]:
        calibration = (
            None
            if info is None
            else (info.width, info.height, tuple(info.k), tuple(info.d), info.distortion_model)
        )
        key = (calibration, width, height)
        if key != self._intrinsics_key:
            self._intrinsics_key = key
            self._intrinsics, self._problem = _intrinsics(info, width, height)
            self.builds += 1
        return self._intrinsics, self._problem


def _intrinsics(
    info: CameraInfo | None, width: int, height: int
) -> tuple[CameraIntrinsics | None, str | None]:
    if info is None:
        return None, None
    if (info.width, info.height) != (width, height):
        return None, (
            f"camera_info is for {info.width}x{info.height} images but the image is {width}x{height}; "
            "ignoring camera_info (lanes are published in pixels only)"
        )
    try:
        return intrinsics_from_camera_info(info), None
    except InputError as exc:
        return None, f"ignoring camera_info: {exc} (lanes are published in pixels only)"
