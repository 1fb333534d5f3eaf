"""Bridge to segmentation-models-pytorch: any smp architecture and encoder, by name.

``create_model("smp:Unet:resnet34", in_channels=3, classes=1)`` builds ``smp.Unet`` with a
resnet34 encoder and random init (``encoder_weights=None``: no downloads, so runs work offline
and every architecture starts from the same kind of init). Widths and depth are the encoder's own
(smp's default ``encoder_depth=5``: inputs must be multiples of 32); extra keyword arguments go to
the smp constructor unchanged.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from bench.architectures import ARCHITECTURES


def build_smp(spec: str, in_channels: int = 3, classes: int = 1, **kwargs: Any) -> nn.Module:
    """Build ``smp.<Arch>`` with encoder ``<encoder>`` from ``spec = "Arch:encoder"``."""
    import segmentation_models_pytorch as smp

    arch, _, encoder = spec.partition(":")
    encoder = encoder or "resnet34"
    archs = {name.lower(): name for name in dir(smp) if isinstance(getattr(smp, name), type)
             and issubclass(getattr(smp, name), nn.Module)}
    if arch.lower() not in archs:
        raise KeyError(f"unknown smp architecture {arch!r}; smp has: {', '.join(sorted(archs.values()))}")
    if encoder not in smp.encoders.get_encoder_names():
        raise KeyError(f"unknown smp encoder {encoder!r}; see segmentation_models_pytorch.encoders.get_encoder_names()")
    cls = getattr(smp, archs[arch.lower()])
    model = cls(encoder_name=encoder, encoder_weights=None, in_channels=in_channels, classes=classes, **kwargs)
    model.display_name = f"smp {archs[arch.lower()]} ({encoder})"
    return model


ARCHITECTURES.register_prefix("smp", build_smp)
