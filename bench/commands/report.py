"""``bench report`` (the paper's tables and figures) and ``bench ttest`` (paired tests) from the results."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bench.commands.common import add_where_option, at_resolution, metric_names, results_table
from bench.errors import InvalidInput


def cmd_report(args: argparse.Namespace) -> int:
    from bench.analysis.learning import report_lines
    from bench.report.report import build_report, report_figure, report_table
    from bench.run.reproduce import report_commands

    df, failures, sides = results_table(args.results, args.where)
    df = at_resolution(df, args.resolution)
    if args.all:
        out = Path(args.out or f"reports/{time.strftime('%Y%m%d-%H%M%S')}")
        inputs = {n: _table_inputs(str(n), sides, Path(args.results)) for n in (1, 2)}
        index = build_report(
            df,
            out,
            sidecars=sides,
            failures=failures,
            vs_paper=True,
            data_inputs=inputs,
            commands=report_commands(sides, out, args.results),
            results=Path(args.results),
        )
        print(f"wrote the report to {out} (open {index} or {index.with_suffix('.html')})")
        print("\n  ".join(report_lines(sides)))
    if args.table:
        inputs = _table_inputs(args.table, sides, Path(args.results))
        if args.split and args.table not in ("5", "floors"):
            raise InvalidInput(f"--split applies to --table 5 and floors, not --table {args.table}")
        extra = (
            {"unit": args.unit, "protocol": args.protocol}
            if args.table == "tests"
            else {"unit": args.unit}
            if args.table == "ranks"
            else {}
        )
        extra.update({"split": args.split} if args.split else {})
        print(
            report_table(
                df, args.table, args.format, args.vs_paper, failures=failures, sidecars=sides, inputs=inputs, **extra
            )
        )
    if args.figure:
        out = Path(args.out or "reports/figures")
        extra = (
            {"unit": args.unit, "protocol": args.protocol}
            if args.figure == "8"
            else {"unit": args.unit}
            if args.figure in ("bars", "ranks")
            else {}
        )
        extra.update({"sidecars": sides} if args.figure == "curves" else {})
        for path in report_figure(df, args.figure, out, **extra):
            print(f"wrote {path}")
    if not (args.all or args.table or args.figure):
        raise InvalidInput("choose --table N, --figure 8 (or bars, ranking), or --all")
    return 0


def _table_inputs(table: str, sides: list[dict], results: Path) -> tuple:
    if table not in ("1", "2"):
        return ()
    from bench.report.data import loaded_data

    return loaded_data(sides, results, with_splits=table == "2")


def add_report(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--table",
        choices=["1", "2", "3", "4", "5", "floors", "sensitivity", "tests", "folds", "ranks", "settings", "compute"],
    )
    p.add_argument(
        "--figure",
        choices=["8", "bars", "ranking", "ranks", "curves"],
        help="curves: training and selection loss per epoch of every job, chosen epoch marked",
    )
    p.add_argument(
        "--unit",
        default="group",
        choices=["group", "image", "patient"],
        help="unit of analysis of tests, Fig. 8, bars and rank bootstrap: group (default: LGG patients, "
        "ISBI/GlaS source images), image (every image; not independent) or patient (GlaS: the "
        "patients of Grade.csv, real data)",
    )
    p.add_argument(
        "--protocol",
        choices=["cv", "holdout"],
        help="protocol of the tests table and Fig. 8 (default: cv if it has results, else holdout)",
    )
    add_where_option(p)
    p.add_argument("--all", action="store_true", help="every table and figure plus index.md/index.html under --out")
    p.add_argument("--format", default="md", choices=["md", "latex", "tex", "csv", "html"])
    p.add_argument("--vs-paper", action="store_true", help="show the paper's published values beside ours")
    p.add_argument(
        "--split",
        help="scored split of --table 5 / floors: test (default) or external (rows of `bench evaluate --data-root`)",
    )
    p.add_argument(
        "--resolution",
        default="input",
        choices=["input", "native"],
        help="input-size rows (default) or native-resolution rows (`bench evaluate --resolution native`)",
    )
    p.add_argument("--out", help="output folder (default reports/<timestamp>/ for --all, reports/figures for figures)")
    p.add_argument("--results", default="results")


def cmd_ttest(args: argparse.Namespace) -> int:
    from bench.analysis.stats import REFERENCE, fold_level_test, paired_test, resolve_protocol
    from bench.report.tests_table import format_tests

    df, _, _ = results_table(args.results, args.where)
    protocol, note = resolve_protocol(df, args.dataset, args.protocol)
    if note and args.format == "text":
        print(note)
    against = args.against.split(",") if args.against else None
    reference = args.reference or REFERENCE
    res = paired_test(
        df,
        dataset=args.dataset,
        metric=args.metric,
        reference=reference,
        against=against,
        protocol=protocol,
        test=args.test,
        correction=args.correction,
        alpha=args.alpha,
        unit=args.unit,
    )
    print(format_tests(res, args.format))
    if protocol == "cv" and args.format != "csv":
        folds = fold_level_test(
            df,
            dataset=args.dataset,
            metric=args.metric,
            reference=reference,
            against=against,
            correction=args.correction,
            alpha=args.alpha,
        )
        print(("Fold level:\n" if args.format == "text" else "") + format_tests(folds, args.format))
    return 0


def add_ttest(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True)
    p.add_argument("--metric", default="iou", choices=metric_names())
    p.add_argument(
        "--reference", help="the network the others are tested against (default: the paper's proposed network, MILDNet)"
    )
    p.add_argument("--against", help="comma-separated architectures (default: every other one with results)")
    p.add_argument(
        "--protocol",
        choices=["cv", "holdout"],
        help="default: cv if it has results for the dataset, else holdout (said in the output)",
    )
    p.add_argument(
        "--unit",
        default="group",
        choices=["group", "image", "patient"],
        help="group (default): pair the independent units (LGG patients, ISBI/GlaS source images); "
        "image: every image, as the paper did (not independent); patient: GlaS patients of "
        "Grade.csv (real data)",
    )
    p.add_argument("--test", default="t", choices=["t", "wilcoxon"])
    p.add_argument("--correction", default="holm", choices=["holm", "bonferroni", "none"])
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--format", default="text", choices=["text", "csv", "md", "latex"])
    p.add_argument("--results", default="results")
    add_where_option(p)
