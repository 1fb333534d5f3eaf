"""Runner overhead and sweep wall time, measured on this machine.

    python benchmarks/bench_runner.py [--sweep] [--results DIR]

(1) time per training step of the harness's ``fit`` versus a bare PyTorch loop over the same
cached tensors and model (target: the harness adds under 5%);
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

import torch
from torch import nn

from bench.architectures import create_model
from bench.config import load_profile, replace
from bench.datasets import open_dataset
from bench.datasets.prepare import prepare
from bench.train import fit


def bare_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor, epochs: int,
              batch: int) -> float:
    """The same recipe written as a plain loop: Adam steps, then a no-grad pass over the selection set."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999))
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.1, patience=3)
    crit = nn.BCEWithLogitsLoss()
    gen = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            loss = crit(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            sel = sum(float(crit(model(xs[i:i + batch]), ys[i:i + batch])) for i in range(0, len(xs), batch))
        sched.step(sel)
    return time.perf_counter() - start


def step_overhead(arch: str, epochs: int, repeats: int) -> None:
    torch.set_num_threads(1)
    prof = load_profile("quick")
    cfg = replace(prof.train, epochs=epochs)
    data = prepare(open_dataset("dsb2018", n=prof.train.synthetic_n), cfg.image_size,
                   cache_dir=Path(tempfile.mkdtemp()) / "cache")
    x = torch.from_numpy(data.images)
    y = torch.from_numpy(data.masks[:, None].astype("float32"))
    n_sel = max(1, len(x) // 5)
    steps = epochs * -(-(len(x) - n_sel) // cfg.batch_size)
    bare, harness = [], []
    for _ in range(repeats):
        torch.manual_seed(0)
        model = create_model(arch, in_channels=x.shape[1], width=cfg.width, depth=cfg.depth)
        bare.append(bare_loop(model, x[n_sel:], y[n_sel:], x[:n_sel], y[:n_sel], epochs, cfg.batch_size))
        torch.manual_seed(0)
        model = create_model(arch, in_channels=x.shape[1], width=cfg.width, depth=cfg.depth)
        start = time.perf_counter()
        fit(model, cfg, (x[n_sel:], y[n_sel:]), (x[:n_sel], y[:n_sel]), seed=0)
        harness.append(time.perf_counter() - start)
    b, h = min(bare) / steps * 1e3, min(harness) / steps * 1e3
    print(f"(1) {arch}, {cfg.image_size}px width {cfg.width}, {steps} steps: bare loop {b:.1f} ms/step, "
          f"harness fit {h:.1f} ms/step (both with a per-epoch selection pass): "
          f"+{100 * (h / b - 1):.1f}%")


def sweep(results: Path) -> None:
    times = {}
    for jobs in (1, 2):
        out = results / f"jobs{jobs}"
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bench.cli", "run", "--all", "--profile", "quick", "--quiet",
                        "--jobs", str(jobs), "--results", str(out)], check=True, stdout=subprocess.DEVNULL)
        times[jobs] = time.perf_counter() - start
        print(f"(3) bench run --all --profile quick --jobs {jobs}: {times[jobs]:.1f} s")
    print(f"(3) speed-up with 2 jobs: {times[1] / times[2]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="unet")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--results", type=Path, default=Path(tempfile.gettempdir()) / "bench-sweep")
    args = parser.parse_args()
    step_overhead(args.arch, args.epochs, args.repeats)
    if args.sweep:
        sweep(args.results)


if __name__ == "__main__":
    main()
