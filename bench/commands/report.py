"""``bench report`` (the paper's tables and figures) and ``bench ttest`` (paired tests) from the results."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bench.commands.common import add_where_option, at_resolution, metric_names, results_table
from bench.errors import InvalidInput


def cmd_report(args: argparse.Namespace) -> int:
    from bench.analysis.learning import report_lines
    from bench.analysis.stats import attach_fit_sizes
    from bench.report.report import build_report, report_figure, report_table
    from bench.run.reproduce import report_commands

    df, failures, sides = results_table(args.results, args.where)
    df = attach_fit_sizes(at_resolution(df, args.resolution), sides)
    if args.all:
        out = Path(args.out or f"reports/{time.strftime('%Y%m%d-%H%M%S')}")
        inputs = {n: _table_inputs(str(n), sides, Path(args.results)) for n in (1, 2)}
        notes: list[str] = []
        index = build_report(
            df,
            out,
            sidecars=sides,
            failures=failures,
            vs_paper=True,
            data_inputs=inputs,
            commands=report_commands(sides, out, args.results),
            results=Path(args.results),
            notes=notes,
        )
        for note in notes:
            print(f"bench: warning: {note}", file=sys.stderr)
        print(f"wrote the report to {out} (open {index} or {index.with_suffix('.html')})")
        print("\n  ".join(report_lines(sides)))
    if args.against and args.table != "tests":
        raise InvalidInput(f"--against cheapest applies to --table tests, not --table {args.table}")
    if args.against:  # each model beside the cheapest one not significantly worse (bench.report.pareto)
        print(_cheapest(df, sides, args))
    elif args.table == "learning":
        from bench.analysis.learning import learning_table
        from bench.report.table_render import render

        print(render(learning_table(sides), "latex" if args.format == "tex" else args.format))
    elif args.table:
        inputs = _table_inputs(args.table, sides, Path(args.results))
        if args.split and args.table not in ("5", "floors"):
            raise InvalidInput(f"--split applies to --table 5 and floors, not --table {args.table}")
        extra = (
            {"unit": args.unit, "protocol": args.protocol, **_test_options(args)}
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
            {"unit": args.unit, "protocol": args.protocol, "allow_unequal_folds": args.allow_unequal_folds}
            if args.figure == "8"
            else {"unit": args.unit}
            if args.figure in ("bars", "ranks")
            else {}
        )
        extra.update({"sidecars": sides} if args.figure in ("curves", "pareto") else {})
        for path in report_figure(df, args.figure, out, **extra):
            print(f"wrote {path}")
    if not (args.all or args.table or args.figure):
        raise InvalidInput("choose --table N, --figure 8 (or bars, ranking), or --all")
    return 0


def _cheapest(df, sides: list[dict], args: argparse.Namespace) -> str:
    """The tests table paired with the cheapest architecture that is not significantly worse."""
    from bench.report.pareto import cheapest_not_worse
    from bench.report.table_render import render

    table = cheapest_not_worse(df, sides, protocol=args.protocol, unit=args.unit)
    return render(table, "latex" if args.format == "tex" else args.format)


def _test_options(args: argparse.Namespace) -> dict:
    """The options of the tests table: correction, its family, unequal fold models."""
    return {"correction": args.correction, "family": args.family, "allow_unequal_folds": args.allow_unequal_folds}


def _table_inputs(table: str, sides: list[dict], results: Path) -> tuple:
    if table not in ("1", "2"):
        return ()
    from bench.report.data import loaded_data

    return loaded_data(sides, results, with_splits=table == "2")


def add_report(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--table",
        choices=[
            "1",
            "2",
            "3",
            "4",
            "5",
            "floors",
            "sensitivity",
            "tests",
            "folds",
            "ranks",
            "settings",
            "compute",
            "learning",
            "suitability",
        ],
        help="learning: every fold model with its did-not-learn reasons; suitability: can each dataset separate the architectures (docs/validation.md)",
    )
    p.add_argument(
        "--figure",
        choices=["8", "bars", "ranking", "ranks", "curves", "pareto"],
        help="curves: training and selection loss per epoch of every job, chosen epoch marked; pareto: Dice "
        "against GMACs, parameters and training seconds per epoch, Pareto front marked",
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
    add_test_options(p)
    p.add_argument(
        "--family",
        default="dataset",
        choices=["dataset", "all"],
        help="tests table: correct within each dataset (default) or over every dataset x comparison (all)",
    )
    p.add_argument(
        "--against",
        choices=["cheapest"],
        help="tests table: pair each model with the cheapest one (GMACs) that is not significantly worse",
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


def add_test_options(p: argparse.ArgumentParser) -> None:
    """--correction and --allow-unequal-folds, shared by `bench report` and `bench ttest`."""
    p.add_argument(
        "--correction",
        default="holm",
        choices=["holm", "bonferroni", "fdr_bh", "none"],
        help="multiple-comparison correction: holm (default), bonferroni, fdr_bh (Benjamini-Hochberg) or none",
    )
    p.add_argument(
        "--allow-unequal-folds",
        action="store_true",
        help="compare architectures with unequal numbers of fold models (refused by default; noted in the output)",
    )


def cmd_ttest(args: argparse.Namespace) -> int:
    from bench.analysis.stats import REFERENCE, attach_fit_sizes, fold_level_test, paired_test, resolve_protocol
    from bench.report.tests_table import format_tests

    df, _, sides = results_table(args.results, args.where)
    df = attach_fit_sizes(df, sides)
    protocol, note = resolve_protocol(df, args.dataset, args.protocol)
    if note and args.format == "text":
        print(note)
    from bench.results.selection import tuning_note

    tuned = tuning_note(df)
    if tuned and args.format == "text":
        print(tuned)
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
        allow_unequal_folds=args.allow_unequal_folds,
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
    add_test_options(p)
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--format", default="text", choices=["text", "csv", "md", "latex"])
    p.add_argument("--results", default="results")
    add_where_option(p)
