"""CULane / TuSimple datasets on generated data: samples, targets, augmentation alignment, filter, errors."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from clrkdnet_core.data import frame_diff, synthetic
from clrkdnet_core.data.augment import apply_transform, build_transform, clip_polyline
from clrkdnet_core.data.base import read_mask
from clrkdnet_core.data.culane import CULaneDataset, read_lines_file
from clrkdnet_core.data.encoding import decode_target
from clrkdnet_core.data.formats import CULANE_CATEGORY_FILES, TUSIMPLE_H_SAMPLES
from clrkdnet_core.data.tusimple import TuSimpleDataset
from clrkdnet_core.errors import DatasetError
from clrkdnet_core.geometry import ImageGeometry
from clrkdnet_core.preprocess import preprocess

CULANE = ImageGeometry(1640, 590, 270)
TUSIMPLE = ImageGeometry(1280, 720, 160)


@pytest.fixture(scope="module")
def culane_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("culane")
    return synthetic.generate_dataset(root, "culane", 10, seed=11, split=(0.7, 0.1, 0.2), progress=False)


@pytest.fixture(scope="module")
def tusimple_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tusimple")
    return synthetic.generate_dataset(root, "tusimple", 5, seed=11, split=(0.6, 0.0, 0.4), progress=False)


def test_culane_training_sample(culane_root):
    dataset = CULaneDataset(culane_root, "train", CULANE, seed=0)
    assert len(dataset) == 7
    sample = dataset[0]
    assert sample["img"].shape == (3, 320, 800) and sample["img"].dtype == torch.float32
    assert float(sample["img"].min()) >= 0.0 and float(sample["img"].max()) <= 1.0
    assert sample["lane_line"].shape == (4, 78) and sample["lane_line"].dtype == torch.float32
    assert sample["seg"].shape == (320, 800) and sample["seg"].dtype == torch.int64
    assert int(sample["seg"].max()) <= 4
    assert sample["meta"]["name"].startswith("driver_") and Path(sample["meta"]["path"]).is_file()
    batch = torch.utils.data.default_collate([dataset[1], dataset[2]])
    assert batch["img"].shape == (2, 3, 320, 800) and batch["lane_line"].shape == (2, 4, 78)


def test_culane_test_sample_is_crop_and_cubic_resize(culane_root):
    dataset = CULaneDataset(culane_root, "test", CULANE)
    assert len(dataset) == 2 and not dataset.training
    sample = dataset[1]
    assert set(sample) == {"img", "meta"}
    image = cv2.imread(sample["meta"]["path"])
    torch.testing.assert_close(sample["img"], preprocess(image, CULANE))
    expected = cv2.resize(image[270:], (800, 320), interpolation=cv2.INTER_CUBIC)
    np.testing.assert_allclose(sample["img"].permute(1, 2, 0).numpy() * 255, expected, atol=1e-3)


def test_encoded_targets_decode_back_to_the_labels(culane_root):
    dataset = CULaneDataset(culane_root, "train", CULANE, augment=False)
    compared = 0
    for index in range(len(dataset)):
        target = dataset[index]["lane_line"].numpy()
        lanes = read_lines_file(dataset.samples[index].image.with_suffix(".lines.txt"))
        valid_rows = [row for row in target if row[1] == 1]
        assert len(valid_rows) == len(lanes)
        for row, lane in zip(valid_rows, lanes, strict=True):
            x = lane[:, 0] * 800 / 1640
            y = lane[:, 1] - 270
            points = decode_target(row)
            inside = (points[:, 1] >= max(y.min(), 0)) & (points[:, 1] <= y.max())
            expected = np.interp(points[inside, 1], y, x)
            np.testing.assert_allclose(points[inside, 0], expected, atol=1.0)
            compared += int(inside.sum())
    assert compared > 200


def test_tusimple_targets_decode_back_to_the_labels(tusimple_root):
    dataset = TuSimpleDataset(tusimple_root, "trainval", TUSIMPLE, augment=False)
    compared = 0
    for index in range(len(dataset)):
        target = dataset[index]["lane_line"].numpy()
        lanes = [lane for lane in dataset.samples[index].lanes if len(lane) >= 2]
        assert all(row[1] == 0 for row in target[len(lanes) :])
        for row, lane in zip(target, lanes, strict=False):
            # Crop 160 rows, then 1280x560 -> 800x320.
            x = lane[:, 0] * 800 / 1280
            y = (lane[:, 1] - 160) * 320 / 560
            points = decode_target(row)
            order = np.argsort(y)
            inside = (points[:, 1] >= max(y.min(), 0)) & (points[:, 1] <= y.max())
            expected = np.interp(points[inside, 1], y[order], x[order])
            np.testing.assert_allclose(points[inside, 0], expected, atol=1.0)
            compared += int(inside.sum())
    assert compared > 100


def _densify(points: np.ndarray) -> np.ndarray:
    out = [points[:1]]
    for a, b in itertools.pairwise(points):
        steps = max(int(np.ceil(np.abs(b - a).max())), 1)
        out.append(a + (b - a) * np.linspace(0, 1, steps + 1)[1:, None])
    return np.concatenate(out)


@pytest.mark.parametrize("fmt", ["culane", "tusimple"])
def test_augmentation_keeps_lanes_and_masks_aligned(fmt, culane_root, tusimple_root):
    if fmt == "culane":
        dataset = CULaneDataset(culane_root, "train", CULANE)
    else:
        dataset = TuSimpleDataset(tusimple_root, "trainval", TUSIMPLE)
    cut = dataset.geometry.cut_height
    on_lane = total = 0
    for seed in range(6):
        transform = build_transform(train=True, seed=seed)
        sample = dataset.samples[seed % len(dataset)]
        image = cv2.imread(str(sample.image))[cut:]
        mask = read_mask(sample.mask)[cut:]
        lanes = [lane - [0, cut] for lane in dataset.lanes_of(sample)]
        out_image, out_lanes, out_mask = apply_transform(transform, image, lanes, mask)
        assert out_image.shape == (320, 800, 3) and out_mask.shape == (320, 800)
        for lane in out_lanes:
            assert np.all((lane[:, 0] >= 0) & (lane[:, 0] <= 800) & (lane[:, 1] >= 0) & (lane[:, 1] <= 320))
            if len(lane) < 2:
                continue
            points = np.round(_densify(lane)).astype(int)
            points = points[(points[:, 0] < 800) & (points[:, 1] < 320)]
            ids = out_mask[points[:, 1], points[:, 0]]
            _, counts = np.unique(ids[ids > 0], return_counts=True)
            on_lane += counts.max() if len(counts) else 0
            total += len(ids)
    assert total > 500
    assert on_lane / total > 0.95  # points under a transformed lane carry one lane id


def test_clip_polyline_splits_where_the_lane_leaves_the_image():
    pieces = clip_polyline(np.array([[-10.0, 0.0], [10.0, 10.0], [30.0, -10.0], [50.0, 10.0]]), 100, 100)
    assert len(pieces) == 2
    np.testing.assert_allclose(pieces[0], [[0, 5], [10, 10], [20, 0]])
    np.testing.assert_allclose(pieces[1], [[40, 0], [50, 10]])


def test_frame_diff_cli_and_filter(culane_root):
    assert frame_diff.main(["--root", str(culane_root)]) == 0
    diffs = np.load(culane_root / "list" / "train_diffs.npz")["data"]
    dataset = CULaneDataset(culane_root, "train", CULANE)
    assert len(diffs) == len(dataset)
    first = cv2.imread(str(dataset.samples[0].image)).astype(np.float64)
    second = cv2.imread(str(dataset.samples[1].image)).astype(np.float64)
    assert diffs[0] == first.mean()  # float64 means, bit for bit
    assert diffs[1] == np.abs(second - first).mean()
    threshold = float(np.median(diffs))
    filtered = CULaneDataset(
        culane_root, "train", CULANE, diff_file="list/train_diffs.npz", diff_threshold=threshold
    )
    kept = [s.name for s, d in zip(dataset.samples, diffs, strict=True) if d > threshold]
    assert [s.name for s in filtered.samples] == kept and 0 < len(kept) < len(dataset)
    with pytest.raises(DatasetError, match=r"cannot write .*train\.txt"):
        frame_diff.main(["--root", str(culane_root), "--out", "list/train.txt/diffs.npz"])


def test_tusimple_dataset(tusimple_root, tmp_path):
    train = TuSimpleDataset(tusimple_root, "trainval", TUSIMPLE, seed=0)
    assert len(train) == 3
    sample = train[0]
    assert sample["lane_line"].shape == (5, 78)
    assert sample["seg"].shape == (320, 800) and int(sample["seg"].max()) <= 6
    assert int((sample["lane_line"][:, 1] == 1).sum()) >= 1
    test = TuSimpleDataset(tusimple_root, "test", TUSIMPLE)
    assert len(test) == 2 and test[0]["meta"]["name"].startswith("clips/synth_test/")
    with pytest.raises(DatasetError, match="no TuSimple label file of split 'val'"):
        TuSimpleDataset(tmp_path, "val", TUSIMPLE)


def _tiny_culane(root: Path, lines_text: str) -> Path:
    name = "driver_00_30frame/clip.MP4/00000"
    (root / name).parent.mkdir(parents=True)
    cv2.imwrite(str(root / f"{name}.jpg"), np.zeros((590, 1640, 3), np.uint8))
    (root / f"{name}.lines.txt").write_text(lines_text)
    (root / "laneseg_label_w16" / name).parent.mkdir(parents=True)
    cv2.imwrite(str(root / "laneseg_label_w16" / f"{name}.png"), np.zeros((590, 1640), np.uint8))
    (root / "list").mkdir()
    (root / "list" / "train_gt.txt").write_text(f"/{name}.jpg /laneseg_label_w16/{name}.png 1 0 0 0\n")
    return root / f"{name}.lines.txt"


def test_malformed_lines_file_names_file_and_line(tmp_path):
    path = _tiny_culane(tmp_path, "100.0 590 110.0 580 120.0 570 \n100.0 590 abc 580 \n")
    dataset = CULaneDataset(tmp_path, "train", CULANE)
    with pytest.raises(DatasetError, match=rf"{path}:2"):
        dataset[0]
    path.write_text("100.0 590 110.0 580 120.0\n")
    with pytest.raises(DatasetError, match=rf"{path}:1: .*odd"):
        dataset[0]


def test_missing_files_raise_dataset_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        CULaneDataset(tmp_path / "nowhere", "train", CULANE)
    with pytest.raises(DatasetError, match=r"train_gt\.txt"):
        CULaneDataset(tmp_path, "train", CULANE)
    with pytest.raises(DatasetError, match="unknown CULane split"):
        CULaneDataset(tmp_path, "holdout", CULANE)
    _tiny_culane(tmp_path, "100.0 590 110.0 580 120.0 570 \n")
    (tmp_path / "list" / "test.txt").write_text("/driver_00_30frame/clip.MP4/00099.jpg\n")
    with pytest.raises(DatasetError, match=r"00099\.jpg"):
        CULaneDataset(tmp_path, "test", CULANE)[0]
    np.savez(tmp_path / "diffs.npz", data=np.zeros(3))
    with pytest.raises(DatasetError, match="3 values but the list has 1"):
        CULaneDataset(tmp_path, "train", CULANE, diff_file="diffs.npz")


def test_malformed_tusimple_json_names_file_and_line(tmp_path):
    record = {"lanes": [[-2, 100]], "h_samples": [700, 710], "raw_file": "clips/a/b/20.jpg"}
    (tmp_path / "test_label.json").write_text(json.dumps(record) + "\n{not json\n")
    with pytest.raises(DatasetError, match=r"test_label.json:2"):
        TuSimpleDataset(tmp_path, "test", TUSIMPLE)
    (tmp_path / "test_label.json").write_text(json.dumps({"lanes": []}) + "\n")
    with pytest.raises(DatasetError, match=r"test_label.json:1"):
        TuSimpleDataset(tmp_path, "test", TUSIMPLE)


def test_tusimple_seg_ids_follow_the_reference_order(tmp_path):
    from clrkdnet_core.data import tusimple_seg

    h = list(TUSIMPLE_H_SAMPLES)

    def lane(x_top: float, x_bottom: float, first: int = 0) -> list[int]:
        xs = np.linspace(x_top, x_bottom, len(h)).round().astype(int)
        xs[:first] = -2
        return xs.tolist()

    # left to right: two lanes leaning left (chord angle < 90°), three leaning right; the short one (3 points)
    # takes part in the ordering but is not drawn (< 4 points)
    lanes = [lane(600, 100), lane(630, 400), lane(660, 900), lane(700, 1250), lane(720, 1270, first=53)]
    slots = tusimple_seg.seg_lane_slots(lanes, h)
    assert [len(s) for s in slots] == [0, 56, 56, 56, 56, 3]
    assert slots[1][0][0] == 600 and slots[2][0][0] == 630 and slots[3][0][0] == 660
    record = {"lanes": lanes, "h_samples": h, "raw_file": "clips/0313-1/60/20.jpg"}
    (tmp_path / "label_data_0313.json").write_text(json.dumps(record) + "\n")
    assert tusimple_seg.main(["--root", str(tmp_path)]) == 0
    mask = cv2.imread(str(tmp_path / "seg_label" / "0313-1" / "60" / "20.png"), cv2.IMREAD_UNCHANGED)
    assert set(np.unique(mask)) == {0, 2, 3, 4, 5}
    assert mask[710, 100] == 2 and mask[710, 400] == 3 and mask[710, 900] == 4 and mask[710, 1250] == 5
    listed = (tmp_path / "seg_label" / "list" / "train_val_gt.txt").read_text()
    assert listed == "/clips/0313-1/60/20.jpg /seg_label/0313-1/60/20.png 0 1 1 1 1 0\n"
    (tmp_path / "clips" / "0313-1" / "60").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "clips" / "0313-1" / "60" / "20.jpg"), np.zeros((720, 1280, 3), np.uint8))
    dataset = TuSimpleDataset(tmp_path, "train", TUSIMPLE, augment=False)
    assert int((dataset[0]["lane_line"][:, 1] == 1).sum()) == 5
    (tmp_path / "seg_label" / "0313-1" / "60" / "20.png").unlink()
    with pytest.raises(DatasetError, match=r"20\.png does not exist; generate the masks with"):
        dataset[0]


def test_format_constants_are_the_official_ones():
    # TuSimple's test labels give one x per row 160, 170, ..., 710; CULane's categories are SCNN's list files.
    assert TUSIMPLE_H_SAMPLES[0] == 160 and TUSIMPLE_H_SAMPLES[-1] == 710 and len(TUSIMPLE_H_SAMPLES) == 56
    assert list(CULANE_CATEGORY_FILES.values()) == [
        "test0_normal.txt",
        "test1_crowd.txt",
        "test2_hlight.txt",
        "test3_shadow.txt",
        "test4_noline.txt",
        "test5_arrow.txt",
        "test6_curve.txt",
        "test7_cross.txt",
        "test8_night.txt",
    ]
