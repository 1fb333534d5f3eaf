"""The data behind Tables 1 and 2: re-open what the finished jobs actually loaded.

Each job's sidecar names its dataset folder, options, preprocessing size and split file, so the
tables describe the data a run used (through the preprocessed cache: no re-decoding).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.config import Job
from bench.errors import NoResults


def loaded_data(sidecars: list[dict[str, Any]], results: Path, with_splits: bool = False) -> tuple[Any, ...]:
    """Table 1 inputs (one PreparedData per dataset) or, ``with_splits``, Table 2's (data, split) pairs."""
    from bench.datasets.splits import Split
    from bench.results.job_data import load_data

    seen: dict[tuple, Any] = {}
    for side in sidecars:
        if side.get("status") != "ok":
            continue
        job = Job.from_dict(side["job"])
        data_key = (job.dataset, job.data_root, job.data_options, job.train.image_size, job.train.patch_padding)
        key = (*data_key, job.split_path) if with_splits else data_key
        if key in seen:
            continue
        root = None if job.data_root is None else Path(job.data_root)
        data = load_data(job.dataset, root, json.loads(job.data_options), job.train, results / "cache")
        seen[key] = (data, Split.load(Path(job.split_path))) if with_splits else data
    if not seen:
        raise NoResults("no finished jobs: Tables 1 and 2 describe the data of finished runs")
    return tuple(seen.values())


def group_patients(sidecars: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """(dataset, group) -> patient, from each real dataset folder the jobs read, where the dataset's
    layout records patients (its class's ``group_patients``: GlaS's Grade.csv); empty otherwise."""
    from bench.datasets import dataset_info

    out: dict[tuple[str, str], str] = {}
    jobs = [s.get("job") or {} for s in sidecars]
    for dataset, root in sorted(
        {(j["dataset"], j["data_root"]) for j in jobs if j.get("dataset") and j.get("data_root")}
    ):
        try:
            cls = dataset_info(dataset)
        except KeyError:  # a dataset no longer registered: no patients to attach
            continue
        out.update({(dataset, group): patient for group, patient in cls.group_patients(Path(root)).items()})
    return out


def attach_patients(df: Any, sidecars: list[dict[str, Any]]) -> Any:
    """``df`` with a ``patient`` column where a dataset records the patient of each group (GlaS: of each
    source image, in Grade.csv; a patch's ``group`` is its source image), so ``--unit patient`` can pair
    patients; NaN for the other rows, and ``df`` unchanged when no dataset records any."""
    patients = group_patients(sidecars)
    if not patients or df.empty:
        return df
    keys = zip(df["dataset"], df["group"])
    return df.assign(patient=[patients.get(key, float("nan")) for key in keys])
