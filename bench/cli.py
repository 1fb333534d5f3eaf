"""Command line: ``bench list | data check | run | export | report | ttest | check``.

Each sub-command parses its arguments, builds a config object once and calls library functions;
the work lives in the library modules. Bad input exits with status 2 and a one-line reason.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _csv_ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v != "")


def _settings(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--set expects key=value, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


# ---------------------------------------------------------------- bench list
def cmd_list(args: argparse.Namespace) -> int:
    import torch

    from bench.architectures import ARCHITECTURES, list_models
    from bench.architectures._blocks import count_macs, count_parameters
    from bench.datasets import DATASETS, list_datasets

    print(f"Architectures (in_channels={args.in_channels}, width={args.width}, depth={args.depth}, "
          f"{args.size}x{args.size} input):")
    print(f"  {'name':<16} {'display name':<24} {'params':>12} {'GMACs':>9} {'GFLOPs':>9}")
    for name in list_models(args.pattern):
        with torch.device("meta"):
            model = ARCHITECTURES.create(name, in_channels=args.in_channels, classes=1, width=args.width,
                                         depth=args.depth)
        macs = count_macs(model, args.in_channels, args.size) / 1e9
        print(f"  {name:<16} {ARCHITECTURES.display_name(name):<24} {count_parameters(model):>12,} "
              f"{macs:>9.3f} {2 * macs:>9.2f}")
    print("  (also: smp:<Arch>:<encoder>, any segmentation-models-pytorch model, e.g. smp:Unet:resnet34)")
    print("\nDatasets:")
    for name in list_datasets():
        cls = DATASETS.get(name).factory
        aliases = DATASETS.get(name).aliases
        print(f"  {name:<10} {cls.display_name:<12} {cls.modality:<24} channels={cls.channels} "
              f"paper images={cls.paper_count}" + (f"  alias: {', '.join(aliases)}" if aliases else ""))
    return 0


def add_list(p: argparse.ArgumentParser) -> None:
    p.add_argument("pattern", nargs="?", default="*", help="wildcard over architecture names (default: all)")
    p.add_argument("--size", type=int, default=256, help="input size for GFLOPs (default 256)")
    p.add_argument("--in-channels", type=int, default=3)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--depth", type=int, default=5)


# ---------------------------------------------------------------- bench data check
def cmd_data(args: argparse.Namespace) -> int:
    from bench.datasets import canonical_name, open_dataset
    from bench.datasets._check import check_data_root, check_dataset, format_report

    if args.data_root:
        reports = check_data_root(Path(args.data_root))
        if not reports:
            raise FileNotFoundError(f"no dataset folder found under {args.data_root}")
    elif args.dataset and args.root:
        reports = [check_dataset(open_dataset(canonical_name(args.dataset), Path(args.root)))]
    else:
        raise ValueError("give DATASET --root DIR (that dataset's own folder) or --data-root DIR")
    for report in reports:
        print(format_report(report))
        print()
    return 0 if all(r.ok for r in reports) else 1


def add_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["check"])
    p.add_argument("dataset", nargs="?", help="dataset name (with --root)")
    p.add_argument("--root", help="the dataset's own folder, in its native layout")
    p.add_argument("--data-root", help="a folder holding one native-layout folder per dataset")


# ---------------------------------------------------------------- bench run
def cmd_run(args: argparse.Namespace) -> int:
    from bench.config import load_profile
    from bench.plan import plan, select
    from bench.runner import dry_run_table

    overrides = _settings(args.set)
    if args.augment:
        overrides["augment"] = "true"
    profile = load_profile(args.profile, overrides)
    sel = select(args.arch, args.dataset, args.all, args.protocol, args.folds, args.seeds)
    results = Path(args.results)
    skip = tuple(v for v in (args.skip or "").split(",") if v)
    jobs = plan(sel, profile, results, Path(args.data_root) if args.data_root else None, skip)
    table = dry_run_table(jobs, results)
    done = int((table["state"] == "done").sum()) if len(table) else 0
    print(f"{len(jobs)} jobs ({done} already done) | profile {profile.name} | protocol {sel.protocol} | "
          f"{len(sel.archs)} architectures x {len(sel.datasets)} datasets | results in {results}")
    if args.dry_run:
        print(table.to_string(index=False))
        return 0
    return _execute(jobs, results, args, profile.name)


def _execute(jobs: list, results: Path, args: argparse.Namespace, profile: str) -> int:
    from tqdm.auto import tqdm

    from bench.runner import run_jobs, stop_on_signals
    from bench.summary import print_summary

    start, failed = time.perf_counter(), []
    bar = tqdm(total=len(jobs), desc="jobs", unit="job", disable=args.quiet)
    n_jobs = args.jobs or os.cpu_count() or 1
    try:
        with stop_on_signals():
            for status in run_jobs(jobs, results, n_jobs=n_jobs, force=args.force, progress=not args.quiet):
                bar.update(1)
                bar.set_postfix_str(f"{status['label']} {status['status']}")
                if status["status"] == "failed":
                    failed.append(status)
                    tqdm.write(f"FAILED {status['label']}: {status['error']}")
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: the workers are stopped; one line, no traceback
        return _interrupted(exc, jobs, results, bar)
    bar.close()
    print_summary(results, {j.key for j in jobs})
    print(f"\n{len(jobs)} jobs in {time.perf_counter() - start:.1f} s; {len(failed)} failed. Results: {results}/runs "
          f"(bench.store.load_all({str(results)!r}); `bench export`, `bench report --table 5`).")
    return 1 if failed else 0


def _interrupted(exc: KeyboardInterrupt, jobs: list, results: Path, bar: Any) -> int:
    """Print one line (jobs done, how to resume) and return 130 (SIGINT) or 143 (SIGTERM)."""
    import signal

    from bench.runner import is_finished

    bar.close()
    signum = getattr(exc, "signum", signal.SIGINT)
    done = sum(is_finished(j, results) for j in jobs)
    print(f"bench run: stopped by {signal.Signals(signum).name}: {done} of {len(jobs)} jobs done in {results}/runs; "
          f"run the same command again to resume (finished jobs are skipped)", file=sys.stderr)
    return 128 + int(signum)


def add_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("--all", action="store_true", help="the paper's 8 networks on its 5 datasets")
    p.add_argument("--arch", help="architecture names or wildcards, comma-separated (e.g. 'unet*,mildnet')")
    p.add_argument("--dataset", help="dataset names or wildcards, comma-separated (e.g. 'mri,dsb2018')")
    p.add_argument("--protocol", default="holdout", choices=["holdout", "cv"])
    p.add_argument("--folds", type=_csv_ints, help="fold indices, comma-separated (default: the profile's)")
    p.add_argument("--seeds", type=_csv_ints, help="training seeds, comma-separated (default: the profile's)")
    p.add_argument("--profile", default="quick", help="quick (CPU, minutes), paper (GPU) or a YAML file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a profile value, e.g. --set epochs=3 (repeatable)")
    p.add_argument("--augment", action="store_true", help="train with the paper's augmentation pipeline")
    p.add_argument("--data-root", help="folder with one native-layout folder per dataset (default: synthetic)")
    p.add_argument("--skip", help="case ids to exclude explicitly, comma-separated (e.g. the bad files "
                                  "`bench data check` lists); recorded with the results")
    p.add_argument("--results", default="results", help="results folder (default: ./results)")
    p.add_argument("--jobs", type=int, default=0,
                   help="parallel worker processes (joblib/loky); default: one per CPU core. Results do not depend "
                        "on it: every job uses the profile's fixed torch thread count")
    p.add_argument("--force", action="store_true", help="recompute finished jobs")
    p.add_argument("--dry-run", action="store_true", help="print the plan and what is already done")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


# ---------------------------------------------------------------- bench export
def cmd_export(args: argparse.Namespace) -> int:
    from bench.store import export

    out = export(args.results, args.out or f"results.{args.format}", args.format)
    print(f"wrote {out}")
    return 0


def add_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", default="csv", choices=["csv", "parquet"])
    p.add_argument("--out", help="output file (default results.<format>)")
    p.add_argument("--results", default="results")


# ---------------------------------------------------------------- bench report / ttest
def _results_table(results: str) -> tuple:
    from bench import store

    df = store.load_all(results)
    if df.empty:
        raise FileNotFoundError(f"no finished jobs under {results}/runs: run `bench run` first "
                                f"(or point --results at the folder it wrote)")
    return df, store.failures(results), store.sidecars(results)


def cmd_report(args: argparse.Namespace) -> int:
    from bench.report import build_report, report_figure, report_table

    df, failures, sides = _results_table(args.results)
    if args.all:
        out = Path(args.out or f"reports/{time.strftime('%Y%m%d-%H%M%S')}")
        inputs = {n: _table_inputs(str(n), sides, Path(args.results)) for n in (1, 2)}
        index = build_report(df, out, sidecars=sides, failures=failures, vs_paper=True, data_inputs=inputs)
        print(f"wrote the report to {out} (open {index} or {index.with_suffix('.html')})")
    if args.table:
        inputs = _table_inputs(args.table, sides, Path(args.results))
        print(report_table(df, args.table, args.format, args.vs_paper, failures=failures, sidecars=sides,
                           inputs=inputs))
    if args.figure:
        out = Path(args.out or "reports/figures")
        for path in report_figure(df, args.figure, out):
            print(f"wrote {path}")
    if not (args.all or args.table or args.figure):
        raise ValueError("choose --table N, --figure 8 (or bars, ranking), or --all")
    return 0


def _table_inputs(table: str, sides: list[dict], results: Path) -> tuple:
    if table not in ("1", "2"):
        return ()
    from bench.report_data import loaded_data

    return loaded_data(sides, results, with_splits=table == "2")


def add_report(p: argparse.ArgumentParser) -> None:
    p.add_argument("--table", choices=["1", "2", "3", "4", "5", "floors", "sensitivity", "tests"])
    p.add_argument("--figure", choices=["8", "bars", "ranking"])
    p.add_argument("--all", action="store_true", help="every table and figure plus index.md/index.html under --out")
    p.add_argument("--format", default="md", choices=["md", "latex", "tex", "csv", "html"])
    p.add_argument("--vs-paper", action="store_true", help="show the paper's published values beside ours")
    p.add_argument("--out", help="output folder (default reports/<timestamp>/ for --all, reports/figures for figures)")
    p.add_argument("--results", default="results")


def cmd_ttest(args: argparse.Namespace) -> int:
    from bench.stats import format_tests, paired_test

    df, _, _ = _results_table(args.results)
    against = args.against.split(",") if args.against else None
    res = paired_test(df, dataset=args.dataset, metric=args.metric, reference=args.reference, against=against,
                      protocol=args.protocol, test=args.test, correction=args.correction, alpha=args.alpha)
    print(format_tests(res, args.format))
    return 0


def add_ttest(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True)
    p.add_argument("--metric", default="iou", choices=["dice", "iou", "hd", "hd95"])
    p.add_argument("--reference", default="mildnet")
    p.add_argument("--against", help="comma-separated architectures (default: every other one with results)")
    p.add_argument("--protocol", default="cv", choices=["cv", "holdout"])
    p.add_argument("--test", default="t", choices=["t", "wilcoxon"])
    p.add_argument("--correction", default="holm", choices=["holm", "bonferroni", "none"])
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--format", default="text", choices=["text", "csv", "md"])
    p.add_argument("--results", default="results")


# ---------------------------------------------------------------- bench check
def cmd_check(args: argparse.Namespace) -> int:
    from bench.check import check, format_result, update

    start = time.perf_counter()
    baseline = Path(args.baseline)
    results = Path(args.results) if args.results else None
    if args.update:
        update(baseline, args.reason or "", results, args.jobs)
        print(f"bench check: baseline re-blessed in {baseline} ({time.perf_counter() - start:.0f} s): {args.reason}")
        return 0
    if not (baseline / "rows.parquet").exists():
        raise FileNotFoundError(f"no baseline at {baseline} (expected rows.parquet, derived.json, meta.json); "
                                "create one with `bench check --update --reason \"...\"`")
    result = check(baseline, args.tolerance, results, args.jobs)
    print(format_result(result, time.perf_counter() - start))
    return 0 if result.ok else 1


def add_check(p: argparse.ArgumentParser) -> None:
    p.add_argument("--baseline", default="results/baseline", help="baseline folder (default results/baseline)")
    p.add_argument("--tolerance", help="per-metric abs[:rel] tolerances, e.g. 'dice=1e-4,hd=0.5:0.01'")
    p.add_argument("--update", action="store_true", help="re-run and re-bless the baseline")
    p.add_argument("--reason", help="why the baseline changes (required with --update)")
    p.add_argument("--results", help="keep the re-run's results here (default: a temporary folder)")
    p.add_argument("--jobs", type=int, default=1, help="parallel workers for the re-run")


PARSERS = {"list": (add_list, cmd_list, "list architectures (params, GFLOPs) and datasets"),
           "data": (add_data, cmd_data, "check dataset folders in their native layouts"),
           "run": (add_run, cmd_run, "train and score architectures on identical folds"),
           "export": (add_export, cmd_export, "write the tidy per-image table as CSV or Parquet"),
           "report": (add_report, cmd_report, "generate the paper's tables and figures from the results"),
           "ttest": (add_ttest, cmd_ttest, "paired tests of a reference architecture against the others"),
           "check": (add_check, cmd_check, "re-run the drift benchmark and compare it with the committed baseline")}


def build_parser() -> argparse.ArgumentParser:
    from bench import __version__

    parser = argparse.ArgumentParser(prog="bench", description="Benchmark 2D biomedical segmentation networks "
                                     "(MILDNet, Gudhe et al., Sci Rep 2021, and its baselines).")
    parser.add_argument("--version", action="version", version=f"bench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (add, _, help_text) in PARSERS.items():
        add(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def _one_line_result_warnings() -> Any:
    """A context in which the store's warnings about damaged results print as one line each
    (``bench: warning: ...``); other warnings print as usual."""
    import warnings

    from bench.store import ResultWarning

    context = warnings.catch_warnings()
    context.__enter__()
    default = warnings.showwarning

    def show(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if issubclass(category, ResultWarning):
            print(f"bench: warning: {message}", file=sys.stderr)
        else:
            default(message, category, *args, **kwargs)

    warnings.showwarning = show
    return context


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    context = _one_line_result_warnings()
    try:
        return PARSERS[args.command][1](args)
    except (KeyError, ValueError, FileNotFoundError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"bench {args.command}: error: {message}", file=sys.stderr)
        return 2
    finally:
        context.__exit__(None, None, None)


if __name__ == "__main__":
    sys.exit(main())
