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


def glas_patients(sidecars: list[dict[str, Any]]) -> dict[str, str]:
    """GlaS source image -> patient id from ``Grade.csv`` of each real GlaS folder the jobs read (the
    dataset folder or one sub-folder down, as the reader looks); empty without real GlaS data."""
    from bench.datasets.glas2015 import GRADES, read_grades

    out: dict[str, str] = {}
    roots = {s["job"].get("data_root") for s in sidecars if (s.get("job") or {}).get("dataset") == "glas2015"}
    for root in sorted(r for r in roots if r):
        found = [Path(root) / GRADES] + sorted(Path(root).glob(f"*/{GRADES}"))
        path = next((p for p in found if p.is_file()), None)
        if path is None:
            continue
        for name, meta in read_grades(path).items():
            patient = dict(meta).get("patient_id")
            if patient:
                out[name] = f"patient {patient}"
    return out


def attach_patients(df: Any, sidecars: list[dict[str, Any]]) -> Any:
    """``df`` with a ``patient`` column for GlaS rows (their source image's patient in Grade.csv; the
    ``group`` of a GlaS patch is its source image), so ``--unit patient`` can pair patients."""
    patients = glas_patients(sidecars)
    if not patients or df.empty:
        return df
    glas = df["dataset"] == "glas2015"
    return df.assign(patient=df["group"].where(glas).map(patients))
