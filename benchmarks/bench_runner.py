"""Runner overhead and sweep wall time, measured on this machine.

    python benchmarks/bench_runner.py [--sweep] [--results DIR]

(1) time per training step of the harness's ``fit`` (batches gathered from the memory-mapped cache,
as a job does) versus a bare PyTorch loop over in-memory tensors of the same data, same recipe and
network (target: the harness adds under 5%). Measured honestly on a shared machine
(``benchmarks/timing.py``): one untimed warm-up run of each, then ``--repeats`` rounds alternating which
runs first, CPU time and wall time, and the median of the per-round ratios (not the best of N, not a
fixed order: a fixed order with the bare loop first and no warm-up charged the harness for the first
run's warm-up and for whatever else the machine was doing, and printed overheads of 6-24%);
(3) with ``--sweep``: ``bench run --all --profile quick`` wall time with ``--jobs 1`` and ``--jobs 2``
in fresh results folders (target: under 10 minutes on 2 cores, and 2 jobs >= 1.7x faster).
The metric timings (2) are in ``bench_metrics.py``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from timing import interleaved, load_note, ratio
from torch import nn

from bench.architectures import create_model
from bench.config import load_profile, replace
from bench.datasets import open_dataset
from bench.datasets.prepare import prepare
from bench.run.devices import precision_for
from bench.run.execute import tensors
from bench.run.train import fit


def bare_loop(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    xs: torch.Tensor,
    ys: torch.Tensor,
    epochs: int,
    batch: int,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> float:
    """The same recipe written as a plain loop: Adam steps, then a no-grad pass over the selection set, in
    the memory format the harness trains in (channels-last in the quick profile)."""
    model = model.to(memory_format=memory_format)
    x, xs = x.contiguous(memory_format=memory_format), xs.contiguous(memory_format=memory_format)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999))
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.1, patience=3)
    crit = nn.BCEWithLogitsLoss()
    gen = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            loss = crit(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            sel = sum(float(crit(model(xs[i : i + batch]), ys[i : i + batch])) for i in range(0, len(xs), batch))
        sched.step(sel)
    return time.perf_counter() - start


def step_overhead(arch: str, epochs: int, repeats: int) -> None:
    torch.set_num_threads(1)
    prof = load_profile("quick")
    cfg = replace(prof.train, epochs=epochs)
    data = prepare(
        open_dataset("dsb2018", n=prof.train.synthetic_n), cfg.image_size, cache_dir=Path(tempfile.mkdtemp()) / "cache"
    )
    x = torch.from_numpy(np.asarray(data.images))
    y = torch.from_numpy(np.asarray(data.masks)[:, None].astype("float32"))
    n_sel = max(1, len(x) // 5)
    steps = epochs * -(-(len(x) - n_sel) // cfg.batch_size)
    ids = list(data.case_ids)
    train, select = tensors(data, ids[n_sel:]), tensors(data, ids[:n_sel])

    numerics = precision_for("cpu", cfg.amp, cfg.channels_last)
    if numerics.dtype is not None:
        raise SystemExit(f"the bare loop has no autocast: run with amp off (the profile resolves to {numerics.name})")
    layout = numerics.memory_format()

    def model() -> nn.Module:
        torch.manual_seed(0)
        return create_model(arch, in_channels=x.shape[1], width=cfg.width, depth=cfg.depth)

    cases = {
        "bare": lambda: bare_loop(model(), x[n_sel:], y[n_sel:], x[:n_sel], y[:n_sel], epochs, cfg.batch_size, layout),
        "harness": lambda: fit(model(), cfg, train, select, seed=0),
    }
    t = interleaved(cases, repeats=repeats)
    b, h = t["bare"].median_cpu / steps * 1e3, t["harness"].median_cpu / steps * 1e3
    print(
        f"(1) {arch}, {cfg.image_size}px width {cfg.width}, {steps} steps, {repeats} rounds after a warm-up: "
        f"bare loop {b:.1f} ms/step, harness fit {h:.1f} ms/step (CPU time; both with a per-epoch selection "
        f"pass); overhead, median of per-round ratios: CPU {100 * (ratio(t['harness'], t['bare']) - 1):+.1f}%, "
        f"wall {100 * (ratio(t['harness'], t['bare'], 'wall') - 1):+.1f}%; {load_note()}"
    )


def sweep(results: Path) -> None:
    times = {}
    for jobs in (1, 2):
        out = results / f"jobs{jobs}"
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.cli",
                "run",
                "--all",
                "--profile",
                "quick",
                "--quiet",
                "--jobs",
                str(jobs),
                "--results",
                str(out),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        times[jobs] = time.perf_counter() - start
        print(f"(3) bench run --all --profile quick --jobs {jobs}: {times[jobs]:.1f} s")
    print(f"(3) speed-up with 2 jobs: {times[1] / times[2]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="unet")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--results", type=Path, default=Path(tempfile.gettempdir()) / "bench-sweep")
    args = parser.parse_args()
    step_overhead(args.arch, args.epochs, args.repeats)
    if args.sweep:
        sweep(args.results)


if __name__ == "__main__":
    main()
