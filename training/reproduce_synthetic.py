"""Reproduce the CLRKDNet result on synthetic CULane-format data, on a CPU, in under two hours.

    python training/reproduce_synthetic.py            # full run: tables in BENCHMARKS.md, model in models/
    python training/reproduce_synthetic.py --quick    # smoke version (minutes), results under --out only

Steps: generate a synthetic CULane-format set (train + held-out test split); train a CLRNet ResNet-18 teacher;
distil a CLRKDNet ResNet-18 student from it; train the same student without distillation; evaluate the three
with the official CULane metric (F1@50, F1@75) on the test split and time their forward pass; print the table,
write it between the ``synthetic-reproduction`` markers of BENCHMARKS.md and store the distilled student (half
precision) in ``models/``. The teacher here is CLRNet-R18, not the paper's ResNet-101: a ResNet-101 does not
train on this CPU within the time limit.
"""

import sys
from pathlib import Path

# `python training/reproduce_synthetic.py` puts training/ on sys.path, not the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import copy
import platform
import shlex
import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn

from clrkdnet_core.checkpoint import save_checkpoint
from clrkdnet_core.cli import run_cli
from clrkdnet_core.config import Preset, load_preset
from clrkdnet_core.data.synthetic import generate_dataset
from training.data import build_eval_dataset, build_train_dataset
from training.trainer import Trainer, TrainSettings, build_teacher
from training.validation import evaluate

TEACHER = "clrnet_resnet18_culane"
STUDENT = "clrkdnet_resnet18_culane"
BEGIN = "<!-- synthetic-reproduction:begin -->"
END = "<!-- synthetic-reproduction:end -->"
DEMO_MODEL = "clrkdnet_resnet18_synthetic.pth"


@dataclass(frozen=True)
class Plan:
    """Sizes of one reproduction run."""

    train_images: int
    test_images: int
    teacher_epochs: int
    student_epochs: int
    batch_size: int
    lr: float
    latency_runs: int


# Measured on this 2-core machine (CPU seconds per training image, batch 8): CLRNet-R18 1.45, distilled
# CLRKDNet-R18 (with the teacher's forward) 1.81, plain CLRKDNet-R18 1.13. Assuming ~1.7 busy cores, 360
# images x 6 epochs take ~31 + 38 + 24 min, plus ~3 min for data generation and evaluation: ~96 min in all.
FULL = Plan(
    train_images=360,
    test_images=100,
    teacher_epochs=6,
    student_epochs=6,
    batch_size=8,
    lr=1e-3,
    latency_runs=20,
)
QUICK = Plan(
    train_images=8, test_images=4, teacher_epochs=1, student_epochs=1, batch_size=4, lr=1e-3, latency_runs=3
)


@dataclass(frozen=True)
class Result:
    """Test-split scores and CPU latency of one trained model."""

    name: str
    f1_50: float
    f1_75: float
    latency_ms: float
    train_s: float


def _train(
    preset: Preset, data_root: Path, settings: TrainSettings, teacher: nn.Module | None
) -> tuple[nn.Module, float]:
    start = time.perf_counter()
    trainer = Trainer(preset, build_train_dataset(preset, data_root), None, settings, teacher)
    trainer.fit()
    return trainer.model.eval(), time.perf_counter() - start


@torch.inference_mode()
def latency_ms(model: nn.Module, runs: int) -> float:
    """Median forward time (ms) of one 320x800 image on the CPU, after one warm-up call."""
    model = model.eval().cpu()
    geometry = model.preset.geometry
    x = torch.rand(1, 3, geometry.img_h, geometry.img_w)
    model(x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        model(x)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def format_table(results: list[Result]) -> str:
    """Markdown table of the results."""
    lines = [
        "| model | F1@50 | F1@75 | CPU latency (ms, batch 1) | training time (s) |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.name} | {r.f1_50:.4f} | {r.f1_75:.4f} | {r.latency_ms:.1f} | {r.train_s:.0f} |"
        for r in results
    ]
    return "\n".join(lines)


def write_section(path: Path, body: str) -> None:
    """Replace the text between the markers of ``path`` (appended when absent), keeping everything else."""
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Benchmarks\n"
    section = f"{BEGIN}\n{body.strip()}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text, encoding="utf-8")


def export_half(model: nn.Module, path: Path) -> Path:
    """Save ``model`` with half-precision floats in the official layout (loads with ``load_checkpoint``)."""
    return save_checkpoint(
        path, copy.deepcopy(model).half(), note="float16 weights: cast to float32 after loading"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="training/reproduce_synthetic.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", type=Path, default=Path("work_dirs/synthetic_reproduction"))
    parser.add_argument("--quick", action="store_true", help="tiny smoke run; writes only under --out")
    parser.add_argument(
        "--benchmarks", type=Path, help="BENCHMARKS.md to update (full run default: ./BENCHMARKS.md)"
    )
    parser.add_argument(
        "--models-dir", type=Path, help="where the demo model goes (full run default: models/)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the whole reproduction and report it."""
    args = _parser().parse_args(argv)
    plan = QUICK if args.quick else FULL
    benchmarks = args.benchmarks or (args.out / "BENCHMARKS.md" if args.quick else Path("BENCHMARKS.md"))
    models_dir = args.models_dir or (args.out / "models" if args.quick else Path("models"))
    data_root = args.out / "data"
    wall = time.perf_counter()
    split = (plan.train_images, 0, plan.test_images)  # counts work as fractions: exact split sizes
    generate_dataset(data_root, "culane", plan.train_images + plan.test_images, args.seed, split=split)

    def settings(name: str) -> TrainSettings:
        return TrainSettings(
            work_dir=args.out / name,
            device=torch.device("cpu"),
            seed=args.seed,
            workers=args.workers,
            validate=False,
        )

    def preset(name: str, epochs: int, **extra: object) -> Preset:
        overrides = {
            "train.epochs": epochs,
            "train.batch_size": plan.batch_size,
            "train.lr": plan.lr,
            # synthetic frames are independent renders: no similar-frame filter
            "train.frame_diff_threshold": None,
            **extra,
        }
        return load_preset(name).with_overrides(overrides)

    teacher_preset = preset(TEACHER, plan.teacher_epochs)
    teacher, teacher_s = _train(teacher_preset, data_root, settings("teacher"), None)
    student_preset = preset(STUDENT, plan.student_epochs, **{"train.teacher": TEACHER})
    frozen = build_teacher(teacher_preset, args.out / "teacher" / "last.pth", torch.device("cpu"))
    distilled, distilled_s = _train(student_preset, data_root, settings("student_distilled"), frozen)
    plain_preset = preset(
        STUDENT,
        plan.student_epochs,
        **{"train.att_weight": 0, "train.logit_weight": 0, "train.prior_weight": 0},
    )
    plain, plain_s = _train(plain_preset, data_root, settings("student_plain"), None)

    results = []
    test_set = build_eval_dataset(teacher_preset, data_root, "test")
    for name, model, seconds in (
        (f"CLRNet-R18 teacher ({TEACHER})", teacher, teacher_s),
        (f"CLRKDNet-R18 distilled ({STUDENT})", distilled, distilled_s),
        (f"CLRKDNet-R18 without distillation ({STUDENT})", plain, plain_s),
    ):
        scores = evaluate(model, test_set, torch.device("cpu"), args.workers, (0.5, 0.75))
        f1_50, f1_75 = scores[0.5]["f1"], scores[0.75]["f1"]
        results.append(Result(name, f1_50, f1_75, latency_ms(model, plan.latency_runs), seconds))
    table = format_table(results)
    print(table)
    exported = export_half(distilled, models_dir / DEMO_MODEL)
    total_min = (time.perf_counter() - wall) / 60
    command = "python training/reproduce_synthetic.py" + (" " + shlex.join(argv) if argv else "")
    write_section(
        benchmarks,
        "\n".join(
            [
                "## Synthetic reproduction (CPU)",
                "",
                f"`{command}` on {platform.processor() or platform.machine()} with "
                f"{torch.get_num_threads()} threads, {total_min:.0f} min in total. {plan.train_images} "
                f"synthetic CULane-format training images, {plan.test_images} held-out test images (official "
                f"CULane metric, 30 px lanes), batch {plan.batch_size}, AdamW lr {plan.lr}, "
                f"{plan.teacher_epochs} teacher / {plan.student_epochs} student epochs. The teacher of this "
                "reproduction is CLRNet-R18 (the paper distils the R18 student from CLRNet-R101, which "
                "cannot be trained on this CPU in the time limit).",
                "",
                table,
                "",
                f"Distilled student shipped as `{exported}` (float16).",
            ]
        ),
    )
    print(f"wrote {benchmarks} and {exported} in {total_min:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
