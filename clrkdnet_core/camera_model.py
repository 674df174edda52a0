"""A calibrated camera on a vehicle: intrinsics with lens distortion, its 6-DoF pose, flat-ground projection.

Frames: the camera optical frame is x right, y down, z forward; the ground frame (REP-103) is x forward,
y left, z up, with z = 0 the road. The intrinsics and distortion are those of ``sensor_msgs/CameraInfo``
(``k``, ``d``, ``distortion_model``) with OpenCV's formulas, so pixels here agree with ``cv2.projectPoints``
and ``cv2.undistortPoints``. ROS-free: ``predict`` on a video and the API use it as the node does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.spatial.transform import Rotation

from clrkdnet_core.errors import InputError

# sensor_msgs/CameraInfo distortion models and their coefficient counts (sensor_msgs/distortion_models.h).
DISTORTION_COEFFICIENTS = {"plumb_bob": 5, "rational_polynomial": 8}
# The inverse of the distortion has no closed form: Newton's method, converged once a step is below this (in
# normalized units): convergence is quadratic, so the error left is about its square (1e-9 px). A pixel not
# converged after UNDISTORT_ITERATIONS has no valid ray (it lies beyond the model's fold).
UNDISTORT_ITERATIONS = 10
UNDISTORT_TOLERANCE = 1e-6
# Ray radii (normalized, tan of the angle off the optical axis) searched for the distortion polynomial's fold.
FOLD_SEARCH_RADIUS = 4.0
# Beyond this a lane point is a few pixels from the horizon and a 0.1 degree pitch error moves it by metres.
MAX_GROUND_DISTANCE_M = 100.0
# body <- optical (REP-103): the optical z (forward) is the body's x, optical x (right) is -y, optical y
# (down) is -z. The columns are the optical axes in body coordinates.
BODY_FROM_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.array(array, dtype=np.float64)
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class CameraIntrinsics:
    """Image size, intrinsic matrix ``k`` (3x3) and lens distortion as ``sensor_msgs/CameraInfo`` gives them.

    ``distortion_model`` is "plumb_bob" (d = k1 k2 p1 p2 k3), "rational_polynomial" (d = k1 k2 p1 p2 k3 k4
    k5 k6) or "none" (d empty). Build with :meth:`from_values` (validated) or :meth:`pinhole`. The skew
    ``k[0, 1]`` is ignored, as OpenCV does.
    """

    width: int
    height: int
    k: np.ndarray
    distortion_model: str
    d: np.ndarray

    @classmethod
    def from_values(
        cls,
        width: int,
        height: int,
        k: np.ndarray | list[float],
        d: np.ndarray | list[float] = (),
        distortion_model: str = "",
    ) -> CameraIntrinsics:
        """Validate ``camera_info``-style values; anything unusable raises :class:`InputError` with one line.

        ``k`` is 9 values row-major or 3x3. An all-zero ``d`` means no distortion whatever the model names; a
        shorter ``d`` than the model has is padded with zeros (drivers often send 4 or 5 for plumb_bob).
        """
        k = np.asarray(k, dtype=np.float64)
        if k.size != 9 or not np.isfinite(k).all() or k.flat[0] <= 0.0 or k.flat[4] <= 0.0:
            fx, fy = (k.flat[0], k.flat[4]) if k.size == 9 else (float("nan"), float("nan"))
            raise InputError(
                f"camera_info has no valid intrinsic matrix k (fx={fx}, fy={fy}); is the camera calibrated?"
            )
        if int(width) <= 0 or int(height) <= 0:
            raise InputError(f"camera_info has no image size (width={width}, height={height})")
        d = np.asarray(d, dtype=np.float64).ravel()
        if not np.isfinite(d).all():
            raise InputError(f"camera_info has non-finite distortion coefficients d={d.tolist()}")
        if not d.any():
            return cls(int(width), int(height), _frozen(k.reshape(3, 3)), "none", _frozen(np.zeros(0)))
        count = DISTORTION_COEFFICIENTS.get(distortion_model)
        if count is None:
            raise InputError(
                f"camera_info distortion_model {distortion_model!r} is not supported with non-zero d "
                f"(supported: {', '.join(DISTORTION_COEFFICIENTS)}); rectify the images or recalibrate"
            )
        if d.size > count and d[count:].any():
            raise InputError(
                f"camera_info distortion_model {distortion_model!r} has {count} coefficients, d has {d.size}"
            )
        padded = np.zeros(count)
        padded[: min(count, d.size)] = d[:count]
        return cls(int(width), int(height), _frozen(k.reshape(3, 3)), distortion_model, _frozen(padded))

    @classmethod
    def pinhole(cls, width: int, height: int, fx: float, fy: float, cx: float, cy: float) -> CameraIntrinsics:
        """A distortion-free camera."""
        return cls.from_values(width, height, [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0])

    @property
    def fx(self) -> float:
        """Focal length along x (pixels)."""
        return float(self.k[0, 0])

    @property
    def fy(self) -> float:
        """Focal length along y (pixels)."""
        return float(self.k[1, 1])

    @property
    def cx(self) -> float:
        """Principal point column (pixels)."""
        return float(self.k[0, 2])

    @property
    def cy(self) -> float:
        """Principal point row (pixels)."""
        return float(self.k[1, 2])

    @property
    def has_distortion(self) -> bool:
        """Whether ``d`` has a non-zero coefficient (else pixels map to rays by ``k`` alone)."""
        return self.d.size > 0

    @cached_property
    def max_ray_radius(self) -> float:
        """Largest normalized ray radius sqrt(xn^2 + yn^2) the distortion model holds for (inf without one).

        A calibrated polynomial only fits the field of view it saw: further out its distorted radius turns
        back towards the centre, so rays far outside the image would land inside it. Rays beyond get NaN.
        """
        if not self.has_distortion:
            return math.inf
        r = np.linspace(0.0, FOLD_SEARCH_RADIUS, 4001)[1:]
        distorted = r * self._radial(r * r)[0]  # the tangential terms are far smaller and left out
        folds = np.flatnonzero(~(np.diff(distorted) > 0.0))
        return float(r[folds[0]]) if folds.size else math.inf

    def _radial(self, r2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """OpenCV's radial factor at the squared ray radius ``r2``, and its derivative by ``r2``."""
        k1, k2, _, _, k3 = self.d[:5]
        radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
        derivative = k1 + r2 * (2.0 * k2 + 3.0 * k3 * r2)
        if self.d.size == 8:
            k4, k5, k6 = self.d[5:]
            denominator = 1.0 + r2 * (k4 + r2 * (k5 + r2 * k6))
            radial = radial / denominator
            derivative = (derivative - radial * (k4 + r2 * (2.0 * k5 + 3.0 * k6 * r2))) / denominator
        return radial, derivative

    def _distortion(self, x: np.ndarray, y: np.ndarray, jacobian: bool = False) -> tuple[np.ndarray, ...]:
        """OpenCV's distortion of the undistorted normalized ray (x, y) -> (xd, yd), NaN beyond the fold; with
        ``jacobian`` also a, b, c of its Jacobian [[a, b], [b, c]] (symmetric for this model)."""
        p1, p2 = self.d[2:4]
        r2 = x * x + y * y
        if self.max_ray_radius < math.inf:
            r2 = np.where(r2 <= self.max_ray_radius**2, r2, np.nan)
        radial, dradial = self._radial(r2)
        # OpenCV's tangential terms (2 p1 x y + p2 (r2 + 2 x^2), p1 (r2 + 2 y^2) + 2 p2 x y), regrouped as
        # r2 (p2, p1) + 2 (x, y) s with s = p2 x + p1 y: fewer array operations, the same numbers.
        s = p2 * x + p1 * y
        g = radial + 2.0 * s
        xd, yd = x * g + p2 * r2, y * g + p1 * r2
        if not jacobian:
            return xd, yd
        t = 2.0 * dradial
        a = g + x * (t * x + 4.0 * p2)
        b = t * x * y + 2.0 * (p1 * x + p2 * y)
        c = g + y * (t * y + 4.0 * p1)
        return xd, yd, a, b, c

    def distort(self, xn: np.ndarray, yn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Undistorted normalized ray (xn, yn, 1) -> pixels (u, v), as ``cv2.projectPoints``; NaN beyond
        :attr:`max_ray_radius`."""
        x, y = np.asarray(xn, dtype=np.float64), np.asarray(yn, dtype=np.float64)
        if self.has_distortion:
            x, y = self._distortion(x, y)
        return self.fx * x + self.cx, self.fy * y + self.cy

    def undistort(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixels -> undistorted normalized coordinates (xn, yn): the ray (xn, yn, 1) in the optical frame.

        Solves distort(xn, yn) = (u, v) for the root ``cv2.undistortPoints`` converges to, by Newton's method:
        OpenCV's fixed-point iteration needs dozens of steps under strong barrel distortion, Newton 2 to 4.
        Pixels without a valid ray (beyond the model's fold) are NaN.
        """
        x0 = (np.asarray(u, dtype=np.float64) - self.cx) / self.fx
        y0 = (np.asarray(v, dtype=np.float64) - self.cy) / self.fy
        if not self.has_distortion:
            return x0, y0
        # Start from the radial part undone at the distorted radius: within a few pixels of the ray already.
        start, _ = self._radial(x0 * x0 + y0 * y0)
        x, y = x0 / start, y0 / start
        with np.errstate(divide="ignore", invalid="ignore"):
            for _ in range(UNDISTORT_ITERATIONS):
                # An iterate beyond the fold turns NaN: it never comes back to a valid ray.
                xd, yd, a, b, c = self._distortion(x, y, jacobian=True)
                error_x, error_y = xd - x0, yd - y0
                det = a * c - b * b
                step_x, step_y = (c * error_x - b * error_y) / det, (a * error_y - b * error_x) / det
                x, y = x - step_x, y - step_y
                step = np.abs(step_x) + np.abs(step_y)
                if np.nanmax(step, initial=0.0) < UNDISTORT_TOLERANCE:
                    break
        valid = (step < UNDISTORT_TOLERANCE) & (x * x + y * y <= self.max_ray_radius**2)
        return np.where(valid, x, np.nan), np.where(valid, y, np.nan)


@dataclass(frozen=True, eq=False)
class CameraPose:
    """The camera optical frame in the ground frame: ``rotation`` (3x3, ground <- optical) and ``translation``
    (3,), the optical centre's position in the ground frame (m)."""

    rotation: np.ndarray
    translation: np.ndarray

    def __post_init__(self) -> None:
        rotation = np.asarray(self.rotation, dtype=np.float64)
        translation = np.asarray(self.translation, dtype=np.float64).ravel()
        if rotation.shape != (3, 3) or translation.shape != (3,):
            raise InputError(
                f"camera pose needs a 3x3 rotation and 3 translation values, got {rotation.shape} and "
                f"{translation.shape}"
            )
        if not (np.isfinite(rotation).all() and np.isfinite(translation).all()):
            raise InputError("camera pose has non-finite values")
        if not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-6) or np.linalg.det(rotation) < 0.0:
            raise InputError("camera pose rotation is not a rotation matrix")
        object.__setattr__(self, "rotation", _frozen(rotation))
        object.__setattr__(self, "translation", _frozen(translation))

    @classmethod
    def from_xyz_rpy(cls, x: float, y: float, z: float, roll: float, pitch: float, yaw: float) -> CameraPose:
        """The camera *body* (REP-103 axes: x forward, y left, z up) at (x, y, z) in the ground frame,
        turned by fixed-axis roll, pitch, yaw (rad; R = Rz(yaw) Ry(pitch) Rx(roll), as tf2 and URDF). Positive
        pitch looks down. The optical rotation is applied here, as a URDF's ``*_optical_frame`` joint does."""
        values = np.array([x, y, z, roll, pitch, yaw], dtype=np.float64)
        if not np.isfinite(values).all():
            raise InputError(
                f"camera pose [x, y, z, roll, pitch, yaw] has non-finite values: {values.tolist()}"
            )
        body = Rotation.from_euler("xyz", values[3:]).as_matrix()  # extrinsic xyz: Rz @ Ry @ Rx
        return cls(body @ BODY_FROM_OPTICAL, values[:3])

    @classmethod
    def from_height_pitch(cls, height: float, pitch: float) -> CameraPose:
        """A camera ``height`` m above the ground frame's origin, pitched down by ``pitch`` rad."""
        return cls.from_xyz_rpy(0.0, 0.0, height, 0.0, pitch, 0.0)

    @classmethod
    def from_transform(
        cls, translation: np.ndarray | list[float], quaternion_xyzw: np.ndarray | list[float]
    ) -> CameraPose:
        """A tf2 transform ground <- camera optical frame (the frame of the image's ``header.frame_id``, which
        already is an optical frame: no optical rotation is applied)."""
        t = np.asarray(translation, dtype=np.float64).ravel()
        q = np.asarray(quaternion_xyzw, dtype=np.float64).ravel()
        if t.shape != (3,) or q.shape != (4,) or not (np.isfinite(t).all() and np.isfinite(q).all()):
            raise InputError(
                f"camera transform needs 3 finite translation and 4 quaternion values, got {t.tolist()} and "
                f"{q.tolist()}"
            )
        if np.linalg.norm(q) < 1e-9:
            raise InputError("camera transform has a zero quaternion (x=y=z=w=0), not a rotation")
        return cls(Rotation.from_quat(q).as_matrix(), t)

    def body_rpy(self) -> tuple[float, float, float]:
        """(roll, pitch, yaw) of the camera body (optical rotation undone): :meth:`from_xyz_rpy`'s angles."""
        body = self.rotation @ BODY_FROM_OPTICAL.T
        # R = Rz(yaw) Ry(pitch) Rx(roll) in closed form (scipy's as_euler costs ~0.3 ms, and the node's
        # mounting check asks every frame). At pitch +-90 degrees roll and yaw are one angle: yaw gets it.
        pitch = math.asin(min(1.0, max(-1.0, -body[2, 0])))
        if math.hypot(body[2, 1], body[2, 2]) < 1e-9:
            return 0.0, pitch, math.atan2(-body[0, 1], body[1, 1])
        return math.atan2(body[2, 1], body[2, 2]), pitch, math.atan2(body[1, 0], body[0, 0])


class GroundProjector:
    """Pixels <-> points on the flat road (z = 0 of the ground frame) for one camera."""

    def __init__(
        self, intrinsics: CameraIntrinsics, pose: CameraPose, max_distance: float = MAX_GROUND_DISTANCE_M
    ) -> None:
        self.intrinsics = intrinsics
        self.pose = pose
        self.max_distance = float(max_distance)

    def project(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Project pixels onto the road; returns (N, 3) float64 ground-frame points with z = 0.

        Rows are NaN where the ray does not hit the road in front of the camera, or hits it more than
        ``max_distance`` ahead of it (ground x beyond the camera's x + max_distance), where a pixel spans
        metres.
        """
        xn, yn = self.intrinsics.undistort(np.ravel(u), np.ravel(v))
        r, t = self.pose.rotation, self.pose.translation
        # The ray (xn, yn, 1) in the ground frame; it meets z = 0 at t + s * ray with s = -t_z / ray_z.
        ray_x = r[0, 0] * xn + r[0, 1] * yn + r[0, 2]
        ray_y = r[1, 0] * xn + r[1, 1] * yn + r[1, 2]
        ray_z = r[2, 0] * xn + r[2, 1] * yn + r[2, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.where(ray_z * t[2] < 0.0, -t[2] / ray_z, np.nan)
        s[~(s * ray_x <= self.max_distance)] = np.nan  # NaN stays NaN: comparisons with it are False
        points = np.empty((xn.size, 3))
        points[:, 0] = t[0] + s * ray_x
        points[:, 1] = t[1] + s * ray_y
        points[:, 2] = s * 0.0
        return points

    def to_pixels(self, points: np.ndarray) -> np.ndarray:
        """Ground-frame points (N, 3) -> pixels (N, 2) with the lens distortion; NaN for points not in
        front of the camera."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        optical = (points - self.pose.translation) @ self.pose.rotation  # R^T (p - t), row-wise
        with np.errstate(divide="ignore", invalid="ignore"):
            depth = np.where(optical[:, 2] > 0.0, optical[:, 2], np.nan)
            u, v = self.intrinsics.distort(optical[:, 0] / depth, optical[:, 1] / depth)
        return np.stack([u, v], axis=-1)
