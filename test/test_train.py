"""End-to-end training on a tiny synthetic CULane set (CPU): loss goes down, exact resume, clear early errors,
strictly loaded teachers, and the CLI/override plumbing."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision

from clrkdnet_core.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from clrkdnet_core.config import load_preset
from clrkdnet_core.data.synthetic import generate_dataset
from clrkdnet_core.errors import CheckpointError, PresetError
from clrkdnet_core.models import build_model
from training.data import SeededAugmentation, build_train_dataset, collate
from training.distillation import attention_map
from training.options import build_parser, preset_overrides
from training.train import main
from training.trainer import (
    Trainer,
    TrainSettings,
    build_teacher,
    epoch_loader,
    teacher_at_student_geometry,
)

REPO = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def culane_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic_culane")
    generate_dataset(root, "culane", 6, seed=3, progress=False)  # 4 train, 0 val, 2 test images
    return root


def _settings(work_dir: Path, **extra) -> TrainSettings:
    return TrainSettings(work_dir=work_dir, device=CPU, seed=0, workers=0, validate=False, **extra)


def _preset(name: str, **overrides):
    # The synthetic frames are independent renders: no similar-frame filter (students enable it by default).
    return load_preset(name).with_overrides({"train.frame_diff_threshold": None, **overrides})


@pytest.mark.slow
@pytest.mark.parametrize("name", ["clrnet_resnet18_culane", "clrkdnet_resnet18_culane"])
def test_a_few_steps_lower_the_loss_on_a_fixed_batch(name, culane_root, tmp_path):
    preset = _preset(name, **{"train.batch_size": 1, "train.lr": 3e-4, "train.epochs": 100})
    train_set = build_train_dataset(preset, culane_root)
    trainer = Trainer(preset, train_set, None, _settings(tmp_path))
    # The seeded wrapper fixes the augmentation, so the batch does not depend on what ran before this test.
    batch = collate([trainer.train_set[0]])
    losses = [trainer.train_step(batch)["total_loss"] for _ in range(4)]
    assert losses[-1] < losses[0]
    assert all(torch.isfinite(torch.tensor(losses)))


@pytest.mark.slow
def test_resumed_run_reproduces_the_next_step_loss(culane_root, tmp_path):
    preset = _preset("clrkdnet_resnet18_culane", **{"train.batch_size": 1, "train.epochs": 2})
    train_set = build_train_dataset(preset, culane_root)
    straight = Trainer(preset, train_set, None, _settings(tmp_path / "a", max_iters=2)).fit()
    Trainer(preset, train_set, None, _settings(tmp_path / "b", max_iters=1)).fit()
    resumed = Trainer(preset, train_set, None, _settings(tmp_path / "b", max_iters=2))
    resumed.resume(tmp_path / "b" / "last.pth")  # saved in the middle of the first epoch
    assert resumed.iteration == 1
    history = resumed.fit()
    assert len(history) == 1
    assert history[0]["total_loss"] == pytest.approx(straight[1]["total_loss"], rel=1e-5)
    assert history[0]["lr"] == pytest.approx(straight[1]["lr"])
    # last.pth is an official-layout checkpoint, loadable strictly by load_checkpoint.
    extra = load_checkpoint(build_model(preset), tmp_path / "b" / "last.pth")
    assert extra["iteration"] == 2
    assert all(key.startswith("module.") for key in torch.load(tmp_path / "b" / "last.pth")["net"])


def test_distillation_keeps_the_teacher_frozen(culane_root, tmp_path):
    preset = _preset("clrkdnet_resnet18_culane", **{"train.batch_size": 1})
    teacher_path = save_checkpoint(tmp_path / "teacher.pth", build_model("clrnet_resnet18_culane"))
    teacher = build_teacher(load_preset("clrnet_resnet18_culane"), teacher_path, CPU)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    train_set = build_train_dataset(preset, culane_root)
    trainer = Trainer(preset, train_set, None, _settings(tmp_path), teacher)
    terms = trainer.train_step(collate([train_set[0]]))
    assert (
        terms["distill_log_loss"] > 0 and terms["distill_priors_loss"] > 0 and terms["distill_att_loss"] > 0
    )
    assert terms["total_loss"] == pytest.approx(
        terms["loss"] + terms["distill_att_loss"] + terms["distill_log_loss"] + terms["distill_priors_loss"],
        rel=1e-5,
    )
    assert not teacher.training
    optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert not optimised & {id(p) for p in teacher.parameters()}
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())


@pytest.mark.slow
def test_cli_distils_validates_and_saves_checkpoints(culane_root, tmp_path):
    teacher_path = save_checkpoint(tmp_path / "teacher.pth", build_model("clrnet_resnet18_culane"))
    work = tmp_path / "work"
    code = main(
        [
            "--preset", "clrkdnet_resnet18_culane", "--data-root", str(culane_root), "--work_dirs", str(work),
            "--distillation", "--teacher_model_cfg", "clrnet_resnet18_culane",
            "--teacher_model_path", str(teacher_path), "--batch-size", "4", "--epochs", "1",
            "--set", "train.frame_diff_threshold=null", "--val-split", "test",
            "--workers", "0", "--device", "cpu", "--ema", "--log-every", "1", "--pretrained-backbone", "none",
        ]
    )  # fmt: skip
    assert code == 0
    assert read_checkpoint(work / "last.pth")["iteration"] == 1
    assert any(path.name.startswith("events.out.tfevents") for path in work.iterdir())
    # One epoch, validated with the CULane metric on the 2 test images: best.pth holds the (EMA) weights.
    best = read_checkpoint(work / "best.pth")
    assert best["f1"] == best["f1"] and -1.0 <= best["f1"] <= 1.0
    load_checkpoint(build_model("clrkdnet_resnet18_culane"), work / "best.pth")


@pytest.mark.slow
def test_an_800x320_teacher_distils_the_400x160_demo_student_from_imagenet_weights(
    culane_root, tmp_path, monkeypatch, capsys
):
    teacher_path = save_checkpoint(tmp_path / "teacher.pth", build_model("clrnet_resnet18_culane"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    imagenet = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    imagenet.parent.mkdir(parents=True)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), imagenet)
    work = tmp_path / "work"
    code = main(
        [
            "--preset", str(REPO / "models" / "clrkdnet_resnet18_synthetic.yaml"),
            "--data-root", str(culane_root), "--work-dir", str(work),
            "--distill", "--teacher-preset", "clrnet_resnet18_culane", "--teacher-weights", str(teacher_path),
            "--batch-size", "2", "--max-iters", "1", "--no-validate", "--workers", "0", "--device", "cpu",
        ]
    )  # fmt: skip
    assert code == 0
    assert f"backbone resnet18: ImageNet weights from {imagenet}" in capsys.readouterr().out
    saved = read_checkpoint(work / "last.pth")
    assert saved["iteration"] == 1 and saved["backbone_init"] == f"ImageNet weights from {imagenet}"


def test_a_teacher_is_built_at_the_students_input_size_or_refused_naming_both(tmp_path):
    student = load_preset(REPO / "models" / "clrkdnet_resnet18_synthetic.yaml")
    teacher = load_preset("clrnet_resnet18_culane")
    resized = teacher_at_student_geometry(teacher, student)
    assert (resized.geometry.img_w, resized.geometry.img_h) == (400, 160)
    assert resized.model == teacher.model
    # the same weights at another size: only the prior buffers, drawn from the embeddings, change
    path = save_checkpoint(tmp_path / "teacher.pth", build_model(teacher))
    built = build_teacher(teacher, path, CPU, student=student)
    assert built.preset.geometry == resized.geometry and not built.training
    assert built(torch.rand(1, 3, 160, 400)).shape == (1, 192, 78)
    other_crop = teacher.with_overrides({"geometry.cut_height": 0})
    with pytest.raises(
        PresetError, match=r"crop: teacher .* 800x320 of 1640x590 images cut at row 0, student "
    ):
        teacher_at_student_geometry(other_crop, student)
    square = teacher.with_overrides({"geometry.img_w": 320})
    with pytest.raises(PresetError, match=r"aspect ratio: teacher .* 320x320 .* student .* 400x160"):
        teacher_at_student_geometry(square, student)


def test_a_teacher_of_another_crop_stops_the_cli_with_one_line(culane_root, tmp_path):
    result = _run_cli(
        "--preset", str(REPO / "models" / "clrkdnet_resnet18_synthetic.yaml"),
        "--data-root", str(culane_root), "--work-dir", str(tmp_path / "work"),
        "--distill", "--teacher-preset", "clrnet_resnet18_tusimple",
        "--teacher-weights", str(tmp_path / "t.pth"), "--no-validate", "--device", "cpu",
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: the teacher must see the student's image crop: teacher clrnet_resnet18_tusimple takes "
        "800x320 of 1280x720 images cut at row 160, student clrkdnet_resnet18_synthetic 400x160 of "
        "1640x590 cut at row 270"
    ]
    assert result.stdout == ""  # refused before anything else is resolved


def test_ranks_train_on_different_samples_and_together_on_all(culane_root):
    preset = _preset("clrkdnet_resnet18_culane")
    dataset = SeededAugmentation(build_train_dataset(preset, culane_root), seed=0)
    names = [
        [meta["name"] for batch in epoch_loader(dataset, 1, 0, 0, 0, rank, 2) for meta in batch.metas]
        for rank in (0, 1)
    ]
    assert len(names[0]) == len(names[1]) == 2
    assert not set(names[0]) & set(names[1])
    assert set(names[0]) | set(names[1]) == {sample.name for sample in dataset.dataset.samples}


def test_teacher_of_the_wrong_preset_fails_strictly(tmp_path):
    r18 = save_checkpoint(tmp_path / "r18.pth", build_model("clrnet_resnet18_culane"))
    with pytest.raises(CheckpointError, match="does not match"):
        build_teacher(load_preset("clrnet_resnet101_culane"), r18, CPU)


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "training" / "train.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


def test_missing_data_root_fails_before_training(tmp_path):
    result = _run_cli("--preset", "clrnet_resnet18_culane", "--data-root", str(tmp_path / "nope"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "nope" in lines[0]


def test_unreadable_label_fails_before_training(culane_root, tmp_path):
    broken = tmp_path / "broken"
    subprocess.run(["cp", "-r", str(culane_root), str(broken)], check=True)
    first = (broken / "list" / "train_gt.txt").read_text().split()[0].lstrip("/")
    label = broken / (first[:-4] + ".lines.txt")
    label.write_text("12.5 abc 14\n")
    work = tmp_path / "work"
    result = _run_cli(
        "--preset", "clrnet_resnet18_culane", "--data-root", str(broken), "--work-dir", str(work)
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and label.name in lines[0]
    assert not work.exists() or not any(work.iterdir())


def test_overrides_from_yaml_set_and_shortcuts(tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text(json.dumps({"train": {"lr": 0.002, "epochs": 3}, "test": {"max_lanes": 5}}))
    args = build_parser().parse_args(
        ["--preset", "clrnet_resnet18_culane", "--data-root", "x", "--config", str(extra),
         "--set", "train.epochs=7", "--set", "train.frame_diff_threshold=null", "--batch-size", "6"]
    )  # fmt: skip
    preset = load_preset(args.preset).with_overrides(preset_overrides(args))
    assert (preset.train.lr, preset.train.epochs, preset.train.batch_size) == (0.002, 7, 6)
    assert preset.test.max_lanes == 5 and preset.train.frame_diff_threshold is None
    bad = build_parser().parse_args(
        ["--preset", "clrnet_resnet18_culane", "--data-root", "x", "--set", "lr=1"]
    )
    with pytest.raises(PresetError, match="lr"):
        load_preset(bad.preset).with_overrides(preset_overrides(bad))


@pytest.mark.slow
def test_quick_synthetic_reproduction_writes_its_table_and_a_loadable_half_precision_student(tmp_path):
    from clrkdnet_core.inference import LaneDetector
    from clrkdnet_core.report_blocks import markers
    from training import reproduce_synthetic

    benchmarks = tmp_path / "BENCHMARKS.md"
    benchmarks.write_text("# Benchmarks\n\nkept\n")
    out = tmp_path / "run"
    assert reproduce_synthetic.main(["--quick", "--out", str(out), "--benchmarks", str(benchmarks)]) == 0
    text = benchmarks.read_text()
    begin, end = markers(reproduce_synthetic.SECTION)
    assert "kept" in text and text.count(begin) == 1
    section = text.split(begin)[1].split(end)[0]
    assert "--quick" in section and section.count("| CLR") == 3
    student = out / "models" / "clrkdnet_resnet18_synthetic.pth"
    assert {t.dtype for t in read_checkpoint(student)["net"].values() if t.is_floating_point()} == {
        torch.float16
    }
    preset = load_preset(out / "models" / "clrkdnet_resnet18_synthetic.yaml")
    assert (preset.geometry.img_w, preset.geometry.img_h) == (400, 160)
    detector = LaneDetector.from_preset(preset, student, device="cpu")
    assert isinstance(detector.detect(torch.zeros(590, 1640, 3, dtype=torch.uint8).numpy()), list)
    import cv2

    lanes_picture = cv2.imread(str(out / "synthetic_reproduction_lanes.png"))
    assert lanes_picture.shape[1] == 2 * 820  # two test images side by side
    assert cv2.imread(str(out / "synthetic_reproduction_losses.png")) is not None


@pytest.mark.parametrize("made", [False, True], ids=["missing-run", "empty-run"])
def test_figures_without_a_training_log_exit_with_one_line(tmp_path, made):
    run = tmp_path / "run"
    if made:
        (run / "teacher").mkdir(parents=True)
    models = Path(__file__).resolve().parents[1] / "models"
    command = [
        sys.executable,
        "-m",
        "training.figures",
        "--run",
        str(run),
        "--out",
        str(tmp_path / "pictures"),
    ]
    command += ["--preset", str(models / "clrkdnet_resnet18_synthetic.yaml")]
    command += ["--weights", str(models / "clrkdnet_resnet18_synthetic.pth")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: no training log in {run / 'teacher'}" + ("" if made else ": not a folder")
    ]
    assert not (tmp_path / "pictures").exists()


def _small(name: str, **overrides):
    # 400 x 160 (the study's input): a quarter of the pixels, the same network.
    return _preset(name, **{"geometry.img_w": 400, "geometry.img_h": 160, **overrides})


def _small_teacher(tmp_path: Path, student) -> torch.nn.Module:
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "teacher.pth", build_model("clrnet_resnet18_culane"))
    return build_teacher(load_preset("clrnet_resnet18_culane"), path, CPU, student=student)


@pytest.mark.slow
def test_the_lane_distillation_term_falls_in_real_training_steps(culane_root, tmp_path):
    # Every other term off: the steps follow the lane-regression term's gradient alone, through the network.
    off = {f"train.{k}_weight": 0.0 for k in ("cls", "xyt", "iou", "seg", "att", "logit", "prior")}
    preset = _small("clrkdnet_resnet18_culane", **{"train.batch_size": 2, "train.lr": 1e-3, **off})
    teacher = _small_teacher(tmp_path, preset)
    with torch.no_grad():  # lanes half the image high, as a trained teacher's have (a random one: length 0)
        teacher.heads.reg_layers.bias[3] = 0.5
    train_set = build_train_dataset(preset, culane_root)
    trainer = Trainer(preset, train_set, None, _settings(tmp_path, distill_lane_weight=2.0), teacher)
    batch = collate([trainer.train_set[0], trainer.train_set[1]])
    terms = [trainer.train_step(batch) for _ in range(5)]
    lane = [t["distill_lane_loss"] for t in terms]
    assert lane[0] > 0 and lane[-1] < lane[0]
    assert terms[0]["total_loss"] == pytest.approx(lane[0], rel=1e-5)  # nothing else in it


@pytest.mark.slow
def test_the_teachers_bf16_and_channels_last_forwards_match_float32(culane_root, tmp_path):
    """What the study's teacher options may change: bfloat16 autocast moves each distillation target by at
    most 3 % (relative L2; measured about 1.5 % for the deepest attention map, 0.5 % for the ROI features,
    0.01 % for the priors) and the final lanes by under 1 px at 400 x 160; channels-last changes nothing
    beyond float32 summation order."""
    preset = _small("clrkdnet_resnet18_culane", **{"train.batch_size": 2})
    teacher = _small_teacher(tmp_path, preset)
    train_set = build_train_dataset(preset, culane_root)

    def outputs(**options) -> dict:
        settings = _settings(tmp_path / str(len(options)), amp=True, **options)
        trainer = Trainer(preset, train_set, None, settings, teacher)
        batch = collate([trainer.train_set[0], trainer.train_set[1]])
        result = trainer.teacher_outputs(batch.images)
        teacher.to(memory_format=torch.contiguous_format)  # the next trainer starts from the usual layout
        return result

    def relative(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a.float() - b.float()).norm() / b.float().norm())

    reference = outputs(teacher_amp=False)
    for options, tolerance in (
        ({"teacher_amp": True}, 0.03),
        ({"teacher_amp": True, "teacher_channels_last": True}, 0.03),  # the converged plan's teacher
        ({"teacher_amp": False, "teacher_channels_last": True}, 1e-4),
    ):
        other = outputs(**options)
        for key in ("roi_features", "stage_priors"):
            assert relative(other[key], reference[key]) < tolerance, (options, key)
        for ours, theirs in zip(other["features"], reference["features"], strict=True):
            assert relative(attention_map(ours), attention_map(theirs)) < tolerance, options
        xs = (other["predictions"][-1].float() - reference["predictions"][-1].float())[..., 6:] * 399
        assert xs.abs().max() < (1.0 if options.get("teacher_amp") else 1e-2), options
