"""``bench audit``: the validation checklist of a results folder (docs/validation.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.commands.common import add_where_option, results_table


def cmd_audit(args: argparse.Namespace) -> int:
    from bench.analysis.audit import Folder, audit, failed, format_items

    df, failures, sides = results_table(args.results, args.where)
    items = audit(Folder(df, sides, Path(args.results), failures))
    print(format_items(items, args.format), end="")
    return 1 if args.strict and failed(items) else 0


def add_audit(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", default="results", help="the results folder (default: results)")
    p.add_argument("--format", default="text", choices=["text", "md"], help="aligned text (default) or Markdown")
    p.add_argument("--strict", action="store_true", help="exit with status 1 when any item FAILs (for CI)")
    add_where_option(p)
