"""The distillation study: a quick run end to end (result files, report, separately logged distillation
terms), resuming from the committed result files on a fresh copy, the report from those files alone, the
convergence flag, the per-result git commit, the decoded-image cache, and the study's statistics."""

import dataclasses
import json
import math
import os
import shutil
import subprocess

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from clrkdnet_core.data.synthetic import generate_dataset
from clrkdnet_core.errors import DatasetError
from clrkdnet_core.report_blocks import markers
from training import kd_study
from training.data import CachedDecodeDataset, ReducedImageCache, SeededAugmentation, build_train_dataset
from training.kd_study import (
    CONVERGED,
    PLAIN,
    QUICK,
    VARIANTS,
    Run,
    Study,
    beyond_runs,
    commit_files,
    load_results,
    needs_beyond,
    planned_runs,
    study_preset,
)
from training.kd_study_report import (
    Row,
    RunScores,
    converged_of,
    f1_standard_error,
    format_table,
    goal_verdict,
)
from training.pretrained import RANDOM_INIT

CPU = torch.device("cpu")


@pytest.mark.slow
def test_quick_study_trains_scores_and_reports_every_arm(tmp_path, capsys):
    out, benchmarks = tmp_path / "study", tmp_path / "BENCHMARKS.md"
    benchmarks.write_text("# Benchmarks\n\nkept\n")
    args = ["--quick", "--out", str(out), "--benchmarks", str(benchmarks), "--pretrained-backbone", "none"]
    assert kd_study.main([*args, "--workers", "0", "--device", "cpu", "--beyond", "always"]) == 0
    printed = capsys.readouterr().out
    assert f"plan quick: 0 of {len(planned_runs(QUICK))} runs finished" in printed
    text = benchmarks.read_text()
    begin, end = markers(kd_study.SECTION)
    assert "kept" in text and text.count(begin) == 1
    block = text.split(begin)[1].split(end)[0]
    assert "Plan `quick`" in block and "| converged | min / model |" in block
    assert block.count("| CLRKDNet-R18 ") == 4 and block.count("| CLRNet-R18 teacher |") == 1
    assert (out / "kd_study_quick.png").stat().st_size > 0
    for run in planned_runs(QUICK) + beyond_runs(QUICK):
        scores = json.loads((out / "results" / f"{run.folder}.json").read_text())
        assert scores["iterations"] == QUICK.epochs and scores["backbone_init"].startswith("random init")
        assert [s["epoch"] for s in scores["epoch_scores"]] == [1, 2, 3]
        assert scores["device"].startswith("cpu: ") and scores["seed"] == 0
        assert scores["settings"]["plan"]["name"] == "quick" and scores["train_seconds"] > 0
    # the folder belongs to the quick plan: another plan does not reuse its runs
    with pytest.raises(DatasetError, match="holds a study of another plan"):
        kd_study.claim_folder(out, CONVERGED)
    # every distillation term has its own TensorBoard curve, the beyond arm's lane term too
    events = EventAccumulator(str(out / "kd_lane_seed0")).Reload()
    assert {"train/distill_att_loss", "train/distill_priors_loss", "train/distill_lane_loss"} <= set(
        events.Tags()["scalars"]
    )


def test_an_estimate_counts_the_runs_left_and_leaves_the_folder_free(tmp_path, capsys, monkeypatch):
    # Step timing itself runs in the quick study's test; here only what the estimate counts and claims.
    timings = {"teacher": 1.0, "plain": 0.5, "distilled": 1.5, "eval batch": 0.2, "loading": 0.3}
    monkeypatch.setattr(kd_study, "step_seconds", lambda *args, **kwargs: (timings, timings))
    out, results = tmp_path / "study", tmp_path / "results"
    _write_results(results, {"teacher": 0.8, "plain_seed0": 0.7})
    args = ["--out", str(out), "--results", str(results), "--estimate", "--pretrained-backbone", "none"]
    assert kd_study.main([*args, "--device", "cpu", "--epochs", "5"]) == 0
    printed = capsys.readouterr().out
    assert "plan converged_5ep: 2 of 10 runs finished; the 8 left (0 teacher, 2 plain, 6 distilled" in printed
    assert "the beyond-the-paper arm, if needed, 3 runs" in printed
    assert not (out / "plan.json").exists()


@pytest.mark.slow
def test_an_interrupted_run_resumes_and_a_finished_one_is_not_trained_again(tmp_path):
    plan = dataclasses.replace(QUICK, train_images=2, epochs=3, batch_size=1)
    study = Study(plan, tmp_path, CPU, 0, RANDOM_INIT)
    generate_dataset(study.data_root, "culane", 4, seed=1, split=(2, 0, 2), progress=False)
    run = Run("plain_seed0", PLAIN, 0)
    # the first epoch of the run, as an interrupted invocation leaves it
    interrupted = study.trainer(run, tmp_path / run.folder, None)
    interrupted.settings = dataclasses.replace(interrupted.settings, max_iters=2)
    interrupted.fit()
    last = tmp_path / run.folder / "last.pth"
    saved_at = last.stat().st_mtime_ns

    scores = study.run(run)
    assert (scores.resumed_from, scores.iterations) == (2, 6)
    assert [s["epoch"] for s in scores.epoch_scores] == [1, 2, 3]
    finished_at = last.stat().st_mtime_ns
    assert finished_at != saved_at
    again = study.run(run)  # its result file: nothing trained, the same scores (NaN-safe comparison)
    assert repr(again) == repr(scores) and last.stat().st_mtime_ns == finished_at


def _result(folder: str, f1_75: float, f1_50: float = 0.9, history: tuple = (0.9, 0.9, 0.9)) -> RunScores:
    epochs = [{"epoch": 6 + i, "f1_50": v, "f1_75": f1_75, "mf1": 0.6} for i, v in enumerate(history)]
    return RunScores(
        folder, f1_50, f1_75, 0.6, 0.007, 3500, 1.0, 0, 1200, "random initialisation",
        epoch_scores=epochs, converged=converged_of(epochs), variant=folder.rsplit("_seed", 1)[0],
        seed=0, train_seconds=600.0, eval_seconds=60.0, device="cpu: test", git_commit="0123456789abcdef",
    )  # fmt: skip


def _write_results(folder, f1_75_by_run: dict[str, float]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, f1_75 in f1_75_by_run.items():
        (folder / f"{name}.json").write_text(json.dumps(_result(name, f1_75).to_json()))


def test_a_fresh_copy_resumes_from_the_result_files_and_trains_nothing(tmp_path, monkeypatch):
    committed = tmp_path / "repo" / "results"
    scores = {run.folder: 0.7 for run in planned_runs(CONVERGED)}
    _write_results(committed, {**scores, "teacher": 0.8})
    clone = tmp_path / "clone"  # a fresh clone: the result files, no checkpoint, no data
    shutil.copytree(committed, clone / "results")

    def no_training(self, run):
        raise AssertionError(f"{run.folder} has a result and must not be trained")

    monkeypatch.setattr(Study, "_train_and_score", no_training)
    study = Study(CONVERGED, clone / "work", CPU, 0, RANDOM_INIT, clone / "results")
    results = {run.folder: study.run(run) for run in planned_runs(CONVERGED)}
    assert results == load_results(committed)
    assert not (clone / "work").exists()
    # no distilled arm closes half of the gap (0.7 against 0.7 of 0.1): the beyond arm is due, untrained yet
    assert needs_beyond(CONVERGED, results) is True
    with pytest.raises(AssertionError, match="kd_lane_seed0 has a result"):
        study.run(beyond_runs(CONVERGED)[0])


def test_the_beyond_arm_waits_for_the_compared_runs_and_is_skipped_when_an_arm_closes_half():
    runs = planned_runs(CONVERGED)
    results = {run.folder: _result(run.folder, 0.70) for run in runs}
    results["teacher"] = _result("teacher", 0.80)
    assert needs_beyond(CONVERGED, {k: v for k, v in results.items() if k != "kd_paper_seed2"}) is None
    for seed in CONVERGED.seeds:
        results[f"kd_logit1_seed{seed}"] = _result(f"kd_logit1_seed{seed}", 0.76)
    assert needs_beyond(CONVERGED, results) is False


def test_the_report_is_regenerated_from_the_result_files_alone(tmp_path):
    results, benchmarks = tmp_path / "results", tmp_path / "BENCHMARKS.md"
    benchmarks.write_text(
        "# Benchmarks\n\n<!-- kd-study:begin -->\nthe 2-epoch study\n<!-- kd-study:end -->\n"
    )
    args = ["--report", "--results", str(results), "--benchmarks", str(benchmarks)]
    args += ["--pictures-dir", str(tmp_path / "images")]
    assert kd_study.main(args) == 0  # no result of the plan yet: the earlier block stays
    assert "the 2-epoch study" in benchmarks.read_text()
    _write_results(
        results, {"teacher": 0.80, "plain_seed0": 0.70, "plain_seed1": 0.72, "kd_paper_seed0": 0.76}
    )
    assert kd_study.main(args) == 0
    block = benchmarks.read_text()
    assert "the 2-epoch study" not in block and "Plan `converged_8ep`" in block
    assert "4 of the 10 planned runs are finished" in block
    assert "| CLRKDNet-R18 without distillation | - | 2 | 0.9000 ± 0.0000 | 0.7100 ± 0.0141 |" in block
    assert "| +56% | 1.00 | yes | 11 |" in block  # one seed: no spread beside the share of the gap
    assert "devices: cpu: test" in block.lower() and "0123456789" in block
    assert (tmp_path / "images" / "kd_study_converged_8ep.png").stat().st_size > 0


def test_the_convergence_flag_compares_f1_at_50_two_epochs_back():
    def scores(*values):
        return [{"epoch": 3 + i, "f1_50": v} for i, v in enumerate(values)]

    assert converged_of(scores(0.900, 0.950, 0.909)) is True  # within 1 point of epoch N - 2
    assert converged_of(scores(0.900, 0.905, 0.911)) is False  # 1.1 points: still moving
    assert converged_of(scores(0.900, 0.905)) is None  # epoch N - 2 not scored
    assert converged_of(scores(0.9, 0.9, math.nan)) is None  # no F1 to compare
    assert converged_of([]) is None
    moving = (0.8, 0.85, 0.9)
    table = format_table(
        [
            Row("teacher", "-", [_result("teacher", 0.8)]),
            Row("plain", "-", [_result("plain_seed0", 0.7), _result("plain_seed1", 0.7, history=moving)]),
        ],
        converged_plan=True,
    )  # fmt: skip
    assert "| plain | - | 2 |" in table and "| 1 of 2 | 11 |" in table


def test_commit_files_commits_exactly_the_result_file(tmp_path, monkeypatch):
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "other.txt").write_text("a")
    subprocess.run([*git, "add", "other.txt"], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    (tmp_path / "other.txt").write_text("edited, not to be committed")
    result = tmp_path / "results" / "plain_seed0.json"
    result.parent.mkdir()
    result.write_text("{}")
    for key in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.setenv(key, "t")
    assert commit_files([result], "kd study: plain_seed0 result")
    shown = subprocess.run(
        [*git, "show", "--stat", "--format=%s", "HEAD"], capture_output=True, text=True
    ).stdout
    assert "kd study: plain_seed0 result" in shown and "results/plain_seed0.json" in shown
    assert "other.txt" not in shown


def test_the_decode_cache_gives_the_uncached_samples(tmp_path):
    root = generate_dataset(tmp_path / "data", "culane", 3, 0, split=(3, 0, 0), progress=False)
    dataset = build_train_dataset(study_preset(kd_study.STUDENT, CONVERGED), root)
    cache = ReducedImageCache(tmp_path / "cache")
    plain, cached = SeededAugmentation(dataset, 5), SeededAugmentation(CachedDecodeDataset(dataset, cache), 5)
    for epoch in (0, 1):  # the first epoch fills the cache, the second reads it
        plain.set_epoch(epoch)
        cached.set_epoch(epoch)
        for index in range(len(dataset)):
            a, b = plain[index], cached[index]
            assert torch.equal(a["img"], b["img"]) and torch.equal(a["seg"], b["seg"])
            assert torch.equal(a["lane_line"], b["lane_line"])  # exactly, not within a tolerance
    assert len(list((tmp_path / "cache").glob("*.npz"))) == len(dataset)
    # an edited image is a new entry, never the stale one
    sample = dataset.samples[0]
    stat = sample.image.stat()
    os.utime(sample.image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    cached[0]
    assert len(list((tmp_path / "cache").glob("*.npz"))) == len(dataset) + 1


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
    # the converged table puts the seed spread of the share beside it: 0.0141 / 0.09
    rows[2] = Row("kd", "1 / 5 / 3", [_scores("kd_seed0", 0.75), _scores("kd_seed1", 0.77)])
    assert "| +56% ± 16% |" in format_table(rows, converged_plan=True)


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


def test_the_plans_runs():
    assert [run.folder for run in planned_runs(CONVERGED)][:2] == ["teacher", "plain_seed0"]
    assert len(planned_runs(CONVERGED)) == 10 and CONVERGED.epochs >= 8 and CONVERGED.test_images == 1000
    assert {run.variant.slug for run in beyond_runs(CONVERGED)} == {"kd_lane"}
    assert len(planned_runs(kd_study.SHORT)) == 12 and len(VARIANTS) == 7


@pytest.mark.slow
def test_the_step_profile_times_every_variant_and_the_distilled_steps_phases(tmp_path):
    study = Study(QUICK, tmp_path, CPU, 0, RANDOM_INIT)
    table = kd_study.profile_step(study, QUICK, rounds=1)
    for row in (
        "| load batch | full-size decode |",
        "| load batch | decode cache |",
        "| teacher forward | bf16 autocast, channels-last |",
        "| teacher forward | fp32, inference_mode |",
        "| step | distilled, teacher fp32 |",
        "| distilled step, by phase | teacher forward |",
        "| distilled step, by phase | backward |",
    ):
        assert row in table
    assert "AMD" in table or "cpu: " in table
