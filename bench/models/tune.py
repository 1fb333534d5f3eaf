"""``bench tune`` (the paper's Table 3 grid search), scored on validation folds only, fair by default.

**The grid** is a mapping from training settings (``TrainConfig`` fields: ``lr``, ``batch_size``,
``beta1``, ``depth``, ``width``, ``plateau_factor``, ``plateau_patience``, ``epochs``, ...) to the values
to try, from a YAML file and/or ``--grid key=v1,v2``; its points are the Cartesian product, in the
order given. Keys ``arch.NAME`` set constructor arguments of the architectures (``arch.dilations``,
``arch.levels``: ``bench.models.arch_grid``); they go into each job's ``arch_kwargs``. **Never the test set**:
tuning jobs use the holdout split of the benchmark (same folds, same seed) with its test set removed
(a derived split file, ``<name>.tuning.json``), so a tuning job trains on the other folds, chooses its
epoch on fold k, scores fold k and never loads a test image.
The score of a point is the mean over its fold models of each model's mean Dice on its validation
fold (Table 4's rule). **Fair by default**: every architecture gets every point, the same folds and
the same budget, and its own best point; an ``arch.`` key is therefore allowed only when every selected
architecture takes it. ``paper_tuning`` (the paper's way) tunes one reference architecture (which must
take the ``arch.`` keys) and gives its best point to every architecture, which the table and profile
say: the training settings to all, the ``arch.`` values only to the architectures built by the
reference's own constructor (``mildnet`` -> ``mildnet_no_mlr``), since an argument of another class
means something else (ResDUNet's ``dilations`` are its skips' cascaded rates); the others keep their
constructor's defaults.

Tuning jobs run through the same machinery as ``bench run`` (``plan`` and ``run_jobs``: resume,
engines) into their own results folder ``<results>/tuning/<name>/``, never mixed with the benchmark's
rows. The outcome is a small YAML profile ``<results>/tuned/<name>.yaml``: the base profile's name,
the grid, its budget, the data it saw (``data_record``: data root, each dataset's source and fingerprint),
the ``bench tune`` command, and per dataset and architecture the chosen values; ``bench run --tuned <name>``
runs each architecture with its chosen values (``tuned_jobs``), on the same data only (``check_tuned_data``),
and records the tuning in each job (``tuning_record``), which is what lets a comparison of architectures at
different chosen values pass as like for like in procedure (``bench.results.selection``).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import replace as dc_replace
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from bench.atomic import atomic_write_text
from bench.config import Job, Profile, coerce, load_profile, replace
from bench.errors import InvalidInput, MissingInput, NoResults
from bench.models import arch_grid

#: Settings a grid may not change: they decide the split, the data or where the job runs, not the recipe.
FIXED = (
    "n_folds",
    "test_fraction",
    "split_seed",
    "inner_fraction",
    "image_size",
    "patch_padding",
    "synthetic_n",
    "device",
    "threads",
)


@dataclass(frozen=True)
class Grid:
    """Setting name -> values to try (already typed), in the order given."""

    values: tuple[tuple[str, tuple[Any, ...]], ...]

    def points(self) -> list[dict[str, Any]]:
        """Every combination, the first key varying slowest."""
        keys = [k for k, _ in self.values]
        return [dict(zip(keys, combo)) for combo in itertools.product(*(v for _, v in self.values))]

    def to_dict(self) -> dict[str, list[Any]]:
        return {k: [arch_grid.plain(x) for x in v] for k, v in self.values}


def parse_grid(pairs: Sequence[str] = (), path: Path | None = None) -> Grid:
    """The grid from a YAML file (``key: [v1, v2]``) and ``key=v1,v2`` pairs (a pair replaces the file's key).
    ``arch.NAME`` keys are constructor arguments (``arch.dilations=1-3-5,1-2-4``; which architectures take
    them is checked by ``tuning_jobs``).

    Raises ValueError naming the key for an unknown or fixed setting, an empty list or a repeated value."""
    raw: dict[str, list[Any]] = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text())
        if not isinstance(loaded, dict):
            raise InvalidInput(
                f"{path}: a tuning grid is a mapping of setting -> list of values, got {type(loaded).__name__}"
            )
        raw.update({str(k): v if isinstance(v, list) else [v] for k, v in loaded.items()})
    for pair in pairs:
        key, sep, values = pair.partition("=")
        if not sep or not values:
            raise InvalidInput(f"--grid expects key=v1,v2,..., got {pair!r}")
        raw[key.strip()] = [v.strip() for v in values.split(",") if v.strip()]
    if not raw:
        raise InvalidInput("an empty grid: give --grid key=v1,v2 (repeatable) or --grid-file GRID.yaml")
    out = []
    for key, values in raw.items():
        if key in FIXED:
            raise InvalidInput(
                f"grid key {key!r} cannot be tuned (it changes the split, the data or the machine); "
                f"fixed: {', '.join(FIXED)}"
            )
        if not values:
            raise InvalidInput(f"grid key {key!r} has no values")
        if arch_grid.is_arch_key(key):
            arch_grid.check_name(key)
            typed = tuple(arch_grid.parse_value(key, v) for v in values)
        else:
            typed = tuple(coerce(key, v) for v in values)  # KeyError for unknown settings, naming the known ones
        if len(set(map(repr, typed))) != len(typed):
            raise InvalidInput(f"grid key {key!r} repeats a value: {list(values)}")
        out.append((key, typed))
    return Grid(tuple(out))


def point_label(point: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={arch_grid.format_value(v)}" for k, v in point.items())


def tuning_results(results: Path, name: str) -> Path:
    return Path(results) / "tuning" / name


def profile_path(results: Path, name: str) -> Path:
    return Path(results) / "tuned" / f"{name}.yaml"


def without_test(job: Job, out: Path) -> Job:
    """``job`` on the derived split of its split file with the test set removed (saved under ``out/splits``)."""
    from bench.datasets.splits import Split

    split = Split.load(Path(job.split_path))
    if split.protocol != "holdout":
        raise InvalidInput(
            "bench tune uses the holdout protocol (validation folds); under cv the held-out folds are "
            "the evaluation, so tuning on them would score the benchmark on its own tuning data"
        )
    tuning = dc_replace(split, test=())
    path = Path(out) / "splits" / f"{Path(job.split_path).stem}.tuning.json"
    if not path.exists() or Split.load(path).hash != tuning.hash:
        tuning.save(path)
    return replace(job, split_hash=tuning.hash, split_path=str(path))


def tuning_jobs(
    grid: Grid,
    base: Profile,
    archs: Sequence[str],
    datasets: Sequence[str],
    results: Path,
    name: str,
    folds: Sequence[int] | None = None,
    data_root: Path | None = None,
    reference: str | None = None,
) -> list[Job]:
    """Every (point, dataset, arch, fold) job: all ``archs`` (fair) or only ``reference`` (paper tuning).
    ``arch.`` keys go into each job's ``arch_kwargs``; ValueError naming the architectures that do not take one."""
    from bench.run.plan import plan, select

    out = tuning_results(results, name)
    tuned_archs = [reference] if reference else list(archs)
    how = (
        f" (--paper-tuning {reference} tunes {reference} alone)"
        if reference
        else "; fair tuning gives every selected architecture the same grid: select only architectures that take it "
        "(--arch), or tune one architecture the paper's way (--paper-tuning ARCH)"
    )
    arch_grid.check_arch_keys(dict(grid.values), tuned_archs, how)
    scoped = sorted(f"{ds}.{k}" for ds, values in base.scoped for k, _ in values if k in dict(grid.values))
    if scoped:
        raise InvalidInput(
            f"--set {', '.join(scoped)}: a setting the grid tunes cannot also be set for one dataset (the grid "
            "gives every dataset the same values)"
        )
    jobs = []
    for point in grid.points():
        train, kwargs = arch_grid.split_point(point)
        profile = dc_replace(base, train=replace(base.train, **train))
        sel = select(
            ",".join(tuned_archs),
            ",".join(datasets),
            False,
            "holdout",
            tuple(folds) if folds is not None else None,
            (base.seeds[0],),
        )
        jobs += [
            replace(without_test(j, out), arch_kwargs=arch_grid.to_json(kwargs))
            for j in plan(sel, profile, out, data_root)
        ]
    return jobs


def job_point(job: Mapping[str, Any], grid: Grid) -> dict[str, Any]:
    """The grid point of a job (its sidecar's ``job`` dict): training settings and ``arch.`` arguments."""
    values = {**job["train"], **arch_grid.from_json(job.get("arch_kwargs"))}
    return {k: values[k] for k, _ in grid.values}


def score_points(results: Path, grid: Grid, keys: Collection[str] | None = None) -> pd.DataFrame:
    """Per (dataset, arch, point): ``score`` (mean over fold models of their mean validation Dice), ``iou``,
    ``n_models``, ``n_images``; rows of the tuning folder only, validation split only (there is no other).
    ``keys``: the job keys of this tuning (a folder can also hold an earlier tuning of the same name)."""
    from bench.results import store

    df = store.load_all(results)
    if keys is not None and not df.empty:
        df = df[df["job_key"].isin(set(keys))]
    if df.empty:
        raise NoResults(f"no finished tuning jobs under {results}")
    if (df["split"] != "val").any():
        raise RuntimeError(f"{results}: tuning rows outside the validation folds ({sorted(df['split'].unique())})")
    points = {
        s["key"]: point_label(job_point(s["job"], grid))
        for s in store.sidecars(results)
        if s.get("status") == "ok" and (keys is None or s["key"] in keys)
    }
    df = df.assign(point=df["job_key"].map(points))
    per_model = (
        df.groupby(["dataset", "arch", "point", "job_key"], sort=False)
        .agg(dice=("dice", "mean"), iou=("iou", "mean"), n_images=("case_id", "size"))
        .reset_index()
    )
    out = (
        per_model.groupby(["dataset", "arch", "point"], sort=False)
        .agg(score=("dice", "mean"), iou=("iou", "mean"), n_models=("job_key", "nunique"), n_images=("n_images", "sum"))
        .reset_index()
    )
    order = {point_label(p): i for i, p in enumerate(grid.points())}
    out["point_index"] = out["point"].map(order)
    return out.sort_values(["dataset", "arch", "point_index"]).reset_index(drop=True)


def best_points(scores: pd.DataFrame, grid: Grid) -> dict[str, dict[str, dict[str, Any]]]:
    """dataset -> arch -> the values of its best point (highest score; ties: the earlier grid point)."""
    points = grid.points()
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for (dataset, arch), g in scores.groupby(["dataset", "arch"], sort=False):
        best = g.sort_values(["score", "point_index"], ascending=[False, True]).iloc[0]
        out.setdefault(str(dataset), {})[str(arch)] = points[int(best["point_index"])]
    return out


def given_point(point: Mapping[str, Any], arch: str, reference: str | None) -> dict[str, Any]:
    """What ``arch`` gets of a best ``point``: all of it in fair tuning; under paper tuning the training settings,
    and the ``arch.`` values only if ``arch`` is built by the reference's constructor (module docstring)."""
    if reference is None or arch == reference:
        return dict(point)
    same = arch_grid.same_constructor(arch, reference)
    return {
        k: v
        for k, v in point.items()
        if not arch_grid.is_arch_key(k) or (same and arch_grid.arg_name(k) in arch_grid.tunable_args(arch))
    }


def best_table(
    scores: pd.DataFrame, grid: Grid, reference: str | None = None, archs: Sequence[str] = ()
) -> pd.DataFrame:
    """One row per (dataset, arch): the chosen configuration, its validation Dice/IoU and how it was chosen."""
    rows = []
    best = best_points(scores, grid)
    for dataset, per_arch in best.items():
        names = list(archs) if reference else list(per_arch)
        for arch in names:
            source = reference if reference else arch
            point = per_arch[source]
            hit = scores[
                (scores["dataset"] == dataset) & (scores["arch"] == source) & (scores["point"] == point_label(point))
            ].iloc[0]
            rows.append(
                {
                    "dataset": dataset,
                    "arch": arch,
                    "best": point_label(given_point(point, arch, reference)),
                    "val_dice": float(hit["score"]),
                    "val_iou": float(hit["iou"]),
                    "n_points": int(((scores["dataset"] == dataset) & (scores["arch"] == source)).sum()),
                    "n_models": int(hit["n_models"]),
                    "tuned_on": source if reference else "itself",
                }
            )
    table = pd.DataFrame(rows)
    how = (
        (
            f"the paper's protocol: only {reference} was tuned, its best point is given to every architecture "
            "(val_dice is the reference's)"
            + (
                "; arch. values only to architectures built by the same constructor"
                if any(arch_grid.is_arch_key(k) for k, _ in grid.values)
                else ""
            )
        )
        if reference
        else "fair: every architecture tuned on the same grid, folds and budget"
    )
    table.attrs["caption"] = (
        f"Table 3 (tuning): best configuration per architecture by mean validation Dice over "
        f"the fold models' validation folds (never the test set); {how}. Grid: "
        f"{json.dumps(grid.to_dict())}."
    )
    return table


def data_record(jobs: Sequence[Job], data_root: str | None) -> dict[str, Any]:
    """What data the tuning jobs saw: ``root`` (as given, None for the synthetic stand-ins), its absolute
    ``path``, and per dataset its ``source`` and ``fingerprint`` (``bench run --tuned`` checks them)."""
    return {
        "root": data_root,
        "path": None if data_root is None else str(Path(data_root).resolve()),
        "datasets": {j.dataset: {"source": j.source, "fingerprint": j.data_fingerprint} for j in jobs},
    }


def write_profile(
    path: Path,
    name: str,
    base: str,
    grid: Grid,
    best: Mapping[str, Mapping[str, Mapping[str, Any]]],
    reference: str | None,
    archs: Sequence[str],
    settings: Mapping[str, Any] | None = None,
    *,
    data: Mapping[str, Any] | None = None,
    budget: Mapping[str, Any] | None = None,
    command: str | None = None,
) -> Path:
    """The tuned profile: ``bench run --tuned NAME`` reads it (``load_tuned``). ``settings``: the ``--set``
    values the tuning ran with on top of ``base`` (applied again by ``bench run --tuned``); ``data``: the data
    the tuning saw (``data_record``); ``budget``: its ``folds`` and ``epochs``; ``command``: the ``bench tune``
    line that made it (a report lists it among the commands that reproduce it)."""

    def values(point: Mapping[str, Any], arch: str) -> dict[str, Any]:
        return {k: arch_grid.plain(v) for k, v in given_point(point, arch, reference).items()}

    chosen = {
        ds: (
            {a: values(per[reference], a) for a in archs}
            if reference
            else {a: values(point, a) for a, point in per.items()}
        )
        for ds, per in best.items()
    }
    doc = {
        "name": name,
        "base_profile": base,
        "settings": dict(settings or {}),
        "mode": f"paper: tuned on {reference} only" if reference else "fair",
        "grid": grid.to_dict(),
        "budget": dict(budget or {}),
        "data": dict(data or {}),
        "command": command,
        "chosen": chosen,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, yaml.safe_dump(doc, sort_keys=False))
    return path


def load_tuned(results: Path, name: str) -> dict[str, Any]:
    path = profile_path(results, name)
    if not path.is_file():
        have = sorted(p.stem for p in path.parent.glob("*.yaml")) if path.parent.is_dir() else []
        raise MissingInput(
            f"no tuned configuration {name!r} ({path}); `bench tune --name {name}` makes it; "
            f"tuned here: {', '.join(have) or 'none'}"
        )
    doc = yaml.safe_load(path.read_text())
    if not isinstance(doc, dict) or not isinstance(doc.get("chosen"), dict) or "base_profile" not in doc:
        raise InvalidInput(f"{path}: not a tuned profile (expected name, base_profile, grid, chosen)")
    return doc


def tuned_jobs(
    results: Path,
    name: str,
    archs: Sequence[str],
    datasets: Sequence[str],
    protocol: str,
    overrides: Mapping[str, Any],
    folds: tuple[int, ...] | None,
    seeds: tuple[int, ...] | None,
    data_root: Path | None,
    skip: tuple[str, ...] = (),
) -> Iterator[Job]:
    """The jobs of ``bench run --tuned NAME``: each (dataset, arch) with its chosen values on the base profile
    and the tuning's own ``--set`` values (this run's ``overrides`` win); its ``arch.`` values become the job's
    ``arch_kwargs``. Raises ValueError for a pair the tuning did not cover."""
    from bench.run.plan import plan, select

    doc = load_tuned(Path(results), name)
    check_data_root(doc, data_root)
    for dataset in datasets:
        for arch in archs:
            chosen = (doc["chosen"].get(dataset) or {}).get(arch)
            if chosen is None:
                raise NoResults(
                    f"tuned configuration {name!r} has no choice for {dataset}/{arch}; it covers "
                    + "; ".join(f"{d}: {', '.join(a)}" for d, a in doc["chosen"].items())
                )
            train, kwargs = arch_grid.split_point(
                {k: arch_grid.parse_value(k, v) if arch_grid.is_arch_key(k) else v for k, v in chosen.items()}
            )
            arch_grid.check_arch_keys(
                {arch_grid.PREFIX + k: [v] for k, v in kwargs.items()},
                [arch],
                f" (tuned configuration {name!r}, {dataset})",
            )
            profile = load_profile(doc["base_profile"], {**(doc.get("settings") or {}), **train, **overrides})
            profile = dc_replace(profile, name=f"tuned-{name}")
            record = tuning_record(doc, chosen)
            for job in plan(
                select(arch, dataset, False, protocol, folds, seeds), profile, Path(results), data_root, skip
            ):
                check_tuned_data(doc, job, data_root)
                yield replace(job, arch_kwargs=arch_grid.to_json(kwargs), tuning=record)


def tuning_record(doc: Mapping[str, Any], chosen: Mapping[str, Any]) -> str:
    """The ``Job.tuning`` JSON of a tuned job: the tuning's name, base profile, mode, grid and budget, and its
    chosen point."""
    budget = doc.get("budget") or {}
    record = {
        "name": doc["name"],
        "base_profile": doc.get("base_profile"),
        "mode": doc.get("mode", "fair"),
        "grid": doc.get("grid", {}),
        "folds": budget.get("folds"),
        "epochs": budget.get("epochs"),
        "chosen": dict(chosen),
    }
    return json.dumps(record, sort_keys=True)


def check_data_root(doc: Mapping[str, Any], data_root: Path | None) -> None:
    """Refuse ``bench run --tuned`` on another kind of data than the tuning's (real vs synthetic), before planning."""
    data = doc.get("data") or {}
    if not data.get("datasets"):
        return  # a tuned profile written before the data were recorded
    tuned_real = data.get("root") is not None
    if tuned_real and data_root is None:
        raise InvalidInput(
            f"tuned configuration {doc['name']!r} was chosen on real data under {data['root']} "
            f"({data.get('path')}); this run has no --data-root, so it would use the synthetic stand-ins. "
            f"Run it on the tuning's data: --data-root {data['root']}"
        )
    if not tuned_real and data_root is not None:
        raise InvalidInput(
            f"tuned configuration {doc['name']!r} was chosen on the synthetic stand-ins; this run's data are "
            f"under --data-root {data_root}. Tune on that data (bench tune --data-root {data_root}) or drop --data-root"
        )


def check_tuned_data(doc: Mapping[str, Any], job: Job, data_root: Path | None) -> None:
    """Refuse a planned ``job`` whose data differ from the data its tuned values were chosen on."""
    check_data_root(doc, data_root)
    data = doc.get("data") or {}
    seen = (data.get("datasets") or {}).get(job.dataset)
    if not seen or seen.get("fingerprint") == job.data_fingerprint:
        return
    where = f"under {data.get('root')}" if data.get("root") is not None else "(synthetic stand-ins)"
    here = f"under {data_root}" if data_root is not None else "(synthetic stand-ins)"
    raise InvalidInput(
        f"tuned configuration {doc['name']!r} was chosen on {job.dataset} data {where} with fingerprint "
        f"{str(seen.get('fingerprint'))[:16]}; the {job.dataset} data planned here {here} have fingerprint "
        f"{job.data_fingerprint[:16]} (other files, options or image size). Run on the tuning's data, or tune again"
    )
