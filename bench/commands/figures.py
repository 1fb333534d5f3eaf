"""``bench figure --qualitative`` (grids and failure galleries) and ``bench saliency`` from stored models."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.commands.common import add_where_option, canonical_arch, metric_names, resolved_device, results_table
from bench.errors import InvalidInput


def cmd_figure(args: argparse.Namespace) -> int:
    from bench.datasets import canonical_name
    from bench.report.qualitative import qualitative

    if not args.qualitative:
        raise InvalidInput("choose --qualitative (the paper's tables and figures of numbers: bench report)")
    df, _, _ = results_table(args.results, args.where)
    archs = [canonical_arch(a) for a in args.arch.split(",")] if args.arch else None
    cases = [c for c in (args.cases or "").split(",") if c] or None
    paths = qualitative(
        df,
        args.results,
        canonical_name(args.dataset),
        Path(args.out),
        archs=archs,
        cases=cases,
        worst=args.worst,
        n=args.n,
        metric=args.metric,
        protocol=args.protocol,
        fold=args.fold,
    )
    for path in paths:
        print(f"wrote {path}")
    return 0


def add_figure(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--qualitative",
        action="store_true",
        help="image, ground truth and each architecture's stored prediction with its score",
    )
    p.add_argument("--dataset", required=True)
    p.add_argument("--arch", help="architectures, comma-separated (default: every one with results)")
    p.add_argument("--cases", help="case ids, comma-separated (default: the N where the architectures disagree most)")
    p.add_argument("--n", type=int, default=3, help="how many cases to choose automatically (default 3)")
    p.add_argument(
        "--worst",
        type=int,
        default=0,
        help="also a failure gallery per architecture: its N worst images beside every architecture",
    )
    p.add_argument("--metric", default="dice", choices=metric_names())
    p.add_argument("--protocol", choices=["holdout", "cv"], help="default: holdout if it has test results, else cv")
    p.add_argument("--fold", type=int, help="holdout fold model to show (default: the lowest every architecture has)")
    p.add_argument("--out", default="reports/figures", help="output folder (default reports/figures)")
    p.add_argument("--results", default="results")
    add_where_option(p)


def cmd_saliency(args: argparse.Namespace) -> int:
    from bench.datasets import canonical_name
    from bench.report.saliency import saliency

    archs = [canonical_arch(a) for a in args.arch.split(",") if a]
    cases = [c for c in (args.cases or "").split(",") if c] or None
    for path in saliency(
        Path(args.results),
        canonical_name(args.dataset),
        archs,
        Path(args.out),
        cases=cases,
        n=args.n,
        protocol=args.protocol,
        fold=args.fold,
        device=resolved_device(args.device),
    ):
        print(f"wrote {path}")
    return 0


def add_saliency(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True)
    p.add_argument("--arch", required=True, help="architectures, comma-separated")
    p.add_argument("--cases", help="case ids, comma-separated (default: the first N scored images)")
    p.add_argument("--n", type=int, default=3, help="how many images without --cases (default 3)")
    p.add_argument("--protocol", default="holdout", choices=["holdout", "cv"])
    p.add_argument("--fold", type=int, help="fold model (default: the lowest every architecture has)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--out", default="reports/figures", help="output folder (default reports/figures)")
    p.add_argument("--results", default="results")
