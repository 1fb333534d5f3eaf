"""The prepared data a plan or a job works on: a dataset through the preprocessing cache, and a
job's data and split checked against what was planned."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.datasets import open_dataset
from bench.datasets.prepare import PreparedData, prepare
from bench.datasets.splits import Split

if TYPE_CHECKING:
    from bench.config import Job, TrainConfig


def load_data(
    dataset: str, root: Path | None, options: dict[str, Any], cfg: TrainConfig, cache_dir: Path
) -> PreparedData:
    """The dataset preprocessed at the profile's size, through the cache (decoded once per fingerprint).
    ``root``: the dataset's own folder (None: the synthetic stand-in); ``options``: its data options."""
    ds = open_dataset(dataset, root, **options)
    return prepare(ds, cfg.image_size, patch_padding=cfg.patch_padding, cache_dir=cache_dir)


def load_job_data(job: Job, cache_dir: Path) -> tuple[PreparedData, Split]:
    """The job's prepared data (from the cache) and split, refusing either if it changed since planning."""
    root = None if job.data_root is None else Path(job.data_root)
    data = load_data(job.dataset, root, json.loads(job.data_options), job.train, cache_dir)
    if data.fingerprint != job.data_fingerprint:
        raise RuntimeError(
            f"{job.dataset}: the data changed since planning (fingerprint {data.fingerprint} != "
            f"{job.data_fingerprint}); run `bench run` again to re-plan"
        )
    split = Split.load(Path(job.split_path))
    if split.hash != job.split_hash:
        raise RuntimeError(f"split file {job.split_path} changed since planning ({split.hash} != {job.split_hash})")
    return data, split
