"""``bench status``: the state of every job of a results folder (or of a planned sweep), from the files."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.commands.common import csv_ints, parse_dataset_option_pairs, parse_settings


def cmd_status(args: argparse.Namespace) -> int:
    from bench.run.status import files_status, format_status, sweep_status

    results = Path(args.results)
    if args.all or args.arch or args.dataset:
        from bench.config import load_profile
        from bench.run.plan import plan, select

        profile = load_profile(args.profile, parse_settings(args.set), parse_dataset_option_pairs(args.dataset_option))
        sel = select(args.arch, args.dataset, args.all, args.protocol, args.folds, args.seeds)
        skip = tuple(v for v in (args.skip or "").split(",") if v)
        table = sweep_status(
            plan(sel, profile, results, Path(args.data_root) if args.data_root else None, skip), results
        )
    else:
        table = files_status(results)
    print(
        table.to_csv(index=False) if args.format == "csv" else format_status(table),
        end="" if args.format == "csv" else "\n",
    )
    if args.format != "csv":
        from bench.results.store import damaged_evaluations

        damaged = damaged_evaluations(results)
        if damaged:
            print(f"{len(damaged)} damaged evaluation record(s) (the next `bench evaluate` recomputes each):")
            print("\n".join(f"  {line}" for line in damaged))
    return 0


def add_status(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", default="results", help="results folder (default: ./results)")
    p.add_argument("--format", default="text", choices=["text", "csv"], help="csv: every job, one row each")
    p.add_argument("--all", action="store_true", help="the plan of `bench run --all` (lists missing jobs too)")
    p.add_argument("--arch", help="as for bench run; with --arch/--dataset/--all, jobs not started show as missing")
    p.add_argument("--dataset")
    p.add_argument("--protocol", default="holdout", choices=["holdout", "cv"])
    p.add_argument("--folds", type=csv_ints)
    p.add_argument("--seeds", type=csv_ints)
    p.add_argument("--profile", default="quick")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--data-root")
    p.add_argument("--skip")
    p.add_argument("--dataset-option", action="append", default=[], metavar="DATASET.OPTION=VALUE")
