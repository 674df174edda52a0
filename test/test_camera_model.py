"""Camera model: distortion against OpenCV, 6-DoF poses, REP-103 signs and flat-ground projection."""

import math

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from clrkdnet_core.camera_model import CameraIntrinsics, CameraPose, GroundProjector
from clrkdnet_core.data.synthetic.scene import Camera
from clrkdnet_core.errors import InputError

K = [800.0, 0.0, 640.0, 0.0, 820.0, 360.0, 0.0, 0.0, 1.0]
DISTORTIONS = {
    "plumb_bob": [-0.28, 0.09, 1e-3, -2e-3, -0.015],
    "rational_polynomial": [1.5, 0.4, 1e-3, -2e-3, 0.01, 1.8, 0.7, 0.05],
}


def _rays(n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.uniform(-0.7, 0.7, n), rng.uniform(-0.42, 0.42, n)


@pytest.mark.parametrize("model", DISTORTIONS)
def test_distort_matches_opencv_project_points(model):
    intrinsics = CameraIntrinsics.from_values(1280, 720, K, DISTORTIONS[model], model)
    xn, yn = _rays()
    u, v = intrinsics.distort(xn, yn)
    rays = np.stack([xn, yn, np.ones_like(xn)], axis=1)
    expected, _ = cv2.projectPoints(rays, np.zeros(3), np.zeros(3), intrinsics.k, intrinsics.d)
    np.testing.assert_allclose(np.stack([u, v], axis=1), expected[:, 0], atol=1e-8)


@pytest.mark.parametrize("model", DISTORTIONS)
def test_undistort_matches_opencv_undistort_points(model):
    intrinsics = CameraIntrinsics.from_values(1280, 720, K, DISTORTIONS[model], model)
    u, v = intrinsics.distort(*_rays())
    xn, yn = intrinsics.undistort(u, v)
    # OpenCV runs 5 steps by default; to convergence both must agree
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)
    pixels = np.stack([u, v], axis=1)[:, None, :]
    expected = cv2.undistortPoints(pixels, intrinsics.k, intrinsics.d, criteria=criteria)[:, 0]
    np.testing.assert_allclose(np.stack([xn, yn], axis=1), expected, atol=1e-9)
    np.testing.assert_allclose(np.stack(intrinsics.distort(xn, yn), axis=1), pixels[:, 0], atol=1e-6)


def test_zero_distortion_is_none_and_short_d_is_padded():
    assert not CameraIntrinsics.from_values(1280, 720, K, [0.0] * 5, "plumb_bob").has_distortion
    assert not CameraIntrinsics.from_values(1280, 720, K, [0.0] * 4, "equidistant").has_distortion
    pinhole = CameraIntrinsics.pinhole(1280, 720, 800.0, 820.0, 640.0, 360.0)
    assert (pinhole.fx, pinhole.fy, pinhole.cx, pinhole.cy, pinhole.distortion_model) == (
        800.0,
        820.0,
        640.0,
        360.0,
        "none",
    )
    np.testing.assert_allclose(pinhole.undistort(720.0, 360.0), (0.1, 0.0))
    padded = CameraIntrinsics.from_values(
        1280, 720, np.reshape(K, (3, 3)), [-0.2, 0.05, 0.0, 0.0], "plumb_bob"
    )
    np.testing.assert_array_equal(padded.d, [-0.2, 0.05, 0.0, 0.0, 0.0])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"k": [0.0] * 9}, "no valid intrinsic matrix k"),
        ({"k": [float("nan"), *K[1:]]}, "no valid intrinsic matrix k"),
        ({"k": K[:6]}, "no valid intrinsic matrix k"),
        ({"k": K, "d": [0.1, 0, 0, 0], "distortion_model": "equidistant"}, "'equidistant' is not supported"),
        ({"k": K, "d": [0.1, 0, 0, 0, 0]}, "'' is not supported"),
        ({"k": K, "d": [0.1] * 8, "distortion_model": "plumb_bob"}, "has 5 coefficients, d has 8"),
        ({"k": K, "d": [float("inf")] * 5, "distortion_model": "plumb_bob"}, "non-finite distortion"),
        ({"k": K, "width": 0}, "no image size"),
    ],
)
def test_bad_intrinsics_raise_one_line(kwargs, message):
    values = {"width": 1280, "height": 720, **kwargs}
    with pytest.raises(InputError, match=message) as error:
        CameraIntrinsics.from_values(**values)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "make",
    [
        lambda: CameraPose.from_transform([0.0, 0.0, 1.5], [0.0, 0.0, 0.0, 0.0]),
        lambda: CameraPose.from_transform([0.0, float("nan"), 1.5], [0.0, 0.0, 0.0, 1.0]),
        lambda: CameraPose.from_transform([0.0, 1.5], [0.0, 0.0, 0.0, 1.0]),
        lambda: CameraPose.from_xyz_rpy(0.0, 0.0, 1.5, 0.0, float("nan"), 0.0),
        lambda: CameraPose(np.eye(3) * 2.0, np.zeros(3)),
    ],
)
def test_bad_pose_raises_one_line(make):
    with pytest.raises(InputError) as error:
        make()
    assert "\n" not in str(error.value)


POSES = {
    "height_pitch": (0.0, 0.0, 1.5, 0.0, 0.04, 0.0),
    "roll": (0.0, 0.0, 1.5, 0.05, 0.04, 0.0),
    "yaw": (0.0, 0.0, 1.5, 0.0, 0.04, -0.06),
    "lateral_forward": (1.8, -0.4, 1.3, 0.0, 0.06, 0.0),
    "all": (1.8, 0.35, 1.45, -0.03, 0.08, 0.05),
}


@pytest.mark.parametrize("model", ["none", *DISTORTIONS])
@pytest.mark.parametrize("pose_name", POSES)
def test_ground_points_come_back_through_pixels(pose_name, model):
    d = DISTORTIONS.get(model, [])
    intrinsics = CameraIntrinsics.from_values(1280, 720, K, d, model)
    pose = CameraPose.from_xyz_rpy(*POSES[pose_name])
    projector = GroundProjector(intrinsics, pose)
    x, y = np.meshgrid(np.linspace(6.0, 80.0, 25), np.linspace(-7.0, 7.0, 15))
    points = np.stack([x.ravel(), y.ravel(), np.zeros(x.size)], axis=1)
    pixels = projector.to_pixels(points)
    inside = (pixels[:, 0] >= 0) & (pixels[:, 0] < 1280) & (pixels[:, 1] >= 0) & (pixels[:, 1] < 720)
    assert inside.sum() > 100
    back = projector.project(pixels[inside, 0], pixels[inside, 1])
    np.testing.assert_allclose(back, points[inside], atol=1e-6)


def _old_ground_projection(fx, fy, cx, cy, height, pitch, u, v):
    """clrkdnet_ros/ground_projection.py GroundProjection.project as it was before the camera model (commit
    b1607c6): the reference that height + pitch mountings must keep giving."""
    x_right, y_down = (np.asarray(u, np.float64) - cx) / fx, (np.asarray(v, np.float64) - cy) / fy
    cos_p, sin_p = np.cos(pitch), np.sin(pitch)
    down = y_down * cos_p + sin_p
    forward = -y_down * sin_p + cos_p
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(down > 0.0, height / down, np.nan)
    points = np.stack([scale * forward, -scale * x_right, np.zeros_like(scale)], axis=-1)
    points[~(points[:, 0] <= 100.0)] = np.nan
    return points.astype(np.float32)


@pytest.mark.parametrize("height, pitch", [(1.5, 0.0), (1.2, 0.05), (2.0, -0.02), (1.6, 0.2)])
def test_height_pitch_gives_the_old_projection(height, pitch):
    u, v = np.meshgrid(np.linspace(0, 1279, 33), np.linspace(0, 719, 41))
    u, v = u.ravel(), v.ravel()
    projector = GroundProjector(
        CameraIntrinsics.pinhole(1280, 720, 800.0, 820.0, 640.0, 360.0),
        CameraPose.from_height_pitch(height, pitch),
    )
    new = projector.project(u, v)
    old = _old_ground_projection(800.0, 820.0, 640.0, 360.0, height, pitch, u, v)
    np.testing.assert_array_equal(np.isnan(new), np.isnan(old))
    assert np.isnan(new).any() and not np.isnan(new).all()
    np.testing.assert_allclose(new, old, rtol=1e-5, atol=1e-5, equal_nan=True)


@pytest.mark.parametrize("pose_name", POSES)
def test_from_transform_of_the_same_rotation_is_the_same_pose(pose_name):
    values = POSES[pose_name]
    pose = CameraPose.from_xyz_rpy(*values)
    quaternion = Rotation.from_matrix(pose.rotation).as_quat()  # x, y, z, w
    same = CameraPose.from_transform(
        values[:3], -2.0 * quaternion
    )  # unnormalized and sign-flipped on purpose
    np.testing.assert_allclose(same.rotation, pose.rotation, atol=1e-12)
    np.testing.assert_allclose(same.translation, values[:3])
    np.testing.assert_allclose(same.body_rpy(), values[3:], atol=1e-12)


def test_optical_rotation_of_a_level_camera():
    pose = CameraPose.from_height_pitch(1.5, 0.0)
    # optical z (forward) is ground x, optical x (right) is -y, optical y (down) is -z
    np.testing.assert_allclose(pose.rotation, [[0, 0, 1], [-1, 0, 0], [0, -1, 0]], atol=1e-15)


def test_rep103_signs():
    intrinsics = CameraIntrinsics.pinhole(1280, 720, 800.0, 800.0, 640.0, 360.0)
    level = GroundProjector(intrinsics, CameraPose.from_height_pitch(1.5, 0.0))
    assert level.project(600.0, 500.0)[0, 1] > 0.0  # left of the image centre -> y > 0 (left)
    assert level.project(700.0, 500.0)[0, 1] < 0.0
    far_ahead = [[1e9, 0.0, 0.0]]
    assert level.to_pixels(far_ahead)[0, 1] == pytest.approx(360.0, abs=1e-3)
    pitched = GroundProjector(intrinsics, CameraPose.from_height_pitch(1.5, 0.05))
    # looking down moves the horizon up, to cy - fy tan(pitch)
    assert pitched.to_pixels(far_ahead)[0, 1] == pytest.approx(360.0 - 800.0 * math.tan(0.05), abs=1e-3)
    turned_left = GroundProjector(intrinsics, CameraPose.from_xyz_rpy(0, 0, 1.5, 0, 0, 0.05))
    assert turned_left.to_pixels(far_ahead)[0, 0] > 640.0  # straight ahead now appears right of centre
    offset_left = GroundProjector(intrinsics, CameraPose.from_xyz_rpy(0, 1.0, 1.5, 0, 0.05, 0))
    assert offset_left.project(640.0, 500.0)[0, 1] == pytest.approx(1.0)
    rolled = GroundProjector(intrinsics, CameraPose.from_xyz_rpy(0, 0, 1.5, 0.05, 0.0, 0))
    # positive roll lowers the camera's right side, so the scene turns counter-clockwise in the image: the
    # road on the right appears higher up than the road as far away on the left
    right, left = rolled.to_pixels([[20.0, -3.0, 0.0], [20.0, 3.0, 0.0]])
    assert right[1] < left[1]


def test_rays_that_miss_the_road_are_nan():
    intrinsics = CameraIntrinsics.pinhole(1280, 720, 800.0, 800.0, 640.0, 360.0)
    projector = GroundProjector(intrinsics, CameraPose.from_height_pitch(1.5, 0.0), max_distance=50.0)
    points = projector.project([640.0, 640.0, 640.0, 640.0], [100.0, 360.0, 362.0, 500.0])
    assert np.isnan(points[:3]).all()  # sky, horizon, 1.5 * 800 / 2 = 600 m > 50 m
    assert points[3] == pytest.approx([1.5 * 800 / 140, 0.0, 0.0])
    assert points.dtype == np.float64 and points.shape == (4, 3)
    behind = projector.to_pixels([[-5.0, 0.0, 0.0], [5.0, 0.0, 0.0]])
    assert np.isnan(behind[0]).all() and np.isfinite(behind[1]).all()


def test_synthetic_camera_pixels_come_back_to_its_ground_points():
    camera = Camera(
        width=1280, height=720, focal=1000.0, cx=640.0, cy=350.0, mount_height=1.4, pitch=0.05, roll=0.0
    )
    lateral, distance = np.meshgrid(np.linspace(-6.0, 6.0, 7), np.linspace(4.0, 90.0, 20))
    u, v = camera.project(lateral.ravel(), distance.ravel())
    projector = GroundProjector(
        CameraIntrinsics.pinhole(
            camera.width, camera.height, camera.focal, camera.focal, camera.cx, camera.cy
        ),
        CameraPose.from_height_pitch(camera.mount_height, camera.pitch),
    )
    points = projector.project(u, v)
    # the renderer's lateral x is right-positive, its z forward: ground y = -x, x = z
    np.testing.assert_allclose(points[:, 0], distance.ravel(), atol=1e-9)
    np.testing.assert_allclose(points[:, 1], -lateral.ravel(), atol=1e-9)


def test_rays_beyond_the_distortion_fold_are_nan():
    # this lens model's distorted radius peaks at a ray radius of about 1.2 (0.77 distorted), then turns back
    folding = [0.6, -0.25, 0.0, 0.0, 0.04, 0.9, -0.15, 0.09]
    intrinsics = CameraIntrinsics.from_values(1280, 720, K, folding, "rational_polynomial")
    assert 1.1 < intrinsics.max_ray_radius < 1.3
    u, v = intrinsics.distort(np.array([0.5, 2.5]), np.array([0.0, 0.0]))
    assert np.isfinite(u[0]) and np.isnan(u[1]) and np.isnan(v[1])
    xn, yn = intrinsics.undistort(
        np.array([700.0, 1279.0]), np.array([400.0, 719.0])
    )  # the corner is unreachable
    assert np.isfinite(xn[0]) and np.isnan(xn[1]) and np.isnan(yn[1])
    assert CameraIntrinsics.pinhole(1280, 720, 800.0, 800.0, 640.0, 360.0).max_ray_radius == math.inf


def test_synthetic_camera_roll_is_a_body_roll_about_the_rotated_principal_point():
    # The renderer rolls the image about its centre: a camera rolled about its optical axis by the same angle
    # (REP-103 sign), whose principal point is the renderer's (cx, cy) moved by that image rotation.
    camera = Camera(
        width=1280, height=720, focal=1000.0, cx=652.0, cy=340.0, mount_height=1.4, pitch=0.05, roll=0.03
    )
    lateral, distance = np.meshgrid(np.linspace(-6.0, 6.0, 7), np.linspace(5.0, 60.0, 12))
    lateral, distance = lateral.ravel(), distance.ravel()
    roll = camera.roll_matrix()
    rendered = (roll[:, :2] @ np.stack(camera.project(lateral, distance)) + roll[:, 2:]).T
    cx, cy = roll[:, :2] @ [camera.cx, camera.cy] + roll[:, 2]
    projector = GroundProjector(
        CameraIntrinsics.pinhole(camera.width, camera.height, camera.focal, camera.focal, cx, cy),
        CameraPose.from_xyz_rpy(0.0, 0.0, camera.mount_height, camera.roll, camera.pitch, 0.0),
    )
    np.testing.assert_allclose(
        projector.to_pixels(np.stack([distance, -lateral, 0 * distance], axis=1)), rendered
    )


@pytest.mark.parametrize("pitch", [math.pi / 2, -math.pi / 2])
def test_body_rpy_at_gimbal_lock_rebuilds_the_same_rotation(pitch):
    pose = CameraPose.from_xyz_rpy(0.0, 0.0, 1.0, 0.3, pitch, 0.5)
    rebuilt = CameraPose.from_xyz_rpy(0.0, 0.0, 1.0, *pose.body_rpy())
    np.testing.assert_allclose(rebuilt.rotation, pose.rotation, atol=1e-6)
