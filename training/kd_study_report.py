"""Scores, table and plot of the distillation study (``training/kd_study.py``)."""

import dataclasses
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from clrkdnet_core.metrics.culane import mean_f1

SE_TARGET = 0.01
# A model counts as converged when its held-out F1@50 moved by at most this in its last two epochs.
CONVERGENCE_TOLERANCE = 0.01


class _Variant(Protocol):
    slug: str
    label: str
    weights: object


@dataclass(frozen=True)
class RunScores:
    """One trained model's held-out scores and cost (what a run's ``done.json`` holds)."""

    folder: str
    f1_50: float
    f1_75: float
    mf1: float
    se_75: float
    gt_lanes: int
    seconds_per_iter: float
    resumed_from: int  # the iteration its last invocation started at (0: trained in one go)
    iterations: int
    backbone_init: str
    # What the converged plan records besides (a committed result file holds all of it):
    epoch_scores: list[dict] = dataclasses.field(
        default_factory=list
    )  # {"epoch", "f1_50", "f1_75", "mf1"} per scoring
    converged: bool | None = None  # None: not scored two epochs before the last
    variant: str = ""
    seed: int | None = None
    settings: dict = dataclasses.field(
        default_factory=dict
    )  # plan, distillation weights, precision, teacher options
    train_seconds: float = math.nan  # over every invocation of the run
    eval_seconds: float = math.nan
    device: str = ""  # e.g. "cpu: AMD EPYC (2 threads)" or "cuda: NVIDIA H100"
    git_commit: str = ""
    teacher_sha256: str = ""  # the teacher checkpoint a distilled run learnt from

    @classmethod
    def from_json(cls, data: dict) -> "RunScores":
        """From a result file, where undefined scores (0/0) are null: they come back as NaN."""
        floats = ("f1_50", "f1_75", "mf1", "se_75", "seconds_per_iter", "train_seconds", "eval_seconds")
        data = {**data, **{key: math.nan for key in floats if key in data and data[key] is None}}
        scores = [
            {key: math.nan if value is None else value for key, value in score.items()}
            for score in data.get("epoch_scores", [])
        ]
        return cls(**{**data, "epoch_scores": scores})

    def to_json(self) -> dict:
        """The result file's content: strict JSON, NaN written as null."""
        return strict_json(dataclasses.asdict(self))

    def summary(self) -> str:
        """One line for the progress log."""
        converged = "" if self.converged is None else f"  converged {'yes' if self.converged else 'no'}"
        return (
            f"F1@50 {self.f1_50:.4f}  F1@75 {self.f1_75:.4f} (SE {self.se_75:.4f})  mF1 {self.mf1:.4f}  "
            f"{self.seconds_per_iter:.2f} s/iteration{converged}"
        )


def strict_json(value: object) -> object:
    """``value`` with every NaN float replaced by None (JSON null), recursively."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(item) for item in value]
    return value


def converged_of(epoch_scores: Sequence[dict], tolerance: float = CONVERGENCE_TOLERANCE) -> bool | None:
    """Whether the F1@50 of the last scored epoch N is within ``tolerance`` of its value at epoch N - 2;
    None when epoch N - 2 was not scored."""
    if not epoch_scores:
        return None
    by_epoch = {
        int(score["epoch"]): math.nan if score["f1_50"] is None else float(score["f1_50"])
        for score in epoch_scores
    }
    last = max(by_epoch)
    if last - 2 not in by_epoch or math.isnan(by_epoch[last]) or math.isnan(by_epoch[last - 2]):
        return None  # not scored two epochs back, or no F1 (no lane predicted and none found)
    return abs(by_epoch[last] - by_epoch[last - 2]) <= tolerance


def f1_standard_error(summary: dict) -> float:
    """Binomial standard error of the F1 of ``summary`` (tp, fp, fn) over its ground-truth lanes.

    F1 = 2 TP / (GT + predictions); with the number of predictions fixed and each GT lane found with
    probability TP / GT independently, Var(TP) = GT r (1 - r).
    """
    gt, predicted = summary["tp"] + summary["fn"], summary["tp"] + summary["fp"]
    if gt == 0:
        return math.nan
    recall = summary["tp"] / gt
    return 2 * math.sqrt(gt * recall * (1 - recall)) / (gt + predicted)


def scores_of(
    folder: str,
    thresholds: dict[float, dict],
    seconds_per_iter: float,
    resumed_from: int,
    iterations: int,
    backbone_init: str,
) -> RunScores:
    """RunScores from an evaluation at the mF1 thresholds."""
    at_75 = thresholds[0.75]
    return RunScores(
        folder=folder,
        f1_50=float(thresholds[0.5]["f1"]),
        f1_75=float(at_75["f1"]),
        mf1=mean_f1({"thresholds": thresholds}),
        se_75=f1_standard_error(at_75),
        gt_lanes=at_75["tp"] + at_75["fn"],
        seconds_per_iter=seconds_per_iter,
        resumed_from=resumed_from,
        iterations=iterations,
        backbone_init=backbone_init,
    )


@dataclass(frozen=True)
class Row:
    """A table row: the runs of one variant (or the teacher) over their seeds."""

    label: str
    weights: str
    runs: list[RunScores]

    def values(self, field: str) -> list[float]:
        return [getattr(run, field) for run in self.runs]

    def mean(self, field: str) -> float:
        return statistics.fmean(self.values(field))

    def spread(self, field: str) -> float:
        """Sample standard deviation over the seeds (NaN for one seed)."""
        values = self.values(field)
        return statistics.stdev(values) if len(values) > 1 else math.nan


def rows_of(results: Sequence[RunScores], variants: Sequence[_Variant]) -> list[Row]:
    """The teacher's row, then one row per variant, from the runs' folder names (``<slug>_seed<k>``)."""
    rows = [Row("CLRNet-R18 teacher", "-", [r for r in results if r.folder == "teacher"])]
    for variant in variants:
        runs = [r for r in results if r.folder.rsplit("_seed", 1)[0] == variant.slug]
        weights = variant.weights
        text = "-" if weights is None else f"{weights.att:g} / {weights.logit:g} / {weights.prior:g}"
        if weights is not None and getattr(weights, "lane", 0.0):
            text += f" + lane {weights.lane:g}"
        rows.append(Row(f"CLRKDNet-R18 {variant.label}", text, runs))
    return rows


def _cell(row: Row, field: str) -> str:
    spread = row.spread(field)
    return f"{row.mean(field):.4f}" + ("" if math.isnan(spread) else f" ± {spread:.4f}")


def _converged_cell(row: Row) -> str:
    """``yes`` / ``no`` / ``2 of 3``; ``-`` when no run was scored two epochs before its last."""
    flags = [run.converged for run in row.runs if run.converged is not None]
    if not flags:
        return "-"
    if len(flags) == len(row.runs) and len(set(flags)) == 1:
        return "yes" if flags[0] else "no"
    return f"{sum(flags)} of {len(row.runs)}"


def _gap_closed_cell(row: Row, plain: Row, gap: float) -> str:
    """Share of the F1@75 gap the row's mean closes, ± the seed spread of the per-seed shares."""
    closed = (row.mean("f1_75") - plain.mean("f1_75")) / gap
    spread = row.spread("f1_75") / abs(gap)
    return f"{closed:+.0%}" + ("" if math.isnan(spread) else f" ± {spread:.0%}")


def _minutes(row: Row) -> str:
    seconds = [r.train_seconds + r.eval_seconds for r in row.runs]
    finite = [s for s in seconds if math.isfinite(s)]
    return f"{statistics.fmean(finite) / 60:.0f}" if finite else "-"


def format_table(rows: Sequence[Row], converged_plan: bool = False) -> str:
    """Markdown table: mean ± seed standard deviation per metric, and the share of the teacher-student gap
    at F1@75 that each student closes (relative to the student without distillation, the second row), with
    its seed spread. ``converged_plan`` adds whether each model converged and its minutes per model."""
    teacher, plain = rows[0], rows[1]
    gap = teacher.mean("f1_75") - plain.mean("f1_75") if teacher.runs and plain.runs else math.nan
    head = "| model | att / logit / prior | seeds | F1@50 | F1@75 | mF1 | F1@75 gap closed | s / iteration |"
    rule = "|---|---|---|---|---|---|---|---|"
    if converged_plan:
        head += " converged | min / model |"
        rule += "---|---|"
    lines = [head, rule]
    for row in rows:
        if not row.runs:
            continue
        closed = "-"
        if math.isfinite(gap) and gap and row is not teacher:
            closed = f"{(row.mean('f1_75') - plain.mean('f1_75')) / gap:+.0%}"
            if converged_plan and row is not plain:
                closed = _gap_closed_cell(row, plain, gap)
        line = (
            f"| {row.label} | {row.weights} | {len(row.runs)} | {_cell(row, 'f1_50')} | "
            f"{_cell(row, 'f1_75')} | {_cell(row, 'mf1')} | {closed} | "
            f"{row.mean('seconds_per_iter'):.2f} |"
        )
        if converged_plan:
            line += f" {_converged_cell(row)} | {_minutes(row)} |"
        lines.append(line)
    return "\n".join(lines)


def _largest_spread(rows: Sequence[Row], field: str) -> float:
    spreads = [row.spread(field) for row in rows]
    return max((s for s in spreads if not math.isnan(s)), default=math.nan)


def closes_half(rows: Sequence[Row], index: int) -> bool:
    """Whether row ``index`` closes at least half of the teacher-student F1@75 gap (means only; what
    decides whether the beyond-the-paper arm is run)."""
    teacher, plain, distilled = rows[0], rows[1], rows[index]
    gap = teacher.mean("f1_75") - plain.mean("f1_75")
    return gap > 0 and distilled.mean("f1_75") - plain.mean("f1_75") >= gap / 2


def goal_verdict(rows: Sequence[Row], index: int = 2) -> str:
    """Whether the distilled student (row ``index``, default the third) closes at least half of the
    teacher-student gap at F1@75 against the student without distillation (the second row), does not lose
    F1@50 by more than the seed spread, with its F1@75 gain larger than the seed spread: one sentence with
    the numbers."""
    teacher, plain, distilled = rows[0], rows[1], rows[index]
    gap = teacher.mean("f1_75") - plain.mean("f1_75")
    gain_75 = distilled.mean("f1_75") - plain.mean("f1_75")
    gain_50 = distilled.mean("f1_50") - plain.mean("f1_50")
    spread_75 = _largest_spread([plain, distilled], "f1_75")
    spread_50 = _largest_spread([plain, distilled], "f1_50")
    numbers = (
        f"teacher - plain student at F1@75 {gap:+.4f}; distilled - plain {gain_75:+.4f} against a seed "
        f"spread of {spread_75:.4f}; F1@50 distilled - plain {gain_50:+.4f} (spread {spread_50:.4f})"
    )
    if gap <= 0:
        return f"Goal not measurable: the teacher is not ahead of the plain student ({numbers})."
    closes_half = gain_75 >= gap / 2
    beyond_spread = gain_75 > spread_75  # NaN spread (one seed) compares False: no claim without seeds
    keeps_f1_50 = gain_50 >= -(0.0 if math.isnan(spread_50) else spread_50)
    met = closes_half and beyond_spread and keeps_f1_50
    return (
        "Goal (the distilled student closes at least half of the gap at F1@75, by more than the seed "
        f"spread, without losing F1@50): {'met' if met else 'missed'}; it closes {gain_75 / gap:+.0%} of "
        f"the gap ({numbers})."
    )


def plot_study(results: Sequence[RunScores], variants: Sequence[_Variant], png: Path) -> Path:
    """F1@50 and F1@75 of every variant (mean and seed standard deviation), the teacher as a dashed line."""
    rows = [row for row in rows_of(results, variants) if row.runs]
    teacher, students = rows[0], rows[1:]
    figure, axes = plt.subplots(1, 2, figsize=(12, 0.5 * len(students) + 1.5), sharey=True)
    positions = range(len(students))
    for axis, field, title in zip(axes, ("f1_50", "f1_75"), ("F1@50", "F1@75"), strict=True):
        spreads = [0.0 if math.isnan(s) else s for s in (row.spread(field) for row in students)]
        axis.errorbar([row.mean(field) for row in students], positions, xerr=spreads, fmt="o", capsize=4)
        axis.axvline(teacher.mean(field), color="grey", linestyle="--", label="teacher")
        axis.set_title(f"{title} (official CULane metric)")
        axis.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(list(positions), [row.label.removeprefix("CLRKDNet-R18 ") for row in students])
    axes[0].invert_yaxis()
    axes[1].legend(loc="best")  # matplotlib picks the corner that covers the fewest markers
    figure.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png, dpi=100)
    plt.close(figure)
    return png


def study_section(results: Sequence[RunScores], variants: Sequence[_Variant], setup: str, plot: Path) -> str:
    """The study's BENCHMARKS.md block: ``setup`` (command, data, schedule), the table, the standard error
    check and the plot."""
    worst_se = max(r.se_75 for r in results)
    inits = "; ".join(sorted({r.backbone_init for r in results}))
    verdict = "below" if worst_se < SE_TARGET else "NOT below"
    rows = rows_of(results, variants)
    return "\n".join(
        [
            "## Distillation study (synthetic CULane): what each distillation term is worth",
            "",
            f"{setup} Backbone start: {inits}.",
            "",
            format_table(rows),
            "",
            goal_verdict(rows),
            "",
            f"Mean ± standard deviation over the seeds. The standard error of F1@75 on the held-out split is "
            f"at most {worst_se:.4f} ({verdict} the {SE_TARGET} target; binomial over its "
            f'{results[0].gt_lanes} GT lanes). "Gap closed": (student - student without distillation) / '
            "(teacher - student without distillation) at F1@75.",
            "",
            f"![distillation study]({plot})",
        ]
    )


def converged_section(
    results: Sequence[RunScores],
    variants: Sequence[_Variant],
    setup: str,
    plot: Path,
    planned: int,
) -> str:
    """The kd-study block of the converged plan, from its result files alone: ``setup`` (plan, command),
    how many of the ``planned`` runs it holds, the table with the convergence column and minutes per model,
    a goal verdict per distilled arm that has runs, the devices, the standard error check and the plot."""
    rows = rows_of(results, variants)
    teacher, plain = rows[0], rows[1]
    worst_se = max(r.se_75 for r in results)
    inits = "; ".join(sorted({r.backbone_init for r in results}))
    devices = "; ".join(sorted({r.device for r in results if r.device}))
    commits = ", ".join(sorted({r.git_commit[:10] for r in results if r.git_commit}))
    verdicts = []
    if teacher.runs and plain.runs:
        for index, row in enumerate(rows[2:], start=2):
            if row.runs:
                verdicts += [f"{row.label.removeprefix('CLRKDNet-R18 ')}: {goal_verdict(rows, index)}", ""]
    else:
        verdicts = ["No verdict yet: the teacher and the plain student are not both finished.", ""]
    finished = f"{len(results)} of the {planned} planned runs are finished"
    return "\n".join(
        [
            "## Distillation study at convergence (synthetic CULane): what distillation adds to a trained "
            "student",
            "",
            f"{setup} {finished} (the table shows those). Backbone start: {inits}. Devices: {devices or '-'}"
            f"; code at commit {commits or '-'}.",
            "",
            format_table(rows, converged_plan=True),
            "",
            *verdicts,
            f"Mean ± standard deviation over the seeds. Converged: held-out F1@50 within "
            f"{CONVERGENCE_TOLERANCE} of its value two epochs before the last (``2 of 3``: seeds that did). "
            f"The standard error of F1@75 on the held-out split is at most {worst_se:.4f} ("
            f"{'below' if worst_se < SE_TARGET else 'NOT below'} the {SE_TARGET} target; binomial over its "
            f'{results[0].gt_lanes} GT lanes). "Gap closed": (student - student without distillation) / '
            "(teacher - student without distillation) at F1@75, ± the student's seed spread over the same "
            "gap. "
            "Regenerated from the committed result files alone: `python training/kd_study.py --report`.",
            "",
            f"![distillation study at convergence]({plot})",
        ]
    )
