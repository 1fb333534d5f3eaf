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

from bench.architectures import ARCHITECTURES, PAPER_ARCHS
from bench.config import Job, Profile, Protocol, TrainConfig
from bench.datasets import DATASETS, PAPER_DATASETS, canonical_name, open_dataset
from bench.datasets.prepare import PreparedData, prepare
from bench.datasets.splits import Split, SplitParams, load_or_create_split, split_file_name


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
                raise KeyError(f"no {kind} matches {pattern!r}; known: {', '.join(names)}")
            out += matched
        else:
            out.append(resolve(pattern))
    return list(dict.fromkeys(out))


def select(arch: str | None, dataset: str | None, all_: bool, protocol: str, folds: tuple[int, ...] | None = None,
           seeds: tuple[int, ...] | None = None) -> Selection:
    """Resolve comma-separated names and wildcards; ``--all`` means the paper's eight networks on
    the five datasets (smp entries run only when named)."""
    if not all_ and not (arch and dataset):
        raise ValueError("choose what to run: --all, or both --arch and --dataset "
                         "(names or wildcards, comma-separated)")
    archs = list(PAPER_ARCHS) if all_ and not arch else _expand(
        arch.split(","), ARCHITECTURES.list(), "architecture", ARCHITECTURES.canonical)
    datasets = list(PAPER_DATASETS) if all_ and not dataset else _expand(
        dataset.split(","), DATASETS.list(), "dataset", canonical_name)
    Protocol(protocol)
    return Selection(tuple(archs), tuple(datasets), protocol, folds, seeds)


def data_options(dataset: str, profile: Profile, synthetic: bool, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Dataset options that change the data; recorded with results and part of the cache key.
    ``skip``: case ids the user excluded explicitly (real data only; an id the layout lacks is an error)."""
    opts: dict[str, Any] = {}
    if skip:
        if synthetic:
            raise ValueError("--skip names case ids of real data; it needs --data-root")
        opts["skip"] = sorted(skip)
    if synthetic:  # generated at the profile's scale (majority size x image_size / 256)
        opts["size"] = profile.train.image_size
        if profile.train.synthetic_n is not None:
            opts["n"] = profile.train.synthetic_n
    if dataset == "lgg_mri" and not synthetic:
        opts["subset"] = profile.train.lgg_subset
    return opts


def dataset_root(data_root: Path | None, dataset: str) -> Path | None:
    """``<data-root>/<dataset>`` (the dataset's own folder), or None for the synthetic stand-in."""
    if data_root is None:
        return None
    root = Path(data_root) / dataset
    if not root.is_dir():
        found = sorted(p.name for p in Path(data_root).iterdir() if p.is_dir()) if Path(data_root).is_dir() else []
        raise FileNotFoundError(f"{dataset}: expected its native-layout folder at {root}; {data_root} holds: "
                                f"{', '.join(found) or 'nothing'}")
    return root


def load_data(dataset: str, root: Path | None, options: dict[str, Any], cfg: TrainConfig,
              cache_dir: Path) -> PreparedData:
    """The dataset preprocessed at the profile's size, through the cache (decoded once per fingerprint)."""
    ds = open_dataset(dataset, root, **options)
    return prepare(ds, cfg.image_size, patch_padding=cfg.patch_padding, cache_dir=cache_dir)


def split_for(data: PreparedData, protocol: str, profile: Profile, results: Path) -> tuple[Split, Path]:
    """The dataset's split file; its name hashes every split parameter and the cases (a change makes a new one)."""
    cfg = profile.train
    params = SplitParams(protocol, cfg.split_seed, cfg.n_folds, cfg.test_fraction, cfg.inner_fraction)
    name = split_file_name(data.dataset, data.source, params, list(data.case_ids), list(data.groups))
    path = Path(results) / "splits" / name
    split = load_or_create_split(path, list(data.case_ids), list(data.groups), protocol, cfg.split_seed,
                                 cfg.n_folds, cfg.test_fraction, cfg.inner_fraction)
    return split, path


def plan(sel: Selection, profile: Profile, results: Path, data_root: Path | None = None,
         skip: tuple[str, ...] = ()) -> list[Job]:
    """Every job of the selection, sorted by (dataset, arch, protocol, fold, seed)."""
    jobs = []
    folds = sel.folds if sel.folds is not None else profile.folds
    seeds = sel.seeds if sel.seeds is not None else profile.seeds
    for dataset in sel.datasets:
        root = dataset_root(data_root, dataset)
        options = data_options(dataset, profile, root is None, skip)
        data = load_data(dataset, root, options, profile.train, Path(results) / "cache")
        split, split_path = split_for(data, sel.protocol, profile, results)
        for fold in folds:
            if not 0 <= fold < len(split.folds):
                raise ValueError(f"fold {fold} does not exist: the split has folds 0..{len(split.folds) - 1}")
        for arch in sel.archs:
            for fold in folds:
                for seed in seeds:
                    jobs.append(Job(dataset, arch, sel.protocol, fold, seed, profile.name, profile.train,
                                    None if root is None else str(root), data.fingerprint, split.hash,
                                    str(split_path), json.dumps(options, sort_keys=True)))
    return sorted(jobs, key=lambda j: (j.dataset, j.arch, j.protocol, j.fold, j.seed))
