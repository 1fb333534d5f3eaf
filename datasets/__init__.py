"""Dataset registry: every non-underscore module in this package registers its datasets.

``create_dataset("lgg_mri", root=Path(...))`` reads a native layout; ``open_dataset(name, None)`` gives
the built-in synthetic stand-in of the same dataset id. Adding a dataset is one file with one
``@register_dataset`` decorator on a ``bench.datasets.base.NativeDataset`` subclass (the contract is
described there and in docs/datasets.md); ``dataset_info(name)`` gives its facts.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from bench.registry import Registry

DATASETS: Registry[Any] = Registry("dataset")
register_dataset = DATASETS.register

#: The paper's five datasets, in the paper's table order.
PAPER_DATASETS: tuple[str, ...] = ("isbi2012", "isic2018", "lgg_mri", "glas2015", "dsb2018")


#: Modules of this package that define no dataset and import a heavy library, so they are imported when
#: asked for, not at discovery: ``augment`` (albumentations, about 1 s; only a job with ``augment: true``
#: needs it) and ``summary`` (pandas; only Tables 1-2 need it, and ``bench list`` should not wait for it).
_NOT_READERS = ("augment", "summary")


def _discover() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_") and info.name not in _NOT_READERS:
            importlib.import_module(f"{__name__}.{info.name}")


def create_dataset(name: str, **kwargs: Any) -> Any:
    return DATASETS.create(name, **kwargs)


def list_datasets(pattern: str | list[str] = "*") -> list[str]:
    return DATASETS.list(pattern)


def dataset_info(name: str) -> Any:
    """The registered class of dataset ``name`` (an alias is resolved): its facts are class attributes,
    ``name``, ``display_name``, ``modality``, ``channels``, ``patch_based``, ``paper`` (``PaperFacts`` or
    None), ``paper_count``, ``layout``, ``OPTIONS``. Raises KeyError with suggestions."""
    return DATASETS.get(canonical_name(name)).factory


def canonical_name(name: str) -> str:
    """Resolve an alias (``mri`` -> ``lgg_mri``); raises KeyError with suggestions."""
    return DATASETS.canonical(name)


_discover()


def open_dataset(name: str, root: Any = None, **options: Any) -> Any:
    """The dataset ``name`` read from its native layout under ``root``, or its synthetic stand-in
    when ``root`` is None. ``root`` is the dataset's own folder (e.g. ``data/lgg_mri``)."""
    key = canonical_name(name)
    if root is None:
        from bench.datasets.synthetic import SyntheticDataset

        return SyntheticDataset(key, **options)
    return DATASETS.create(key, root=root, **options)
