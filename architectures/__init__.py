"""Architecture registry: every non-underscore module in this package registers its networks.

``create_model("mildnet", in_channels=1, width=8)`` builds a network; ``list_models("unet*")``
lists names. Adding an architecture is one file with one ``@register_arch`` decorator: modules are
discovered with pkgutil, and an ImportError in one of them propagates (discovery never hides it).

Each entry carries its facts: ``display_name`` (the report spelling; default the class attribute of the
same name), ``aliases``, and for the paper's networks ``paper_rows``, their row in the paper's Tables 4
and 5 (``@register_arch("unet", paper_rows={"table4": 0, "table5": 0})``). Reports list the paper's
networks in that order and any other entry after them under its own display name; a new architecture
needs no ``paper_rows``.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from torch import nn

from bench.registry import Entry, Registry

ARCHITECTURES: Registry[nn.Module] = Registry("architecture")
register_arch = ARCHITECTURES.register

#: The paper's tables of networks, in report order: Table 5 (the comparison), then Table 4 (the MLR ablation).
PAPER_TABLES: tuple[str, ...] = ("table5", "table4")


def _discover() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build registry entry ``name`` (e.g. ``"unet"``, ``"smp:Unet:resnet34"``) with ``kwargs``."""
    return ARCHITECTURES.create(name, **kwargs)


def get_arch(name: str) -> Entry[nn.Module]:
    return ARCHITECTURES.get(name)


def list_models(pattern: str | list[str] = "*") -> list[str]:
    return ARCHITECTURES.list(pattern)


def display_name(name: str) -> str:
    """Human spelling for reports ("UNet++"); falls back to the registry name."""
    return ARCHITECTURES.display_name(name)


def paper_archs(table: str | None = None) -> tuple[str, ...]:
    """The networks the paper reports (entries registered with ``paper_rows``), in the paper's order:
    the rows of ``table`` ("table4", "table5"), or with no table all of them, Table 5's rows first and
    then the ablations Table 4 adds."""
    if table is not None:
        return ARCHITECTURES.in_paper(table)
    return tuple(dict.fromkeys(name for t in PAPER_TABLES for name in ARCHITECTURES.in_paper(t)))


_discover()

#: The eight networks of the paper (Table 5 plus the Table 4 ablations), in report order, read from the
#: entries' ``paper_rows``.
PAPER_ARCHS: tuple[str, ...] = paper_archs()
