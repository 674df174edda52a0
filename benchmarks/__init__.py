"""Benchmark suite behind ``python -m benchmarks`` (writes BENCHMARKS.md); not part of the installed package.

Every comparison is measured side by side in one run and interleaved: each iteration runs every contender
once, in an order rotated per iteration, so that load from other processes on a shared machine hits all of
them alike (``clrkdnet_core.timing``). Results are latency percentiles, throughput and ratios; this module
holds the run settings and the Markdown.
"""

import os

# On a shared machine, OpenMP threads spinning while they wait make 2-thread PyTorch up to 10x slower as soon
# as other processes load the cores (measured: 1.7-2.8 s, not 0.19 s, per CLRKDNet-R18 forward at load 4).
# Passive waiting costs little on an idle machine. It only takes effect if torch is not imported yet.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import platform
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from clrkdnet_core.timing import Timing, measure_interleaved

__all__ = ["Settings", "Timing", "environment_lines", "measure_interleaved", "timing_table"]


@dataclass(frozen=True)
class Settings:
    """Iteration counts of a run (timed iterations per batch size, untimed warm-up iterations)."""

    iterations: dict[int, int]
    warmup: int

    @classmethod
    def for_run(cls, quick: bool) -> "Settings":
        return cls({1: 4, 8: 1}, 1) if quick else cls({1: 10, 8: 2}, 1)


def timing_table(rows: Sequence[tuple[str, Timing]], baseline: str | None = None) -> list[str]:
    """Markdown table of timings; with ``baseline``, a column of each p50 divided by the baseline's p50."""
    header = "| contender | batch | p50 ms | p95 ms | FPS |" + (f" p50 / {baseline} |" if baseline else "")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    base = dict(rows)[baseline].p50 if baseline else None
    for name, timing in rows:
        line = f"| {name} | {timing.batch} | {timing.p50:.1f} | {timing.p95:.1f} | {timing.fps:.1f} |"
        if base:
            line += f" {timing.p50 / base:.2f} |"
        lines.append(line)
    return lines


def environment_lines(command: str) -> list[str]:
    """Header lines: machine, threads, library versions and the exact command."""
    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = "not installed"
    lines = [
        f"- CPU: {cpu_model()} ({torch.get_num_threads()} torch threads, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')})",
        f"- Python {platform.python_version()}, torch {torch.__version__}, onnxruntime {ort_version}",
    ]
    if torch.cuda.is_available():
        lines.append(f"- GPU: {torch.cuda.get_device_name(0)}")
    else:
        lines.append("- GPU: none (CUDA sections skipped)")
    lines.append(f"- Command: `{command}`")
    return lines


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
