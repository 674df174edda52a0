"""LanePerception: tracking off is the node's historical output; tracking on publishes stable tracks."""

import json

import cv2
import numpy as np
import pytest

from clrkdnet_core.camera_model import CameraIntrinsics, CameraPose, GroundProjector
from clrkdnet_core.lane import Lane
from clrkdnet_core.perception import ImageFrame, LanePerception
from clrkdnet_core.predict import predict_video
from clrkdnet_core.tracking.ego_lane import SOURCE_MEASURED, SOURCE_PREDICTED

WIDTH, HEIGHT = 1640, 590
DT = 1.0 / 30.0
# cx = 800 is left of the image centre (820): a lane between them is right of the vehicle only with a camera.
PROJECTOR = GroundProjector(
    CameraIntrinsics.pinhole(WIDTH, HEIGHT, 1000.0, 1000.0, 800.0, 300.0),
    CameraPose.from_height_pitch(1.5, 0.05),
)
BOUNDARIES = (5.25, 1.75, -1.75, -5.25)  # y (m) of the lanes on the road, left to right


def _straight(x_bottom, x_top, y_top=300.0, y_bottom=589.0, score=0.9):
    ys = np.linspace(y_top, y_bottom, 30)
    return Lane(np.stack([x_top + (x_bottom - x_top) * (ys - y_top) / (y_bottom - y_top), ys], axis=1), score)


def _seen(y, score=0.9, noise=0.0, rng=None) -> Lane:
    """The detector's view of a straight boundary y m left of the camera: pixels top to bottom, each with
    ``noise`` px of error in u."""
    xs = np.linspace(6.0, 60.0, 40)
    pixels = PROJECTOR.to_pixels(np.stack([xs, np.full_like(xs, y), np.zeros_like(xs)], axis=1))
    inside = (pixels[:, 0] >= 0) & (pixels[:, 0] < WIDTH) & (pixels[:, 1] < HEIGHT)
    pixels = pixels[inside][::-1]
    if noise:
        pixels[:, 0] += rng.normal(0.0, noise, len(pixels))
    return Lane(pixels, score)


def _frames(perception, frames, projector=PROJECTOR, start=0.0):
    """Feed per-frame lists of boundaries (y values); the outputs."""
    return [
        perception.update([_seen(y) for y in ys], (WIDTH, HEIGHT), start + k * DT, projector)
        for k, ys in enumerate(frames)
    ]


def test_tracking_off_is_the_historical_output():
    lanes = [
        _straight(1400, 860, score=0.8),
        _straight(300, 780, score=0.7),
        _straight(810, 805, score=0.95),  # between cx (800) and the image centre (820)
        _straight(-400, 700, y_bottom=450, score=0.6),  # ends high: extrapolated to the bottom row
        Lane(np.array([[1200.0, 500.0]]), 0.52),
        Lane(np.zeros((0, 2)), 0.4),  # empty: dropped
        _straight(2100, 900, score=0.55),
        _straight(-1200, 650, score=0.65),
        _straight(-2500, 600, score=0.5),
    ]
    # What clrkdnet_ros.conversions.lanes_to_msg published for these lanes before tracking existed.
    scores = [0.5, 0.6, 0.65, 0.7, 0.95, 0.52, 0.8, 0.55]
    expected = {None: [0, 0, -3, -2, -1, 1, 2, 3], PROJECTOR: [0, -3, -2, -1, 1, 2, 3, 0]}
    for projector, positions in expected.items():
        frame = LanePerception(tracking=False).update(lanes, (WIDTH, HEIGHT), 0.0, projector)
        assert [lane.track_id for lane in frame.lanes] == list(range(8))
        assert [lane.position for lane in frame.lanes] == positions
        assert [round(lane.lane.score, 2) for lane in frame.lanes] == scores
        assert all(lane.measured and lane.age == 0 for lane in frame.lanes)
        assert [lane.existence for lane in frame.lanes] == [lane.lane.score for lane in frame.lanes]
        assert {id(lane.lane) for lane in frame.lanes} <= {
            id(lane) for lane in lanes
        }  # passed on as detected
        if projector is None:
            assert frame.ego is None
            assert all(lane.ground_points is None and lane.curve is None for lane in frame.lanes)


def test_tracking_off_with_a_camera_gives_ground_points_curves_and_an_untracked_ego_lane():
    frame = LanePerception(tracking=False).update(
        [_seen(y) for y in BOUNDARIES], (WIDTH, HEIGHT), 0.0, PROJECTOR
    )
    assert [lane.position for lane in frame.lanes] == [-2, -1, 1, 2]
    for lane, y in zip(frame.lanes, BOUNDARIES, strict=True):
        assert lane.ground_points.shape[1] == 3
        assert np.all(np.diff(lane.ground_points[:, 0]) > 0)  # near to far
        # float32 pixels: micrometres
        np.testing.assert_allclose(lane.ground_points[:, 1], y, atol=1e-4)
        np.testing.assert_allclose(lane.curve.coefficients, [y, 0, 0, 0], atol=1e-4)
    assert frame.ego.valid and frame.ego.width == pytest.approx(3.5, abs=1e-4)
    assert frame.ego.lateral_offset == pytest.approx(0.0, abs=1e-4)
    assert (frame.ego.left_id, frame.ego.right_id) == (0, 0)  # indices are no track ids


def test_tracks_keep_their_ids_through_a_missed_frame_with_reprojected_points():
    perception = LanePerception()
    frames = _frames(perception, [BOUNDARIES] * 10 + [(5.25, -1.75, -5.25)] + [BOUNDARIES])
    assert frames[1].lanes == [] and frames[1].ego.valid is False
    assert [lane.track_id for lane in frames[2].lanes] == [1, 2, 3, 4]
    assert [lane.position for lane in frames[2].lanes] == [-2, -1, 1, 2]
    missed = frames[10]
    assert [lane.track_id for lane in missed.lanes] == [1, 2, 3, 4]
    assert [lane.measured for lane in missed.lanes] == [True, False, True, True]
    predicted = missed.lanes[1]
    truth = _seen(1.75).points
    assert len(predicted.lane.points) >= 10 and np.all(np.diff(predicted.lane.points[:, 1]) >= 0)
    np.testing.assert_allclose(
        predicted.lane.points[:, 0],
        np.interp(predicted.lane.points[:, 1], truth[:, 1], truth[:, 0]),
        atol=2.0,
    )
    np.testing.assert_allclose(predicted.ground_points[:, 1], 1.75, atol=0.02)
    assert predicted.age == 10 and predicted.existence < missed.lanes[0].existence
    assert missed.ego.left_source == SOURCE_PREDICTED and missed.ego.left_id == 2
    assert missed.ego.width == pytest.approx(3.5, abs=0.02)
    back = frames[11]
    assert [lane.track_id for lane in back.lanes] == [1, 2, 3, 4] and all(
        lane.measured for lane in back.lanes
    )
    assert back.ego.left_source == SOURCE_MEASURED
    np.testing.assert_allclose(back.lanes[0].curve.coefficients, [5.25, 0, 0, 0], atol=0.02)


def test_measured_lanes_keep_the_detectors_points():
    perception = LanePerception()
    lanes = [_seen(y) for y in BOUNDARIES]
    for k in range(3):
        frame = perception.update(lanes, (WIDTH, HEIGHT), k * DT, PROJECTOR)
    assert [lane.lane for lane in frame.lanes] == lanes


def test_image_mode_tracks_in_pixels_without_an_ego_lane():
    perception = LanePerception()
    frames = _frames(perception, [BOUNDARIES] * 5 + [(5.25, 1.75, -5.25)], projector=None)
    assert [lane.track_id for lane in frames[4].lanes] == [1, 2, 3, 4]
    assert [lane.position for lane in frames[4].lanes] == [-2, -1, 1, 2]
    missed = frames[5]
    assert missed.ego is None and [lane.measured for lane in missed.lanes] == [True, True, False, True]
    predicted = missed.lanes[2]
    assert predicted.curve is None and predicted.ground_points is None
    truth = _seen(-1.75).points
    np.testing.assert_allclose(
        predicted.lane.points[:, 0],
        np.interp(predicted.lane.points[:, 1], truth[:, 1], truth[:, 0]),
        atol=2.0,
    )


def test_image_frame_round_trip():
    frame = ImageFrame(WIDTH, HEIGHT)
    pixels = np.array([[820.0, 589.0], [0.0, 0.0], [1639.0, 300.0]])
    xy = frame.to_curve_xy(pixels)
    assert xy[0] == pytest.approx([0.0, 0.0])  # bottom row, centre column
    assert xy[1, 1] == pytest.approx(5.0)  # left edge: positive y
    np.testing.assert_allclose(frame.to_pixels(xy), pixels)


def test_a_camera_appearing_starts_new_tracks_with_new_ids():
    perception = LanePerception()
    image_mode = _frames(perception, [BOUNDARIES] * 3, projector=None)
    assert [lane.track_id for lane in image_mode[-1].lanes] == [1, 2, 3, 4]
    ground = _frames(perception, [BOUNDARIES] * 3, start=3 * DT)
    assert ground[0].lanes == []
    assert [lane.track_id for lane in ground[-1].lanes] == [5, 6, 7, 8]
    perception.reset()
    again = _frames(perception, [BOUNDARIES] * 3, start=6 * DT)
    assert [lane.track_id for lane in again[-1].lanes] == [9, 10, 11, 12]


def test_tracking_halves_the_offset_jitter_of_noisy_detections():
    rng = np.random.default_rng(2)
    tracked, untracked = LanePerception(), LanePerception(tracking=False)
    offsets = {True: [], False: []}
    for k in range(120):
        # Each lane off by 10 cm on the road, each point by 2 px in the image.
        lanes = [_seen(y + rng.normal(0.0, 0.1), noise=2.0, rng=rng) for y in BOUNDARIES]
        for perception, key in ((tracked, True), (untracked, False)):
            offsets[key].append(
                perception.update(lanes, (WIDTH, HEIGHT), k * DT, PROJECTOR).ego.lateral_offset
            )
    jitter = {key: np.std(np.diff(values[5:])) for key, values in offsets.items()}
    assert jitter[True] <= 0.5 * jitter[False]


class _ScriptedDetector:
    """A detector that returns prepared lanes for successive frames (predict only calls detect_batch)."""

    def __init__(self, frames: list[list[Lane]]) -> None:
        self.frames = iter(frames)

    def detect_batch(self, images):
        return [next(self.frames) for _ in images]


def test_predict_track_writes_track_ids_for_a_video(tmp_path):
    width, height = 320, 180
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (width, height))
    for _ in range(8):
        writer.write(np.zeros((height, width, 3), np.uint8))
    writer.release()

    def lanes(bottoms):
        return [_straight(x * width / WIDTH, 150, y_top=90, y_bottom=179) for x in bottoms]

    all_three, missing_middle = (200, 900, 1440), (200, 1440)
    frames = [lanes(all_three)] * 5 + [lanes(missing_middle)] + [lanes(all_three)] * 2
    predict_video(_ScriptedDetector(frames), video, tmp_path / "out", batch_size=3, track=True)
    record = json.loads((tmp_path / "out" / "clip.json").read_text())
    assert [len(frame["lanes"]) for frame in record["frames"]] == [0, 0, 3, 3, 3, 3, 3, 3]
    missed = record["frames"][5]["lanes"]
    assert [lane["id"] for lane in missed] == [1, 2, 3]
    assert [lane["measured"] for lane in missed] == [True, False, True]
    assert [lane["position"] for lane in missed] == [
        -1,
        1,
        2,
    ]  # the middle one meets the bottom right of centre
    assert missed[1]["age"] == 5 and len(missed[1]["points"]) >= 2
    assert (tmp_path / "out" / "clip_lanes.mp4").stat().st_size > 0
