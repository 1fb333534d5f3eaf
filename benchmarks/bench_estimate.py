"""The plan's estimate of a sweep's time against the measured time, on 1 and 2 workers.

    python benchmarks/bench_estimate.py [--rounds 2] [--workers 1,2] [--profile quick] -- BENCH_RUN_SELECTION

e.g. ``-- --arch unet,mildnet,resdunet --dataset dsb2018,isbi2012 --folds 0``. The selection is planned once
in a fresh results folder and its estimate computed (``bench.run.estimate.plan_cost``: this measures the
timed steps and caches them there); then, for each round and each worker count (alternating which goes
first), ``bench run SELECTION --jobs N --force --quiet`` runs in that folder and its own "N jobs in X s"
line (the sweep's wall time, worker start-up included) is compared with the estimate for N workers. The
per-job training-time errors the jobs recorded (``estimate_error`` in their sidecars) are summarised too.

    python benchmarks/bench_estimate.py --memory [--profile paper] -- --arch unet,mildnet --dataset dsb2018 --folds 0,1 \
        --set epochs=1 --set synthetic_n=24

compares instead the plan's peak memory per worker with each job's recorded peak (``peak_memory_mb``: the
whole worker process's peak RSS, and ``job_peak_memory_mb``: the peak during the job), the jobs run by
``bench run --jobs 2`` (each in a worker forked from the pool's server, as the estimate's step is forked).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def plan_estimate(selection: list[str], profile: str, results: Path) -> object:
    from bench.commands.common import parse_settings
    from bench.config import load_profile
    from bench.run.estimate import plan_cost
    from bench.run.plan import plan, select
    from bench.run.workers import pool_context

    parser = argparse.ArgumentParser()
    parser.add_argument("--arch")
    parser.add_argument("--dataset")
    parser.add_argument("--all", action="store_true")
    parser.add_argument("--folds", type=lambda s: tuple(int(v) for v in s.split(",")))
    parser.add_argument("--set", action="append", default=[])
    sel_args = parser.parse_args(selection)
    prof = load_profile(profile, parse_settings(sel_args.set), ())
    sel = select(sel_args.arch, sel_args.dataset, sel_args.all, "holdout", sel_args.folds, None)
    return plan_cost(plan(sel, prof, results), results, context=pool_context())


def run(selection: list[str], profile: str, results: Path, workers: int) -> tuple[float, float, list[float]]:
    """(sweep seconds as ``bench run`` reports them, CPU seconds of the command, per-job estimate errors)."""
    cmd = [sys.executable, "-m", "bench.cli", "run", *selection, "--profile", profile, "--jobs", str(workers)]
    cmd += ["--force", "--quiet", "--results", str(results)]
    before = os.times()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    after = os.times()
    seconds = float(re.search(r"(\d+) jobs in ([\d.]+) s", out).group(2))
    errors = []
    for side in (results / "runs").rglob("*.json"):
        record = json.loads(side.read_text())
        err = record.get("compute", {}).get("estimate_error")
        if record.get("status") == "ok" and err is not None:
            errors.append(err)
    cpu = (after.children_user + after.children_system) - (before.children_user + before.children_system)
    return seconds, cpu, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--memory", action="store_true", help="compare the memory estimate instead of time")
    parser.add_argument("selection", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    selection = [a for a in args.selection if a != "--"]
    if args.memory:
        memory(selection, args.profile)
        return
    counts = [int(w) for w in args.workers.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp)
        start = time.perf_counter()
        cost = plan_estimate(selection, args.profile, results)
        print(f"planned and measured the steps in {time.perf_counter() - start:.1f} s; {len(cost.estimates)} jobs")
        print(
            "| round | workers | estimated s | measured s | estimated / measured | per-job training error, median (range) | load |"
        )
        print("|---:|---:|---:|---:|---:|---|---:|")
        for r in range(args.rounds):
            for n in counts if r % 2 == 0 else counts[::-1]:
                load = os.getloadavg()[0]
                seconds, _, errors = run(selection, args.profile, results, n)
                est = cost.seconds(n)
                spread = (
                    f"{statistics.median(errors):+.0%} ({min(errors):+.0%} to {max(errors):+.0%})" if errors else "-"
                )
                print(f"| {r + 1} | {n} | {est:.1f} | {seconds:.1f} | {est / seconds:.2f} | {spread} | {load:.1f} |")
                sys.stdout.flush()


def memory(selection: list[str], profile: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp)
        cost = plan_estimate(selection, profile, results)
        run(selection, profile, results, 2)
        measured: dict[str, list[tuple[float, float]]] = {}
        for side in (results / "runs").rglob("*.json"):
            record = json.loads(side.read_text())
            if record.get("status") == "ok":
                c = record["compute"]
                measured.setdefault(record["job"]["arch"], []).append((c["peak_memory_mb"], c["job_peak_memory_mb"]))
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print(
        "| network | plan: peak per worker (MiB) | measured: worker peak RSS (MiB) | measured / plan | during the job |"
    )
    print("|---|---:|---:|---:|---:|")
    for arch in sorted(measured):
        plan_mb = max(e.peak_mb for e in cost.estimates if e.job.arch == arch)
        peak = max(m[0] for m in measured[arch])
        job = max(m[1] for m in measured[arch])
        print(f"| {arch} | {plan_mb:,.0f} | {peak:,.0f} | {peak / plan_mb:.2f} | {job:,.0f} |")


if __name__ == "__main__":
    main()
