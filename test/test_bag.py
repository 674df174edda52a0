"""Bag tools: datasets -> rosbag2 bags (mcap and sqlite3, raw and compressed) -> offline evaluation."""

import json
import shutil
import sqlite3
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from clrkdnet_core.data.formats import CULANE_IMAGE_SIZE, TUSIMPLE_H_SAMPLES, TUSIMPLE_IMAGE_SIZE
from clrkdnet_core.errors import DatasetError
from clrkdnet_core.lane import Lane
from clrkdnet_ros.bag.__main__ import format_summary, main
from clrkdnet_ros.bag.bagfile import LaneBag
from clrkdnet_ros.bag.evaluate import evaluate_bag, sample_at_rows
from clrkdnet_ros.bag.report import OverlayVideo, write_report
from clrkdnet_ros.bag.sources import read_source
from clrkdnet_ros.bag.typestore import lane_typestore
from clrkdnet_ros.bag.writer import write_bag

REPO = Path(__file__).resolve().parents[1]
CULANE_SIZE = CULANE_IMAGE_SIZE
TUSIMPLE_SIZE = TUSIMPLE_IMAGE_SIZE
H_SAMPLES = list(TUSIMPLE_H_SAMPLES)


def road_lanes(frame: int, width: int, height: int, top: int) -> list[np.ndarray]:
    """Three straight-ish lanes converging upwards, shifted a little every frame; (N,2) x,y bottom to top."""
    ys = np.arange(height - 1, top, -10, dtype=np.float32)
    lanes = []
    for k, bottom in enumerate((0.3, 0.55, 0.8)):
        xs = bottom * width + (ys - (height - 1)) * (0.8 - 0.6 * k) + 4 * frame
        lanes.append(np.stack([xs, ys], axis=1))
    return lanes


def draw(lanes: list[np.ndarray], width: int, height: int, frame: int) -> np.ndarray:
    image = np.full((height, width, 3), 50 + 10 * frame, np.uint8)
    image[: height // 3] = (200, 150, 90)  # sky, so every frame differs in content as well as lanes
    for lane in lanes:
        cv2.polylines(image, [np.round(lane).astype(np.int32)], False, (255, 255, 255), 6)
    return image


@pytest.fixture(scope="module")
def culane_root(tmp_path_factory):
    """A 4-image CULane-layout set: images, .lines.txt, list/test.txt and two category lists."""
    root = tmp_path_factory.mktemp("culane")
    (root / "list" / "test_split").mkdir(parents=True)
    entries = []
    for i in range(4):
        folder = root / "driver_100_30frame" / "clip.MP4"
        folder.mkdir(parents=True, exist_ok=True)
        lanes = road_lanes(i, *CULANE_SIZE, top=260)
        cv2.imwrite(str(folder / f"{i:05d}.jpg"), draw(lanes, *CULANE_SIZE, i))
        text = "\n".join(" ".join(f"{v:.3f}" for v in lane.ravel()) for lane in lanes) + "\n"
        (folder / f"{i:05d}.lines.txt").write_text(text)
        entries.append(f"/driver_100_30frame/clip.MP4/{i:05d}.jpg")
    (root / "list" / "test.txt").write_text("\n".join(entries) + "\n")
    (root / "list" / "test_split" / "test0_normal.txt").write_text("\n".join(entries[:3]) + "\n")
    (root / "list" / "test_split" / "test6_curve.txt").write_text(entries[3] + "\n")
    return root


@pytest.fixture(scope="module")
def tusimple_root(tmp_path_factory):
    """A 3-image TuSimple-layout set with a label file of JSON lines."""
    root = tmp_path_factory.mktemp("tusimple")
    labels = []
    for i in range(3):
        lanes = road_lanes(i, *TUSIMPLE_SIZE, top=150)
        clip = root / "clips" / "0530" / f"clip{i}"
        clip.mkdir(parents=True)
        cv2.imwrite(str(clip / "20.jpg"), draw(lanes, *TUSIMPLE_SIZE, i))
        xs = [sample_at_rows(Lane(lane[::-1], 1.0), tuple(H_SAMPLES)) for lane in lanes]
        labels.append({"lanes": xs, "h_samples": H_SAMPLES, "raw_file": f"clips/0530/clip{i}/20.jpg"})
    (root / "test_label.json").write_text("".join(json.dumps(label) + "\n" for label in labels))
    return root


@pytest.fixture(scope="module")
def culane_bag(culane_root, tmp_path_factory):
    bag = tmp_path_factory.mktemp("bags") / "culane_mcap"
    write_bag(read_source("culane", culane_root), bag, storage="mcap")
    return bag


class NoLanes:
    def detect(self, image):
        return []


class OracleDetector:
    """Returns the bag's own GT for each image: a perfect model for checking the scoring."""

    def __init__(self, bag_path):
        with LaneBag(bag_path) as bag:
            self.frames = {frame.image.tobytes(): frame for frame in bag.frames()}

    def frame_of(self, image):
        return self.frames[image.tobytes()]

    def detect(self, image):
        return self.frame_of(image).gt_lanes


def sorted_by_bottom(lanes):
    return sorted(lanes, key=lambda lane: lane.points[-1, 0])


@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "compressed"])
@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_round_trips_images_and_lanes(culane_root, tmp_path, storage, compressed):
    source = read_source("culane", culane_root)
    bag_path = tmp_path / "bag"
    assert write_bag(source, bag_path, storage=storage, rate=20.0, compressed=compressed) == 4
    assert list(bag_path.glob("*.mcap" if storage == "mcap" else "*.db3"))

    with LaneBag(bag_path) as bag:
        assert bag.image_topic == ("/camera/image_raw/compressed" if compressed else "/camera/image_raw")
        assert bag.gt_topic == "/lanes_gt"
        frames = list(bag.frames())
    assert [frame.index for frame in frames] == [0, 1, 2, 3]
    assert np.diff([frame.stamp_ns for frame in frames]).tolist() == [50_000_000] * 3
    assert [frame.category for frame in frames] == ["normal", "normal", "normal", "curve"]
    for frame, expected in zip(frames, source.frames, strict=True):
        original = cv2.imread(str(expected.image_path))
        if compressed:
            assert np.abs(frame.image.astype(int) - original).mean() < 3.0
        else:
            np.testing.assert_array_equal(frame.image, original)
        assert len(frame.gt_lanes) == 3
        for got, want in zip(sorted_by_bottom(frame.gt_lanes), sorted_by_bottom(expected.lanes), strict=True):
            np.testing.assert_allclose(got.points, want.points, atol=1e-3)


def test_bag_has_camera_info_and_embedded_definitions(culane_bag):
    """Any rosbags reader (no typestore of ours) can decode it: the bag carries its message definitions."""
    with AnyReader([culane_bag]) as reader:
        topics = {conn.topic: conn.msgtype for conn in reader.connections}
        assert topics == {
            "/camera/image_raw": "sensor_msgs/msg/Image",
            "/camera/camera_info": "sensor_msgs/msg/CameraInfo",
            "/lanes_gt": "clrkdnet_msgs/msg/LaneArray",
        }
        info_conn = next(c for c in reader.connections if c.topic == "/camera/camera_info")
        _, _, raw = next(reader.messages(connections=[info_conn]))
        info = reader.deserialize(raw, info_conn.msgtype)
    assert (info.width, info.height) == CULANE_SIZE
    assert info.header.frame_id == "camera"


def test_tusimple_source_round_trips(tusimple_root, tmp_path):
    source = read_source("tusimple", tusimple_root)
    assert [frame.image_path.parent.name for frame in source.frames] == ["clip0", "clip1", "clip2"]
    write_bag(source, tmp_path / "bag", storage="sqlite3")
    with LaneBag(tmp_path / "bag") as bag:
        frame = next(bag.frames())
    assert frame.image.shape == (720, 1280, 3)
    assert len(frame.gt_lanes) == 3


def test_eval_of_ground_truth_scores_perfectly_culane(culane_bag, tmp_path):
    with LaneBag(culane_bag) as bag:
        video = OverlayVideo(tmp_path / "overlay.mp4")
        summary, rows = evaluate_bag(bag, OracleDetector(culane_bag), on_frame=video)
        video.close()
    summary["model"] = {"preset": "oracle"}
    report = write_report(tmp_path, summary, rows)

    assert report["metric"] == "culane"
    metrics = report["metrics"]
    assert (metrics["tp"], metrics["fp"], metrics["fn"]) == (12, 0, 0)
    assert metrics["f1@50"] == metrics["f1@75"] == 1.0
    assert report["per_category"]["normal"]["tp"] == 9
    assert report["per_category"]["curve"]["f1"] == 1.0
    assert report["frames"] == 4 and report["image_size"] == list(CULANE_SIZE)
    assert report["latency_ms"]["p95"] >= report["latency_ms"]["p50"] >= 0
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["metrics"]["f1"] == 1.0
    assert set(saved["files"]) == {"frames_csv", "latency_plot", "score_plot", "overlay_video"}
    for name in saved["files"].values():
        assert (tmp_path / name).stat().st_size > 0
    csv_lines = (tmp_path / "frames.csv").read_text().splitlines()
    assert csv_lines[0].startswith("index,stamp_ns,latency_ms,num_pred,num_gt,tp,fp,fn,f1")
    assert len(csv_lines) == 5
    capture = cv2.VideoCapture(str(tmp_path / "overlay.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
    capture.release()
    assert "F1@50 1.0000" in format_summary(report)


def test_eval_of_ground_truth_scores_perfectly_tusimple(tusimple_root, tmp_path):
    write_bag(read_source("tusimple", tusimple_root), tmp_path / "bag")
    with LaneBag(tmp_path / "bag") as bag:
        summary, rows = evaluate_bag(bag, OracleDetector(tmp_path / "bag"))
    assert summary["metric"] == "tusimple"
    assert summary["metrics"]["accuracy"] == pytest.approx(1.0)
    assert (summary["metrics"]["fp"], summary["metrics"]["fn"], summary["metrics"]["f1"]) == (0.0, 0.0, 1.0)
    assert [row.accuracy for row in rows] == [1.0, 1.0, 1.0]


def test_eval_counts_misses_and_false_lanes(culane_bag, tmp_path):
    """A model that finds only the left lane, shifted far off in the last frame, is scored accordingly."""

    class LeftLaneOnly(OracleDetector):
        def detect(self, image):
            frame = self.frame_of(image)
            left = sorted_by_bottom(frame.gt_lanes)[0]
            shift = 400.0 if frame.index == 3 else 0.0
            return [Lane(left.points + np.float32([shift, 0.0]), 0.9)]

    with LaneBag(culane_bag) as bag:
        summary, rows = evaluate_bag(bag, LeftLaneOnly(culane_bag))
    assert [(row.tp, row.fp, row.fn) for row in rows] == [(1, 0, 2)] * 3 + [(0, 1, 3)]
    assert (summary["metrics"]["tp"], summary["metrics"]["fp"], summary["metrics"]["fn"]) == (3, 1, 9)
    assert summary["metrics"]["precision"] == 0.75 and summary["metrics"]["recall"] == 0.25


def test_bag_without_ground_truth_skips_metrics(culane_root, tmp_path):
    source = read_source("culane", culane_root)
    bag_path = tmp_path / "no_gt"
    write_bag(source, bag_path, storage="sqlite3")
    # Drop the GT topic the way a plain `ros2 bag record /camera/image_raw` bag would lack it.
    with sqlite3.connect(next(bag_path.glob("*.db3"))) as db:
        (topic_id,) = db.execute("SELECT id FROM topics WHERE name = '/lanes_gt'").fetchone()
        db.execute("DELETE FROM messages WHERE topic_id = ?", (topic_id,))
        db.execute("DELETE FROM topics WHERE id = ?", (topic_id,))
    metadata = bag_path / "metadata.yaml"
    text = metadata.read_text()
    metadata.write_text(_drop_topic_from_metadata(text, "/lanes_gt"))

    with LaneBag(bag_path) as bag:
        assert bag.gt_topic is None
        summary, rows = evaluate_bag(bag, NoLanes())
    assert summary["metrics"] is None and "lanes_gt" in summary["metrics_skipped"]
    assert len(rows) == 4 and all(row.num_gt is None for row in rows)
    summary["model"] = {}
    report = write_report(tmp_path / "report", summary, rows)
    assert "metrics skipped" in format_summary(report)
    assert "score_plot" not in report["files"]


def _drop_topic_from_metadata(text: str, topic: str) -> str:
    import yaml

    data = yaml.safe_load(text)
    info = data["rosbag2_bagfile_information"]
    dropped = [t for t in info["topics_with_message_count"] if t["topic_metadata"]["name"] == topic]
    info["topics_with_message_count"] = [t for t in info["topics_with_message_count"] if t not in dropped]
    info["message_count"] -= sum(t["message_count"] for t in dropped)
    for entry in info.get("files", []):
        entry["message_count"] -= sum(t["message_count"] for t in dropped)
    return yaml.safe_dump(data)


def bad_bags(tmp_path, culane_bag):
    """name -> (bag path, expected part of the one-line error)."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    empty = tmp_path / "empty"
    with Writer(empty, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        writer.add_connection("/camera/image_raw", "sensor_msgs/msg/Image", typestore=lane_typestore())

    no_images = tmp_path / "no_images"
    with Writer(no_images, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        typestore = lane_typestore()
        conn = writer.add_connection("/lanes_gt", "clrkdnet_msgs/msg/LaneArray", typestore=typestore)
        lane_array = typestore.types["clrkdnet_msgs/msg/LaneArray"]
        header = typestore.types["std_msgs/msg/Header"]
        stamp = typestore.types["builtin_interfaces/msg/Time"]
        msg = lane_array(header(stamp(0, 0), "camera"), 1640, 590, "", [])
        writer.write(conn, 1, typestore.serialize_cdr(msg, "clrkdnet_msgs/msg/LaneArray"))

    truncated = tmp_path / "truncated"
    shutil.copytree(culane_bag, truncated)
    mcap = next(truncated.glob("*.mcap"))
    with mcap.open("r+b") as stream:
        stream.truncate(mcap.stat().st_size // 2)

    return {
        "missing": (tmp_path / "does_not_exist", "bag not found"),
        "empty": (empty, "contains no messages"),
        "no_images": (no_images, "has no sensor_msgs/Image or CompressedImage topic"),
        "truncated": (truncated, "damaged, truncated"),
        "wrong_topic": (culane_bag, "has no image topic '/front/image'"),
    }


@pytest.mark.parametrize("case", ["missing", "empty", "no_images", "truncated", "wrong_topic"])
def test_bad_bags_give_one_clear_message(case, culane_bag, tmp_path, capsys):
    path, expected = bad_bags(tmp_path, culane_bag)[case]
    weights = tmp_path / "never_loaded.pth"
    weights.write_bytes(b"")  # the bag is checked before the model is loaded
    argv = ["eval", str(path), "--preset", "clrkdnet_resnet18_culane", "--weights", str(weights)]
    if case == "wrong_topic":
        argv += ["--topic", "/front/image"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and expected in err
    assert "\n" not in err


def test_make_cli_and_its_errors(culane_root, tmp_path, capsys):
    out = tmp_path / "cli_bag"
    argv = ["make", "--from", "synthetic", str(culane_root), "--out", str(out), "--storage", "sqlite3"]
    assert main(argv) == 0
    assert "wrote 4 frames (culane)" in capsys.readouterr().out
    assert main(argv) == 2  # never overwrites
    assert "exists already" in capsys.readouterr().err
    missing_list = ["make", "--from", "culane", str(culane_root), "--list", str(tmp_path / "x.txt")]
    assert main([*missing_list, "--out", str(tmp_path / "b2")]) == 2
    assert "list file not found" in capsys.readouterr().err
    assert not (tmp_path / "b2").exists()


def test_unreadable_image_leaves_no_half_written_bag(culane_root, tmp_path):
    source = read_source("culane", culane_root)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    frames = [*source.frames[:2], type(source.frames[0])(broken, [], None)]
    with pytest.raises(DatasetError, match="cannot read image"):
        write_bag(type(source)("culane", frames), tmp_path / "bag")
    assert not (tmp_path / "bag").exists()


def test_make_from_the_synthetic_generator(tmp_path):
    """Both generator layouts are recognised; GT lanes and CULane categories carry over into the bag."""
    from clrkdnet_core.data.synthetic import generate_dataset

    for fmt, storage, compressed in (("culane", "sqlite3", False), ("tusimple", "mcap", True)):
        root = generate_dataset(
            tmp_path / fmt, fmt, n=4, seed=3, sequence=True, split=(0, 0, 1), progress=False
        )
        source = read_source("synthetic", root)
        assert source.format == fmt and len(source.frames) == 4
        write_bag(source, tmp_path / f"{fmt}_bag", storage=storage, compressed=compressed)
        with LaneBag(tmp_path / f"{fmt}_bag") as bag:
            frames = list(bag.frames())
        assert [len(frame.gt_lanes) for frame in frames] == [len(frame.lanes) for frame in source.frames]
        if fmt == "culane":
            assert all(frame.category for frame in frames)


@pytest.fixture(scope="module")
def drive_root(tmp_path_factory):
    """A 6-frame synthetic drive (TuSimple layout) with a quick lane change in its middle, and its truth."""
    from clrkdnet_core.data.synthetic import generate_dataset
    from clrkdnet_core.data.synthetic.drive import LaneChange

    root = tmp_path_factory.mktemp("drive")
    change = LaneChange(at=0.1, duration=0.35)
    return generate_dataset(
        root, "tusimple", 6, seed=7, sequence=True, split=(0, 0, 1), progress=False, lane_change=change
    )


@pytest.fixture(scope="module")
def drive_bag(drive_root, tmp_path_factory):
    bag = tmp_path_factory.mktemp("bags") / "drive"
    write_bag(read_source("synthetic", drive_root), bag, storage="mcap", rate=20.0, compressed=True)
    return bag


def test_a_synthetic_drive_bag_carries_its_camera_pose_motion_and_truth(drive_root, drive_bag):
    """The bag of a drive says what a robot's recording says (a calibrated camera_info, /tf_static, /odom)
    and the truth (marking ids, the ego lane), and LaneBag reads all of it back."""
    from clrkdnet_core.camera_model import CameraPose

    truths = [frame.truth for frame in read_source("synthetic", drive_root).frames]
    with LaneBag(drive_bag) as bag:
        info = bag.camera_info()
        transforms = bag.static_transforms()
        static = bag.static_transforms_message()
        frames = list(bag.frames())
        played = {topic for topic, *_ in bag.playback()}
    assert played == {"/camera/image_raw/compressed", "/camera/camera_info", "/odom"}
    assert info.header.frame_id == "camera_optical_frame" and (info.width, info.height) == TUSIMPLE_SIZE
    np.testing.assert_allclose(np.reshape(info.k, (3, 3)), truths[0].camera.k())
    np.testing.assert_allclose(np.reshape(info.p, (3, 4))[:, :3], truths[0].camera.k())
    np.testing.assert_allclose(np.reshape(info.r, (3, 3)), np.eye(3))
    assert info.distortion_model == "plumb_bob" and not np.any(info.d)

    (transform,) = transforms
    assert (transform.header.frame_id, transform.child_frame_id) == ("base_link", "camera_optical_frame")
    t, q = transform.transform.translation, transform.transform.rotation
    pose = CameraPose.from_transform([t.x, t.y, t.z], [q.x, q.y, q.z, q.w])
    mount = CameraPose.from_xyz_rpy(*truths[0].mount)
    np.testing.assert_allclose(pose.rotation, mount.rotation, atol=1e-9)
    np.testing.assert_allclose(pose.translation, mount.translation)
    assert isinstance(static, bytes) and static
    import yaml

    info_yaml = yaml.safe_load((drive_bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    qos = {
        t["topic_metadata"]["name"]: t["topic_metadata"]["offered_qos_profiles"]
        for t in info_yaml["topics_with_message_count"]
    }
    assert all(isinstance(profile, str) for profile in qos.values())  # metadata version 8, Humble-readable
    assert "durability: 1" in qos["/tf_static"]  # transient local: a player latches it

    scale = 20.0 / truths[0].fps  # the drive's 10 fps written at 20 Hz: velocities in the bag's clock
    changes = 0
    for frame, truth in zip(frames, truths, strict=True):
        assert frame.camera_info.header.frame_id == "camera_optical_frame"
        np.testing.assert_allclose(np.reshape(frame.camera_info.k, (3, 3)), truth.camera.k())
        assert frame.motion.speed == pytest.approx(truth.speed * scale)
        assert frame.motion.yaw_rate == pytest.approx(truth.yaw_rate * scale)
        assert frame.odometry.header.frame_id == "odom" and frame.odometry.child_frame_id == "base_link"
        assert frame.gt_ids == sorted(truth.gt_lane_ids)  # left to right
        assert frame.gt_positions == [truth.lane(i).position for i in frame.gt_ids]
        ego = frame.ego_truth
        assert ego.valid and (ego.left_id, ego.right_id) == (truth.ego.left_id, truth.ego.right_id)
        for name in ("lateral_offset", "heading", "curvature", "width", "left_distance", "right_distance"):
            assert getattr(ego, name) == pytest.approx(getattr(truth.ego, name), rel=1e-6, abs=1e-7)
        assert ego.lateral_velocity == pytest.approx(truth.ego.lateral_velocity * scale, rel=1e-6)
        changes += ego.lane_change != 0
    assert changes == 1
    # The pose is integrated from the twist: frames 1/20 s apart at the bag's speed.
    xs = [frame.odometry.pose.pose.position.x for frame in frames]
    assert xs[0] == 0.0 and xs[1] == pytest.approx(frames[0].motion.speed / 20.0, rel=1e-3)


def test_dataset_bags_have_no_truth(culane_bag):
    with LaneBag(culane_bag) as bag:
        assert bag.static_transforms() == [] and bag.static_transforms_message() is None
        info = bag.camera_info()
        frame = next(bag.frames())
    assert info.header.frame_id == "camera" and not np.any(info.k)  # a dataset's camera is unknown
    assert frame.camera_info is not None and frame.odometry is None and frame.motion is None
    assert frame.gt_ids is None and frame.gt_positions is None and frame.ego_truth is None


def test_a_truth_file_that_does_not_match_the_labels_is_refused(drive_root, tmp_path):
    root = tmp_path / "drive"
    shutil.copytree(drive_root, root)
    lines = (root / "truth.jsonl").read_text().splitlines()
    record = json.loads(lines[2])
    record["gt_lane_ids"] = record["gt_lane_ids"][:-1]
    lines[2] = json.dumps(record)
    (root / "truth.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"does not match the labels of .*00002/20\.jpg"):
        read_source("synthetic", root)
    (root / "truth.jsonl").write_text("{}\n")
    with pytest.raises(DatasetError, match=r"truth\.jsonl line 1: not a synthetic frame's truth"):
        read_source("synthetic", root)


def test_eval_cli_with_a_model_writes_the_report(culane_root, tmp_path, capsys):
    import hashlib

    import torch

    from clrkdnet_core import build_model
    from clrkdnet_core.checkpoint import save_checkpoint

    source = read_source("culane", culane_root)
    bag_path = tmp_path / "two_frames"
    write_bag(type(source)("culane", source.frames[:2]), bag_path)
    weights = tmp_path / "random.pth"
    torch.manual_seed(0)
    save_checkpoint(weights, build_model("clrkdnet_resnet18_culane"), preset="clrkdnet_resnet18_culane")

    argv = ["eval", str(bag_path), "--preset", "clrkdnet_resnet18_culane", "--weights", str(weights)]
    assert main([*argv, "--device", "cpu", "--backend", "torch", "--out", str(tmp_path / "report")]) == 0
    printed = capsys.readouterr().out
    assert "2 frames, CULane F1@50" in printed and "latency p50" in printed
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["model"] == {
        "preset": "clrkdnet_resnet18_culane",
        "weights": str(weights),
        "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "backend": "torch",
        "precision": "fp32",
        "device": "cpu",
    }
    assert report["metric"] == "culane" and report["metrics"]["fn"] + report["metrics"]["tp"] == 6
    assert report["per_category"] == {"normal": report["per_category"]["normal"]}
    assert (tmp_path / "report" / "overlay.mp4").stat().st_size > 0


@pytest.mark.ros
def test_replay_reports_a_node_that_dies_or_never_comes(culane_bag, tmp_path):
    import sys

    from clrkdnet_ros.bag.replay import ReplayError, replay_bag

    with LaneBag(culane_bag) as bag:
        with pytest.raises(ReplayError, match="exited with code 3 before it was ready"):
            replay_bag(bag, tmp_path / "dies", [sys.executable, "-c", "raise SystemExit(3)"])
        with pytest.raises(ReplayError, match="no node subscribed to /camera/image_raw"):
            replay_bag(bag, tmp_path / "absent", None, startup_timeout_s=1.0)


@pytest.mark.slow
@pytest.mark.ros
def test_live_replay_agrees_with_offline_eval_on_processed_frames(culane_root, tmp_path, capsys):
    """The node, started by `bag replay` with tracking off, gets the bag over DDS; its lanes score as offline
    detection does (with tracking on it publishes its tracks, which the first frames have not confirmed)."""
    import torch

    from clrkdnet_core import build_model
    from clrkdnet_core.checkpoint import save_checkpoint
    from clrkdnet_core.inference import LaneDetector

    bag_path = tmp_path / "bag"
    write_bag(read_source("culane", culane_root), bag_path, rate=2.0, compressed=True)
    weights = tmp_path / "random.pth"
    torch.manual_seed(0)
    save_checkpoint(weights, build_model("clrkdnet_resnet18_culane"), preset="clrkdnet_resnet18_culane")

    argv = ["replay", str(bag_path), "--preset", "clrkdnet_resnet18_culane", "--weights", str(weights)]
    assert main([*argv, "--device", "cpu", "--no-tracking", "--out", str(tmp_path / "live")]) == 0
    assert "4 frames played" in capsys.readouterr().out
    live = json.loads((tmp_path / "live" / "report.json").read_text())
    assert live["mode"] == "live" and live["frames_played"] == 4
    assert live["frames"] >= 1 and live["frames"] + live["frames_dropped"] == 4
    assert live["latency_ms"]["p50"] > 0 and live["model"]["weights"] == str(weights)
    live_rows = list(csv_rows(tmp_path / "live" / "frames.csv"))

    detector = LaneDetector.from_preset("clrkdnet_resnet18_culane", weights, device="cpu")
    with LaneBag(bag_path) as bag:
        _, offline_rows = evaluate_bag(bag, detector)
    offline = {row.index: (row.num_pred, row.tp, row.fp, row.fn) for row in offline_rows}
    for row in live_rows:
        assert offline[int(row["index"])] == tuple(int(row[k]) for k in ("num_pred", "tp", "fp", "fn"))


def csv_rows(path):
    import csv

    with path.open() as stream:
        yield from csv.DictReader(stream)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bags_are_written_with_metadata_readable_from_humble_to_kilted(culane_root, tmp_path, storage):
    import yaml

    bag_path = tmp_path / "bag"
    write_bag(read_source("culane", culane_root), bag_path, storage=storage)
    info = yaml.safe_load((bag_path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["version"] == 8
    assert len(info["topics_with_message_count"]) == 3
    for topic in info["topics_with_message_count"]:
        # Humble parses this field as a string (empty: play with the default QoS); version 9 made it a list.
        assert isinstance(topic["topic_metadata"]["offered_qos_profiles"], str)


def _as_humble_sqlite3_bag(bag_path):
    """Rewrite a bag as Humble's rosbag2 writes it: metadata version 5, no schema/definition tables, no
    type hashes, QoS as a YAML string."""
    import yaml

    (db_path,) = bag_path.glob("*.db3")
    with sqlite3.connect(db_path) as db:
        topics = db.execute("SELECT id, name, type, serialization_format FROM topics").fetchall()
        messages = db.execute("SELECT id, topic_id, timestamp, data FROM messages").fetchall()
    db_path.unlink()
    with sqlite3.connect(db_path) as db:
        db.executescript(
            "CREATE TABLE topics(id INTEGER PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL, "
            "serialization_format TEXT NOT NULL, offered_qos_profiles TEXT NOT NULL);"
            "CREATE TABLE messages(id INTEGER PRIMARY KEY, topic_id INTEGER NOT NULL, "
            "timestamp INTEGER NOT NULL, data BLOB NOT NULL);"
            "CREATE INDEX timestamp_idx ON messages (timestamp ASC);"
        )
        forever = "\n    sec: 9223372036\n    nsec: 854775807"
        qos = (
            "- history: 3\n  depth: 0\n  reliability: 1\n  durability: 2\n"
            f"  deadline:{forever}\n  lifespan:{forever}\n  liveliness: 1\n"
            f"  liveliness_lease_duration:{forever}\n  avoid_ros_namespace_conventions: false"
        )
        db.executemany("INSERT INTO topics VALUES (?, ?, ?, ?, ?)", [(*row, qos) for row in topics])
        db.executemany("INSERT INTO messages VALUES (?, ?, ?, ?)", messages)
    metadata = bag_path / "metadata.yaml"
    info = yaml.safe_load(metadata.read_text())["rosbag2_bagfile_information"]
    info["version"] = 5
    for key in ("custom_data", "ros_distro"):
        info.pop(key)
    for topic in info["topics_with_message_count"]:
        topic["topic_metadata"].pop("type_description_hash")
        topic["topic_metadata"]["offered_qos_profiles"] = qos
    metadata.write_text(yaml.safe_dump({"rosbag2_bagfile_information": info}))


def test_bags_recorded_by_humble_are_read_and_scored(culane_root, tmp_path):
    bag_path = tmp_path / "humble_bag"
    write_bag(read_source("culane", culane_root), bag_path, storage="sqlite3")
    _as_humble_sqlite3_bag(bag_path)
    with LaneBag(bag_path) as bag:
        assert bag.image_topic == "/camera/image_raw"
        summary, rows = evaluate_bag(bag, OracleDetector(bag_path))
    assert len(rows) == 4
    assert (summary["metrics"]["tp"], summary["metrics"]["fp"], summary["metrics"]["fn"]) == (12, 0, 0)


# The shipped demo student: a real detector, small and fast enough for a test.
SHIPPED_MODEL = ["--preset", str(REPO / "models" / "clrkdnet_resnet18_synthetic.yaml")]
SHIPPED_MODEL += ["--weights", str(REPO / "models" / "clrkdnet_resnet18_synthetic.pth"), "--device", "cpu"]


@pytest.mark.slow
def test_bag_eval_and_evaluate_model_give_one_score(tmp_path, capsys):
    """One scorer: a generated set scored as a bag (`bag eval`), by `evaluate model` and by the official
    metric over the files `evaluate model` writes gives the same F1@50, F1@75 and mF1, per category too."""
    from clrkdnet_core.data.synthetic import generate_dataset
    from clrkdnet_core.evaluate import main as evaluate_main

    root = generate_dataset(tmp_path / "set", "culane", 24, seed=2026, split=(0, 0, 1), progress=False)
    write_bag(read_source("culane", root), tmp_path / "bag")
    model = SHIPPED_MODEL
    argv = ["eval", str(tmp_path / "bag"), *model, "--out", str(tmp_path / "report"), "--no-video"]
    assert main(argv) == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    capsys.readouterr()

    scores = ["--iou", "0.5", "0.75", "--mf1", "--json"]
    argv = ["model", *model, "--dataset", "culane", "--root", str(root), "--out", str(tmp_path / "pred")]
    assert evaluate_main([*argv, *scores]) == 0
    in_memory = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    argv = ["culane", "--anno-dir", str(root), "--pred-dir", str(tmp_path / "pred")]
    assert evaluate_main([*argv, "--list", str(root / "list" / "test.txt"), "--workers", "1", *scores]) == 0
    from_files = json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    bag = report["metrics"]
    assert bag["tp"] > 0 and bag["f1@75"] < bag["f1@50"]  # a real detector, with lanes lost at IoU 0.75
    for result in (in_memory, from_files):
        assert (result["f1@50"], result["f1@75"], result["mf1"]) == (bag["f1@50"], bag["f1@75"], bag["mf1"])
        assert result["thresholds"] == bag["thresholds"]
        for category, scored in report["per_category"].items():
            assert result["lists"][category]["thresholds"] == scored["thresholds"]


@pytest.mark.slow
def test_bag_eval_and_evaluate_model_give_one_tusimple_score(tmp_path, capsys):
    from clrkdnet_core.data.synthetic import generate_dataset
    from clrkdnet_core.evaluate import main as evaluate_main

    root = generate_dataset(tmp_path / "set", "tusimple", 8, seed=2026, split=(0, 0, 1), progress=False)
    write_bag(read_source("tusimple", root), tmp_path / "bag")
    argv = ["eval", str(tmp_path / "bag"), *SHIPPED_MODEL, "--out", str(tmp_path / "report"), "--no-video"]
    assert main(argv) == 0
    bag = json.loads((tmp_path / "report" / "report.json").read_text())["metrics"]
    capsys.readouterr()
    # Run time 1 ms: the bag tools leave the official 200 ms rule out (their latency is reported apart).
    argv = ["model", *SHIPPED_MODEL, "--dataset", "tusimple", "--root", str(root), "--run-time-ms", "1"]
    assert evaluate_main([*argv, "--json"]) == 0
    in_memory = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0 < bag["accuracy"] < 1 and in_memory == bag


# --- Tracking in bag eval and replay: track ids, the ego lane against the truth, the bag's camera pose ----


def test_eval_of_a_drive_reports_tracking_against_the_truth(drive_bag, tmp_path):
    """A perfect detector on a synthetic drive: projected with the bag's camera_info and /tf_static, tracked;
    the report's tracking block, its summary line, the ego plot and the overlay video say so."""
    from clrkdnet_ros.bag.evaluate import bag_camera

    with LaneBag(drive_bag) as bag:
        camera = bag_camera(bag)
        video = OverlayVideo(tmp_path / "overlay.mp4", camera.projector)
        summary, rows = evaluate_bag(bag, OracleDetector(drive_bag), on_frame=video)
        video.close()
    assert camera.description == "camera_info and /tf_static (base_link <- camera_optical_frame)"
    summary["model"] = {"preset": "oracle"}
    report = write_report(tmp_path, summary, rows)
    tracking = report["tracking"]
    assert tracking["enabled"] is True and tracking["ground_projection"] == camera.description
    assert tracking["ego_truth"] is True and tracking["tracking_ms"]["p50"] > 0
    identity = tracking["identity"]
    assert identity["frames"] == 6 and identity["gt_lanes"] == sum(row.num_gt for row in rows)
    # The fixture's lane change takes 0.35 s (a jump, not a drive): switches may happen, counted per row.
    assert identity["gt_matches"] > 0 and identity["id_switches"] == sum(row.id_switches for row in rows)
    ego = tracking["ego"]
    assert ego["truth_frames"] == 6 and ego["lane_change"]["true"] == 1
    # Untracked, the exact GT lanes give the true ego lane in every frame (to the pixel rounding).
    untracked = ego["untracked"]
    assert untracked["coverage"] == 1.0 and untracked["lateral_offset_rmse_m"] < 0.05
    assert untracked["width_rmse_m"] < 0.05 and untracked["heading_rmse_deg"] < 0.5
    assert ego["tracked"]["frames_valid"] >= 1
    tracked_rows = [row for row in rows if row.lateral_offset is not None]
    assert tracked_rows and all(row.track_ids for row in tracked_rows)
    assert all(row.lateral_offset_truth is not None for row in rows)

    assert set(report["files"]) >= {"ego_plot", "overlay_video"}
    assert (tmp_path / "ego_offset.png").stat().st_size > 0
    header = (tmp_path / "frames.csv").read_text().splitlines()[0]
    tracking_columns = "track_ids,id_switches,lateral_offset,lateral_offset_untracked,lateral_offset_truth"
    assert header.endswith(f"{tracking_columns},heading,width,lane_change")
    line = format_summary(report)
    assert f"tracking on: ID switches {identity['id_switches']} (" in line and "ego offset RMSE" in line


def test_eval_without_tracking_or_truth_says_why(culane_bag, drive_bag):
    """A dataset bag (uncalibrated camera_info, no /tf_static, GT ids that are indices): no ego lane and no
    identity metrics, each with the reason; --no-tracking perceives every frame alone."""
    with LaneBag(culane_bag) as bag:
        summary, rows = evaluate_bag(bag, OracleDetector(culane_bag), tracking=False)
    tracking = summary["tracking"]
    assert tracking["enabled"] is False and tracking["ground_projection"].startswith("none: camera_info")
    assert tracking["identity"] is None and "no true lane ids" in tracking["identity_skipped"]
    assert tracking["ego"] is None and "no ego lane in any frame" in tracking["ego_skipped"]
    assert [row.track_ids for row in rows] == ["0 1 2"] * 4  # untracked ids: left to right
    assert summary["metrics"]["f1"] == 1.0  # F1 is the detector's own, tracking or not

    with LaneBag(drive_bag) as bag:
        summary, _ = evaluate_bag(bag, OracleDetector(drive_bag), tracking=False)
    ego = summary["tracking"]["ego"]
    assert "tracked" not in ego and ego["jitter_ratio"] is None  # one estimate: the untracked one
    assert ego["untracked"]["coverage"] == 1.0


def test_static_chain_composes_the_bag_transforms_to_their_root():
    """base_link <- camera_link <- camera_optical_frame, as a URDF's tree gives them, is one camera pose."""
    from types import SimpleNamespace as Msg

    from scipy.spatial.transform import Rotation

    from clrkdnet_core.camera_model import BODY_FROM_OPTICAL, CameraPose
    from clrkdnet_ros.bag.evaluate import static_chain

    def transform(parent, child, xyz, rotation):
        qx, qy, qz, qw = Rotation.from_matrix(rotation).as_quat()
        return Msg(
            header=Msg(frame_id=parent),
            child_frame_id=child,
            transform=Msg(
                translation=Msg(x=xyz[0], y=xyz[1], z=xyz[2]), rotation=Msg(x=qx, y=qy, z=qz, w=qw)
            ),
        )

    body = Rotation.from_euler("xyz", [0.01, 0.05, -0.02]).as_matrix()
    transforms = [
        transform("camera_link", "camera_optical_frame", (0.0, 0.0, 0.0), BODY_FROM_OPTICAL),
        transform("base_link", "camera_link", (1.2, -0.1, 1.4), body),
        transform("map", "unrelated", (5.0, 5.0, 0.0), np.eye(3)),
    ]
    root, rotation, translation = static_chain(transforms, "camera_optical_frame")
    expected = CameraPose.from_xyz_rpy(1.2, -0.1, 1.4, 0.01, 0.05, -0.02)
    assert root == "base_link"
    np.testing.assert_allclose(rotation, expected.rotation, atol=1e-12)
    np.testing.assert_allclose(translation, expected.translation)
    assert static_chain(transforms, "lidar") is None


@pytest.mark.ros
def test_replay_gives_the_node_the_bag_pose_as_a_parameter_without_tf2(drive_bag, monkeypatch, capsys):
    """tf2_ros importable: the node finds the pose on the latched /tf_static, only ground_frame_id is set;
    not importable: the bag's static transform becomes camera_pose (one INFO line says so)."""
    from clrkdnet_core.camera_model import CameraPose
    from clrkdnet_ros.bag import replay
    from clrkdnet_ros.bag.evaluate import bag_camera

    with LaneBag(drive_bag) as bag:
        camera = bag_camera(bag)
    topics = ("/camera/image_raw/compressed", "/camera/camera_info")
    monkeypatch.setattr(replay, "tf2_available", lambda: True)
    with_tf2 = replay.node_command("p", Path("w.pth"), "cpu", *topics, camera=camera)
    assert "ground_frame_id:=base_link" in with_tf2 and not any("camera_pose" in a for a in with_tf2)
    assert capsys.readouterr().out == ""

    monkeypatch.setattr(replay, "tf2_available", lambda: False)
    without = replay.node_command("p", Path("w.pth"), "cpu", *topics, camera=camera)
    (pose_arg,) = [a for a in without if a.startswith("camera_pose:=")]
    values = json.loads(pose_arg.removeprefix("camera_pose:="))
    pose = CameraPose.from_xyz_rpy(*values)
    np.testing.assert_allclose(pose.rotation, camera.pose.rotation, atol=1e-8)
    np.testing.assert_allclose(pose.translation, camera.pose.translation, atol=1e-8)
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 1 and printed[0].startswith("INFO: tf2_ros is not importable here")
    assert replay.node_command("p", Path("w.pth"), "cpu", *topics) == replay.node_command(
        "p", Path("w.pth"), "cpu", *topics, camera=bag_camera_without_pose()
    )


def bag_camera_without_pose():
    from clrkdnet_ros.bag.evaluate import BagCamera

    return BagCamera(None, reason="the bag has no camera_info")


@pytest.mark.slow
@pytest.mark.ros
def test_live_replay_of_a_drive_scores_the_nodes_tracks_and_ego_lane(drive_bag, tmp_path, capsys):
    """The shipped model in the node, the bag's camera_info, /tf_static and /odom played to it: the node
    publishes tracked lanes and its ego lane, which the report scores against the truth; its log is clean."""
    out = tmp_path / "live"
    argv = ["replay", str(drive_bag), "--preset", str(REPO / "models" / "clrkdnet_resnet18_synthetic.yaml")]
    # The bag's 20 Hz played at 2 Hz: a busy machine still lets the node answer (nearly) every frame.
    argv += ["--weights", str(REPO / "models" / "clrkdnet_resnet18_synthetic.pth"), "--rate", "0.1"]
    assert main([*argv, "--device", "cpu", "--out", str(out)]) == 0
    line = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    tracking = report["tracking"]
    assert tracking["enabled"] is True and tracking["ego_truth"] is True, line
    assert tracking["ground_projection"] == "camera_info and /tf_static (base_link <- camera_optical_frame)"
    assert tracking["identity"]["frames"] == report["frames"] >= 4, line
    # The node's ego_lane arrived (valid or not: the 6 frames hold the lane change and the M-of-N start).
    assert tracking["ego"] is not None and tracking["ego_skipped"] is None, line
    assert "tracking on: ID switches" in line
    # The tests' own ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST is warned about (conftest.py); nothing else.
    log = (out / "node.log").read_text().splitlines()
    problems = [row for row in log if ("WARN" in row or "ERROR" in row) and "DISCOVERY_RANGE" not in row]
    assert not problems, "\n".join(log)
