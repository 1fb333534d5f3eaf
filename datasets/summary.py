"""Builders of the paper's Table 1 (datasets) and Table 2 (split sizes) from the data actually loaded,
with the published numbers (each dataset's ``paper`` facts) beside them. Pure: DataFrames out,
no rounding or formatting (that happens in the report code).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pandas as pd

from bench.datasets import DATASETS, dataset_info, list_datasets
from bench.datasets.base import SegDataset
from bench.datasets.prepare import PreparedData
from bench.datasets.splits import Split

PAPER_SOURCE = (
    "Gudhe et al., Sci Rep 11, 14105 (2021), doi:10.1038/s41598-021-93169-w: Table 1 (datasets) and "
    "Table 2 (splitting protocol), as published"
)


def paper_counts() -> dict[str, Any]:
    """The paper's Table 1 and Table 2 numbers, gathered from the registered datasets' ``paper`` facts:
    ``{"source": ..., "table1": {name: {name, modality, images, majority_size (W, H)}},
    "table2": {name: {unit, folds, test}}, "patches": {name: {per_image, total}}}``."""

    out: dict[str, Any] = {"source": PAPER_SOURCE, "table1": {}, "table2": {}, "patches": {}}
    for name in list_datasets():
        pub = getattr(DATASETS.get(name).factory, "paper", None)
        if pub is None:
            continue
        out["table1"][name] = {
            "name": pub.name,
            "modality": pub.modality,
            "images": pub.images,
            "majority_size": list(pub.majority_size),
        }
        out["table2"][name] = {"unit": pub.unit, "folds": list(pub.folds), "test": pub.test}
        if pub.patches_per_image is not None:
            out["patches"][name] = {"per_image": pub.patches_per_image, "total": pub.patches_per_image * pub.images}
    return out


def _wxh(size: Any) -> str | None:
    return None if size is None else f"{size[0]}x{size[1]}"


def _native_sizes(item: PreparedData | SegDataset) -> tuple[str, str, int, list[tuple[int, int]]]:
    """(dataset, source, channels, native (H, W) per source image) of prepared data or a dataset."""
    if isinstance(item, PreparedData):
        first = {}
        for sid, shape in zip(item.source_ids, item.native_shapes):
            first.setdefault(sid, shape)
        return item.dataset, item.source, int(item.images.shape[1]), list(first.values())
    shapes = [item.read(case)[0].shape[:2] for case in item.cases()]  # decodes every image: slow on real data
    return item.name, item.source, int(item.channels), [(int(h), int(w)) for h, w in shapes]


def _modality(name: str) -> str:
    """The registered dataset's own ``modality`` ("" for a name not registered)."""

    return str(dataset_info(name).modality) if name in DATASETS else ""


def table1(*items: PreparedData | SegDataset) -> pd.DataFrame:
    """One row per dataset: what was found (images = source images, rows = images or patches after
    preprocessing) and the paper's Table 1. Sizes are ``"WxH"`` like the paper's; ``majority_share``
    is the fraction of images of the majority size."""
    paper = paper_counts()["table1"]
    rows = []
    for item in items:
        name, source, channels, shapes = _native_sizes(item)
        (h, w), n_major = Counter(shapes).most_common(1)[0] if shapes else ((0, 0), 0)
        pub = paper.get(name, {})
        rows.append(
            {
                "dataset": name,
                "source": source,
                "modality": pub.get("modality", _modality(name)),
                "images": len(shapes),
                "majority_size": _wxh((w, h)) if shapes else None,
                "majority_share": n_major / len(shapes) if shapes else float("nan"),
                "channels": channels,
                "rows": len(item) if isinstance(item, PreparedData) else len(shapes),
                "unit": item.unit if isinstance(item, PreparedData) else "image",
                "paper_images": pub.get("images"),
                "paper_majority_size": _wxh(pub.get("majority_size")),
            }
        )
    df = pd.DataFrame(rows)
    return df.astype({"paper_images": "Int64"}) if len(df) else df


def _paper_fold_counts(dataset: str, protocol: str, n_folds: int) -> tuple[list[Any], Any]:
    pub = paper_counts()["table2"].get(dataset)
    if protocol != "holdout" or pub is None or len(pub["folds"]) != n_folds:
        return [pd.NA] * n_folds, pd.NA
    return list(pub["folds"]), pub["test"]


def table2(*pairs: tuple[PreparedData, Split]) -> pd.DataFrame:
    """One row per (dataset, fold): counts of train / val / test units (images, or patches for
    ISBI/GlaS) of the split, and the paper's Table 2 beside them (holdout only; fold k here is the
    paper's Fold k+1). Each split is validated against its data first."""
    rows = []
    for data, split in pairs:
        split.validate(data.case_ids, data.groups)
        paper_folds, paper_test = _paper_fold_counts(data.dataset, split.protocol, len(split.folds))
        known = not any(v is pd.NA for v in paper_folds)
        for k, (train, val) in enumerate(split.folds):
            rows.append(
                {
                    "dataset": data.dataset,
                    "source": data.source,
                    "protocol": split.protocol,
                    "unit": data.unit,
                    "split_hash": split.hash,
                    "fold": k,
                    "train": len(train),
                    "val": len(val),
                    "test": len(split.test),
                    "paper_train": sum(paper_folds) - paper_folds[k] if known else pd.NA,
                    "paper_val": paper_folds[k],
                    "paper_test": paper_test,
                }
            )
    df = pd.DataFrame(rows)
    return df.astype({c: "Int64" for c in ("paper_train", "paper_val", "paper_test")}) if len(df) else df
