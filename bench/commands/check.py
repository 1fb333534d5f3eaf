"""``bench check``: compare today's code with the committed drift baseline, or re-bless it."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bench.errors import MissingInput


def cmd_check(args: argparse.Namespace) -> int:
    from bench.check import LAYERS, check, format_result, update, update_augmentation

    start = time.perf_counter()
    baseline = Path(args.baseline)
    results = Path(args.results) if args.results else None
    if args.update and args.layer == "augmentation":
        update_augmentation(baseline, args.reason or "")
        print(f"bench check: augmentation layer re-blessed in {baseline}: {args.reason}")
        return 0
    if args.update:
        update(baseline, args.reason or "", results, args.jobs)
        print(f"bench check: baseline re-blessed in {baseline} ({time.perf_counter() - start:.0f} s): {args.reason}")
        return 0
    if not (baseline / "rows.parquet").exists():
        raise MissingInput(
            f"no baseline at {baseline} (expected rows.parquet, derived.json, meta.json); "
            'create one with `bench check --update --reason "..."`'
        )
    layers = LAYERS if args.layer == "all" else (args.layer,)
    result = check(baseline, args.tolerance, results, args.jobs, layers)
    print(format_result(result, time.perf_counter() - start))
    return 0 if result.ok else 1


def add_check(p: argparse.ArgumentParser) -> None:
    p.add_argument("--baseline", default="results/baseline", help="baseline folder (default results/baseline)")
    p.add_argument(
        "--layer",
        choices=["all", "augmentation", "scoring", "training"],
        default="all",
        help="augmentation: re-apply each augmentation transform to fixed inputs (exact, a second); scoring: "
        "re-score the stored predictions (exact, seconds); training: re-train and compare within the "
        "noise-floor tolerances; all (default): the three. With --update, augmentation re-blesses that "
        "layer alone",
    )
    p.add_argument("--tolerance", help="training-layer tolerances per column, abs[:rel], e.g. 'dice=0.05,tp=8'")
    p.add_argument("--update", action="store_true", help="re-run and re-bless the baseline")
    p.add_argument("--reason", help="why the baseline changes (required with --update)")
    p.add_argument("--results", help="keep the re-run's results here (default: a temporary folder)")
    p.add_argument("--jobs", type=int, default=1, help="parallel workers for the re-run")
