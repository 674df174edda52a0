"""What CLRKDNet's distillation is worth: the plain and the distilled students over several seeds against one
teacher, on one generated split and schedule, scored with the official CULane metric on 1000 held-out images.

    python training/kd_study.py                      # the converged plan (8 epochs): results, then the report
    python training/kd_study.py --commit             # the same, git-committing each finished run's result
    python training/kd_study.py --estimate           # how long the runs that have no result yet take here
    python training/kd_study.py --report             # BENCHMARKS.md block + plot from the committed results
    python training/kd_study.py --profile-step 5     # where a distilled step's time goes, side by side
    python training/kd_study.py --plan short         # the earlier 2-epoch study with its ablations
    python training/kd_study.py --quick              # a tiny end-to-end run, under --out only

Plans. ``converged`` (default; ``--epochs`` >= 3): the CLRNet-R18 teacher once, then the plain student and
two distilled students (the paper's weights att 1 / logit 5 / prior 3, and the 2-epoch ablations' best:
logit 1, prior on) with three seeds each, every model on the synthetic reproduction's 8-epoch schedule and
scored at the end of its last three epochs, so the table says whether it converged (F1@50 within 1 point
of its value two epochs before). The "beyond the paper" arm (the teacher's final-stage lane regression
distilled with the line-IoU loss, ``training.distillation.lane_regression_loss``) runs only when neither
distilled arm closes half of the teacher-student F1@75 gap (``--beyond`` changes that). ``short``: the
earlier 2-epoch study.

Surviving sessions. Each finished run writes one small JSON file (scores per scored epoch, settings, seed,
times, backbone start, device, git commit) under ``training/kd_study_results/<plan>/``, which is committed:
a run with a result file is never trained again, also on a fresh clone, and ``--report`` rebuilds the table
from those files alone. Checkpoints and the generated data stay under ``--out`` (work_dirs/, ignored by git);
an interrupted run resumes from its ``last.pth``. Without the teacher's checkpoint (a fresh clone) pending
distilled runs retrain it first with the same seed, and every distilled result names the teacher checkpoint's
SHA-256.
"""

import sys
from pathlib import Path

# `python training/kd_study.py` puts training/ on sys.path, not the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import dataclasses
import functools
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
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
from clrkdnet_core.hashing import file_sha256
from clrkdnet_core.metrics.culane import MF1_THRESHOLDS
from clrkdnet_core.models import build_model
from training.data import (
    Batch,
    CachedDecodeDataset,
    ReducedImageCache,
    SeededAugmentation,
    build_eval_dataset,
    build_train_dataset,
    collate,
)
from training.distillation import DistillationWeights, distillation_losses
from training.kd_study_report import (
    RunScores,
    closes_half,
    converged_of,
    converged_section,
    plot_study,
    rows_of,
    scores_of,
    strict_json,
    study_section,
)
from training.pretrained import IMAGENET, BackboneInit, resolve_backbone_init
from training.reproduce_synthetic import synthetic_preset, write_section
from training.train import resolve_device
from training.trainer import Trainer, TrainSettings, build_teacher
from training.validation import evaluate

REPO = Path(__file__).resolve().parents[1]
SECTION = "kd-study"  # the study's block of BENCHMARKS.md
RESULTS = REPO / "training" / "kd_study_results"  # committed: one JSON file per finished run

TEACHER = "clrnet_resnet18_culane"
STUDENT = "clrkdnet_resnet18_culane"
DONE = "done.json"  # the short plan's per-run file under --out (kept so its earlier folders resume)
PROGRESS = "progress.json"  # per run folder: the scored epochs and seconds so far, for an interrupted run


@dataclass(frozen=True)
class Variant:
    """One student recipe: its distillation weights, or None for the student trained without a teacher."""

    slug: str
    label: str
    weights: DistillationWeights | None


PAPER = DistillationWeights(att=1.0, logit=5.0, prior=3.0)  # the R18 student's weights (from R101)
PLAIN = Variant("plain", "without distillation", None)
KD_PAPER = Variant("kd_paper", "distilled (att 1, logit 5, prior 3: R18-from-R101)", PAPER)
# The 2-epoch ablations' best: the prior term is the one that helps, ROI-feature weight 5 the one to lower.
KD_LOGIT1 = Variant("kd_logit1", "distilled, ROI-feature weight 1", dataclasses.replace(PAPER, logit=1.0))
# Beyond the paper: the best arm plus the teacher's final-stage lane regression at its assigned priors. Its
# weight is the task's LineIoU weight (train.iou_weight 2.0): the teacher's lanes pull as hard as the GT's.
KD_LANE = Variant(
    "kd_lane",
    "distilled, ROI-feature weight 1 + teacher's final lanes (line IoU)",
    dataclasses.replace(PAPER, logit=1.0, lane=2.0),
)
COMPARED = (PLAIN, KD_PAPER)  # the short plan's comparison
# What each term does (short plan): trained with the ablation seeds, each paired with the distilled run.
ABLATIONS = (
    Variant("kd_no_att", "distilled without attention (att 0)", dataclasses.replace(PAPER, att=0.0)),
    Variant("kd_logit0", "distilled without ROI features (logit 0)", dataclasses.replace(PAPER, logit=0.0)),
    KD_LOGIT1,
    Variant("kd_no_prior", "distilled without priors (prior 0)", dataclasses.replace(PAPER, prior=0.0)),
    Variant(
        "kd_same_backbone",
        "distilled (att 0, logit 5, prior 5: same-backbone DLA pair)",
        DistillationWeights(att=0.0, logit=5.0, prior=5.0),
    ),
)
VARIANTS = COMPARED + ABLATIONS
BY_SLUG = {v.slug: v for v in (*VARIANTS, KD_LANE)}


@dataclass(frozen=True)
class Plan:
    """One study: data, schedule (the same for every model), which arms train with which seeds, and how the
    steps run (options that change no result)."""

    name: str  # its results folder under training/kd_study_results/
    train_images: int
    test_images: int
    epochs: int
    batch_size: int
    lr: float
    img_w: int
    img_h: int
    seeds: tuple[int, ...]  # every arm of ``arms`` trains with each
    ablation_seeds: tuple[int, ...]  # every arm of ``ablations`` trains with each
    amp: bool  # bfloat16 autocast on the CPU (float16 on CUDA): faster where the CPU has AMX/AVX-512 BF16
    log_every: int = 10  # TensorBoard scalars every N iterations
    arms: tuple[str, ...] = ("plain", "kd_paper")
    ablations: tuple[str, ...] = ()
    beyond: tuple[str, ...] = ()  # trained with ``seeds`` only when no distilled arm closes half the gap
    scored_epochs: int = 1  # the held-out split is scored at the end of the last N epochs
    decode_cache: bool = False  # decoded images cached at the training size (identical samples)
    teacher_channels_last: bool = False
    teacher_amp: bool | None = None  # None: like the student (``amp``)

    @property
    def converged_plan(self) -> bool:
        """Whether the table carries the convergence column (scored two epochs before the last)."""
        return self.scored_epochs >= 3


# The synthetic reproduction's data, batch, lr and input (1200 images, batch 8, 400 x 160) for 2 epochs, so
# that the 12 runs fit about 90 minutes on two CPU cores; a held-out split of 1000 images: ~2,900 GT lanes put
# a binomial standard error of F1 of 0.0093 at most (measured).
SHORT = Plan(
    name="short_2ep",
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
    ablations=tuple(v.slug for v in ABLATIONS),
)
# The converged plan: the reproduction's 8 epochs, the compared arms with three seeds, scored at the end of
# the last three epochs. Teacher options: see --profile-step (measured side by side) and test_kd_study.py
# (the bfloat16 teacher's outputs against float32).
CONVERGED = dataclasses.replace(
    SHORT,
    name="converged_8ep",
    epochs=8,
    ablation_seeds=(),
    arms=("plain", "kd_paper", "kd_logit1"),
    ablations=(),
    beyond=("kd_lane",),
    scored_epochs=3,
    decode_cache=True,
    # Measured side by side (--profile-step, 2-core EPYC under load): the bfloat16 teacher forward (as the
    # student's autocast gives it) 0.3-0.6x of float32 in 3 of 4 runs, its outputs within the 3 % tested in
    # test_train.py; channels-last 0.75-0.78x in float32 and a paired median 0.85x in bfloat16; the decode
    # cache 0.3-0.7x of a full-size decode per batch, samples identical. inference_mode was no faster than
    # no_grad (0.93-1.39x): not taken.
    teacher_channels_last=True,
)
FULL = CONVERGED
QUICK = dataclasses.replace(
    CONVERGED,
    name="quick",
    train_images=2,
    test_images=2,
    epochs=3,
    batch_size=2,
    seeds=(0,),
    log_every=1,
)
QUICK_SHORT = dataclasses.replace(
    SHORT, name="quick_short", train_images=2, test_images=2, epochs=1, batch_size=2, seeds=(0,), log_every=1
)
PLANS = {"converged": CONVERGED, "short": SHORT}


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


def _runs(slugs: tuple[str, ...], seeds: tuple[int, ...]) -> list[Run]:
    return [Run(f"{slug}_seed{seed}", BY_SLUG[slug], seed) for slug in slugs for seed in seeds]


def planned_runs(plan: Plan) -> list[Run]:
    """The teacher first (every distilled run needs it), the compared arms with each seed, then the
    ablations with theirs: an interrupted study has its main comparison first. Not the beyond arm."""
    runs = [Run("teacher", None, plan.seeds[0])]
    return runs + _runs(plan.arms, plan.seeds) + _runs(plan.ablations, plan.ablation_seeds)


def beyond_runs(plan: Plan) -> list[Run]:
    """The beyond-the-paper arm's runs (conditional, see :func:`needs_beyond`)."""
    return _runs(plan.beyond, plan.seeds)


def plan_variants(plan: Plan) -> tuple[Variant, ...]:
    """The table's student rows, plain first."""
    return tuple(BY_SLUG[slug] for slug in (*plan.arms, *plan.ablations, *plan.beyond))


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


def device_name(device: torch.device) -> str:
    """``cpu: <model name> (<threads> threads)`` or ``cuda: <GPU name>``, for the result files."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"cpu: {model} ({torch.get_num_threads()} threads)"


def git_commit(repo: Path = REPO) -> str:
    """HEAD of the repository (``+dirty`` with uncommitted changes in tracked files), or '' outside git."""
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "diff", "--quiet", "HEAD", "--", "training", "clrkdnet_core"],
            capture_output=True,
        ).returncode
    except (OSError, subprocess.CalledProcessError):
        return ""
    return head + ("+dirty" if dirty else "")


def commit_files(paths: list[Path], message: str, attempts: int = 20) -> bool:
    """``git add`` and ``git commit`` exactly ``paths`` (other staged or edited files stay out), retrying
    while another process holds the index lock; False (with one line) when git refuses."""
    if not paths:
        return False
    repo = subprocess.run(
        ["git", "-C", str(paths[0].parent), "rev-parse", "--show-toplevel"], capture_output=True, text=True
    ).stdout.strip()
    if not repo:
        print(f"--commit: {paths[0]} is not in a git repository; not committed", flush=True)
        return False
    names = [str(path.resolve()) for path in paths]
    for attempt in range(attempts):
        add = subprocess.run(["git", "-C", repo, "add", "--", *names], capture_output=True, text=True)
        done = (
            add.returncode == 0
            and (
                commit := subprocess.run(
                    ["git", "-C", repo, "commit", "-m", message, "--", *names], capture_output=True, text=True
                )
            ).returncode
            == 0
        )
        if done:
            return True
        error = add.stderr if add.returncode else commit.stderr + commit.stdout
        if "index.lock" not in error or attempt == attempts - 1:
            print(f"--commit: git refused ({error.strip().splitlines()[-1:]}); not committed", flush=True)
            return False
        time.sleep(1 + attempt)
    return False


def load_results(folder: Path) -> dict[str, RunScores]:
    """The finished runs' results in ``folder`` (``<run>.json``), by run folder name."""
    results = {}
    for path in sorted(Path(folder).glob("*.json")):
        if path.name == "plan.json":
            continue
        results[path.stem] = RunScores.from_json(json.loads(path.read_text(encoding="utf-8")))
    return results


def _write_json(path: Path, data: object) -> None:
    """Atomically: a killed run leaves the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(strict_json(data), indent=1, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


@dataclass
class Study:
    """Where and how the runs of one study train and are scored."""

    plan: Plan
    out: Path
    device: torch.device
    workers: int
    backbone: BackboneInit
    results: Path | None = None  # result files (default: <out>/results)
    commit: bool = False  # git-commit each result file once written
    _train_set: LaneDataset | None = None
    _test_set: CULaneDataset | None = None
    _teacher: nn.Module | None = None

    def __post_init__(self) -> None:
        if self.results is None:
            self.results = self.out / "results"

    @property
    def data_root(self) -> Path:
        return self.out / "data"

    def preset(self, run: Run) -> Preset:
        if run.variant is None:
            return study_preset(TEACHER, self.plan)
        return study_preset(STUDENT, self.plan, run.variant.weights)

    def settings(self, run: Run, work_dir: Path) -> TrainSettings:
        plan = self.plan
        lane = run.variant.weights.lane if run.distilled else 0.0
        return TrainSettings(
            work_dir=work_dir,
            device=self.device,
            seed=run.seed,
            workers=self.workers,
            amp=plan.amp,
            validate=False,
            log_every=plan.log_every,
            backbone=self.backbone,
            teacher_amp=plan.teacher_amp,
            teacher_channels_last=plan.teacher_channels_last,
            distill_lane_weight=lane,
        )

    def ensure_data(self) -> None:
        """Generate the plan's split once (seed 0: the same images on every machine), only when a run is
        trained: a study whose runs all have result files needs no data."""
        if not (self.data_root / "list" / "test.txt").is_file():
            plan = self.plan
            split = (plan.train_images, 0, plan.test_images)  # counts work as fractions: exact split sizes
            generate_dataset(self.data_root, "culane", plan.train_images + plan.test_images, 0, split=split)

    def train_set(self, preset: Preset) -> LaneDataset:
        """The training split, shared by teacher and students (same geometry), decode-cached per the plan."""
        if self._train_set is None:
            dataset = build_train_dataset(preset, self.data_root)
            if self.plan.decode_cache:
                dataset = CachedDecodeDataset(dataset, ReducedImageCache(self.out / "decoded_cache"))
            self._train_set = dataset
        return self._train_set

    def trainer(self, run: Run, work_dir: Path, teacher: nn.Module | None) -> Trainer:
        preset = self.preset(run)
        return Trainer(preset, self.train_set(preset), None, self.settings(run, work_dir), teacher)

    def teacher_path(self) -> Path:
        return self.out / "teacher" / "last.pth"

    def teacher(self) -> nn.Module:
        """The study's trained teacher, frozen, loaded once. On a fresh clone the teacher has a result but
        no checkpoint: it is trained again (same seed and data) without touching its committed result."""
        if self._teacher is None:
            path, run = self.teacher_path(), Run("teacher", None, self.plan.seeds[0])
            if not self._finished_training(run):
                print(f"no finished teacher checkpoint {path} (a fresh clone?): training it", flush=True)
                self._train_and_score(run)
            student = study_preset(STUDENT, self.plan)
            self._teacher = build_teacher(study_preset(TEACHER, self.plan), path, self.device, student)
        return self._teacher

    def _finished_training(self, run: Run) -> bool:
        """Whether ``run``'s folder holds a checkpoint at the end of the schedule, scored."""
        progress = self.out / run.folder / PROGRESS
        if not (self.out / run.folder / "last.pth").is_file():
            return False
        if (self.out / run.folder / DONE).is_file():  # a short-plan folder from before progress files
            return True
        if not progress.is_file():
            return False
        state = json.loads(progress.read_text(encoding="utf-8"))
        return any(int(score["epoch"]) == self.plan.epochs for score in state["epochs"])

    def result_path(self, run: Run) -> Path:
        return self.results / f"{run.folder}.json"

    def run(self, run: Run) -> RunScores:
        """``run``'s result: read from its result file, or trained (resuming its ``last.pth``), scored at
        the end of the plan's last epochs, written (and committed with ``commit``)."""
        path = self.result_path(run)
        if path.is_file():
            return RunScores.from_json(json.loads(path.read_text(encoding="utf-8")))
        legacy = self.out / run.folder / DONE  # a short-plan folder finished before result files existed
        if legacy.is_file() and not self.plan.converged_plan:
            result = RunScores.from_json(json.loads(legacy.read_text(encoding="utf-8")))
        else:
            result = self._train_and_score(run)
        _write_json(path, result.to_json())
        if self.commit:
            plan_file = self.results / "plan.json"
            commit_files(
                [path, plan_file], f"kd study {self.plan.name}: {run.folder} result ({result.summary()})"
            )
        return result

    def _evaluate(self, model: nn.Module, preset: Preset) -> dict[float, dict]:
        if self._test_set is None:
            self._test_set = build_eval_dataset(preset, self.data_root, "test")
        return evaluate(model, self._test_set, self.device, self.workers, MF1_THRESHOLDS)

    def _train_and_score(self, run: Run) -> RunScores:
        """Train ``run`` epoch by epoch to the end of the schedule, scoring the held-out split at the end of
        each of the last ``scored_epochs`` epochs; its folder's progress file makes this resumable."""
        plan, folder = self.plan, self.out / run.folder
        self.ensure_data()
        teacher_sha = ""
        teacher = None
        if run.distilled:
            teacher = self.teacher()
            teacher_sha = file_sha256(self.teacher_path())
        trainer = self.trainer(run, folder, teacher)
        progress_file = folder / PROGRESS
        progress = {"epochs": [], "train_seconds": 0.0, "eval_seconds": 0.0, "iterations_timed": 0}
        last = folder / "last.pth"
        if last.is_file():
            trainer.resume(last)
            if progress_file.is_file():
                progress = json.loads(progress_file.read_text(encoding="utf-8"))
        first = trainer.iteration
        scored = {int(score["epoch"]): score for score in progress["epochs"]}
        final: dict[float, dict] | None = None
        for epoch in range(1, plan.epochs + 1):
            end = epoch * trainer.iters_per_epoch
            if trainer.iteration < end:
                start, before = time.perf_counter(), trainer.iteration
                trainer.settings = dataclasses.replace(trainer.settings, max_iters=end)
                trainer.fit()
                progress["train_seconds"] += time.perf_counter() - start
                progress["iterations_timed"] += trainer.iteration - before
            if epoch <= plan.epochs - plan.scored_epochs or (epoch in scored and epoch < plan.epochs):
                _write_json(progress_file, progress)
                continue
            start = time.perf_counter()
            thresholds = self._evaluate(trainer.model, trainer.preset)
            progress["eval_seconds"] += time.perf_counter() - start
            summary = scores_of(run.folder, thresholds, math.nan, 0, 0, "")
            scored[epoch] = {
                "epoch": epoch,
                "f1_50": summary.f1_50,
                "f1_75": summary.f1_75,
                "mf1": summary.mf1,
            }
            progress["epochs"] = [scored[e] for e in sorted(scored)]
            _write_json(progress_file, progress)
            if epoch == plan.epochs:
                final = thresholds
            tqdm.write(f"{run.folder} epoch {epoch}: F1@50 {summary.f1_50:.4f} F1@75 {summary.f1_75:.4f}")
        assert final is not None
        timed = progress["iterations_timed"]
        result = scores_of(
            run.folder,
            final,
            progress["train_seconds"] / timed if timed else math.nan,
            first,
            trainer.total_iters,
            trainer.backbone_init,
        )
        weights = run.variant.weights if run.variant is not None else None
        return dataclasses.replace(
            result,
            epoch_scores=progress["epochs"],
            converged=converged_of(progress["epochs"]),
            variant="teacher" if run.variant is None else run.variant.slug,
            seed=run.seed,
            settings={
                "plan": json.loads(json.dumps(dataclasses.asdict(plan))),
                "preset": trainer.preset.name,
                "distillation": None if weights is None else dataclasses.asdict(weights),
                "workers": self.workers,
            },
            train_seconds=progress["train_seconds"],
            eval_seconds=progress["eval_seconds"],
            device=device_name(self.device),
            git_commit=git_commit(),
            teacher_sha256=teacher_sha,
        )


def needs_beyond(plan: Plan, results: dict[str, RunScores]) -> bool | None:
    """Whether the beyond-the-paper arm is to be run: True when the compared arms are all finished and no
    distilled arm closes half of the teacher-student F1@75 gap, False when one does (or the teacher is not
    ahead), None while compared runs are missing."""
    if any(run.folder not in results for run in planned_runs(plan)):
        return None
    rows = rows_of(list(results.values()), plan_variants(plan))
    distilled = [i for i, row in enumerate(rows) if i >= 2 and row.runs and row.label.find("distilled") >= 0]
    distilled = [i for i in distilled if rows[i].runs[0].folder.rsplit("_seed", 1)[0] in plan.arms]
    gap = rows[0].mean("f1_75") - rows[1].mean("f1_75")
    if not gap > 0:  # the teacher not ahead (or no F1 at all): nothing for the arm to close
        return False
    return not any(closes_half(rows, i) for i in distilled)


# -- time -----------------------------------------------------------------------------------------------


def _timed(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def step_seconds(study: Study, full: Plan, steps: int = 2) -> tuple[dict[str, float], dict[str, float]]:
    """Measured time of one training step of ``full`` (its batch size, input, precision and teacher
    options) for the teacher, the plain and the distilled student, of one evaluation batch of 8, and of
    loading one batch (decode + augmentation, one process): throwaway trainers (an untrained teacher) on a
    few images, one warm-up each, then ``steps`` rounds of one of each, interleaved. Returns the medians and
    the fastest of the rounds: on a shared machine the median says what its load gives, the fastest what
    the machine gives when otherwise idle."""
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="kd_study_timing_") as tmp:
        generate_dataset(Path(tmp) / "data", "culane", full.batch_size, 0, split=(1, 0, 0), progress=False)
        probe = dataclasses.replace(
            study, plan=full, out=Path(tmp), results=Path(tmp) / "results", _test_set=None, _teacher=None
        )
        probe._train_set = None
        train_set = probe.train_set(study_preset(STUDENT, full))
        teacher = build_model(study_preset(TEACHER, full)).to(study.device).eval().requires_grad_(False)
        kinds = {"teacher": (None, None), "plain": (PLAIN, None), "distilled": (KD_PAPER, teacher)}
        samples = SeededAugmentation(train_set, 0)
        batch = collate([samples[i] for i in range(full.batch_size)])  # fills the decode cache
        calls: dict[str, Callable[[], object]] = {
            "loading": lambda: collate([samples[i] for i in range(full.batch_size)])
        }
        for kind, (variant, frozen) in kinds.items():
            trainer = probe.trainer(Run(kind, variant, 0), Path(tmp) / kind, frozen)
            calls[kind] = functools.partial(trainer.train_step, batch)
        model = build_model(study_preset(STUDENT, full)).to(study.device).eval()

        def predict() -> None:
            with torch.inference_mode():
                model(batch.images.to(study.device))

        calls["eval batch"] = predict
        for call in calls.values():  # warm-up
            call()
        for _ in range(steps):
            for name, call in calls.items():
                times.setdefault(name, []).append(_timed(call))
    medians = {name: statistics.median(values) for name, values in times.items()}
    return medians, {name: min(values) for name, values in times.items()}


def remaining_hours(plan: Plan, runs: list[Run], timings: dict[str, float]) -> float:
    """Hours of ``runs`` under ``plan`` at the measured times: training steps plus loading (added, not
    hidden: two cores leave the loader no spare core) and the scored epochs' forward passes."""
    iterations = math.ceil(plan.train_images / plan.batch_size) * plan.epochs
    per_eval = timings["eval batch"] * math.ceil(plan.test_images / 8)
    seconds = sum(
        (timings[run.kind] + timings["loading"]) * iterations + per_eval * plan.scored_epochs for run in runs
    )
    return seconds / 3600


def study_hours(plan: Plan, timings: dict[str, float]) -> float:
    """Training hours of all the plan's runs (the beyond arm not included) at the measured step times."""
    timings = {"loading": 0.0, "eval batch": 0.0, **timings}
    return remaining_hours(plan, planned_runs(plan), timings)


def estimate_text(plan: Plan, results: dict[str, RunScores], timings: dict[str, float], device: str) -> str:
    """What is left of ``plan`` and how long it takes here."""
    pending = [run for run in planned_runs(plan) if run.folder not in results]
    beyond = [run for run in beyond_runs(plan) if run.folder not in results]
    counts = {kind: sum(run.kind == kind for run in pending) for kind in ("teacher", "plain", "distilled")}
    steps = ", ".join(f"{kind} {timings[kind]:.2f} s" for kind in ("teacher", "plain", "distilled"))
    hours = remaining_hours(plan, pending, timings)
    scoring = timings["eval batch"] * math.ceil(plan.test_images / 8) / 60
    text = (
        f"plan {plan.name}: {len(planned_runs(plan)) - len(pending)} of {len(planned_runs(plan))} runs "
        f"finished; the {len(pending)} left ({counts['teacher']} teacher, {counts['plain']} plain, "
        f"{counts['distilled']} distilled, {plan.epochs} epochs each) take {hours:.1f} h on {device} (one "
        f"step: {steps}; loading a batch {timings['loading']:.2f} s; scoring {plan.scored_epochs} epochs of "
        f"{plan.test_images} images {scoring:.1f} min each)"
    )
    if beyond:
        more = remaining_hours(plan, beyond, timings)
        text += f"; the beyond-the-paper arm, if needed, {len(beyond)} runs, {more:.1f} h more"
    return text


# -- where a distilled step's time goes -------------------------------------------------------------------


def profile_step(study: Study, plan: Plan, rounds: int) -> str:
    """Every variant of each part of a distilled step, timed ``rounds`` times interleaved (one of each per
    round, so a machine that gets busier slows them alike); a markdown table of medians and ratios."""
    variants: dict[str, Callable[[], object]] = {}
    with tempfile.TemporaryDirectory(prefix="kd_study_profile_") as tmp:
        root = generate_dataset(
            Path(tmp) / "data", "culane", plan.batch_size, 0, split=(1, 0, 0), progress=False
        )
        preset = study_preset(STUDENT, plan)
        plain_set = build_train_dataset(preset, root)
        cached_set = CachedDecodeDataset(plain_set, ReducedImageCache(Path(tmp) / "cache"))
        uncached, cached = SeededAugmentation(plain_set, 0), SeededAugmentation(cached_set, 0)
        collate([cached[i] for i in range(plan.batch_size)])  # the cache is filled once per study
        variants["load batch: full-size decode"] = lambda: collate(
            [uncached[i] for i in range(plan.batch_size)]
        )
        variants["load batch: decode cache"] = lambda: collate([cached[i] for i in range(plan.batch_size)])
        teacher = build_model(study_preset(TEACHER, plan)).to(study.device).eval().requires_grad_(False)
        probe = dataclasses.replace(study, plan=plan, out=Path(tmp), _teacher=None)
        probe._train_set = cached_set
        batch = collate([cached[i] for i in range(plan.batch_size)])
        images = batch.images.to(study.device)
        last_images = images.contiguous(memory_format=torch.channels_last)
        last_teacher = build_model(study_preset(TEACHER, plan)).to(study.device).eval().requires_grad_(False)
        last_teacher.load_state_dict(teacher.state_dict())
        last_teacher.to(memory_format=torch.channels_last)

        def forward(model: nn.Module, x: torch.Tensor, amp: bool, inference: bool) -> Callable[[], object]:
            def call() -> object:
                grad_off = torch.inference_mode() if inference else torch.no_grad()
                with grad_off, torch.autocast(study.device.type, enabled=amp):
                    return model(x, return_dict=True)

            return call

        for amp in (False, True):
            precision = "bf16 autocast" if amp else "fp32"
            variants[f"teacher forward: {precision}, no_grad"] = forward(teacher, images, amp, False)
            variants[f"teacher forward: {precision}, inference_mode"] = forward(teacher, images, amp, True)
            variants[f"teacher forward: {precision}, channels-last"] = forward(
                last_teacher, last_images, amp, False
            )
        trainers = {
            "step: plain student (forward, loss, backward, AdamW)": probe.trainer(
                Run("plain", PLAIN, 0), Path(tmp) / "p", None
            ),
            "step: distilled, teacher fp32": probe.trainer(Run("kd", KD_PAPER, 0), Path(tmp) / "k", teacher),
            "step: distilled, teacher like the student (amp)": probe.trainer(
                Run("kd", KD_PAPER, 0), Path(tmp) / "a", teacher
            ),
        }
        trainers["step: distilled, teacher fp32"].settings = dataclasses.replace(
            trainers["step: distilled, teacher fp32"].settings, teacher_amp=False
        )
        trainers["step: distilled, teacher like the student (amp)"].settings = dataclasses.replace(
            trainers["step: distilled, teacher like the student (amp)"].settings, teacher_amp=None
        )
        for name, trainer in trainers.items():
            variants[name] = (lambda t: lambda: t.train_step(batch))(trainer)
        for call in variants.values():  # warm-up: allocator, oneDNN kernels, the cache's first read
            call()
        times: dict[str, list[float]] = {name: [] for name in variants}
        distilled = trainers["step: distilled, teacher like the student (amp)"]
        for _ in range(rounds):
            for name, call in variants.items():
                times[name].append(_timed(call))
            for phase, seconds in step_phases(distilled, batch).items():
                times.setdefault(f"distilled step, by phase: {phase}", []).append(seconds)
    medians = {name: statistics.median(values) for name, values in times.items()}
    lines = [
        f"{rounds} interleaved rounds, batch {plan.batch_size}, {plan.img_w} x {plan.img_h}, student amp "
        f"{plan.amp}, on {device_name(study.device)}; untrained networks (step time does not depend on the "
        "weights)",
        "",
        "| part | variant | median ms | vs the part's first (phases: share of their sum) |",
        "|---|---|---|---|",
    ]
    firsts: dict[str, float] = {}
    phases = sum(median for name, median in medians.items() if name.startswith("distilled step, by"))
    for name, median in medians.items():
        part, variant = name.split(": ", 1)
        base = firsts.setdefault(part, median)
        # the phases of one step are shares of their sum, the variants ratios to the part's first
        ratio = (
            f"{median / phases:.0%} of the step"
            if part.startswith("distilled step, by")
            else f"{median / base:.2f}"
        )
        lines.append(f"| {part} | {variant} | {median * 1000:.0f} | {ratio} |")
    return "\n".join(lines)


def step_phases(trainer: Trainer, batch: Batch) -> dict[str, float]:
    """Seconds of each phase of one :meth:`Trainer.train_step` on ``batch`` (the same calls, timed apart;
    LR schedule and EMA left out): where a distilled step's time goes."""
    times: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        times[name] = now - clock
        clock = now

    images = batch.images.to(trainer.device)
    targets, seg = batch.targets.to(trainer.device), batch.seg.to(trainer.device)
    trainer.model.train()
    lap("inputs to the device")
    with torch.autocast(trainer.device.type, enabled=trainer.settings.amp):
        output = trainer.forward(images)
        lap("student forward")
        losses = trainer.criterion(output, targets, seg)
        lap("task loss (assignment, focal, LineIoU, seg)")
        if trainer.teacher is not None:
            teacher_output = trainer.teacher_outputs(images)
            lap("teacher forward")
            criterion = trainer.criterion
            geometry = (criterion.img_w, criterion.img_h, criterion.ori_w)
            weights = trainer.distill_weights
            losses.update(distillation_losses(output, teacher_output, weights, targets, geometry))
            lap("distillation terms")
    total = losses["loss"] + sum(value for key, value in losses.items() if key.startswith("distill_"))
    trainer.optimizer.zero_grad(set_to_none=True)
    trainer.scaler.scale(total).backward()
    lap("backward")
    trainer.scaler.step(trainer.optimizer)
    trainer.scaler.update()
    lap("AdamW step")
    return times


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
    _write_json(record, wanted)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="training/kd_study.py", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--plan", choices=sorted(PLANS), default="converged", help="which study (default converged)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="checkpoints and data, resumed (default work_dirs/kd_study_<plan>; git-ignored)",
    )
    parser.add_argument(
        "--results",
        type=Path,
        help="result files, one per finished run (default training/kd_study_results/<plan>; "
        "--quick: <out>/results)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny end-to-end run; writes only under --out")
    parser.add_argument("--estimate", action="store_true", help="print how long the runs left take, and stop")
    parser.add_argument(
        "--report", action="store_true", help="only regenerate the report from the result files"
    )
    parser.add_argument(
        "--commit", action="store_true", help="git-commit each result file once it is written"
    )
    parser.add_argument(
        "--profile-step",
        type=int,
        metavar="N",
        help="time N interleaved rounds of each step variant, and stop",
    )
    parser.add_argument(
        "--beyond",
        choices=("auto", "always", "never"),
        default="auto",
        help="the beyond-the-paper arm: only when no distilled arm closes half the F1@75 gap (auto)",
    )
    parser.add_argument("--epochs", type=int, help="epochs of every model (converged default 8, at least 3)")
    parser.add_argument("--benchmarks", type=Path, help="BENCHMARKS.md to update (default ./BENCHMARKS.md)")
    parser.add_argument("--pictures-dir", type=Path, help="where the plot goes (default docs/images/)")
    parser.add_argument(
        "--pretrained-backbone",
        default=IMAGENET,
        metavar="imagenet|none|FILE",
        help="backbone start of every model, as in training/train.py (default imagenet)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--workers", type=int, default=2)
    return parser


def _resolve_plan(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Plan:
    plan = PLANS[args.plan]
    if args.quick:
        return QUICK if args.plan == "converged" else QUICK_SHORT
    if args.epochs is not None:
        if plan.converged_plan and args.epochs < 3:
            parser.error("--epochs: the converged plan needs at least 3 (F1@50 is compared two epochs back)")
        name = plan.name.rsplit("_", 1)[0] + f"_{args.epochs}ep"
        plan = dataclasses.replace(plan, epochs=args.epochs, name=name)
    return plan


def report(plan: Plan, results: dict[str, RunScores], benchmarks: Path, pictures: Path, setup: str) -> bool:
    """Write the kd-study block and the plot from ``results``; False (block untouched) when there are none."""
    if not results:
        print(f"no results of plan {plan.name} yet: {benchmarks} keeps its kd-study block", flush=True)
        return False
    ordered = [
        results[run.folder] for run in [*planned_runs(plan), *beyond_runs(plan)] if run.folder in results
    ]
    variants = plan_variants(plan)
    if plan.converged_plan:
        plot = plot_study(ordered, variants, pictures / f"kd_study_{plan.name}.png")
        planned = len(planned_runs(plan)) + (
            len(beyond_runs(plan)) if any(r.folder.startswith(tuple(plan.beyond)) for r in ordered) else 0
        )
        section = converged_section(ordered, variants, setup, plot, planned)
    else:
        plot = plot_study(ordered, variants, pictures / "kd_study.png")
        section = study_section(ordered, variants, setup, plot)
    write_section(benchmarks, section, SECTION)
    print(section)
    print(f"wrote {benchmarks} and {plot}")
    return True


def _setup_text(plan: Plan, command: str) -> str:
    scored = (
        f", the held-out split scored at the end of each of the last {plan.scored_epochs} epochs"
        if plan.scored_epochs > 1
        else ""
    )
    arms = ", ".join(plan.arms)
    return (
        f"Plan `{plan.name}` (`{command}`): {plan.train_images} generated training images and "
        f"{plan.test_images} held-out ones (the generator's standard scenes), {plan.epochs} epochs of batch "
        f"{plan.batch_size} at AdamW lr {plan.lr} for every model"
        f"{' with mixed precision (bfloat16 autocast on the CPU)' if plan.amp else ''}, {plan.img_w} x "
        f"{plan.img_h} input{scored}; arms {arms} with seeds {', '.join(map(str, plan.seeds))}"
        + (f", the ablations with seed {', '.join(map(str, plan.ablation_seeds))}" if plan.ablations else "")
        + (
            f", the beyond-the-paper arm {', '.join(plan.beyond)} only if no distilled arm closes half the "
            "F1@75 gap"
            if plan.beyond
            else ""
        )
        + f"; one CLRNet-R18 teacher (seed {plan.seeds[0]}) distils every student."
    )


def main(argv: list[str] | None = None) -> int:
    """Estimate, profile, report, or train and score every pending run, then write the table and the plot."""
    parser = _parser()
    args = parser.parse_args(argv)
    plan = _resolve_plan(args, parser)
    args.out = args.out or Path(f"work_dirs/kd_study_{plan.name}")
    results_dir = args.results or (args.out / "results" if args.quick else RESULTS / plan.name)
    benchmarks = args.benchmarks or (args.out / "BENCHMARKS.md" if args.quick else Path("BENCHMARKS.md"))
    pictures = args.pictures_dir or (args.out if args.quick else Path("docs/images"))
    arguments = sys.argv[1:] if argv is None else argv
    command = " ".join(
        [
            "python training/kd_study.py",
            *map(shlex.quote, (a for a in arguments if a not in ("--report", "--commit"))),
        ]
    )
    if args.report:
        report(plan, load_results(results_dir), benchmarks, pictures, _setup_text(plan, command))
        return 0
    backbone = resolve_backbone_init(args.pretrained_backbone, "resnet18")  # teacher and students: R18
    print(f"backbones resnet18: {backbone.description}", flush=True)
    device = resolve_device(args.device, 0)
    study = Study(plan, args.out, device, args.workers, backbone, results_dir, args.commit)
    if args.profile_step:
        print(profile_step(study, plan, args.profile_step))
        return 0
    timings, fastest = step_seconds(study, plan, steps=1 if args.quick else 5)
    results = load_results(results_dir)
    print("estimate: " + estimate_text(plan, results, timings, device_name(device)), flush=True)
    print(
        "at the fastest measured round (an otherwise idle machine): "
        + estimate_text(plan, results, fastest, device_name(device)),
        flush=True,
    )
    if args.estimate:
        return 0
    claim_folder(args.out, plan)  # not before: an estimate must not tie the folder to a plan
    claim_folder(results_dir, plan)
    runs = planned_runs(plan)
    for run in tqdm(runs, desc="kd study", unit="run", dynamic_ncols=True):
        results[run.folder] = study.run(run)
        tqdm.write(f"{run.folder}: {results[run.folder].summary()}")
    beyond = {"always": True, "never": False}.get(args.beyond, needs_beyond(plan, results))
    if beyond and plan.beyond:
        print("no distilled arm closes half of the F1@75 gap: the beyond-the-paper arm", flush=True)
        for run in beyond_runs(plan):
            results[run.folder] = study.run(run)
            tqdm.write(f"{run.folder}: {results[run.folder].summary()}")
    report(plan, results, benchmarks, pictures, _setup_text(plan, command))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
