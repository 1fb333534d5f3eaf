"""Where the CPU time of one job goes, phase by phase (cProfile, CPU-time clock).

    python benchmarks/profile_job.py [--arch unet,mildnet] [--dataset dsb2018] [--profile quick] [--set k=v ...]

For each architecture, plans fold 0 of the job at the profile (planning prepares and caches the data,
outside the measurement), then runs it in this process through ``bench.run.runner.run_job`` (what a worker
does: lock, sidecar, execute, Parquet) under ``cProfile`` with ``time.process_time`` as its clock.
Prints the CPU seconds of each phase (the cumulative time of the function that is the phase: training
= ``bench.run.train.fit``; predict + score = ``bench.run.evaluate.predict_and_score``, with the forward passes,
the Hausdorff distances and the other metrics inside it; writing = the checkpoint, the Parquet and the
sidecars), and the top functions by own time. The first job of the process also pays the imports a
job makes lazily (``torch._dynamo`` through torch.optim, ``bench.analysis.tables``...): listed as ``imports``.
cProfile adds overhead to Python-heavy code (the metrics), so shares are indicative, not exact.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

#: (phase, (file suffix, function name) of the function whose cumulative time is the phase)
PHASES = (
    ("imports (lazy, first job)", ("<frozen importlib._bootstrap>", "_find_and_load")),
    ("data: open cache + split", ("bench/run/execute.py", "load_job_data")),
    ("build model", ("bench/run/execute.py", "build_model")),
    ("training (fit)", ("bench/run/train.py", "fit")),
    ("  selection loss (in fit)", ("bench/run/train.py", "mean_loss")),
    ("predict + score + write predictions", ("bench/run/evaluate.py", "predict_and_score")),
    ("  forward passes (predict)", ("bench/run/evaluate.py", "predict_batches")),
    ("  metrics (score)", ("bench/run/evaluate.py", "score")),
    ("    HD / HD95", ("bench/metrics.py", "_distance_metrics")),
    ("  predictions file", ("bench/results/predictions.py", "write_predictions")),
    ("checkpoint", ("bench/results/checkpoint.py", "save_checkpoint")),
    ("did-not-learn assessment", ("bench/analysis/learning.py", "assess")),
    ("model cost (MACs)", ("bench/analysis/compute.py", "model_cost")),
    ("Parquet rows", ("bench/results/store.py", "atomic_write_parquet")),
    ("sidecar JSON", ("bench/results/store.py", "atomic_write_json")),
)


def phase_seconds(stats: pstats.Stats) -> dict[str, float]:
    """Cumulative CPU seconds of each ``PHASES`` function (0 when it did not run)."""
    out = {}
    for name, (suffix, func) in PHASES:
        total = 0.0
        for (file, _, fn), (_, _, _, cum, _) in stats.stats.items():  # type: ignore[attr-defined]
            if fn == func and file.replace("\\", "/").endswith(suffix):
                total = max(total, cum) if func == "_find_and_load" else total + cum
        out[name] = total
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="unet,mildnet")
    parser.add_argument("--dataset", default="dsb2018")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    c0 = time.process_time()
    from bench.config import load_profile
    from bench.run.plan import plan, select
    from bench.run.runner import run_job

    print(
        f"# imports before the first job (bench.config, bench.run.plan, bench.run.runner): {time.process_time() - c0:.2f} s CPU"
    )
    settings = dict(s.split("=", 1) for s in args.set)
    for arch in args.arch.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            jobs = plan(
                select(arch, args.dataset, False, "holdout", (0,)), load_profile(args.profile, settings), Path(tmp)
            )
            prof = cProfile.Profile(time.process_time)
            c0 = time.process_time()
            status = prof.runcall(run_job, jobs[0], Path(tmp))
            total = time.process_time() - c0
            if status["status"] != "ok":
                sys.exit(f"{arch}: {status}")
        stats = pstats.Stats(prof)
        print(f"\n## {arch} on {args.dataset}, profile {args.profile}, fold 0: {total:.2f} s CPU in run_job")
        print("| phase | CPU s | share |\n|---|---:|---:|")
        for name, seconds in phase_seconds(stats).items():
            print(f"| {name} | {seconds:.2f} | {seconds / total:.0%} |")
        print(f"\nTop {args.top} functions by own CPU time:")
        stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
