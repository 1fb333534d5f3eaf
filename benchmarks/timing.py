"""Honest timing on a shared machine: warm-up, interleaved order, wall and CPU time, medians of ratios.

``interleaved(cases, repeats)`` runs every case once untimed (warm-up: allocator, kernels, caches),
then ``repeats`` rounds in which every case runs once, the order rotating each round so no case is
always first or last. Each run records wall seconds (``time.perf_counter``) and this process's CPU
seconds (``time.process_time``: what the process itself used, much less sensitive to other load on the
machine than wall time). Comparisons are the median over rounds of the per-round ratio, so a slow
round (someone else's job) moves both sides of that round's ratio instead of one case's total.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Timing:
    """Per-round wall and CPU seconds of one case (round ``r`` of every case ran in the same round)."""

    wall: tuple[float, ...]
    cpu: tuple[float, ...]

    @property
    def median_wall(self) -> float:
        return statistics.median(self.wall)

    @property
    def median_cpu(self) -> float:
        return statistics.median(self.cpu)


def interleaved(cases: Mapping[str, Callable[[], object]], repeats: int = 5, warmup: int = 1) -> dict[str, Timing]:
    """Time every case ``repeats`` times in rotating order after ``warmup`` untimed runs of each."""
    names = list(cases)
    for _ in range(warmup):
        for name in names:
            cases[name]()
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            w0, c0 = time.perf_counter(), time.process_time()
            cases[name]()
            cpu[name].append(time.process_time() - c0)
            wall[name].append(time.perf_counter() - w0)
    return {n: Timing(tuple(wall[n]), tuple(cpu[n])) for n in names}


def ratio(a: Timing, b: Timing, clock: str = "cpu") -> float:
    """Median over rounds of ``a / b`` (``clock`` ``cpu`` or ``wall``): above 1 means ``a`` is slower."""
    xs, ys = (a.cpu, b.cpu) if clock == "cpu" else (a.wall, b.wall)
    return statistics.median(x / y for x, y in zip(xs, ys))


def load_note() -> str:
    """The machine's load while measuring (1-minute load average over the core count)."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def cpu_name() -> str:
    """The CPU model and whether it has AVX-512 bf16 / AMX (from /proc/cpuinfo; 'unknown' elsewhere)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    feats = [f for f in ("avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{model} ({', '.join(feats) or 'no AVX-512'})"
