"""``bench export``: the tidy per-image table as one CSV or Parquet file, or (``--to mlflow``) the jobs as runs of
an MLflow tracking server (``bench.tracking``)."""

from __future__ import annotations

import argparse

from bench.commands.common import add_where_option, where_pairs
from bench.errors import InvalidInput


def cmd_export(args: argparse.Namespace) -> int:
    if args.to == "mlflow":
        return _export_mlflow(args)
    if args.report or args.tracking_uri or args.experiment:
        raise InvalidInput("--report, --tracking-uri and --experiment go with --to mlflow")
    from bench.results.store import export

    if args.where:
        from bench.results.selection import export_selected

        out = export_selected(args.results, args.out or f"results.{args.format}", args.format, where_pairs(args.where))
    else:
        out = export(args.results, args.out or f"results.{args.format}", args.format)
    print(f"wrote {out}")
    return 0


def _export_mlflow(args: argparse.Namespace) -> int:
    """``bench export --to mlflow``: the jobs as MLflow runs (``bench.tracking``; docs/tracking.md)."""
    from bench.tracking.target import require_mlflow, tracking_target

    if args.out:
        raise InvalidInput("--out names the file of --to file; --to mlflow logs to the tracking server")

    require_mlflow("bench export --to mlflow")
    from bench.tracking.export import export_to_mlflow

    target = tracking_target(args.results, args.tracking_uri, args.experiment)
    summary = export_to_mlflow(args.results, target, where_pairs(args.where), args.report)
    print(summary.line())
    return 0


def add_export(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--to",
        default="file",
        choices=["file", "mlflow"],
        help="file: one CSV/Parquet table (--out); mlflow: one run per job on a tracking server (docs/tracking.md)",
    )
    p.add_argument("--tracking-uri", help="MLflow tracking server (default: $MLFLOW_TRACKING_URI)")
    p.add_argument("--experiment", help="MLflow experiment (default: the results folder's name)")
    p.add_argument(
        "--report", metavar="DIR", help="with --to mlflow: a `bench report` folder logged on the configuration's run"
    )
    p.add_argument("--format", default="csv", choices=["csv", "parquet"])
    p.add_argument("--out", help="output file (default results.<format>)")
    p.add_argument("--results", default="results")
    add_where_option(p)
