"""``bench tune``: a grid search on validation folds, and the tuned profile it chooses."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from bench.commands.common import canonical_arch, csv_ints, parse_settings
from bench.commands.engine_options import add_engine_options, dispatch_options, engine_config
from bench.errors import NoResults


def cmd_tune(args: argparse.Namespace) -> int:
    from bench.config import load_profile
    from bench.models import tune
    from bench.report.table_render import render
    from bench.run.plan import data_source, select
    from bench.run.runner import run_jobs

    base = load_profile(args.profile, parse_settings(args.set))
    engine = engine_config(args, base)
    grid = tune.parse_grid(args.grid, Path(args.grid_file) if args.grid_file else None)
    sel = select(args.arch, args.dataset, args.all, "holdout", args.folds, None)
    reference = canonical_arch(args.paper_tuning) if args.paper_tuning else None
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
        f"{data_source(jobs, args.data_root)} | validation folds only | "
        f"{'paper tuning on ' + reference if reference else 'fair'} | results in {out}"
    )
    statuses = list(run_jobs(jobs, out, **dispatch_options(args, engine)))
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
        parse_settings(args.set),
        data=tune.data_record(jobs, args.data_root),
        budget={"folds": list(args.folds or base.folds), "epochs": base.train.epochs},
        command=_tune_command(args, sel.archs, sel.datasets),
    )
    (path.with_suffix(".md")).write_text(render(table, "md") + "\n\n" + render(every, "md") + "\n")
    every.to_csv(path.with_suffix(".csv"), index=False)
    path.with_suffix(".html").write_text(render(table, "html") + "\n" + render(every, "html") + "\n")
    print(render(every, "md"), render(table, "md"), sep="\n\n")
    follow = ["bench", "run", "--tuned", args.name, "--results", str(results)]
    follow += ["--arch", ",".join(sel.archs), "--dataset", ",".join(sel.datasets)]
    follow += ["--data-root", args.data_root] if args.data_root else []
    print(f"\nwrote {path} (and .md, .csv, .html); run it with: {shlex.join(follow)}")
    return 0


def _tune_command(args: argparse.Namespace, archs: tuple[str, ...], datasets: tuple[str, ...]) -> str:
    """The ``bench tune`` line that makes this tuning again (recorded in the tuned profile)."""
    words = ["bench", "tune", "--name", args.name]
    words += [w for g in args.grid for w in ("--grid", g)]
    words += ["--grid-file", args.grid_file] if args.grid_file else []
    words += ["--paper-tuning", args.paper_tuning] if args.paper_tuning else []
    words += ["--arch", ",".join(archs), "--dataset", ",".join(datasets), "--profile", args.profile]
    words += ["--folds", ",".join(map(str, args.folds))] if args.folds else []
    words += [w for kv in args.set for w in ("--set", kv)]
    words += ["--data-root", args.data_root] if args.data_root else []
    return shlex.join([*words, "--results", str(args.results)])


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
    p.add_argument("--folds", type=csv_ints, help="validation folds to tune on (default: the profile's)")
    p.add_argument("--profile", default="quick", help="base profile the grid varies (quick, paper or a YAML file)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a base profile value (DATASET.KEY=VALUE: for one dataset only, e.g. lgg_mri.n_folds=2)",
    )
    p.add_argument("--data-root", help="folder with one native-layout folder per dataset (default: synthetic)")
    p.add_argument(
        "--results",
        default="results",
        help="results folder: tuning jobs go to <results>/tuning/NAME/, the choice to <results>/tuned/",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="parallel worker processes (default: one per CPU core); 0: the jobs run in this process (as `bench run`)",
    )
    p.add_argument("--force", action="store_true", help="recompute finished tuning jobs")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_engine_options(p)
