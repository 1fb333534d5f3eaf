"""Command line: ``bench list | data check | run | status | export | report | ttest | check``.

Each sub-command parses its arguments, builds a config object once and calls library functions;
the work lives in the library modules. Bad input (``bench.errors.UserError``) exits with status 2 and
a one-line reason; any other exception is a bug and shows its traceback (status 1).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.errors import InvalidInput, MissingInput, NoResults, UserError

if TYPE_CHECKING:
    from bench.config import Profile
    from bench.engines import EngineConfig


def _csv_ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v != "")


def _settings(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise InvalidInput(f"--set expects key=value, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def _dataset_options(pairs: list[str]) -> dict[str, str]:
    """``--dataset-option DATASET.OPTION=VALUE`` (repeatable) as ``{"DATASET.OPTION": "VALUE"}``."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise InvalidInput(
                f"--dataset-option expects DATASET.OPTION=VALUE (e.g. lgg_mri.subset=tumour), got {pair!r}"
            )
        out[key.strip()] = value.strip()
    return out


DATASET_OPTION_HELP = (
    "an option of a dataset's reader, e.g. lgg_mri.subset=tumour (repeatable; `bench list` shows "
    "each dataset's options); recorded with the results"
)


# ---------------------------------------------------------------- bench list
def cmd_list(args: argparse.Namespace) -> int:
    import torch

    from bench.architectures import ARCHITECTURES, list_models
    from bench.architectures._blocks import count_macs, count_parameters
    from bench.datasets import DATASETS, list_datasets

    print(
        f"Architectures (in_channels={args.in_channels}, width={args.width}, depth={args.depth}, "
        f"{args.size}x{args.size} input):"
    )
    print(f"  {'name':<16} {'display name':<24} {'params':>12} {'GMACs':>9} {'GFLOPs':>9}  in the paper")
    for name in list_models(args.pattern):
        with torch.device("meta"):
            model = ARCHITECTURES.create(
                name, in_channels=args.in_channels, classes=1, width=args.width, depth=args.depth
            )
        macs = count_macs(model, args.in_channels, args.size) / 1e9
        paper = ", ".join(f"Table {t.removeprefix('table')}" for t in sorted(ARCHITECTURES.get(name).paper_rows))
        print(
            f"  {name:<16} {ARCHITECTURES.display_name(name):<24} {count_parameters(model):>12,} "
            f"{macs:>9.3f} {2 * macs:>9.2f}  {paper}".rstrip()
        )
    print("  (also: smp:<Arch>:<encoder>, any segmentation-models-pytorch model, e.g. smp:Unet:resnet34)")
    print("\nDatasets:")
    for name in list_datasets():
        cls = DATASETS.get(name).factory
        aliases = DATASETS.get(name).aliases
        print(
            f"  {name:<10} {cls.display_name:<12} {cls.modality:<24} channels={cls.channels} "
            f"paper images={cls.paper_count}" + (f"  alias: {', '.join(aliases)}" if aliases else "")
        )
        for option in getattr(cls, "OPTIONS", ()):
            print(f"      --dataset-option {name}.{option.describe()}")
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
    from bench.datasets.check import check_data_root, check_dataset, format_report
    from bench.datasets.folders import describe_root
    from bench.datasets.options import options_of, parse_dataset_options

    given = parse_dataset_options(_dataset_options(args.dataset_option), "--dataset-option")
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


# ---------------------------------------------------------------- bench run
def cmd_run(args: argparse.Namespace) -> int:
    from bench.config import load_profile
    from bench.plan import plan, select
    from bench.runner import dry_run_table

    overrides = _settings(args.set)
    if args.augment:
        overrides["augment"] = "true"
    if args.device:
        overrides["device"] = args.device
    if args.dataset_option and not args.data_root:
        raise InvalidInput("--dataset-option sets options of the native-layout readers; it needs --data-root")
    if args.dataset_option and args.tuned:
        raise InvalidInput(
            "--dataset-option is not applied to --tuned runs (they use the tuned base profile's "
            "dataset_options); put it in that profile instead"
        )
    profile = load_profile(args.profile, overrides, _dataset_options(args.dataset_option))
    engine = _engine(args, profile)  # validates the engine options and the device before planning
    sel = select(args.arch, args.dataset, args.all, args.protocol, args.folds, args.seeds)
    results = Path(args.results)
    skip = tuple(v for v in (args.skip or "").split(",") if v)
    if args.tuned:  # each (dataset, arch) with the values `bench tune` chose for it (bench.tune)
        from bench.tune import tuned_jobs

        jobs = sorted(
            tuned_jobs(
                results,
                args.tuned,
                sel.archs,
                sel.datasets,
                sel.protocol,
                overrides,
                args.folds,
                args.seeds,
                Path(args.data_root) if args.data_root else None,
                skip,
            ),
            key=lambda j: (j.dataset, j.arch, j.protocol, j.fold, j.seed),
        )
    else:
        jobs = plan(sel, profile, results, Path(args.data_root) if args.data_root else None, skip)
    table = dry_run_table(jobs, results)
    done = int((table["state"] == "done").sum()) if len(table) else 0
    print(
        f"{len(jobs)} jobs ({done} already done) | profile {profile.name} | protocol {sel.protocol} | "
        f"{len(sel.archs)} architectures x {len(sel.datasets)} datasets | results in {results}"
    )
    if args.dry_run:
        print(table.to_string(index=False))
        return 0
    return _execute(jobs, results, args, profile.name, engine)


def _engine(args: argparse.Namespace, profile: Profile) -> EngineConfig:
    """The EngineConfig of ``bench run`` from its options and the profile's ``slurm:`` section."""
    from bench.devices import validate_device
    from bench.engines import EngineConfig
    from bench.slurm import slurm_options

    validate_device(profile.train.device)
    slurm = slurm_options(
        dict(profile.slurm),
        {
            "partition": args.partition,
            "gpus_per_node": args.gpus,
            "cpus_per_task": args.cpus_per_task,
            "mem_gb": args.mem_gb,
            "time_min": args.time_min,
            "array_parallelism": args.array_parallelism,
        },
        wait=not args.no_wait,
    )
    if args.no_wait and args.engine != "submitit":
        raise InvalidInput(
            "--no-wait needs --engine submitit (Dask and the local engine need the driver for the whole sweep)"
        )
    return EngineConfig(args.engine, n_jobs=_n_jobs(args, profile.train.device), scheduler=args.scheduler, slurm=slurm)


def _n_jobs(args: argparse.Namespace, device: str) -> int:
    """--jobs, else one worker per GPU for a GPU run, else one per CPU core."""
    if args.jobs:
        return args.jobs
    if device in ("auto", "cuda"):
        from bench.devices import cuda_devices

        if cuda_devices():
            return len(cuda_devices())
    return os.cpu_count() or 1


def _execute(
    jobs: list, results: Path, args: argparse.Namespace, profile: str, engine: EngineConfig | None = None
) -> int:
    from tqdm.auto import tqdm

    from bench.runner import run_jobs, stop_on_signals
    from bench.summary import print_summary

    start, failed = time.perf_counter(), []
    bar = tqdm(total=len(jobs), desc="jobs", unit="job", disable=args.quiet)
    n_jobs = engine.n_jobs if engine is not None else args.jobs or os.cpu_count() or 1
    submitted = []
    try:
        with stop_on_signals():
            for record in run_jobs(
                jobs, results, n_jobs=n_jobs, force=args.force, progress=not args.quiet, engine=engine
            ):
                if record.status == "submitted":
                    submitted.append(record)
                bar.update(1)
                bar.set_postfix_str(f"{record.label} {record.status}")
                if record.status == "failed":
                    failed.append(record)
                    tqdm.write(f"FAILED {record.label}: {record.error}")
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: the workers are stopped; one line, no traceback
        return _interrupted(exc, jobs, results, bar)
    bar.close()
    if submitted:
        arrays = sorted({s.task.split("_")[0] for s in submitted})
        print(
            f"{len(submitted)} jobs are in the SLURM queue (array job {', '.join(arrays)}); follow them with "
            f"`bench status --results {results}`; the same `bench run` without --no-wait waits for them and "
            "summarises."
        )
        return 0
    print_summary(results, {j.key for j in jobs})
    print(
        f"\n{len(jobs)} jobs in {time.perf_counter() - start:.1f} s; {len(failed)} failed. Results: {results}/runs "
        f"(bench.store.load_all({str(results)!r}); `bench export`, `bench report --table 5`)."
    )
    return 1 if failed else 0


def _interrupted(exc: KeyboardInterrupt, jobs: list, results: Path, bar: Any) -> int:
    """Print one line (jobs done, how to resume) and return 130 (SIGINT) or 143 (SIGTERM)."""
    import signal

    from bench.runner import is_finished

    bar.close()
    signum = getattr(exc, "signum", signal.SIGINT)
    done = sum(is_finished(j, results) for j in jobs)
    print(
        f"bench run: stopped by {signal.Signals(signum).name}: {done} of {len(jobs)} jobs done in {results}/runs; "
        f"run the same command again to resume (finished jobs are skipped)",
        file=sys.stderr,
    )
    return 128 + int(signum)


def add_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("--all", action="store_true", help="the paper's 8 networks on its 5 datasets")
    p.add_argument("--arch", help="architecture names or wildcards, comma-separated (e.g. 'unet*,mildnet')")
    p.add_argument("--dataset", help="dataset names or wildcards, comma-separated (e.g. 'mri,dsb2018')")
    p.add_argument("--protocol", default="holdout", choices=["holdout", "cv"])
    p.add_argument("--folds", type=_csv_ints, help="fold indices, comma-separated (default: the profile's)")
    p.add_argument("--seeds", type=_csv_ints, help="training seeds, comma-separated (default: the profile's)")
    p.add_argument("--profile", default="quick", help="quick (CPU, minutes), paper (GPU) or a YAML file")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a profile value, e.g. --set epochs=3 (repeatable)",
    )
    p.add_argument("--augment", action="store_true", help="train with the paper's augmentation pipeline")
    p.add_argument("--data-root", help="folder with one native-layout folder per dataset (default: synthetic)")
    p.add_argument(
        "--skip",
        help="case ids to exclude explicitly, comma-separated (e.g. the bad files "
        "`bench data check` lists); recorded with the results",
    )
    p.add_argument(
        "--dataset-option", action="append", default=[], metavar="DATASET.OPTION=VALUE", help=DATASET_OPTION_HELP
    )
    p.add_argument("--results", default="results", help="results folder (default: ./results)")
    p.add_argument(
        "--jobs",
        type=int,
        default=0,
        help="parallel worker processes (forked from a server that has imported torch); default: one per CPU core. Results do not depend "
        "on it: every job uses the profile's fixed torch thread count",
    )
    p.add_argument("--force", action="store_true", help="recompute finished jobs")
    p.add_argument("--dry-run", action="store_true", help="print the plan and what is already done")
    p.add_argument(
        "--tuned",
        metavar="NAME",
        help="each architecture with the values `bench tune --name NAME` chose for it "
        "(<results>/tuned/NAME.yaml, on its base profile; --set still wins)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_engine_options(p)


def add_engine_options(p: argparse.ArgumentParser) -> None:
    """Where jobs run (bench.engines) and on which device."""
    g = p.add_argument_group("engine and device")
    g.add_argument(
        "--engine",
        default="local",
        choices=["local", "dask", "submitit"],
        help="local: worker processes here (default); dask: a Dask cluster (--scheduler, or a "
        "LocalCluster of --jobs workers); submitit: one SLURM job array",
    )
    g.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://10.0.0.5:8786 (--engine dask)")
    g.add_argument(
        "--no-wait",
        action="store_true",
        help="submitit: exit once the array is queued; `bench status` follows it, rerunning `bench run` collects",
    )
    g.add_argument("--partition", help="SLURM partition (default: the cluster's default; profile key slurm.partition)")
    g.add_argument("--gpus", type=int, help="SLURM GPUs per task (profile key slurm.gpus_per_node; default 0)")
    g.add_argument("--cpus-per-task", type=int, help="SLURM CPUs per task (default: the profile's threads)")
    g.add_argument("--mem-gb", type=float, help="SLURM memory per task in GB")
    g.add_argument("--time-min", type=int, help="SLURM time limit per task in minutes (default 1440)")
    g.add_argument("--array-parallelism", type=int, help="SLURM tasks of the array running at once (default 16)")
    g.add_argument(
        "--device",
        help="auto | cpu | cuda | cuda:N (default: the profile's); a plain cuda on a "
        "machine with several GPUs runs one job per GPU at a time",
    )


# ---------------------------------------------------------------- bench status
def cmd_status(args: argparse.Namespace) -> int:
    from bench.status import files_status, format_status, sweep_status

    results = Path(args.results)
    if args.all or args.arch or args.dataset:
        from bench.config import load_profile
        from bench.plan import plan, select

        profile = load_profile(args.profile, _settings(args.set), _dataset_options(args.dataset_option))
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
    return 0


def add_status(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", default="results", help="results folder (default: ./results)")
    p.add_argument("--format", default="text", choices=["text", "csv"], help="csv: every job, one row each")
    p.add_argument("--all", action="store_true", help="the plan of `bench run --all` (lists missing jobs too)")
    p.add_argument("--arch", help="as for bench run; with --arch/--dataset/--all, jobs not started show as missing")
    p.add_argument("--dataset")
    p.add_argument("--protocol", default="holdout", choices=["holdout", "cv"])
    p.add_argument("--folds", type=_csv_ints)
    p.add_argument("--seeds", type=_csv_ints)
    p.add_argument("--profile", default="quick")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--data-root")
    p.add_argument("--skip")
    p.add_argument("--dataset-option", action="append", default=[], metavar="DATASET.OPTION=VALUE")


# ---------------------------------------------------------------- bench export
def cmd_export(args: argparse.Namespace) -> int:
    from bench.store import export

    if args.where:
        from bench.selection import export_selected

        out = export_selected(args.results, args.out or f"results.{args.format}", args.format, _where(args.where))
    else:
        out = export(args.results, args.out or f"results.{args.format}", args.format)
    print(f"wrote {out}")
    return 0


def add_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", default="csv", choices=["csv", "parquet"])
    p.add_argument("--out", help="output file (default results.<format>)")
    p.add_argument("--results", default="results")
    _add_where(p)


def _add_where(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only the jobs whose recorded setting KEY equals VALUE (repeatable), e.g. --where epochs=20 "
        "--where protocol=cv; `bench report --table settings` lists what varies",
    )


def _where(pairs: list[str]) -> dict[str, str]:
    from bench.selection import parse_where

    return parse_where(pairs)


# ---------------------------------------------------------------- bench report / ttest
def _results_table(results: str, where: list[str] | None = None) -> tuple:
    """(rows with their jobs' settings attached, failures, sidecars) of the jobs matching ``--where``."""
    from bench import selection, store

    df = store.load_all(results)
    if df.empty:
        raise MissingInput(
            f"no finished jobs under {results}/runs: run `bench run` first (or point --results at the folder it wrote)"
        )
    df, fails, sides, settings = selection.apply_selection(
        df, store.failures(results), store.sidecars(results), _where(where or [])
    )
    if df.empty:
        raise NoResults(f"no finished job matches --where {' '.join(where or [])}")
    from bench.report_data import attach_patients

    return attach_patients(selection.attach(df, settings), sides), fails, sides


def cmd_report(args: argparse.Namespace) -> int:
    from bench.learning import report_lines
    from bench.report import build_report, report_figure, report_table
    from bench.reproduce import report_commands

    df, failures, sides = _results_table(args.results, args.where)
    df = _at_resolution(df, args.resolution)
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


def _at_resolution(df, resolution: str):
    """Rows of one evaluation resolution (reports never mix input-size and native-resolution scores)."""
    if "eval_resolution" not in df.columns:
        return df if resolution == "input" else df.iloc[0:0]
    return df[df["eval_resolution"].fillna("input") == resolution]


def _table_inputs(table: str, sides: list[dict], results: Path) -> tuple:
    if table not in ("1", "2"):
        return ()
    from bench.report_data import loaded_data

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
    _add_where(p)
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
    from bench.stats import REFERENCE, fold_level_test, format_tests, paired_test, resolve_protocol

    df, _, _ = _results_table(args.results, args.where)
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


def _metrics() -> tuple[str, ...]:
    from bench.metrics import METRICS

    return METRICS


def add_ttest(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True)
    p.add_argument("--metric", default="iou", choices=_metrics())
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
    _add_where(p)


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
        raise MissingInput(
            f"no baseline at {baseline} (expected rows.parquet, derived.json, meta.json); "
            'create one with `bench check --update --reason "..."`'
        )
    layers = ("scoring", "training") if args.layer == "all" else (args.layer,)
    result = check(baseline, args.tolerance, results, args.jobs, layers)
    print(format_result(result, time.perf_counter() - start))
    return 0 if result.ok else 1


def add_check(p: argparse.ArgumentParser) -> None:
    p.add_argument("--baseline", default="results/baseline", help="baseline folder (default results/baseline)")
    p.add_argument(
        "--layer",
        choices=["all", "scoring", "training"],
        default="all",
        help="scoring: re-score the stored predictions (exact, seconds); training: re-train and compare "
        "within the noise-floor tolerances; all (default): both",
    )
    p.add_argument("--tolerance", help="training-layer tolerances per column, abs[:rel], e.g. 'dice=0.05,tp=8'")
    p.add_argument("--update", action="store_true", help="re-run and re-bless the baseline")
    p.add_argument("--reason", help="why the baseline changes (required with --update)")
    p.add_argument("--results", help="keep the re-run's results here (default: a temporary folder)")
    p.add_argument("--jobs", type=int, default=1, help="parallel workers for the re-run")


# ---------------------------------------------------------------- bench predict / evaluate
def cmd_predict(args: argparse.Namespace) -> int:
    from bench.datasets import canonical_name
    from bench.predict import PredictRequest, predict_folder

    req = PredictRequest(
        results=Path(args.from_),
        dataset=canonical_name(args.dataset),
        arch=_arch(args.arch),
        images=Path(args.images),
        out=Path(args.out),
        folds=args.folds,
        protocol=args.protocol,
        profile=args.profile,
        ensemble=args.ensemble,
        device=_device(args.device),
    )
    for name, files in predict_folder(req).items():
        print(f"{name}: {len(files)} mask file(s) in {Path(args.out) / name}")
    return 0


def _arch(name: str | None) -> str | None:
    from bench.architectures import ARCHITECTURES

    return None if name is None else ARCHITECTURES.canonical(name)


def _device(name: str) -> str:
    from bench.execute import resolve_device

    return resolve_device(name)


def add_predict(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="from_", default="results", help="results folder of the sweep (default ./results)")
    p.add_argument("--dataset", required=True, help="dataset the models were trained on (sets the mask format)")
    p.add_argument("--arch", required=True, help="architecture name")
    p.add_argument("--folds", "--fold", type=_csv_ints, help="fold models to use, comma-separated (default: all)")
    p.add_argument("--protocol", default="holdout", choices=["holdout", "cv"])
    p.add_argument("--profile", help="only models of this profile (when the folder holds several)")
    p.add_argument("--images", required=True, help="folder of images (searched recursively; labels not needed)")
    p.add_argument("--out", required=True, help="output folder: one sub-folder of masks per fold model")
    p.add_argument("--ensemble", action="store_true", help="also write the fold models' mean-probability masks")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from bench import store
    from bench.datasets import canonical_name
    from bench.external import EvaluateRequest, evaluate_stored, external_drop
    from bench.report import report_table
    from bench.table_render import render

    resolutions = ("input", "native") if args.resolution == "both" else (args.resolution,)
    req = EvaluateRequest(
        results=Path(args.from_),
        dataset=canonical_name(args.dataset),
        data_root=Path(args.data_root) if args.data_root else None,
        arch=_arch(args.arch),
        folds=args.folds,
        protocol=args.protocol,
        profile=args.profile,
        resolutions=resolutions,
        skip=tuple(v for v in (args.skip or "").split(",") if v),
        device=_device(args.device),
        force=args.force,
    )
    for status in evaluate_stored(req):
        print(f"{status['status']:>7}  {status['label']}: {status['n_rows']} rows -> {status['path']}")
    if req.data_root is not None:
        df = store.load_all(req.results)
        df = df[df["dataset"] == req.dataset]
        for resolution in resolutions:
            at = _at_resolution(df, resolution)
            print(f"\n[{resolution} resolution]")
            print(report_table(at, 5, "md", split="external"))
            drop = external_drop(at)
            print(
                render(drop, "md")
                if len(drop)
                else f"(no internal test-set rows at {resolution} resolution to "
                f"compare with; for native: bench evaluate --from {args.from_} --dataset {req.dataset} "
                "--resolution native)"
            )
    return 0


def add_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="from_", default="results", help="results folder of the sweep (default ./results)")
    p.add_argument("--dataset", required=True)
    p.add_argument(
        "--data-root",
        help="folder holding <dataset>/ in its native layout: an external labelled "
        "cohort (rows with split=external). Without it: the models' own val/test "
        "images (needs --resolution native)",
    )
    p.add_argument("--arch", help="one architecture (default: every stored one)")
    p.add_argument("--folds", "--fold", type=_csv_ints, help="fold models, comma-separated (default: all)")
    p.add_argument("--protocol", default="holdout", choices=["holdout", "cv"])
    p.add_argument("--profile", help="only models of this profile")
    p.add_argument(
        "--resolution",
        default="input",
        choices=["input", "native", "both"],
        help="input: metrics on the network-size masks (as bench run); native: predictions resized "
        "to each image's own size, distances in native pixels; both",
    )
    p.add_argument("--skip", help="case ids of the cohort to exclude, comma-separated")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--force", action="store_true", help="recompute finished evaluations")


# ---------------------------------------------------------------- bench figure / saliency
def cmd_figure(args: argparse.Namespace) -> int:
    from bench.datasets import canonical_name
    from bench.qualitative import qualitative

    if not args.qualitative:
        raise InvalidInput("choose --qualitative (the paper's tables and figures of numbers: bench report)")
    df, _, _ = _results_table(args.results, args.where)
    archs = [_arch(a) for a in args.arch.split(",")] if args.arch else None
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
    p.add_argument("--metric", default="dice", choices=_metrics())
    p.add_argument("--protocol", choices=["holdout", "cv"], help="default: holdout if it has test results, else cv")
    p.add_argument("--fold", type=int, help="holdout fold model to show (default: the lowest every architecture has)")
    p.add_argument("--out", default="reports/figures", help="output folder (default reports/figures)")
    p.add_argument("--results", default="results")
    _add_where(p)


def cmd_saliency(args: argparse.Namespace) -> int:
    from bench.datasets import canonical_name
    from bench.saliency import saliency

    archs = [_arch(a) for a in args.arch.split(",") if a]
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
        device=_device(args.device),
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


# ---------------------------------------------------------------- bench tune
def cmd_tune(args: argparse.Namespace) -> int:
    from bench import tune
    from bench.config import load_profile
    from bench.plan import select
    from bench.runner import run_jobs
    from bench.table_render import render

    base = load_profile(args.profile, _settings(args.set))
    engine = _engine(args, base)
    grid = tune.parse_grid(args.grid, Path(args.grid_file) if args.grid_file else None)
    sel = select(args.arch, args.dataset, args.all, "holdout", args.folds, None)
    reference = _arch(args.paper_tuning) if args.paper_tuning else None
    results, out = Path(args.results), tune.tuning_results(Path(args.results), args.name)
    jobs = tune.tuning_jobs(
        grid,
        base,
        sel.archs,
        sel.datasets,
        results,
        args.name,
        args.folds,
        Path(args.data_root) if args.data_root else None,
        reference,
    )
    n_points = len(grid.points())
    print(
        f"{len(jobs)} tuning jobs | {n_points} grid points x {1 if reference else len(sel.archs)} architecture(s) x "
        f"{len(sel.datasets)} dataset(s) x folds {list(args.folds or base.folds)} | profile {base.name} | "
        f"validation folds only | {'paper tuning on ' + reference if reference else 'fair'} | results in {out}"
    )
    statuses = list(run_jobs(jobs, out, n_jobs=engine.n_jobs, force=args.force, progress=not args.quiet, engine=engine))
    if any(s.status == "submitted" for s in statuses):
        print(
            f"tuning jobs are in the SLURM queue; `bench status --results {out}` follows them, the same "
            "`bench tune` without --no-wait collects and chooses"
        )
        return 0
    failed = [s for s in statuses if s.status == "failed"]
    for status in failed:
        print(f"FAILED {status.label}: {status.error}")
    if failed:
        raise NoResults(f"{len(failed)} tuning job(s) failed; no configuration chosen (rerun to retry them)")
    scores = tune.score_points(out, grid, {j.key for j in jobs})
    table = tune.best_table(scores, grid, reference, sel.archs)
    every = scores.drop(columns=["point_index"]).rename(columns={"score": "val_dice", "iou": "val_iou"})
    every.attrs["caption"] = "Every grid point: mean validation Dice/IoU over the fold models"
    path = tune.write_profile(
        tune.profile_path(results, args.name),
        args.name,
        base.name,
        grid,
        tune.best_points(scores, grid),
        reference,
        sel.archs,
        _settings(args.set),
    )
    (path.with_suffix(".md")).write_text(render(table, "md") + "\n\n" + render(every, "md") + "\n")
    every.to_csv(path.with_suffix(".csv"), index=False)
    path.with_suffix(".html").write_text(render(table, "html") + "\n" + render(every, "html") + "\n")
    print(render(every, "md"), render(table, "md"), sep="\n\n")
    print(
        f"\nwrote {path} (and .md, .csv, .html); run it with: bench run --tuned {args.name} --results {results} "
        f"--arch {','.join(sel.archs)} --dataset {','.join(sel.datasets)}"
    )
    return 0


def add_tune(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", required=True, help="name of the tuned configuration (for bench run --tuned NAME)")
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="a setting and the values to try (repeatable), e.g. --grid lr=0.001,0.0001 or "
        "--grid optimizer=adam,sgd; arch.NAME sets a constructor argument: --grid arch.dilations=1-3-5,1-2-4",
    )
    p.add_argument("--grid-file", help="YAML mapping of setting -> list of values (--grid entries replace its keys)")
    p.add_argument(
        "--paper-tuning",
        nargs="?",
        const="mildnet",
        metavar="ARCH",
        help="the paper's protocol: tune only ARCH (default mildnet) and give its best to every "
        "architecture (labelled so); default: fair, every architecture tuned on the same grid",
    )
    p.add_argument("--all", action="store_true", help="the paper's 8 networks on its 5 datasets")
    p.add_argument("--arch", help="architecture names or wildcards, comma-separated")
    p.add_argument("--dataset", help="dataset names or wildcards, comma-separated")
    p.add_argument("--folds", type=_csv_ints, help="validation folds to tune on (default: the profile's)")
    p.add_argument("--profile", default="quick", help="base profile the grid varies (quick, paper or a YAML file)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a base profile value")
    p.add_argument("--data-root", help="folder with one native-layout folder per dataset (default: synthetic)")
    p.add_argument(
        "--results",
        default="results",
        help="results folder: tuning jobs go to <results>/tuning/NAME/, the choice to <results>/tuned/",
    )
    p.add_argument("--jobs", type=int, default=0, help="parallel worker processes (default: one per CPU core)")
    p.add_argument("--force", action="store_true", help="recompute finished tuning jobs")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_engine_options(p)


PARSERS = {
    "list": (add_list, cmd_list, "list architectures (params, GFLOPs) and datasets"),
    "data": (add_data, cmd_data, "check dataset folders in their native layouts"),
    "run": (add_run, cmd_run, "train and score architectures on identical folds"),
    "status": (add_status, cmd_status, "done / running / queued / failed / missing per job, from the files"),
    "export": (add_export, cmd_export, "write the tidy per-image table as CSV or Parquet"),
    "report": (add_report, cmd_report, "generate the paper's tables and figures from the results"),
    "ttest": (add_ttest, cmd_ttest, "paired tests of a reference architecture against the others"),
    "check": (add_check, cmd_check, "re-run the drift benchmark and compare it with the committed baseline"),
    "predict": (add_predict, cmd_predict, "write masks for new images with the stored fold models"),
    "evaluate": (add_evaluate, cmd_evaluate, "score stored models on an external cohort or at native resolution"),
    "figure": (add_figure, cmd_figure, "qualitative grids and failure galleries from the stored predictions"),
    "saliency": (add_saliency, cmd_saliency, "gradient saliency maps per decoder stage of stored models"),
    "tune": (add_tune, cmd_tune, "grid search on validation folds, every architecture the same grid (Table 3)"),
}


def build_parser() -> argparse.ArgumentParser:
    from bench import __version__

    parser = argparse.ArgumentParser(
        prog="bench",
        description="Benchmark 2D biomedical segmentation networks "
        "(MILDNet, Gudhe et al., Sci Rep 2021, and its baselines).",
    )
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


#: The line after the traceback of an exception that is not a ``UserError``: a bug, not bad input.
BUG_HINT = (
    "bench {command}: internal error: this is a bug in bench, not a problem with your input; please "
    "report it with the command line and the traceback above"
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit status. Bad input (``bench.errors.UserError``) prints one
    line, ``bench <command>: error: <message>``, and returns 2; any other exception is a bug: its full
    traceback is printed, then a line saying so, and 1 is returned."""
    args = build_parser().parse_args(argv)
    context = _one_line_result_warnings()
    try:
        return PARSERS[args.command][1](args)
    except UserError as exc:
        print(f"bench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Exception:  # noqa: BLE001  (not swallowed: a bug is shown with its traceback, then named as one)
        traceback.print_exc()
        print(BUG_HINT.format(command=args.command), file=sys.stderr)
        return 1
    finally:
        context.__exit__(None, None, None)


if __name__ == "__main__":
    sys.exit(main())
