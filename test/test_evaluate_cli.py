"""``python -m clrkdnet_core.evaluate`` through a subprocess: tables, --json, and one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from clrkdnet_core.data.formats import TUSIMPLE_H_SAMPLES
from clrkdnet_core.errors import DatasetError
from clrkdnet_core.metrics.culane import lane_file_path, read_lane_file

REPO = Path(__file__).resolve().parents[1]
H_SAMPLES = list(TUSIMPLE_H_SAMPLES)


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "clrkdnet_core.evaluate", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def lane_text(bottom_x: float) -> str:
    ys = 590.0 - 10.0 * np.arange(20)
    xs = bottom_x + 0.7 * (590 - ys)
    return " ".join(f"{x:.2f} {y:.0f}" for x, y in zip(xs, ys, strict=True)) + " \n"


def culane_root(tmp_path: Path) -> Path:
    """CULane layout: anno/<entry>.lines.txt, anno/list/{test.txt,test_split/}, pred/<entry>.lines.txt."""
    for index, (gt, pred) in enumerate([((300, 900), (302, 905)), ((500,), (560, 1200))]):
        anno_file = tmp_path / f"anno/driver/clip/{index:05d}.lines.txt"
        pred_file = tmp_path / f"pred/driver/clip/{index:05d}.lines.txt"
        anno_file.parent.mkdir(parents=True, exist_ok=True)
        pred_file.parent.mkdir(parents=True, exist_ok=True)
        anno_file.write_text("".join(lane_text(x) for x in gt))
        pred_file.write_text("".join(lane_text(x) for x in pred))
    split = tmp_path / "anno/list/test_split"
    split.mkdir(parents=True)
    (tmp_path / "anno/list/test.txt").write_text("/driver/clip/00000.jpg\n/driver/clip/00001.jpg\n")
    (split / "test0_normal.txt").write_text("/driver/clip/00000.jpg\n")
    (split / "test1_crowd.txt").write_text("/driver/clip/00001.jpg\n")
    return tmp_path


def test_culane_json_last_line(tmp_path):
    root = culane_root(tmp_path)
    result = run(
        "culane", "--anno-dir", str(root / "anno"), "--pred-dir", str(root / "pred"),
        "--list", str(root / "anno/list/test.txt"), "--iou", "0.5", "0.75", "--json", "--workers", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    assert (summary["tp"], summary["fp"], summary["fn"]) == (2, 2, 1)
    assert summary["precision"] == 0.5 and summary["recall"] == 2 / 3
    assert summary["iou"] == 0.5 and summary["f1@75"] == summary["thresholds"]["0.75"]["f1"]
    assert summary["f1@50"] == summary["f1"] and summary["mf1"] is None  # mF1 needs --mf1
    # list/test.txt sits next to test_split: the categories and their total are reported too.
    assert set(summary["lists"]) == {"test", "normal", "crowd", "total"}
    assert summary["lists"]["normal"]["tp"] == 2 and summary["lists"]["crowd"]["fp"] == 2
    assert any(line.startswith("total") for line in lines)


def test_culane_defaults_to_the_category_folder_and_mf1(tmp_path):
    root = culane_root(tmp_path)
    result = run(
        "culane", "--anno-dir", str(root / "anno"), "--pred-dir", str(root / "pred"), "--mf1", "--json"
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["images"] == 2 and (summary["tp"], summary["fp"], summary["fn"]) == (2, 2, 1)
    assert 0 <= summary["mf1"] <= summary["f1"]
    assert "mF1" in result.stdout


def test_tusimple_json_last_line(tmp_path):
    gt = {"raw_file": "clips/0/20.jpg", "lanes": [[300] * 56, [600] * 56], "h_samples": H_SAMPLES}
    pred = {"raw_file": "clips/0/20.jpg", "lanes": [[305] * 56], "run_time": 12}
    (tmp_path / "gt.json").write_text(json.dumps(gt) + "\n")
    (tmp_path / "pred.json").write_text(json.dumps(pred) + "\n")
    result = run(
        "tusimple", "--pred", str(tmp_path / "pred.json"), "--gt", str(tmp_path / "gt.json"), "--json"
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["accuracy"], summary["fp"], summary["fn"]) == (0.5, 0.0, 0.5)
    assert summary["f1"] == 2 * 1.0 * (1 / 1.5) / (1.0 + 1 / 1.5)
    assert "Accuracy" in result.stdout


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def test_bad_input_exits_2_with_one_line(tmp_path):
    root = culane_root(tmp_path)
    anno, pred = str(root / "anno"), str(root / "pred")
    assert_one_line_error(
        run("culane", "--anno-dir", anno, "--pred-dir", pred, "--list", "nope.txt"), "nope.txt"
    )
    assert_one_line_error(
        run("culane", "--anno-dir", str(root / "missing"), "--pred-dir", pred),
        "annotation directory",
        "missing",
    )
    (root / "pred/driver/clip/00001.lines.txt").write_text("1 2 3 4\n5 six 7 8\n")
    assert_one_line_error(
        run("culane", "--anno-dir", anno, "--pred-dir", pred, "--list", str(root / "anno/list/test.txt")),
        "00001.lines.txt line 2: expected pairs of numbers",
    )
    assert_one_line_error(run("tusimple", "--pred", "p.json", "--gt", "g.json"), "p.json")


@pytest.mark.slow
def test_model_writes_official_predictions_and_evaluates_them(tmp_path, capsys):
    # An untrained network: the point is the pipeline (inference -> official files -> metric), not the score.
    # In-process (the other tests cover the subprocess path) to pay for importing torch only once.
    torch = pytest.importorskip("torch")
    from clrkdnet_core.checkpoint import save_checkpoint
    from clrkdnet_core.data.synthetic import generate_dataset
    from clrkdnet_core.evaluate import main
    from clrkdnet_core.models import build_model

    torch.manual_seed(0)
    roots, weights = {}, {}
    for dataset in ("culane", "tusimple"):
        roots[dataset] = generate_dataset(
            tmp_path / dataset, dataset, 2, seed=0, split=(0, 0, 1), progress=False
        )
        model = build_model(f"clrkdnet_resnet18_{dataset}")
        weights[dataset] = str(save_checkpoint(tmp_path / f"{dataset}.pth", model))

    common = ["--device", "cpu", "--batch-size", "2", "--json"]
    args = ["--preset", "clrkdnet_resnet18_culane", "--weights", weights["culane"], "--dataset", "culane"]
    assert (
        main(["model", *args, "--root", str(roots["culane"]), "--out", str(tmp_path / "pred"), *common]) == 0
    )
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    entries = (roots["culane"] / "list/test.txt").read_text().split()
    assert summary["images"] == len(entries) == 2 and summary["missing_predictions"] == 0
    gt_lanes = sum(len(read_lane_file(lane_file_path(roots["culane"], entry))) for entry in entries)
    assert summary["tp"] + summary["fn"] == gt_lanes
    assert all(Path(lane_file_path(tmp_path / "pred", entry)).is_file() for entry in entries)

    args = [
        "--preset",
        "clrkdnet_resnet18_tusimple",
        "--weights",
        weights["tusimple"],
        "--dataset",
        "tusimple",
    ]
    out = ["--root", str(roots["tusimple"]), "--out", str(tmp_path / "tpred"), "--run-time-ms", "1"]
    assert main(["model", *args, *out, *common]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["images"] == 2
    predictions = (tmp_path / "tpred/tusimple_test_predictions.json").read_text().splitlines()
    assert [json.loads(line)["run_time"] for line in predictions] == [1.0, 1.0]

    # A split of several label files (real TuSimple "val" is 0531; synthetic data adds its own): one GT file.
    test_labels = (roots["tusimple"] / "test_label.json").read_text()
    for name in ("label_data_0531.json", "label_data_synth_val.json"):
        (roots["tusimple"] / name).write_text(test_labels)
    assert main(["model", *args, *out, "--split", "val", *common]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["images"] == 2  # the same two images twice; the official tool divides by distinct ones
    assert len((tmp_path / "tpred/tusimple_val_gt.json").read_text().splitlines()) == 4
    with pytest.raises(DatasetError, match="unknown TuSimple split 'bogus'"):
        main(["model", *args, *out, "--split", "bogus", *common])
