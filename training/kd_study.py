"""What CLRKDNet's distillation is worth: the plain and the distilled student over several seeds, and each
term ablated, against one teacher, on one generated split and schedule.

    python training/kd_study.py             # the full study: table in BENCHMARKS.md, plot in docs/images/
    python training/kd_study.py --quick     # a tiny end-to-end run (minutes), under --out only
    python training/kd_study.py --estimate  # only print how long the full study would take here

The teacher (CLRNet-R18) is trained once and reused; every student (CLRKDNet-R18) variant is trained with
every seed. Each run lives in its own folder under ``--out`` (TensorBoard logs with every loss term,
``last.pth``) and is finished by a ``done.json`` holding its scores: a second invocation skips finished runs
and resumes an unfinished one from its ``last.pth`` (at most the interrupted epoch is trained again). Every
model is scored with the official CULane metric (F1@50, F1@75, mF1) on a held-out split sized so that the
standard error of F1@75 is below 0.01; the study prints that error and the time estimate of the full run."""

import sys
from pathlib import Path

# `python training/kd_study.py` puts training/ on sys.path, not the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import dataclasses
import json
import math
import platform
import shlex
import tempfile
import time
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from clrkdnet_core.cli import run_cli
from clrkdnet_core.config import Preset
from clrkdnet_core.data.base import LaneDataset
from clrkdnet_core.data.culane import CULaneDataset
from clrkdnet_core.data.synthetic import generate_dataset
from clrkdnet_core.errors import DatasetError
from clrkdnet_core.metrics.culane import MF1_THRESHOLDS
from clrkdnet_core.models import build_model
from training.data import build_eval_dataset, build_train_dataset, collate
from training.distillation import DistillationWeights
from training.kd_study_report import RunScores, plot_study, scores_of, study_section
from training.pretrained import IMAGENET, BackboneInit, resolve_backbone_init
from training.reproduce_synthetic import synthetic_preset, write_section
from training.train import resolve_device
from training.trainer import Trainer, TrainSettings, build_teacher
from training.validation import evaluate

SECTION = "kd-study"  # the study's block of BENCHMARKS.md

TEACHER = "clrnet_resnet18_culane"
STUDENT = "clrkdnet_resnet18_culane"
DONE = "done.json"


@dataclass(frozen=True)
class Plan:
    """Sizes of one study: data, schedule (the same for every model) and seeds."""

    train_images: int
    test_images: int
    epochs: int
    batch_size: int
    lr: float
    img_w: int
    img_h: int
    seeds: tuple[int, ...]  # the plain and the distilled student train with each
    ablation_seeds: tuple[int, ...]  # every ablation trains with each
    amp: bool  # bfloat16 autocast on the CPU (float16 on CUDA): faster where the CPU has AMX/AVX-512 BF16
    log_every: int = 10  # TensorBoard scalars every N iterations


# The synthetic reproduction's data, batch, lr and input (1200 images, batch 8, 400 x 160) for 2 epochs, so
# that the 12 runs fit about 90 minutes on two CPU cores; a held-out split of 1000 images: ~2,900 GT lanes put
# a binomial standard error of F1 of 0.0093 at most (measured). `--epochs` trains longer where there is time.
FULL = Plan(
    train_images=1200,
    test_images=1000,
    epochs=2,
    batch_size=8,
    lr=2e-3,
    img_w=400,
    img_h=160,
    seeds=(0, 1, 2),
    ablation_seeds=(0,),
    amp=True,
)
QUICK = dataclasses.replace(
    FULL, train_images=2, test_images=2, epochs=1, batch_size=2, seeds=(0,), log_every=1
)


@dataclass(frozen=True)
class Variant:
    """One student recipe: its distillation weights, or None for the student trained without a teacher."""

    slug: str
    label: str
    weights: DistillationWeights | None


PAPER = DistillationWeights(att=1.0, logit=5.0, prior=3.0)  # the R18 student's weights (from R101)
COMPARED = (  # the comparison the study is for: trained with every seed
    Variant("plain", "without distillation", None),
    Variant("kd_paper", "distilled (att 1, logit 5, prior 3: R18-from-R101)", PAPER),
)
# What each term does: trained with the ablation seeds, each paired with the distilled run of its seed.
ABLATIONS = (
    Variant("kd_no_att", "distilled without attention (att 0)", dataclasses.replace(PAPER, att=0.0)),
    Variant("kd_logit0", "distilled without ROI features (logit 0)", dataclasses.replace(PAPER, logit=0.0)),
    Variant("kd_logit1", "distilled, ROI-feature weight 1", dataclasses.replace(PAPER, logit=1.0)),
    Variant("kd_no_prior", "distilled without priors (prior 0)", dataclasses.replace(PAPER, prior=0.0)),
    Variant(
        "kd_same_backbone",
        "distilled (att 0, logit 5, prior 5: same-backbone DLA pair)",
        DistillationWeights(att=0.0, logit=5.0, prior=5.0),
    ),
)
VARIANTS = COMPARED + ABLATIONS


@dataclass(frozen=True)
class Run:
    """One model to train: the teacher (variant None) or a student variant with a seed."""

    folder: str
    variant: Variant | None
    seed: int

    @property
    def distilled(self) -> bool:
        return self.variant is not None and self.variant.weights is not None

    @property
    def kind(self) -> str:
        """``teacher``, ``plain`` or ``distilled``: what one of its training steps costs."""
        return "teacher" if self.variant is None else "distilled" if self.distilled else "plain"


def planned_runs(plan: Plan) -> list[Run]:
    """The teacher first (every distilled run needs it), the compared students with each seed, then the
    ablations with theirs: an interrupted study has its main comparison first."""
    runs = [Run("teacher", None, plan.seeds[0])]
    runs += [Run(f"{v.slug}_seed{seed}", v, seed) for v in COMPARED for seed in plan.seeds]
    runs += [Run(f"{v.slug}_seed{seed}", v, seed) for v in ABLATIONS for seed in plan.ablation_seeds]
    return runs


def study_preset(name: str, plan: Plan, weights: DistillationWeights | None = None) -> Preset:
    """``name`` with the plan's schedule and input size; ``weights`` set the distillation terms."""
    extra: dict[str, object] = {}
    if weights is not None:
        extra = {
            "train.att_weight": weights.att,
            "train.logit_weight": weights.logit,
            "train.prior_weight": weights.prior,
            "train.teacher": TEACHER,
        }
    size = (plan.img_w, plan.img_h)
    return synthetic_preset(name, plan.epochs, plan.batch_size, plan.lr, size, **extra)


@dataclass
class Study:
    """Where and how the runs of one study train and are scored."""

    plan: Plan
    out: Path
    device: torch.device
    workers: int
    backbone: BackboneInit
    _train_set: LaneDataset | None = None
    _test_set: CULaneDataset | None = None
    _teacher: nn.Module | None = None

    @property
    def data_root(self) -> Path:
        return self.out / "data"

    def preset(self, run: Run) -> Preset:
        if run.variant is None:
            return study_preset(TEACHER, self.plan)
        return study_preset(STUDENT, self.plan, run.variant.weights)

    def trainer(self, run: Run, work_dir: Path, teacher: nn.Module | None) -> Trainer:
        preset = self.preset(run)
        if self._train_set is None:  # teacher and students share the geometry: one dataset for all
            self._train_set = build_train_dataset(preset, self.data_root)
        settings = TrainSettings(
            work_dir=work_dir,
            device=self.device,
            seed=run.seed,
            workers=self.workers,
            amp=self.plan.amp,
            validate=False,
            log_every=self.plan.log_every,
            backbone=self.backbone,
        )
        return Trainer(preset, self._train_set, None, settings, teacher)

    def teacher(self) -> nn.Module:
        """The study's trained teacher, frozen, loaded once."""
        if self._teacher is None:
            student = study_preset(STUDENT, self.plan)
            path = self.out / "teacher" / "last.pth"
            self._teacher = build_teacher(study_preset(TEACHER, self.plan), path, self.device, student)
        return self._teacher

    def run(self, run: Run) -> RunScores:
        """Train ``run`` (resuming its ``last.pth``) and score it, unless its ``done.json`` exists."""
        folder = self.out / run.folder
        done = folder / DONE
        if done.is_file():
            return RunScores(**json.loads(done.read_text(encoding="utf-8")))
        trainer = self.trainer(run, folder, self.teacher() if run.distilled else None)
        last = folder / "last.pth"
        if last.is_file():
            trainer.resume(last)
        start, first = time.perf_counter(), trainer.iteration
        trainer.fit()
        trained = trainer.iteration - first
        seconds_per_iter = (time.perf_counter() - start) / trained if trained else math.nan
        if self._test_set is None:
            self._test_set = build_eval_dataset(trainer.preset, self.data_root, "test")
        scores = evaluate(trainer.model, self._test_set, self.device, self.workers, MF1_THRESHOLDS)
        result = scores_of(
            run.folder, scores, seconds_per_iter, first, trainer.total_iters, trainer.backbone_init
        )
        done.write_text(json.dumps(dataclasses.asdict(result), indent=1), encoding="utf-8")
        return result


def step_seconds(study: Study, full: Plan, steps: int = 2) -> dict[str, float]:
    """Measured time of one training step of ``full`` (its batch size, input and precision) for the teacher,
    the plain and the distilled student: throwaway trainers (an untrained teacher) on a few images, one
    warm-up step each."""
    timings = {}
    with tempfile.TemporaryDirectory(prefix="kd_study_timing_") as tmp:
        data = generate_dataset(
            Path(tmp) / "data", "culane", full.batch_size, 0, split=(1, 0, 0), progress=False
        )
        train_set = build_train_dataset(study_preset(STUDENT, full), data)
        probe = dataclasses.replace(
            study, plan=full, out=Path(tmp), _train_set=train_set, _test_set=None, _teacher=None
        )
        teacher = build_model(study_preset(TEACHER, full)).to(study.device).eval()
        kinds = {"teacher": (None, None), "plain": (VARIANTS[0], None), "distilled": (VARIANTS[1], teacher)}
        for kind, (variant, frozen) in kinds.items():
            trainer = probe.trainer(Run(kind, variant, 0), Path(tmp) / kind, frozen)
            batch = collate([trainer.train_set[i] for i in range(full.batch_size)])
            trainer.train_step(batch)
            start = time.perf_counter()
            for _ in range(steps):
                trainer.train_step(batch)
            timings[kind] = (time.perf_counter() - start) / steps
    return timings


def study_hours(plan: Plan, timings: dict[str, float]) -> float:
    """Training hours of the plan's runs at the measured step times."""
    iterations = math.ceil(plan.train_images / plan.batch_size) * plan.epochs
    return sum(timings[run.kind] * iterations for run in planned_runs(plan)) / 3600


def claim_folder(out: Path, plan: Plan) -> None:
    """Record ``plan`` in ``out/plan.json``, or check that the folder's runs were made with it (finished runs
    of another plan must not be reused)."""
    record = out / "plan.json"
    wanted = json.loads(json.dumps(dataclasses.asdict(plan)))  # tuples as JSON lists, like the file
    if record.is_file():
        found = json.loads(record.read_text(encoding="utf-8"))
        if found != wanted:
            raise DatasetError(f"{out} holds a study of another plan ({record}); pass another --out")
        return
    out.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(wanted, indent=1), encoding="utf-8")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="training/kd_study.py", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--out", type=Path, help="run folders, resumed (default work_dirs/kd_study, --quick: kd_study_quick)"
    )
    parser.add_argument("--quick", action="store_true", help="tiny end-to-end run; writes only under --out")
    parser.add_argument("--estimate", action="store_true", help="print the full study's time and stop")
    parser.add_argument(
        "--epochs", type=int, help=f"epochs of every model in the full study (default {FULL.epochs})"
    )
    parser.add_argument(
        "--benchmarks", type=Path, help="BENCHMARKS.md to update (full default ./BENCHMARKS.md)"
    )
    parser.add_argument("--pictures-dir", type=Path, help="where the plot goes (full default docs/images/)")
    parser.add_argument(
        "--pretrained-backbone",
        default=IMAGENET,
        metavar="imagenet|none|FILE",
        help="backbone start of every model, as in training/train.py (default imagenet)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--workers", type=int, default=2)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Generate the split once, train and score every pending run, write the table and the plot."""
    args = _parser().parse_args(argv)
    full = FULL if args.epochs is None else dataclasses.replace(FULL, epochs=args.epochs)
    plan = QUICK if args.quick else full
    args.out = args.out or Path("work_dirs/kd_study_quick" if args.quick else "work_dirs/kd_study")
    benchmarks = args.benchmarks or (args.out / "BENCHMARKS.md" if args.quick else Path("BENCHMARKS.md"))
    pictures = args.pictures_dir or (args.out if args.quick else Path("docs/images"))
    backbone = resolve_backbone_init(args.pretrained_backbone, "resnet18")  # teacher and students: R18
    print(f"backbones resnet18: {backbone.description}", flush=True)
    study = Study(plan, args.out, resolve_device(args.device, 0), args.workers, backbone)
    timings = step_seconds(study, full, steps=1 if args.quick else 3)
    print(
        f"estimated full study: {study_hours(full, timings):.1f} h of training for {len(planned_runs(full))} "
        f"runs of {full.epochs} epochs on {study.device} (one step: "
        + ", ".join(f"{kind} {seconds:.2f} s" for kind, seconds in timings.items())
        + "), plus a few minutes of data generation and about a minute of scoring per run",
        flush=True,
    )
    if args.estimate:
        return 0
    claim_folder(args.out, plan)  # not before: an estimate must not tie the folder to a plan
    if not (study.data_root / "list" / "test.txt").is_file():
        split = (plan.train_images, 0, plan.test_images)  # counts work as fractions: exact split sizes
        generate_dataset(study.data_root, "culane", plan.train_images + plan.test_images, 0, split=split)
    wall = time.perf_counter()
    results = []
    for run in tqdm(planned_runs(plan), desc="kd study", unit="run", dynamic_ncols=True):
        results.append(study.run(run))
        tqdm.write(f"{run.folder}: {results[-1].summary()}")
    arguments = sys.argv[1:] if argv is None else argv
    command = " ".join(["python training/kd_study.py", *map(shlex.quote, arguments)])
    setup = (
        f"`{command}` on {study.device} ({platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads), {(time.perf_counter() - wall) / 60:.0f} min in its last "
        f"invocation (finished runs are reused). {plan.train_images} generated training images and "
        f"{plan.test_images} held-out ones (the generator's standard scenes), {plan.epochs} epochs of batch "
        f"{plan.batch_size} at AdamW lr {plan.lr} for every model"
        f"{' with mixed precision (bfloat16 autocast on the CPU)' if plan.amp else ''}, {plan.img_w} x "
        f"{plan.img_h} input; the compared students with seeds {', '.join(map(str, plan.seeds))}, the "
        f"ablations with seed {', '.join(map(str, plan.ablation_seeds))}; one CLRNet-R18 teacher (seed "
        f"{plan.seeds[0]}) distils every student."
    )
    plot = plot_study(results, VARIANTS, pictures / "kd_study.png")
    section = study_section(results, VARIANTS, setup, plot)
    write_section(benchmarks, section, SECTION)
    print(section)
    print(f"wrote {benchmarks} and {plot}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
