"""Expand a selection (``--all``, ``--arch``, ``--dataset`` with wildcards) into a sorted job list.

Planning prepares each selected dataset once (through the preprocessed cache) to learn its case
ids and data fingerprint, and writes or re-reads its split file: every architecture of a dataset
gets the same split file, hence identical folds.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.analysis.names import arch_defaults, arch_names, canonical_arch, paper_archs
from bench.config import Job, Profile, Protocol, TrainConfig
from bench.datasets import DATASETS, PAPER_DATASETS, canonical_name, dataset_info, open_dataset
from bench.datasets.base import SegDataset
from bench.datasets.folders import describe_root, find_dataset_folder
from bench.datasets.options import options_of
from bench.datasets.prepare import PreparedData
from bench.datasets.problems import DataError, case_of
from bench.datasets.splits import Split, SplitError, SplitParams, load_or_create_split, make_splits, split_file_name
from bench.errors import InvalidInput, MissingInput, UnknownName, UserError
from bench.results.job_data import load_data


@dataclass(frozen=True)
class Selection:
    archs: tuple[str, ...]
    datasets: tuple[str, ...]
    protocol: str = Protocol.HOLDOUT.value
    folds: tuple[int, ...] | None = None
    seeds: tuple[int, ...] | None = None


def _expand(patterns: list[str], names: list[str], kind: str, resolve: Any) -> list[str]:
    out: list[str] = []
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            matched = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
            if not matched:
                raise UnknownName(f"no {kind} matches {pattern!r}; known: {', '.join(names)}")
            out += matched
        else:
            out.append(resolve(pattern))
    return list(dict.fromkeys(out))


def select(
    arch: str | None,
    dataset: str | None,
    all_: bool,
    protocol: str,
    folds: tuple[int, ...] | None = None,
    seeds: tuple[int, ...] | None = None,
) -> Selection:
    """Resolve comma-separated names and wildcards; ``--all`` means the paper's eight networks on
    the five datasets (smp entries run only when named)."""
    if not all_ and not (arch and dataset):
        raise InvalidInput(
            "choose what to run: --all, or both --arch and --dataset (names or wildcards, comma-separated)"
        )
    archs = (
        list(paper_archs())
        if all_ and not arch
        else _expand(arch.split(","), arch_names(), "architecture", canonical_arch)
    )
    datasets = (
        list(PAPER_DATASETS)
        if all_ and not dataset
        else _expand(dataset.split(","), DATASETS.list(), "dataset", canonical_name)
    )
    Protocol(protocol)
    return Selection(tuple(archs), tuple(datasets), protocol, folds, seeds)


def data_options(dataset: str, profile: Profile, synthetic: bool, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Dataset options that change the data; recorded with results and part of the cache key.
    ``skip``: case ids the user excluded explicitly (real data only; an id the layout lacks is an error)."""
    opts: dict[str, Any] = {}
    if skip:
        if synthetic:
            raise InvalidInput("--skip names case ids of real data; it needs --data-root")
        opts["skip"] = sorted(skip)
    if synthetic:  # generated at the profile's scale (majority size x image_size / 256)
        opts["size"] = profile.train.image_size
        if profile.train.synthetic_n is not None:
            opts["n"] = profile.train.synthetic_n
    if not synthetic:  # every option the dataset declares (--dataset-option / dataset_options:), defaults included
        opts.update(options_of(dataset, profile.dataset_options))
    return opts


def dataset_root(data_root: Path | None, dataset: str) -> Path | None:
    """The dataset's own folder under ``data_root`` (``bench.datasets.folders``: named after it or an
    alias, or holding its layout), or None for the synthetic stand-in."""
    if data_root is None:
        return None
    root = find_dataset_folder(data_root, dataset)
    if root is None:
        raise MissingInput(
            f"{dataset}: no folder under {data_root} holds it (named {dataset}, an alias, or in "
            f"its native layout); {data_root} holds: {describe_root(data_root)}"
        )
    return root


def split_for(data: PreparedData, protocol: str, profile: Profile, results: Path) -> tuple[Split, Path]:
    """The dataset's split file; its name hashes every split parameter and the cases (a change makes a new one)."""
    cfg = profile.train
    params = SplitParams(protocol, cfg.split_seed, cfg.n_folds, cfg.test_fraction, cfg.inner_fraction)
    name = split_file_name(data.dataset, data.source, params, list(data.case_ids), list(data.groups))
    path = Path(results) / "splits" / name
    split = load_or_create_split(
        path,
        list(data.case_ids),
        list(data.groups),
        protocol,
        cfg.split_seed,
        cfg.n_folds,
        cfg.test_fraction,
        cfg.inner_fraction,
    )
    return split, path


def plan(
    sel: Selection, profile: Profile, results: Path, data_root: Path | None = None, skip: tuple[str, ...] = ()
) -> list[Job]:
    """Every job of the selection, sorted by (dataset, arch, protocol, fold, seed).

    Every selected dataset is checked before any job exists: a missing folder, bad files, too few
    groups for the folds, a fold index the split lacks. If anything is wrong, one ``PlanError`` lists
    every problem (one line each, with the way forward) instead of stopping at the first.
    """
    jobs = []
    folds = sel.folds if sel.folds is not None else profile.folds
    seeds = sel.seeds if sel.seeds is not None else profile.seeds
    problems, planned, skipped = _missing_folders(sel.datasets, data_root), [], set()
    for dataset in sel.datasets:
        if any(p.dataset == dataset for p in problems):
            continue
        root = dataset_root(data_root, dataset)
        mine = profile.for_dataset(dataset)  # with its scoped settings (--set DATASET.KEY=VALUE)
        # each real dataset gets the --skip ids its layout holds (one list can name several datasets' files)
        here = held_ids(dataset, root, data_options(dataset, mine, False), skip) if root and skip else skip
        skipped.update(here)
        options = data_options(dataset, mine, root is None, here)
        try:
            data = load_data(dataset, root, options, mine.train, Path(results) / "cache")
        except DataError as err:
            problems.append(_data_problem(dataset, root, err))
            continue
        problem = fold_problem(data, sel.protocol, mine.train, folds)
        if problem is not None:
            problems.append(problem)
            continue
        try:
            split, split_path = split_for(data, sel.protocol, mine, results)
        except SplitError as err:
            problems.append(
                PlanProblem(
                    dataset, " ".join(str(err).split()), "delete or move the split file named there to make a new split"
                )
            )
            continue
        planned.append((dataset, root, options, data, split, split_path, mine.train))
    unknown = [i for i in skip if i not in skipped]
    if unknown:
        problems.append(
            PlanProblem(
                "--skip",
                f"no selected dataset present holds case id(s) {', '.join(unknown)}",
                "check the ids against `bench data check`, or drop them from --skip",
            )
        )
    if problems:
        raise PlanError(problems, sel, data_root)
    for dataset, root, options, data, split, split_path, train in planned:
        for arch in sel.archs:
            for fold in folds:
                for seed in seeds:
                    jobs.append(
                        Job(
                            dataset,
                            arch,
                            sel.protocol,
                            fold,
                            seed,
                            profile.name,
                            train,
                            None if root is None else str(root),
                            data.fingerprint,
                            split.hash,
                            str(split_path),
                            json.dumps(options, sort_keys=True),
                            arch_defaults=json.dumps(arch_defaults(arch), sort_keys=True),
                        )
                    )
    return sorted(jobs, key=lambda j: (j.dataset, j.arch, j.protocol, j.fold, j.seed))


def data_source(jobs: list[Job], data_root: Path | None) -> str:
    """Where the planned jobs' data come from, for the plan header: ``data: synthetic stand-ins`` or
    ``data: DATA (real: isic2018, dsb2018)`` (``data_root`` as the user gave it)."""
    real = list(dict.fromkeys(j.dataset for j in jobs if j.data_root is not None))
    synthetic = list(dict.fromkeys(j.dataset for j in jobs if j.data_root is None))
    if not real:
        return "data: synthetic stand-ins"
    line = f"data: {data_root} (real: {', '.join(real)})"
    return line + (f"; synthetic stand-ins: {', '.join(synthetic)}" if synthetic else "")


# ---------------------------------------------------------------------------------- planning problems


@dataclass(frozen=True)
class PlanProblem:
    """One reason a dataset cannot be planned: ``what`` is wrong and ``fix``, the way forward."""

    dataset: str
    what: str
    fix: str

    def __str__(self) -> str:
        return f"{self.dataset}: {self.what}. Way forward: {self.fix}"


class PlanError(UserError, ValueError):
    """Every planning problem of a selection at once, one line per problem, before any job starts."""

    def __init__(self, problems: list[PlanProblem], sel: Selection, data_root: Path | None) -> None:
        self.problems = problems
        bad = {p.dataset for p in problems} & set(sel.datasets)
        ok = [d for d in sel.datasets if d not in bad]
        head = (
            f"{len(problems)} planning problem(s) in {len(bad)} of {len(sel.datasets)} dataset(s); no job was started:"
        )
        lines = [head, *[f"  - {p}" for p in problems]]
        if data_root is not None:
            lines.append(_presence_line(sel.datasets, Path(data_root)))
        lines.append(
            f"Plan without them: --dataset {','.join(ok)}" if ok else "No selected dataset can be planned as it is."
        )
        super().__init__("\n".join(lines))


def held_ids(dataset: str, root: Path, options: dict[str, Any], ids: tuple[str, ...]) -> tuple[str, ...]:
    """The ``ids`` that the layout of ``dataset`` under ``root`` holds (listing only, no decoding), so one
    ``--skip`` list can name bad files of several datasets."""
    scan = open_dataset(dataset, root, **options).scan()
    known = {c.case_id for c in scan.cases} | {case_of(p) for p in scan.problems} | scan.excluded
    return tuple(i for i in ids if i in known)


def _presence_line(datasets: tuple[str, ...], data_root: Path) -> str:
    present = [d for d in datasets if _folder_or_none(data_root, d) is not None]
    missing = [d for d in datasets if d not in present]
    used = {_folder_or_none(data_root, d) for d in present}
    others = sorted(p.name for p in data_root.iterdir() if p.is_dir() and p not in used) if data_root.is_dir() else []
    line = f"Under {data_root}: present {', '.join(present) or 'none'}; missing {', '.join(missing) or 'none'}"
    return line + (f"; other folders (not selected datasets): {', '.join(others)}" if others else "")


def _folder_or_none(data_root: Path, dataset: str) -> Path | None:
    try:
        return find_dataset_folder(data_root, dataset)
    except ValueError:
        return None


def _missing_folders(datasets: tuple[str, ...], data_root: Path | None) -> list[PlanProblem]:
    if data_root is None:
        return []
    if not Path(data_root).is_dir():
        raise MissingInput(
            f"--data-root {data_root} is not a folder (expected one native-layout folder "
            "per dataset, e.g. <data-root>/lgg_mri)"
        )
    problems = []
    for d in datasets:
        try:
            if find_dataset_folder(data_root, d) is None:
                problems.append(
                    PlanProblem(
                        d,
                        f"no folder {Path(data_root) / d}, and no folder there named by an "
                        "alias or holding its layout (its native layout: docs/datasets.md)",
                        f"put the dataset there (`bench data check {d} --root "
                        f"{Path(data_root) / d}` validates it), or leave it out of --dataset",
                    )
                )
        except ValueError as err:
            problems.append(PlanProblem(d, str(err), "keep one folder per dataset under the data root"))
    return problems


def _data_problem(dataset: str, root: Path | None, err: DataError) -> PlanProblem:
    ids = sorted({c for c in map(case_of, err.problems) if c})
    first = str(err.problems[0]) if err.problems else str(err).splitlines()[0]
    what = f"{len(err.problems)} problem(s) in {root} (first: {first})"
    skip = f", or exclude the cases explicitly: --skip {','.join(ids)}" if ids and len(ids) == len(err.problems) else ""
    return PlanProblem(
        dataset,
        what,
        f"`bench data check {dataset} --root {root}` lists them all; fix the files{skip}, or leave it out of --dataset",
    )


def _group_noun(data: PreparedData) -> str:
    """What one group of ``data`` is, e.g. "patient(s)": the noun the dataset's reader gives its groups
    (``unit_nouns``) for real data when it names them, else the source image of a patch or the image."""
    unnamed = SegDataset.unit_nouns[0]
    groups = dataset_info(data.dataset).unit_nouns[0] if data.source == "real" else unnamed
    if groups != unnamed:
        return f"{groups.removesuffix('s')}(s)"
    return "source image(s)" if data.unit == "patch" else "image(s)"


def max_folds(data: PreparedData, protocol: str, cfg: TrainConfig) -> int | None:
    """The largest fold count (2..``cfg.n_folds``) this data allows under ``protocol``, or None."""
    for n in range(max(cfg.n_folds, 2), 1, -1):
        try:
            make_splits(
                list(data.case_ids),
                list(data.groups),
                protocol,
                cfg.split_seed,
                n,
                cfg.test_fraction,
                cfg.inner_fraction,
            )
        except SplitError:
            continue
        return n
    return None


def fold_problem(data: PreparedData, protocol: str, cfg: TrainConfig, folds: tuple[int, ...]) -> PlanProblem | None:
    """Why ``data`` cannot give ``cfg.n_folds`` folds (or the requested fold indices), with the way
    forward: the largest ``n_folds`` that works, the other protocol, or leaving the dataset out."""
    n_groups = len(set(data.groups))
    if n_groups == len(data):
        groups = f"{n_groups} {data.unit}s, each its own group"
    else:
        groups = f"{n_groups} {_group_noun(data)} ({len(data)} {'patches' if data.unit == 'patch' else 'images'})"
    best = max_folds(data, protocol, cfg)
    if best == cfg.n_folds:
        bad = [f for f in folds if not 0 <= f < best]
        if not bad:
            return None
        return PlanProblem(
            data.dataset,
            f"fold(s) {', '.join(map(str, bad))} do not exist: {protocol} with n_folds={best} has folds 0..{best - 1}",
            f"--folds {','.join(str(f) for f in folds if 0 <= f < best) or '0'}, or "
            f"--set {data.dataset}.n_folds={max(folds) + 1} (which changes every fold)",
        )
    outside = "outside the test set " if protocol == "holdout" else ""
    what = (
        f"{groups}: {protocol} with {cfg.n_folds} folds needs at least {cfg.n_folds} groups {outside}(no group "
        f"crosses a split); this data has {best if best else 'fewer than 2'}"
    )
    fixes = []
    if best:
        need = f" --folds {','.join(map(str, range(best)))}" if max(folds) >= best else ""
        fixes.append(f"--set {data.dataset}.n_folds={best}{need} (the most it allows, for this dataset only)")
    other = "cv" if protocol == "holdout" else "holdout"
    alt = max_folds(data, other, cfg)
    if alt:
        folds_opt = "" if alt == cfg.n_folds else f" --set {data.dataset}.n_folds={alt}"
        fixes.append(f"--protocol {other}{folds_opt}")
    fixes.append("leave it out of --dataset")
    return PlanProblem(data.dataset, what, ", or ".join(fixes))
