"""The distillation study: a quick run end to end (table, plot, separately logged distillation terms, time
estimate), resuming an interrupted run, and its statistics."""

import dataclasses
import json
import math

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from clrkdnet_core.data.synthetic import generate_dataset
from clrkdnet_core.errors import DatasetError
from clrkdnet_core.report_blocks import markers
from training import kd_study
from training.kd_study import QUICK, VARIANTS, Run, Study, planned_runs
from training.kd_study_report import Row, RunScores, f1_standard_error, format_table, goal_verdict
from training.pretrained import RANDOM_INIT

CPU = torch.device("cpu")


@pytest.mark.slow
def test_quick_study_trains_scores_and_reports_every_variant(tmp_path, capsys):
    out, benchmarks = tmp_path / "study", tmp_path / "BENCHMARKS.md"
    benchmarks.write_text("# Benchmarks\n\nkept\n")
    args = ["--quick", "--out", str(out), "--benchmarks", str(benchmarks), "--pretrained-backbone", "none"]
    assert kd_study.main([*args, "--workers", "0", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "estimated full study:" in printed and f"for {len(planned_runs(kd_study.FULL))} runs" in printed
    text = benchmarks.read_text()
    begin, end = markers(kd_study.SECTION)
    assert "kept" in text and text.count(begin) == 1
    block = text.split(begin)[1].split(end)[0]
    assert "--quick" in block and "standard error of F1@75" in block
    assert block.count("| CLRKDNet-R18 ") == len(VARIANTS) and block.count("| CLRNet-R18 teacher |") == 1
    assert (out / "kd_study.png").stat().st_size > 0
    for run in planned_runs(QUICK):
        scores = json.loads((out / run.folder / "done.json").read_text())
        assert scores["iterations"] == 1 and scores["backbone_init"].startswith("random initialisation")
    # the folder belongs to the quick plan: the full study does not reuse its runs
    with pytest.raises(DatasetError, match="holds a study of another plan"):
        kd_study.claim_folder(out, kd_study.FULL)
    # every distillation term has its own TensorBoard curve
    events = EventAccumulator(str(out / "kd_paper_seed0")).Reload()
    assert {"train/distill_att_loss", "train/distill_log_loss", "train/distill_priors_loss"} <= set(
        events.Tags()["scalars"]
    )


@pytest.mark.slow
def test_an_estimate_leaves_the_folder_free_for_any_plan(tmp_path, capsys):
    out = tmp_path / "study"
    args = ["--out", str(out), "--estimate", "--pretrained-backbone", "none", "--device", "cpu"]
    assert kd_study.main([*args, "--epochs", "5"]) == 0
    assert "for 12 runs of 5 epochs" in capsys.readouterr().out
    assert not (out / "plan.json").exists()


@pytest.mark.slow
def test_an_interrupted_run_resumes_and_a_finished_one_is_not_trained_again(tmp_path):
    plan = dataclasses.replace(QUICK, train_images=2, epochs=2, batch_size=1)
    study = Study(plan, tmp_path, CPU, 0, RANDOM_INIT)
    generate_dataset(study.data_root, "culane", 4, seed=1, split=(2, 0, 2), progress=False)
    run = Run("plain_seed0", VARIANTS[0], 0)
    # the first epoch of the run, as an interrupted invocation leaves it
    interrupted = study.trainer(run, tmp_path / run.folder, None)
    interrupted.settings = dataclasses.replace(interrupted.settings, max_iters=2)
    interrupted.fit()
    last = tmp_path / run.folder / "last.pth"
    saved_at = last.stat().st_mtime_ns

    scores = study.run(run)
    assert (scores.resumed_from, scores.iterations) == (2, 4)
    finished_at = last.stat().st_mtime_ns
    assert finished_at != saved_at
    again = study.run(run)  # done.json: nothing trained, the same scores (NaN-safe comparison)
    assert repr(again) == repr(scores) and last.stat().st_mtime_ns == finished_at


def test_f1_standard_error_is_binomial_over_the_ground_truth_lanes():
    # 3000 of 4000 GT lanes found with 4000 predictions: F1 0.75, SE 2 sqrt(4000 * 0.75 * 0.25) / 8000
    assert f1_standard_error({"tp": 3000, "fp": 1000, "fn": 1000}) == pytest.approx(0.006847, abs=1e-6)
    assert math.isnan(f1_standard_error({"tp": 0, "fp": 3, "fn": 0}))


def _scores(folder: str, f1_75: float) -> RunScores:
    return RunScores(folder, 0.9, f1_75, 0.6, 0.007, 3500, 1.0, 0, 1200, "random initialisation")


def test_the_table_gives_mean_spread_and_the_share_of_the_gap_closed():
    rows = [
        Row("teacher", "-", [_scores("teacher", 0.80)]),
        Row("plain", "-", [_scores("plain_seed0", 0.70), _scores("plain_seed1", 0.72)]),
        Row("kd", "1 / 5 / 3", [_scores("kd_seed0", 0.76), _scores("kd_seed1", 0.76)]),
    ]
    table = format_table(rows)
    assert "| plain | - | 2 | 0.9000 ± 0.0000 | 0.7100 ± 0.0141 |" in table
    assert "| kd | 1 / 5 / 3 | 2 |" in table and "| +56% |" in table  # (0.76 - 0.71) / (0.80 - 0.71)


def _rows(plain: list[float], distilled: list[float], teacher: float = 0.80) -> list[Row]:
    return [
        Row("teacher", "-", [_scores("teacher", teacher)]),
        Row("plain", "-", [_scores(f"plain_seed{i}", v) for i, v in enumerate(plain)]),
        Row("kd", "1 / 5 / 3", [_scores(f"kd_seed{i}", v) for i, v in enumerate(distilled)]),
    ]


def test_the_goal_needs_half_the_gap_beyond_the_seed_spread():
    assert "): met; it closes +56% of the gap" in goal_verdict(_rows([0.70, 0.72], [0.76, 0.76]))
    # a third of the gap is not enough
    assert "): missed; it closes +33% of the gap" in goal_verdict(_rows([0.70, 0.72], [0.74, 0.74]))
    # more than half of the gap, but within the seed spread of the plain student
    assert "missed" in goal_verdict(_rows([0.60, 0.82], [0.76, 0.76]))
    # one seed has no spread to beat: no claim
    assert "missed" in goal_verdict(_rows([0.70], [0.78]))
    assert goal_verdict(_rows([0.81, 0.83], [0.76, 0.76])).startswith("Goal not measurable")
