"""Scores, table and plot of the distillation study (``training/kd_study.py``)."""

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

    def summary(self) -> str:
        """One line for the progress log."""
        return (
            f"F1@50 {self.f1_50:.4f}  F1@75 {self.f1_75:.4f} (SE {self.se_75:.4f})  mF1 {self.mf1:.4f}  "
            f"{self.seconds_per_iter:.2f} s/iteration"
        )


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
        rows.append(Row(f"CLRKDNet-R18 {variant.label}", text, runs))
    return rows


def _cell(row: Row, field: str) -> str:
    spread = row.spread(field)
    return f"{row.mean(field):.4f}" + ("" if math.isnan(spread) else f" ± {spread:.4f}")


def format_table(rows: Sequence[Row]) -> str:
    """Markdown table: mean ± seed standard deviation per metric, and the share of the teacher-student gap
    at F1@75 that each student closes (relative to the student without distillation, the second row)."""
    teacher, plain = rows[0], rows[1]
    gap = teacher.mean("f1_75") - plain.mean("f1_75")
    lines = [
        "| model | att / logit / prior | seeds | F1@50 | F1@75 | mF1 | F1@75 gap closed | s / iteration |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        closed = "-"
        if math.isfinite(gap) and gap and row is not teacher:
            closed = f"{(row.mean('f1_75') - plain.mean('f1_75')) / gap:+.0%}"
        lines.append(
            f"| {row.label} | {row.weights} | {len(row.runs)} | {_cell(row, 'f1_50')} | "
            f"{_cell(row, 'f1_75')} | {_cell(row, 'mf1')} | {closed} | "
            f"{row.mean('seconds_per_iter'):.2f} |"
        )
    return "\n".join(lines)


def _largest_spread(rows: Sequence[Row], field: str) -> float:
    spreads = [row.spread(field) for row in rows]
    return max((s for s in spreads if not math.isnan(s)), default=math.nan)


def goal_verdict(rows: Sequence[Row]) -> str:
    """Whether the distilled student (the third row) closes at least half of the teacher-student gap at
    F1@75 against the student without distillation (the second row), does not lose F1@50 by more than the
    seed spread, with its F1@75 gain larger than the seed spread: one sentence with the numbers."""
    teacher, plain, distilled = rows[0], rows[1], rows[2]
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
    rows = rows_of(results, variants)
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
    axes[1].legend(loc="lower right")
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
