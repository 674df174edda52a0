"""Synthetic data generator: layouts, determinism, categories, label accuracy against the painted markings."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from clrkdnet_core.camera_model import CameraIntrinsics, CameraPose, GroundProjector
from clrkdnet_core.data.synthetic.__main__ import main
from clrkdnet_core.data.synthetic.drive import Curve, Drive, LaneChange
from clrkdnet_core.data.synthetic.render import draw_scene, render_scene
from clrkdnet_core.data.synthetic.sampler import sample_scene
from clrkdnet_core.data.synthetic.scene import CATEGORIES
from clrkdnet_core.data.synthetic.truth import FrameTruth, drive_truth
from clrkdnet_core.data.synthetic.writer import CULANE_CATEGORY_FILES, TRUTH_FILE, generate_dataset
from clrkdnet_core.errors import DatasetError
from clrkdnet_core.lane_curve import GroundCurve
from clrkdnet_core.tracking.motion import EgoMotion


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def culane_root(tmp_path_factory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("culane"), "culane", 12, seed=7, progress=False)


@pytest.fixture(scope="module")
def tusimple_root(tmp_path_factory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("tusimple"), "tusimple", 8, seed=7, progress=False)


def test_same_seed_gives_identical_bytes(culane_root, tusimple_root, tmp_path):
    again = generate_dataset(tmp_path / "c", "culane", 12, seed=7, progress=False)
    assert _digest(again) == _digest(culane_root)
    again = generate_dataset(tmp_path / "t", "tusimple", 8, seed=7, progress=False)
    assert _digest(again) == _digest(tusimple_root)
    other = generate_dataset(tmp_path / "o", "tusimple", 8, seed=8, progress=False)
    assert _digest(other) != _digest(tusimple_root)


def test_culane_layout_and_lists(culane_root):
    lists = culane_root / "list"
    train_gt = (lists / "train_gt.txt").read_text().splitlines()
    assert len(train_gt) == 9  # 12 frames split 0.8 / 0.1 / 0.1 → 9 / 1 / 2
    assert len((lists / "val_gt.txt").read_text().splitlines()) == 1
    test = (lists / "test.txt").read_text().splitlines()
    assert len(test) == 2
    for line in train_gt:
        image, mask, *exist = line.split()
        assert (
            image.startswith("/driver_") and image.endswith(".jpg") and mask.startswith("/laneseg_label_w16/")
        )
        assert len(exist) == 4 and set(exist) <= {"0", "1"}
        assert (culane_root / image[1:]).is_file() and (culane_root / mask[1:]).is_file()
        assert (culane_root / (image[1:-3] + "lines.txt")).is_file()
    assert [line.split()[0] for line in train_gt] == (lists / "train.txt").read_text().splitlines()
    split_files = sorted((lists / "test_split").iterdir())
    assert [p.name for p in split_files] == sorted(CULANE_CATEGORY_FILES.values())
    categorised = [line for p in split_files for line in p.read_text().splitlines()]
    assert sorted(categorised) == sorted(test)


def test_culane_labels_are_official_format_inside_the_image(culane_root):
    for line in (culane_root / "list" / "train_gt.txt").read_text().splitlines():
        image, mask, *exist = line.split()
        text = (culane_root / (image[1:-3] + "lines.txt")).read_text()
        lanes = text.splitlines()
        assert len(lanes) == exist.count("1") and len(lanes) <= 4
        seg = cv2.imread(str(culane_root / mask[1:]), cv2.IMREAD_UNCHANGED)
        assert seg.shape == (590, 1640)
        assert set(np.unique(seg)) == {0} | {k + 1 for k, e in enumerate(exist) if e == "1"}
        for lane in lanes:
            assert lane.endswith(" ")
            values = np.array(lane.split(), dtype=np.float64).reshape(-1, 2)
            assert len(values) >= 3
            assert np.all((values[:, 0] >= 0) & (values[:, 0] < 1640))
            assert np.all(values[:, 1] == np.round(values[:, 1]))
            assert np.all(np.diff(values[:, 1]) == -10) and values[0, 1] <= 590
            assert np.all(values[:, 1] > 0)
        xs_bottom = [float(lane.split()[0]) for lane in lanes if lane.split()[1] == "590"]
        assert xs_bottom == sorted(xs_bottom)  # left to right


def test_tusimple_layout(tusimple_root):
    records = [json.loads(x) for x in (tusimple_root / "label_data_synth.json").read_text().splitlines()]
    assert len(records) == 6
    assert len((tusimple_root / "test_label.json").read_text().splitlines()) == 2  # 8 frames → 6 / 0 / 2
    assert (tusimple_root / "label_data_synth_val.json").read_text() == ""
    for record in records:
        assert list(record) == ["lanes", "h_samples", "raw_file"]
        assert record["h_samples"] == list(range(160, 720, 10))
        assert record["raw_file"].startswith("clips/") and record["raw_file"].endswith("/20.jpg")
        image = cv2.imread(str(tusimple_root / record["raw_file"]))
        assert image.shape == (720, 1280, 3)
        assert 2 <= len(record["lanes"]) <= 5
        for lane in record["lanes"]:
            assert len(lane) == 56
            assert all(x == -2 or 0 <= x < 1280 for x in lane)
        mask_name = record["raw_file"].replace("clips", "seg_label")[:-3] + "png"
        mask = cv2.imread(str(tusimple_root / mask_name), cv2.IMREAD_UNCHANGED)
        assert mask.shape == (720, 1280) and mask.max() <= 6 and mask.max() > 0
    gt_list = (tusimple_root / "seg_label" / "list" / "train_val_gt.txt").read_text().splitlines()
    assert len(gt_list) == 6 and all(len(line.split()) == 8 for line in gt_list)


@pytest.mark.parametrize("category", CATEGORIES)
def test_forced_category_is_reported(category):
    for seed in range(3):
        scene = sample_scene(np.random.default_rng(seed), 1640, 590, category)
        assert scene.category == category
        if category == "cross":
            assert not scene.markings
        else:
            assert 2 <= len(scene.markings) <= 5


def _clean_scene(seed: int, width: int, height: int):
    scene = sample_scene(np.random.default_rng(seed), width, height, "normal")
    markings = tuple(replace(m, style="solid") for m in scene.markings)
    return replace(scene, vehicles=(), patches=(), markings=markings, wear=0.0)


@pytest.mark.parametrize(("seed", "size"), [(0, (1640, 590)), (1, (1280, 720)), (2, (820, 295))])
def test_labels_follow_the_painted_markings(seed, size):
    """In a clean daytime scene the paint across each labelled row is centred on the label.

    The centre is the brightness-weighted centroid of the paint pixels in a ±40 px window; asphalt texture
    moves single rows by a pixel or two, so the test bounds the bias and the median error.
    """
    scene = _clean_scene(seed, *size)
    gray = cv2.cvtColor(draw_scene(scene), cv2.COLOR_BGR2GRAY).astype(np.float64)
    height, width = gray.shape
    ys = np.arange(height - 1, int(scene.camera.horizon) + 40, -7)
    errors = []
    for xs in scene.sample_lanes(ys):
        for x, y in zip(xs, ys, strict=True):
            if np.isnan(x) or not 40 <= x < width - 40:
                continue
            row = gray[int(y), int(x) - 40 : int(x) + 41]
            road = np.median(row)
            paint = row > road + 0.5 * (row.max() - road)
            if row.max() - road < 40 or paint[0] or paint[-1]:
                continue  # faint far paint or a neighbouring lane in the window
            positions = np.arange(int(x) - 40, int(x) + 41)
            weights = (row - road) * paint
            errors.append((positions * weights).sum() / weights.sum() - x)
    errors = np.array(errors)
    assert len(errors) >= 20
    assert abs(errors.mean()) < 0.5
    assert np.median(np.abs(errors)) < 1.0
    assert np.abs(errors).max() < 4.0


def test_render_scene_api():
    image, lanes = render_scene(np.random.default_rng(3), 640, 360)
    assert image.shape == (360, 640, 3) and image.dtype == np.uint8
    assert lanes
    for lane in lanes:
        assert lane.dtype == np.float32 and lane.shape[1] == 2
        assert np.all(np.diff(lane[:, 1]) > 0)  # top to bottom
        assert np.all((lane[:, 0] >= 0) & (lane[:, 0] < 640))
    bottoms = [lane[-1, 0] for lane in lanes if lane[-1, 1] == 359]
    assert bottoms == sorted(bottoms)


def test_sequence_frames_are_continuous():
    drive = Drive(seed=5, width=820, height=295)
    frames = [draw_scene(drive.scene_at(i)).astype(np.float64) for i in range(3)]
    consecutive = np.abs(frames[1] - frames[0]).mean()
    independent = [draw_scene(sample_scene(np.random.default_rng(i), 820, 295)) for i in range(2)]
    unrelated = np.abs(independent[0].astype(np.float64) - independent[1]).mean()
    assert consecutive < unrelated
    a, b = drive.scene_at(0), drive.scene_at(1)
    assert [m.offset for m in a.markings] == [m.offset for m in b.markings]
    assert any(m.style == "dashed" for m in a.markings) == any(
        ma.phase != mb.phase for ma, mb in zip(a.markings, b.markings, strict=True)
    )


def test_cli_writes_dataset(tmp_path, capsys):
    assert (
        main(
            [
                "--out",
                str(tmp_path),
                "--format",
                "tusimple",
                "--n",
                "3",
                "--sequence",
                "--split",
                "1",
                "0",
                "1",
                "--lane-change",
                "0.05",
                "--lane-change-duration",
                "0.15",
            ]
        )
        == 0
    )
    assert "wrote 3 tusimple frames" in capsys.readouterr().out
    assert len((tmp_path / "label_data_synth.json").read_text().splitlines()) == 1
    labels = [json.loads(line) for line in (tmp_path / "test_label.json").read_text().splitlines()]
    assert len(labels) == 2
    # A drive keeps its truth: one line per frame, in frame order, naming the image and its labelled lanes.
    truths = [FrameTruth.from_json(line) for line in (tmp_path / TRUTH_FILE).read_text().splitlines()]
    assert [t.index for t in truths] == [0, 1, 2]
    for truth, label in zip(truths[1:], labels, strict=True):
        assert truth.image == label["raw_file"]
        assert len(truth.gt_lane_ids) == len(label["lanes"])
        assert list(truth.gt_lane_ids) == sorted(truth.gt_lane_ids)  # labels run left to right
    # The lane change (0.05 to 0.2 s) crosses a marking between frame 0 (0 s) and frame 2 (0.2 s).
    assert sum(truth.ego.lane_change != 0 for truth in truths) == 1
    assert truths[0].ego.left_id != truths[2].ego.left_id


def test_independent_frames_have_no_truth_file(culane_root):
    assert not (culane_root / TRUTH_FILE).exists()


def test_bad_arguments_raise_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="format"):
        generate_dataset(tmp_path, "llamas", 3, 0)
    with pytest.raises(DatasetError, match="split"):
        generate_dataset(tmp_path, "culane", 0, 0)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(DatasetError, match=r"cannot create output folder .*a_file"):
        generate_dataset(blocker / "out", "culane", 2, 0)


def _projector(truth: FrameTruth) -> GroundProjector:
    cam = truth.camera
    intrinsics = CameraIntrinsics.pinhole(cam.width, cam.height, cam.fx, cam.fy, cam.cx, cam.cy)
    return GroundProjector(intrinsics, CameraPose.from_xyz_rpy(*truth.pose))


@pytest.mark.parametrize("seed", [7, 12])
def test_truth_agrees_with_the_labels_through_the_camera_model(seed):
    """The labelled pixels, projected to the road with the truth's camera and pose (roll included), give the
    truth's lane cubics and ego lane: the truth describes the image that was drawn."""
    drive = Drive(
        seed, 410, 148, lane_change=LaneChange(at=0.5), curve=Curve(at=0.0, curvature=-1 / 200, duration=4.0)
    )
    for index in (0, 11, 30):
        truth, scene = drive_truth(drive, index), drive.scene_at(index)
        assert truth.camera.width == 410 and truth.pose[2] == pytest.approx(scene.camera.mount_height)
        ys = np.arange(60.0, 148.0, 1.0)
        projector = _projector(truth)
        fitted = {}
        for lane, xs in zip(truth.lanes, scene.sample_lanes(ys), strict=True):
            ok = ~np.isnan(xs)
            ground = projector.project(xs[ok], ys[ok])[:, :2]
            if np.isfinite(ground).all(axis=1).sum() >= 20:
                fitted[lane.id] = GroundCurve.fit(ground)
                x = np.linspace(fitted[lane.id].x_min, min(fitted[lane.id].x_max, 40.0), 20)
                np.testing.assert_allclose(fitted[lane.id].y_at(x), lane.curve.y_at(x), atol=0.02)
        ego = truth.ego
        left, right = fitted[ego.left_id], fitted[ego.right_id]
        assert (left.y_at(0.0) + right.y_at(0.0)) / 2 == pytest.approx(ego.lateral_offset, abs=0.03)
        assert left.y_at(0.0) - right.y_at(0.0) == pytest.approx(ego.width, abs=0.03)
        slope = (left.slope_at(0.0) + right.slope_at(0.0)) / 2
        assert np.arctan(slope) == pytest.approx(ego.heading, abs=0.002)
        curvature = (left.curvature_at(0.0) + right.curvature_at(0.0)) / 2
        assert curvature == pytest.approx(ego.curvature, abs=2e-4)
        assert ego.left_distance > 0 and ego.right_distance > 0


def test_lane_ids_are_stable_and_change_side_on_a_lane_change():
    drive = Drive(7, 410, 148, lane_change=LaneChange(at=1.0, direction="left", duration=2.5))
    truths = [drive_truth(drive, i) for i in range(0, 45)]
    ids = {tuple(lane.id for lane in truth.lanes) for truth in truths}
    assert ids == {tuple(range(1, len(drive.markings) + 1))}
    changes = [(t.index, t.ego.lane_change) for t in truths if t.ego.lane_change]
    assert len(changes) == 1 and changes[0][1] == 1  # LANE_CHANGE_LEFT, once
    before, after = truths[changes[0][0] - 1].ego, truths[changes[0][0]].ego
    assert after.right_id == before.left_id and after.left_id == before.left_id - 1
    assert 10 <= changes[0][0] <= 35  # within the 2.5 s manoeuvre that starts at 1 s
    # Widths stay the lane's; the ego crossed the marking, so its offset jumped by about one lane width.
    assert after.width == pytest.approx(before.width)
    assert after.lateral_offset - before.lateral_offset == pytest.approx(before.width, abs=0.5)
    assert all(t.ego.lateral_velocity > 0 for t in truths[12:34])  # moving left throughout


def test_a_lane_change_needs_a_lane_to_change_into():
    checked = set()
    for seed in range(50):
        drive = Drive(seed, 64, 24)
        lanes, lane = len(drive.centres), drive.centres.index(drive.ego)
        if lanes == 1 and "one lane" not in checked:
            with pytest.raises(DatasetError, match=rf"seed {seed} has no lane right .*\(1 lane\(s\)\)"):
                Drive(seed, 64, 24, lane_change=LaneChange(at=1.0))
            checked.add("one lane")
        if lanes > 1 and lane == 0 and "leftmost" not in checked:
            with pytest.raises(DatasetError, match=f"seed {seed} has no lane left"):
                Drive(seed, 64, 24, lane_change=LaneChange(at=1.0, direction="left"))
            # "auto" goes where there is a lane: right of the leftmost one (the road shifts left).
            assert Drive(seed, 64, 24, lane_change=LaneChange(at=1.0)).lane_change_shift > 0.0
            checked.add("leftmost")
    assert checked == {"one lane", "leftmost"}


def test_odometry_predicts_how_the_road_moves_between_frames():
    """Moving the lanes of one frame by the truth's speed and yaw rate gives the next frame's lanes, through
    a lane change and a curve's entry (the drive's clock is index / fps)."""
    drive = Drive(7, 410, 148, lane_change=LaneChange(at=1.0), curve=Curve(at=2.0, curvature=1 / 250))
    for index in range(5, 60, 4):
        a, b = drive_truth(drive, index), drive_truth(drive, index + 1)
        motion = EgoMotion((a.speed + b.speed) / 2, (a.yaw_rate + b.yaw_rate) / 2)
        dx, dy, dyaw = motion.displacement(b.time - a.time)
        c, s = np.cos(dyaw), np.sin(dyaw)
        for lane_a, lane_b in zip(a.lanes, b.lanes, strict=True):
            moved = lane_a.curve.sample(np.linspace(0.0, 60.0, 601)) - [dx, dy]
            moved = moved @ np.array([[c, -s], [s, c]])  # into the new frame: rotate by -dyaw
            for x in (10.0, 25.0):
                assert np.interp(x, moved[:, 0], moved[:, 1]) == pytest.approx(lane_b.curve.y_at(x), abs=0.03)


def test_drive_options_are_checked():
    with pytest.raises(DatasetError, match="direction"):
        LaneChange(at=1.0, direction="up")
    with pytest.raises(DatasetError, match="duration"):
        LaneChange(at=1.0, duration=0.0)
    with pytest.raises(DatasetError, match="radius under 150 m"):
        Curve(at=0.0, curvature=0.02)
    with pytest.raises(DatasetError, match="needs --sequence"):
        main(["--out", "unused", "--n", "2", "--curve", "1"])


def test_options_leave_the_drive_as_it_was_before_they_act():
    plain = Drive(7, 410, 148)
    late = Drive(7, 410, 148, lane_change=LaneChange(at=5.0), curve=Curve(at=5.0))
    for index in (0, 20, 49):
        assert plain.scene_at(index).road == late.scene_at(index).road
    assert plain.scene_at(51).road != late.scene_at(51).road


def test_a_curve_has_the_asked_curvature_on_its_plateau():
    drive = Drive(7, 410, 148, curve=Curve(at=1.0, curvature=-1 / 250, duration=6.0))  # bending right
    middle = drive_truth(drive, 40)  # 4 s: in the plateau between 3 and 5 s
    assert middle.ego.curvature == pytest.approx(-1 / 250, rel=1e-3)
    assert middle.yaw_rate == pytest.approx(-drive.speed / 250, rel=0.05)  # following the bend
