"""Benchmark machinery: interleaved timing, statistics, optional sections, synthetic predictions."""

import torch

from benchmarks import Timing, measure_interleaved, timing_table
from benchmarks.__main__ import _optional_section


def test_interleaved_order_rotates_and_counts_only_timed_iterations():
    calls = []
    contenders = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    timings = measure_interleaved(contenders, iterations=3, warmup=1, batch=2)
    assert calls == list("abcbcacababc")
    assert all(len(t.samples_ms) == 3 and t.batch == 2 for t in timings.values())


def test_timing_statistics_and_ratio_table():
    timing = Timing(tuple(float(v) for v in range(1, 21)), batch=4)
    assert timing.p50 == 10.5
    assert timing.p95 == 19.0
    assert timing.fps == 4000.0 / 10.5
    table = timing_table([("fast", Timing((5.0,), 1)), ("slow", Timing((10.0,), 1))], baseline="slow")
    assert table[2].endswith("| 0.50 |") and table[3].endswith("| 1.00 |")


def test_missing_optional_section_is_reported_not_fatal():
    lines = _optional_section("no_such_section_module", "section", "Something")
    assert lines[0] == "## Something" and "section not available" in lines


def test_synthetic_predictions_have_the_requested_candidates():
    from benchmarks.postprocess import synthetic_predictions

    priors = torch.zeros((192, 78))
    pred = synthetic_predictions(priors, batch=3, candidates=48)
    scores = torch.softmax(pred[..., :2], dim=-1)[..., 1]
    assert pred.shape == (3, 192, 78)
    assert (scores >= 0.4).sum(dim=1).tolist() == [48, 48, 48]


def test_report_keeps_the_blocks_other_scripts_write(tmp_path):
    from benchmarks.__main__ import main

    out = tmp_path / "BENCHMARKS.md"
    block = (
        "<!-- synthetic-reproduction:begin -->\n## Synthetic reproduction\n\n| a | b |\n"
        "<!-- synthetic-reproduction:end -->"
    )
    out.write_text(f"# Benchmarks\n\nstale numbers\n\n{block}\n")
    assert main(["--quick", "--sections", "postprocess", "--out", str(out)]) == 0
    text = out.read_text()
    assert "stale numbers" not in text and "## Decode + lane NMS" in text
    assert text.count(block) == 1 and text.endswith(block + "\n")


def test_a_block_is_replaced_in_place_or_appended():
    from clrkdnet_core.report_blocks import marked_blocks, markers, replace_block

    begin, end = markers("run")
    text = f"# B\n\nbefore\n\n{begin}\nold\n{end}\n\nafter\n"
    assert replace_block(text, "run", "new\n") == f"# B\n\nbefore\n\n{begin}\nnew\n{end}\n\nafter\n"
    appended = replace_block("# B\n", "other", "x")
    assert appended == "# B\n\n<!-- other:begin -->\nx\n<!-- other:end -->\n"
    other = "<!-- other:begin -->\nx\n<!-- other:end -->"
    assert marked_blocks(appended + text) == [other, f"{begin}\nold\n{end}"]


def test_soak_section_reports_each_interval_and_the_memory_goal(monkeypatch):
    from benchmarks import soak

    bins = [
        soak.Bin(sent=30, answered=29, latency_ms=[40.0, 50.0, 60.0], rss_mb=900.0 + 10 * i) for i in range(5)
    ]
    bins[2].events.append("camera restart")
    bins[4].rss_mb = None
    monkeypatch.setattr(soak, "run_soak", lambda duration_s: (bins, "openvino bf16", duration_s / 5))
    section = soak.soak_section(minutes=0.5)
    assert section.startswith("## Soak: the node at its defaults, 30 Hz 1640 x 590 for 0.5 min")
    assert "it ran openvino bf16" in section
    assert "| 12-18 | 30 | 29 | 50.0 / 60.0 | 920 | camera restart |" in section
    assert "| 24-30 | 30 | 29 | 50.0 / 60.0 | n/a | - |" in section
    assert "flat within 64 MB after the first interval: met (20 MB" in section and "145 of 150" in section


def test_defaults_section_needs_the_demo_bag(monkeypatch):
    from benchmarks import node

    monkeypatch.setattr(node, "demo_bag", lambda: None)
    assert "not measured: no demo bag (run `make demo`" in node.defaults_section()


def test_the_node_benchmarks_are_sections_of_their_own():
    from benchmarks.__main__ import build_parser

    args = build_parser().parse_args(["--sections", "defaults", "soak", "--soak-minutes", "0.5"])
    assert args.sections == ["defaults", "soak"] and args.soak_minutes == 0.5
