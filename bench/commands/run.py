"""``bench run``: plan the jobs of a sweep, run them, and summarise the results."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.commands.common import DATASET_OPTION_HELP, csv_ints, parse_dataset_option_pairs, parse_settings
from bench.commands.engine_options import add_engine_options, dispatch_options, engine_config
from bench.errors import InvalidInput

if TYPE_CHECKING:
    from bench.run.engines import EngineConfig


def cmd_run(args: argparse.Namespace) -> int:
    from bench.config import load_profile
    from bench.run.plan import data_source, plan, select
    from bench.run.runner import dry_run_table

    overrides = parse_settings(args.set)
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
    profile = load_profile(args.profile, overrides, parse_dataset_option_pairs(args.dataset_option))
    engine = engine_config(args, profile)  # validates the engine options and the device before planning
    track = _tracking(args, engine, dict(profile.tracking))
    if engine.name == "local" and args.jobs != 0 and not args.dry_run:
        from bench.run.workers import start_server

        start_server()  # the workers' fork server imports torch in its own process while this one plans
    sel = select(args.arch, args.dataset, args.all, args.protocol, args.folds, args.seeds)
    results = Path(args.results)
    skip = tuple(v for v in (args.skip or "").split(",") if v)
    if args.tuned:  # each (dataset, arch) with the values `bench tune` chose for it (bench.models.tune)
        from bench.models.tune import tuned_jobs

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
        f"{len(jobs)} jobs ({done} already done) | profile {jobs[0].profile if jobs else profile.name} | "
        f"{data_source(jobs, args.data_root)} | protocol {sel.protocol} | "
        f"{len(sel.archs)} architectures x {len(sel.datasets)} datasets | results in {results}"
    )
    todo = [j for j, state in zip(jobs, table["state"] if len(table) else []) if args.force or state != "done"]
    engine = _print_cost(todo, results, args, profile.name, engine)
    if args.dry_run:
        print(table.to_string(index=False))
        return 0
    return _execute(jobs, results, args, profile.name, engine, track)


def _print_cost(
    todo: list, results: Path, args: argparse.Namespace, profile: str, engine: EngineConfig
) -> EngineConfig:
    """Print the plan's cost (``bench.run.estimate``) and return the engine with the local worker count
    fitted to memory: by default the most workers (up to one per core) whose estimated peaks fit in the
    available memory with a margin; an explicit ``--jobs`` that does not fit is a warning with the numbers."""
    import dataclasses
    import multiprocessing

    from bench.run.estimate import MEMORY_SHARE, available_mb, cache_path, plan_cost, workers_that_fit
    from bench.run.workers import pool_context

    if engine.name != "local":
        print(f"estimate: not measured here (--engine {engine.name}: the jobs run on other machines)")
        return engine
    if not todo:
        return engine

    def measuring(n: int) -> None:
        print(f"timing one training step of {n} network setting(s) here (cached in {cache_path(results)})", flush=True)

    # timed in processes forked from the workers' server; at --jobs 0 (no workers) each in a fresh interpreter,
    # so no idle server stays beside the jobs
    context = pool_context() if args.jobs != 0 else multiprocessing.get_context("spawn")
    cost = plan_cost(todo, results, on_measure=measuring, context=context)
    cores = engine.n_jobs
    on_cpu = all(e.device == "cpu" for e in cost.estimates)
    available = available_mb() if on_cpu else None
    workers, explicit = cores, args.jobs is not None
    if explicit and available is not None and cores * cost.peak_mb > MEMORY_SHARE * available:
        print(
            f"bench: warning: --jobs {args.jobs} x {cost.peak_mb:,.0f} MiB estimated peak per worker = "
            f"{cores * cost.peak_mb:,.0f} MiB, more than {MEMORY_SHARE:.0%} of the {available:,.0f} MiB "
            f"available; --jobs {workers_that_fit(cost.peak_mb, cores, available)} fits",
            file=sys.stderr,
        )
    elif not explicit and available is not None:
        workers = workers_that_fit(cost.peak_mb, cores, available)
        engine = dataclasses.replace(engine, n_jobs=workers)
    for line in cost.lines(min(workers, len(todo)), profile):
        print(line)
    if not explicit and workers < cores:
        print(f"workers: {workers} of {cores} cores (memory: {available:,.0f} MiB available)")
    return engine


def _tracking(args: argparse.Namespace, engine: EngineConfig | None, section: dict[str, str]) -> Any:
    """Where each job is logged (``bench.tracking``): ``--track`` and its options, else the profile's ``tracking:``
    ``section``; checked before planning. None without either, or for a dry run."""
    from bench.tracking.export import start_tracking

    kind = None if args.dry_run else args.track or section.get("to")
    uri, experiment = args.tracking_uri or section.get("uri"), args.experiment or section.get("experiment")
    return start_tracking(kind, args.results, uri, experiment, engine.name if engine else "local")


def _execute(
    jobs: list,
    results: Path,
    args: argparse.Namespace,
    profile: str,
    engine: EngineConfig,
    track: Any = None,
) -> int:
    from tqdm.auto import tqdm

    from bench.analysis.summary import print_summary
    from bench.run.runner import run_jobs, stop_on_signals

    start, failed = time.perf_counter(), []
    bar = tqdm(total=len(jobs), desc="jobs", unit="job", disable=args.quiet)
    submitted = []
    try:
        with stop_on_signals():
            for record in run_jobs(jobs, results, track=track, **dispatch_options(args, engine)):
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
        f"(bench.results.store.load_all({str(results)!r}); `bench export`, `bench report --table 5`)."
    )
    return 1 if failed else 0


def _interrupted(exc: KeyboardInterrupt, jobs: list, results: Path, bar: Any) -> int:
    """Print one line (jobs done, how to resume) and return 130 (SIGINT) or 143 (SIGTERM)."""
    import signal

    from bench.run.runner import is_finished

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
    p.add_argument("--folds", type=csv_ints, help="fold indices, comma-separated (default: the profile's)")
    p.add_argument("--seeds", type=csv_ints, help="training seeds, comma-separated (default: the profile's)")
    p.add_argument("--profile", default="quick", help="quick (CPU, minutes), paper (GPU) or a YAML file")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a profile value, e.g. --set epochs=3 (repeatable); DATASET.KEY=VALUE for one dataset "
        "only, e.g. --set lgg_mri.n_folds=2",
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
        default=None,
        help="parallel worker processes (forked from a server that has imported torch); default: one per CPU core "
        "(one per GPU for a GPU run), fewer when the plan's memory estimate does not fit; 0: no worker process, "
        "the jobs run one after the other in this one (for a debugger). Results do not depend on it: every job "
        "uses the profile's fixed torch thread count",
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
    p.add_argument(
        "--track",
        choices=["mlflow"],
        help="log each job to an MLflow tracking server as it ends (docs/tracking.md; needs the tracking extra); "
        "a profile's tracking: section does the same",
    )
    p.add_argument("--tracking-uri", help="with --track: the server (default: $MLFLOW_TRACKING_URI)")
    p.add_argument("--experiment", help="with --track: the MLflow experiment (default: the results folder's name)")
    add_engine_options(p)
