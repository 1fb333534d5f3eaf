"""Bridge to segmentation-models-pytorch: any smp architecture and encoder, by name.

``create_model("smp:Unet:resnet34", in_channels=3, classes=1)`` builds ``smp.Unet`` with a
resnet34 encoder and random init (``encoder_weights=None``: no downloads, so runs work offline
and every architecture starts from the same kind of init). Widths and depth are the encoder's own
(smp's default ``encoder_depth=5``: inputs must be multiples of 32); extra keyword arguments go to
the smp constructor unchanged.
"""

from __future__ import annotations

import difflib
from typing import Any

from torch import nn

from bench.architectures import ARCHITECTURES
from bench.errors import UnknownName


def smp_architectures() -> dict[str, str]:
    """smp's segmentation architectures: lower-case name -> class name (``unet`` -> ``Unet``)."""
    import segmentation_models_pytorch as smp

    mapping = getattr(smp, "MODEL_ARCHITECTURES_MAPPING", None)
    if mapping is None:  # older smp: every model class exported at the top level
        return {
            name.lower(): name
            for name in dir(smp)
            if isinstance(getattr(smp, name), type)
            and issubclass(getattr(smp, name), nn.Module)
            and hasattr(getattr(smp, name), "encoder")
        }
    return {key: cls.__name__ for key, cls in mapping.items()}


def parse_spec(spec: str) -> tuple[str, str]:
    """(smp class name, encoder) of ``spec = "Arch[:encoder]"``, checked against smp's real
    architectures and encoders; KeyError naming the bad part and the choices."""
    import segmentation_models_pytorch as smp

    arch, _, encoder = spec.partition(":")
    encoder = encoder or "resnet34"
    archs = smp_architectures()
    if arch.lower() not in archs:
        known = ", ".join(sorted(archs.values()))
        raise UnknownName(f"unknown smp architecture {arch!r} in 'smp:{spec}'; smp has: {known}")
    encoders = smp.encoders.get_encoder_names()
    if encoder not in encoders:
        close = difflib.get_close_matches(encoder, encoders, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownName(
            f"unknown smp encoder {encoder!r} in 'smp:{spec}'{hint} "
            f"(see segmentation_models_pytorch.encoders.get_encoder_names())"
        )
    return archs[arch.lower()], encoder


def display_name(spec: str) -> str:
    """How reports name ``smp:<spec>``: "smp Unet (resnet34)"."""
    arch, encoder = parse_spec(spec)
    return f"smp {arch} ({encoder})"


def build_smp(spec: str, in_channels: int = 3, classes: int = 1, **kwargs: Any) -> nn.Module:
    """Build ``smp.<Arch>`` with encoder ``<encoder>`` from ``spec = "Arch:encoder"``."""
    import segmentation_models_pytorch as smp

    arch, encoder = parse_spec(spec)
    model = getattr(smp, arch)(
        encoder_name=encoder, encoder_weights=None, in_channels=in_channels, classes=classes, **kwargs
    )
    model.display_name = display_name(spec)
    return model


ARCHITECTURES.register_prefix("smp", build_smp, check=parse_spec, display_name=display_name)
