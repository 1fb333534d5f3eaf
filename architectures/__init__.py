"""Architecture registry: every non-underscore module in this package registers its networks.

``create_model("mildnet", in_channels=1, width=8)`` builds a network; ``list_models("unet*")``
lists names. Adding an architecture is one file with one ``@register_arch`` decorator: modules are
discovered with pkgutil, and an ImportError in one of them propagates (discovery never hides it).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from torch import nn

from bench.registry import Entry, Registry

ARCHITECTURES: Registry[nn.Module] = Registry("architecture")
register_arch = ARCHITECTURES.register

#: The eight networks of the paper (Table 5 plus the Table 4 ablations), in report order.
PAPER_ARCHS: tuple[str, ...] = (
    "unet", "unetpp", "residual_unet", "resdunet", "multiresunet", "mildnet", "unet_mlr", "mildnet_no_mlr",
)


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


_discover()
