"""Which folder under a data root holds which dataset: one rule for ``bench run --data-root``,
``bench data check --data-root`` and ``bench evaluate --data-root``.

A folder directly under the data root holds dataset D when its name is D's registry name or one of its
aliases (any letter case: ``lgg_mri``, ``MRI``, ``kvasir-seg``), or else when D's reader is the only one
that recognises its layout (``looks_like``: ``kaggle_3m/`` is LGG, ``stage1_train/`` is DSB-2018, ...).
"""

from __future__ import annotations

from pathlib import Path

from bench.datasets import DATASETS, canonical_name, list_datasets
from bench.datasets.base import NativeDataset
from bench.datasets.layout import visible_entries
from bench.errors import InvalidInput, MissingInput


def native_classes() -> dict[str, type[NativeDataset]]:
    """Registry name -> reader class of every registered native-layout dataset."""

    out = {}
    for name in list_datasets():
        factory = DATASETS.get(name).factory
        if isinstance(factory, type) and issubclass(factory, NativeDataset):
            out[name] = factory
    return out


def _by_name(folder: Path) -> str | None:

    name = folder.name.lower()
    return canonical_name(name) if name in DATASETS and canonical_name(name) in native_classes() else None


def identify_folder(folder: Path) -> str | None:
    """The dataset a folder holds: by name (a registry name or alias, any case), else by layout
    when exactly one reader recognises it; None otherwise."""
    named = _by_name(folder)
    if named is not None:
        return named
    matches = [n for n, cls in native_classes().items() if cls.looks_like(folder)]
    return matches[0] if len(matches) == 1 else None


def dataset_folders(data_root: Path | str) -> dict[str, list[Path]]:
    """Dataset name -> the folders directly under ``data_root`` that hold it, in folder-name order.
    Raises FileNotFoundError when ``data_root`` is not a folder."""
    root = Path(data_root)
    if not root.is_dir():
        raise MissingInput(
            f"--data-root {root} is not a folder (expected one native-layout folder per "
            "dataset, e.g. <data-root>/lgg_mri)"
        )
    found: dict[str, list[Path]] = {}
    for folder in visible_entries(root):
        name = identify_folder(folder) if folder.is_dir() else None
        if name is not None:
            found.setdefault(name, []).append(folder)
    return found


def find_dataset_folder(data_root: Path | str, dataset: str) -> Path | None:
    """The folder under ``data_root`` holding ``dataset`` (canonical name), None when there is none.
    Several folders for one dataset: the one named after it, else a ValueError naming them all."""
    folders = dataset_folders(data_root).get(dataset, [])
    if len(folders) > 1:
        named = [f for f in folders if _by_name(f) == dataset]
        if len(named) == 1:
            return named[0]
        raise InvalidInput(
            f"{dataset}: several folders under {data_root} hold its layout: "
            f"{', '.join(f.name for f in folders)}; rename the one to use to {dataset} "
            "(or move the others out)"
        )
    return folders[0] if folders else None


def describe_root(data_root: Path | str) -> str:
    """``isic2018 (isic2018), MRI (lgg_mri), notes (not a dataset)``: what a data root holds, for errors."""
    root = Path(data_root)
    if not root.is_dir():
        return "nothing (not a folder)"
    parts = []
    for folder in (p for p in visible_entries(root) if p.is_dir()):
        name = identify_folder(folder)
        parts.append(f"{folder.name} ({name or 'no dataset layout recognised'})")
    return ", ".join(parts) or "no folders"
