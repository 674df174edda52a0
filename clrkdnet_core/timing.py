"""Latency statistics with one percentile rule, and the interleaved timing loop.

Every latency percentile the project reports (BENCHMARKS.md, bag reports, the node's diagnostics) is computed
by :func:`percentile`, so that "p95" means the same number everywhere: the nearest-rank sample, never an
interpolation between two samples that were not measured.
"""

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tqdm import tqdm


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values`` by nearest rank; NaN for no values."""
    if not len(values):
        return math.nan
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, round(q / 100.0 * (len(ordered) - 1)))])


@dataclass(frozen=True)
class Timing:
    """Latencies (milliseconds) of one contender; ``batch`` images per call."""

    samples_ms: tuple[float, ...]
    batch: int

    @property
    def p50(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p95(self) -> float:
        return percentile(self.samples_ms, 95)

    @property
    def fps(self) -> float:
        """Images per second at the median latency."""
        return 1000.0 * self.batch / self.p50


def measure_interleaved(
    contenders: dict[str, Callable[[], object]],
    iterations: int,
    warmup: int,
    batch: int,
    sync: Callable[[], None] | None = None,
    description: str = "",
) -> dict[str, Timing]:
    """Time each contender ``iterations`` times, rotating their order every iteration.

    Load from other processes on a shared machine then hits every contender alike. ``sync`` (e.g.
    ``torch.cuda.synchronize``) runs before each clock read so that GPU work is counted.
    """
    names = list(contenders)
    samples: dict[str, list[float]] = {name: [] for name in names}
    progress = tqdm(total=(warmup + iterations) * len(names), desc=description, leave=False, unit="call")
    for iteration in range(warmup + iterations):
        shift = iteration % len(names)
        for name in names[shift:] + names[:shift]:
            if sync:
                sync()
            start = time.perf_counter()
            contenders[name]()
            if sync:
                sync()
            elapsed = (time.perf_counter() - start) * 1000.0
            if iteration >= warmup:
                samples[name].append(elapsed)
            progress.update()
    progress.close()
    return {name: Timing(tuple(values), batch) for name, values in samples.items()}
