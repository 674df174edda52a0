"""Mounting check: the pitch from the vanishing point of straight ego boundaries; noise, outliers, curves."""

import math

import numpy as np
import pytest

from clrkdnet_core.camera_model import CameraIntrinsics, CameraPose, GroundProjector
from clrkdnet_core.data.synthetic.scene import Camera
from clrkdnet_core.mounting_check import MountingPitchCheck, vanishing_point_pitch

INTRINSICS = CameraIntrinsics.pinhole(1280, 720, 1000.0, 1000.0, 640.0, 360.0)
DISTORTED = CameraIntrinsics.from_values(
    1280, 720, [1000.0, 0, 640.0, 0, 1000.0, 360.0, 0, 0, 1], [-0.2, 0.05, 1e-3, -1e-3, 0.0], "plumb_bob"
)
TRUE_PITCH = math.radians(3.0)
CONFIGURED_PITCH = math.radians(1.0)


def _boundaries(
    intrinsics: CameraIntrinsics,
    pose: CameraPose,
    curvature: float = 0.0,
    heading: float = 0.0,
    offset: float = 0.0,
    noise_px: float = 0.0,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (N, 2) of the ego lane's left and right boundaries on the ground, seen from ``pose``."""
    x = np.linspace(6.0, 60.0, 40)
    lanes = []
    for side in (1.75, -1.75):
        y = offset + side + heading * x + curvature / 2.0 * x * x
        pixels = GroundProjector(intrinsics, pose).to_pixels(np.stack([x, y, np.zeros_like(x)], axis=1))
        if noise_px:
            pixels = pixels + rng.normal(0.0, noise_px, pixels.shape)
        lanes.append(pixels[(pixels[:, 0] >= 0) & (pixels[:, 0] < 1280) & (pixels[:, 1] < 720)])
    return lanes[0], lanes[1]


@pytest.mark.parametrize(
    "intrinsics, rpy, xyz",
    [
        (INTRINSICS, (0.0, TRUE_PITCH, 0.0), (0.0, 0.0, 1.5)),
        (INTRINSICS, (math.radians(2.0), TRUE_PITCH, math.radians(3.0)), (1.2, 0.3, 1.4)),
        (DISTORTED, (math.radians(-1.5), TRUE_PITCH, math.radians(-2.0)), (0.0, -0.2, 1.6)),
    ],
)
def test_one_frame_gives_the_true_pitch(intrinsics, rpy, xyz):
    left, right = _boundaries(intrinsics, CameraPose.from_xyz_rpy(*xyz, *rpy), heading=0.03, offset=0.4)
    configured = CameraPose.from_xyz_rpy(*xyz, rpy[0], CONFIGURED_PITCH, rpy[2])
    assert vanishing_point_pitch(left, right, intrinsics, configured) == pytest.approx(TRUE_PITCH, abs=1e-9)


def test_noisy_frames_give_the_true_pitch_and_a_mismatch():
    rng = np.random.default_rng(0)
    truth = CameraPose.from_xyz_rpy(0.0, 0.0, 1.5, math.radians(1.0), TRUE_PITCH, math.radians(2.0))
    configured = CameraPose.from_xyz_rpy(
        0.0, 0.0, 1.5, math.radians(1.0), CONFIGURED_PITCH, math.radians(2.0)
    )
    check = MountingPitchCheck(min_samples=20)
    for frame in range(60):
        left, right = _boundaries(
            INTRINSICS, truth, heading=0.01 * math.sin(frame / 5), noise_px=0.5, rng=rng
        )
        estimate = check.update(left, right, INTRINSICS, configured)
        assert (estimate is None) == (frame < 19)
    assert check.samples == 60
    assert math.degrees(abs(check.estimate - TRUE_PITCH)) < 0.1
    assert check.configured_pitch == pytest.approx(CONFIGURED_PITCH)
    assert math.degrees(check.difference) == pytest.approx(2.0, abs=0.1)
    assert check.mismatch
    check.update(left, right, INTRINSICS, truth)  # the configured pitch fixed: no mismatch any more
    assert not check.mismatch and abs(check.difference) < math.radians(0.1)


def test_curved_lanes_give_no_sample():
    truth = CameraPose.from_height_pitch(1.5, TRUE_PITCH)
    check = MountingPitchCheck(min_samples=1)
    for curvature in (1 / 300, -1 / 500, 1 / 800):
        left, right = _boundaries(INTRINSICS, truth, curvature=curvature)
        assert check.update(left, right, INTRINSICS, truth) is None
    assert check.samples == 0 and check.estimate is None and check.difference is None and not check.mismatch


def test_outlier_frames_do_not_move_the_median():
    rng = np.random.default_rng(1)
    truth = CameraPose.from_height_pitch(1.5, TRUE_PITCH)
    check = MountingPitchCheck(min_samples=10)
    for frame in range(50):
        left, right = _boundaries(INTRINSICS, truth, noise_px=0.5, rng=rng)
        if frame % 5 == 0:  # a wrong detection: the right boundary 25 px too low, still straight
            right = right + np.array([0.0, 25.0])
            assert vanishing_point_pitch(left, right, INTRINSICS, truth) < TRUE_PITCH - math.radians(0.5)
        check.update(left, right, INTRINSICS, truth)
    assert check.samples == 50
    assert math.degrees(abs(check.estimate - TRUE_PITCH)) < 0.1


def test_missing_short_or_diverging_lanes_give_no_sample():
    pose = CameraPose.from_height_pitch(1.5, TRUE_PITCH)
    left, right = _boundaries(INTRINSICS, pose)
    assert vanishing_point_pitch(None, right, INTRINSICS, pose) is None
    assert vanishing_point_pitch(left[:5], right, INTRINSICS, pose) is None
    assert vanishing_point_pitch(np.full_like(left, np.nan), right, INTRINSICS, pose) is None
    assert (
        vanishing_point_pitch(left, left + np.array([300.0, 0.0]), INTRINSICS, pose) is None
    )  # parallel in the image
    flipped = np.stack([left[:, 0], 2 * 360.0 - left[:, 1]], axis=1)  # meets below the lanes
    assert vanishing_point_pitch(flipped, right * [1.0, -1.0] + [0.0, 720.0], INTRINSICS, pose) is None


def test_synthetic_renderer_lanes_give_its_pitch():
    camera = Camera(
        width=1280, height=720, focal=1000.0, cx=640.0, cy=350.0, mount_height=1.4, pitch=0.05, roll=0.0
    )
    z = np.linspace(5.0, 60.0, 30)
    left = np.stack(camera.project(np.full_like(z, -1.8), z), axis=1)
    right = np.stack(camera.project(np.full_like(z, 1.7), z), axis=1)
    intrinsics = CameraIntrinsics.pinhole(1280, 720, camera.focal, camera.focal, camera.cx, camera.cy)
    pose = CameraPose.from_height_pitch(camera.mount_height, 0.0)
    assert vanishing_point_pitch(left, right, intrinsics, pose) == pytest.approx(camera.pitch, abs=1e-9)
