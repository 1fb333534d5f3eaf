"""How reports name and order datasets and architectures, read from the two registries.

Nothing here is a fact of its own: a dataset's display name and modality are its class attributes
(``display_name``, ``modality``), an architecture's display name and its place in the paper's tables
are on its registry entry (``display_name``, ``paper_rows``), and the paper's dataset order is
``bench.datasets.PAPER_DATASETS``. Anything the paper does not report (a new dataset, an smp model)
comes after the paper's items, sorted by name, under its own display name.

Architectures are read from the registry's stored metadata (``bench.registry.stored_metadata``, written by
``architectures/_metadata.py`` and checked against the registry by a test): ``bench.architectures`` imports
torch and every network module, which building a table does not need. Where the registry is already
loaded (a process that trains or draws saliency), it is read instead, entries registered on the fly
included; a name the stored metadata lacks (an smp model, an extension's network) is looked up there too.
The planner resolves architecture names here as well (``canonical_arch``, ``arch_names``,
``arch_defaults``), so a sweep's driver that sends its jobs elsewhere imports no torch.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import Any

from bench.registry import stored_metadata


def _registry_loaded() -> bool:
    return "bench.architectures" in sys.modules


def _stored() -> dict[str, Any]:
    return stored_metadata("architecture").get("entries", {})


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
    stored = stored_metadata("architecture")
    if _registry_loaded() or not stored:
        from bench.architectures import paper_archs as from_entries

        return from_entries(table)
    entries = stored["entries"]

    def rows(t: str) -> list[str]:
        placed = {n: e["paper_rows"][t] for n, e in entries.items() if t in e["paper_rows"]}
        return sorted(placed, key=lambda n: (placed[n], n))

    if table is not None:
        return tuple(rows(table))
    return tuple(dict.fromkeys(n for t in stored["paper_tables"] for n in rows(t)))


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


def arch_names() -> list[str]:
    """Every registered architecture name, sorted (what wildcards are matched against)."""
    if not _registry_loaded() and _stored():
        return sorted(_stored())
    from bench.architectures import ARCHITECTURES

    return ARCHITECTURES.list()


def canonical_arch(name: str) -> str:
    """The registered name for ``name`` (an alias resolved); a name the stored metadata lacks (an smp model,
    a misspelling) is asked of the registry itself, which raises ``UnknownName`` with suggestions."""
    if not _registry_loaded():
        stored = _stored()
        if name in stored:
            return name
        for entry_name, entry in stored.items():
            if name in entry["aliases"]:
                return entry_name
    from bench.architectures import ARCHITECTURES

    return ARCHITECTURES.canonical(name)


def arch_defaults(name: str) -> dict[str, Any]:
    """The default keyword arguments of registry entry ``name`` (canonical), e.g. MILDNet's readings."""
    if not _registry_loaded() and name in _stored():
        return dict(_stored()[name]["defaults"])
    from bench.architectures import ARCHITECTURES

    return dict(ARCHITECTURES.get(name).defaults)


def arch_label(name: str) -> str:
    """The architecture's display name ("UNet++", "MILDNet (without MLR)"); a name no registered
    architecture has is shown as it is."""
    if not _registry_loaded() and name in _stored():
        return _stored()[name]["display_name"]
    from bench.architectures import ARCHITECTURES

    try:
        return ARCHITECTURES.display_name(name)
    except KeyError:
        return name
