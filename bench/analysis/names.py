"""How reports name and order datasets and architectures, read from the two registries.

Nothing here is a fact of its own: a dataset's display name and modality are its class attributes
(``display_name``, ``modality``), an architecture's display name and its place in the paper's tables
are on its registry entry (``display_name``, ``paper_rows``), and the paper's dataset order is
``bench.datasets.PAPER_DATASETS``. Anything the paper does not report (a new dataset, an smp model)
comes after the paper's items, sorted by name, under its own display name.

Architectures are read lazily: ``bench.architectures`` imports torch, which building a table does not need.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def ordered(names: Iterable[str], order: Sequence[str]) -> list[str]:
    """The distinct ``names``: those in ``order`` first, in that order, then the others sorted."""
    names = set(names)
    return [n for n in order if n in names] + sorted(names - set(order))


def paper_datasets() -> tuple[str, ...]:
    """The paper's datasets in its table order (registry names)."""
    from bench.datasets import PAPER_DATASETS

    return PAPER_DATASETS


def paper_archs(table: str | None = None) -> tuple[str, ...]:
    """The paper's networks in its order: the rows of ``table`` ("table4", "table5"), or all of them."""
    from bench.architectures import paper_archs as from_entries

    return from_entries(table)


def ordered_datasets(names: Iterable[str]) -> list[str]:
    """Datasets in report order: the paper's first, then the others by name."""
    return ordered(names, paper_datasets())


def ordered_archs(names: Iterable[str]) -> list[str]:
    """Architectures in report order: the paper's first, then the others (smp models, ...) by name."""
    return ordered(names, paper_archs())


def dataset_label(name: str) -> str:
    """The dataset's ``display_name`` ("ISBI-2012", "MRI"); a name no registered dataset has (results
    of a dataset whose module is gone) is shown as it is."""
    from bench.datasets import DATASETS

    try:
        return DATASETS.display_name(name)
    except KeyError:
        return name


def arch_label(name: str) -> str:
    """The architecture's display name ("UNet++", "MILDNet (without MLR)"); a name no registered
    architecture has is shown as it is."""
    from bench.architectures import ARCHITECTURES

    try:
        return ARCHITECTURES.display_name(name)
    except KeyError:
        return name
