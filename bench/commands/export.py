"""``bench export``: the tidy per-image table as one CSV or Parquet file."""

from __future__ import annotations

import argparse

from bench.commands.common import add_where_option, where_pairs


def cmd_export(args: argparse.Namespace) -> int:
    from bench.results.store import export

    if args.where:
        from bench.results.selection import export_selected

        out = export_selected(args.results, args.out or f"results.{args.format}", args.format, where_pairs(args.where))
    else:
        out = export(args.results, args.out or f"results.{args.format}", args.format)
    print(f"wrote {out}")
    return 0


def add_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", default="csv", choices=["csv", "parquet"])
    p.add_argument("--out", help="output file (default results.<format>)")
    p.add_argument("--results", default="results")
    add_where_option(p)
