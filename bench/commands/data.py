"""``bench data check``: decode every file of dataset folders in their native layouts."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.commands.common import DATASET_OPTION_HELP, parse_dataset_option_pairs
from bench.errors import InvalidInput, MissingInput


def cmd_data(args: argparse.Namespace) -> int:
    from bench.datasets import canonical_name, open_dataset
    from bench.datasets.check import check_data_root, check_dataset, format_report
    from bench.datasets.folders import describe_root
    from bench.datasets.options import options_of, parse_dataset_options

    given = parse_dataset_options(parse_dataset_option_pairs(args.dataset_option), "--dataset-option")
    if args.data_root:
        names = {key.split(".")[0] for key, _ in given}
        reports = check_data_root(Path(args.data_root), {name: options_of(name, given) for name in names})
        if not reports:
            raise MissingInput(
                f"no dataset folder found under {args.data_root} (a folder is found by its "
                f"name, an alias, or its layout); it holds: {describe_root(args.data_root)}"
            )
    elif args.dataset and args.root:
        name = canonical_name(args.dataset)
        reports = [check_dataset(open_dataset(name, Path(args.root), **options_of(name, given)))]
    else:
        raise InvalidInput("give DATASET --root DIR (that dataset's own folder) or --data-root DIR")
    for report in reports:
        print(format_report(report))
        print()
    return 0 if all(r.ok for r in reports) else 1


def add_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["check"])
    p.add_argument("dataset", nargs="?", help="dataset name (with --root)")
    p.add_argument("--root", help="the dataset's own folder, in its native layout")
    p.add_argument("--data-root", help="a folder holding one native-layout folder per dataset")
    p.add_argument(
        "--dataset-option", action="append", default=[], metavar="DATASET.OPTION=VALUE", help=DATASET_OPTION_HELP
    )
