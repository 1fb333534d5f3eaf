"""Building blocks shared by several architectures (never scanned for registrations).

Shapes are NCHW. Every network in this package returns logits (no sigmoid) of the input's spatial
size; training uses BCEWithLogits and evaluation thresholds sigmoid(logits) at 0.5.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn

InitMode = Literal["xavier_uniform", "xavier_normal"]


def level_widths(width: int, depth: int) -> list[int]:
    """Filters per resolution level: width, 2*width, ... (paper: 32..512 for width 32, depth 5)."""
    if width < 1 or depth < 2:
        raise ValueError(f"need width >= 1 and depth >= 2, got width={width}, depth={depth}")
    return [width * 2**i for i in range(depth)]


def check_input_size(x: Tensor, depth: int) -> None:
    """Raise a clear error when H or W cannot go through ``depth - 1`` 2x2 poolings."""
    factor = 2 ** (depth - 1)
    h, w = x.shape[-2:]
    if h % factor or w % factor:
        raise ValueError(
            f"input size {h}x{w} does not work with depth={depth}: height and width must be multiples of "
            f"{factor} (2**(depth-1)), e.g. {max(factor, h // factor * factor)}x{max(factor, w // factor * factor)}"
            f" or {(h // factor + 1) * factor}x{(w // factor + 1) * factor}"
        )


def init_weights(module: nn.Module, mode: InitMode = "xavier_uniform") -> None:
    """Xavier init for every conv / transposed conv / linear weight, zero biases (paper: Xavier).

    BatchNorm keeps PyTorch's defaults (gamma 1, beta 0). ``xavier_uniform`` is Keras'
    glorot_uniform; ``xavier_normal`` is what jaxony/unet-pytorch used for its convs.
    """
    if mode not in ("xavier_uniform", "xavier_normal"):
        raise ValueError(f"init must be 'xavier_uniform' or 'xavier_normal', got {mode!r}")
    fill = nn.init.xavier_uniform_ if mode == "xavier_uniform" else nn.init.xavier_normal_
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            fill(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def up_conv(in_channels: int, out_channels: int) -> nn.ConvTranspose2d:
    """2x2 transposed convolution, stride 2 (the U-Net up-sampling; bias on)."""
    return nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)


def conv3x3(in_channels: int, out_channels: int, dilation: int = 1, bias: bool = True) -> nn.Conv2d:
    """3x3 convolution with 'same' padding for the given dilation."""
    return nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=bias)


class PreActConv(nn.Sequential):
    """BN -> ReLU -> conv3x3 (pre-activation unit, He et al. 2016)."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int = 1) -> None:
        super().__init__(nn.BatchNorm2d(in_channels), nn.ReLU(), conv3x3(in_channels, out_channels, dilation))


class MLRBlock(nn.Module):
    """Multi-level residual (residual-of-residual) skip block of MILDNet, C -> C.

    Two levels; each level is ``BN-ReLU-conv3x3, BN-ReLU-conv3x3`` plus the identity of the level's
    input; an outer identity runs from the block input to its output. Parameters: 4 * (9C^2 + 3C)
    (docs/architectures.md, "MILDNet"; 37,248 for C=32).
    """

    def __init__(self, channels: int, levels: int = 2) -> None:
        super().__init__()
        self.levels = nn.ModuleList(
            nn.Sequential(PreActConv(channels, channels), PreActConv(channels, channels)) for _ in range(levels)
        )

    def forward(self, x: Tensor) -> Tensor:
        h = x
        for level in self.levels:
            h = level(h) + h
        return h + x


class SegmentationNet(nn.Module):
    """Base class: stores the common hyper-parameters, checks input sizes, applies the init.

    Subclasses build their layers in ``__init__`` (after calling ``super().__init__``), call
    ``self.reset_parameters()`` at the end, and start ``forward`` with ``self.check_input(x)``.
    """

    display_name: str = ""

    def __init__(self, in_channels: int, classes: int, width: int, depth: int, init: InitMode) -> None:
        super().__init__()
        self.in_channels, self.classes, self.width, self.depth, self.init = in_channels, classes, width, depth, init
        self.widths = level_widths(width, depth)

    def reset_parameters(self) -> None:
        init_weights(self, self.init)

    def check_input(self, x: Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} expects input N x {self.in_channels} x H x W, got {tuple(x.shape)}"
            )
        check_input_size(x, self.depth)


class DecoderSignal(NamedTuple):
    """The decoder side of the skip at ``level`` (0 = full resolution), where that level's feature is H x W.

    ``coarse``: the decoder feature arriving from ``level + 1``, before upsampling, N x 2C x H/2 x W/2 in
    ``UNetSkeleton.build`` (an attention gate's gating signal). ``up``: the same after the 2x2 transposed
    conv, N x C x H x W, the tensor the skip is concatenated with. C is the skip's channel count.
    """

    level: int
    coarse: Tensor
    up: Tensor


class GatedSkip(nn.Module):
    """Base class of a skip module that also reads the decoder (e.g. an attention gate).

    ``UNetSkeleton`` calls a plain skip module as ``skip(encoder_feature)`` and a ``GatedSkip`` as
    ``skip(encoder_feature, decoder)`` with a ``DecoderSignal``; both return the N x C x H x W tensor that
    is concatenated after the upsampled decoder feature.
    """

    def forward(self, x: Tensor, decoder: DecoderSignal) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement forward(x, decoder)")


#: ``block(in_channels, out_channels)`` -> a conv block that keeps H x W.
BlockFactory = Callable[[int, int], nn.Module]
#: ``skip(channels)`` -> a C -> C module applied to an encoder skip before the concat: a plain module
#: (``forward(x)``) or a ``GatedSkip`` (``forward(x, decoder)``, decoder signals of 2C and C channels).
SkipFactory = Callable[[int], nn.Module]


def apply_skip(skip: nn.Module, encoder_feature: Tensor, decoder: DecoderSignal) -> Tensor:
    """Run one skip module: a ``GatedSkip`` gets the decoder signal too, any other module only the feature."""
    return skip(encoder_feature, decoder) if isinstance(skip, GatedSkip) else skip(encoder_feature)


class UNetSkeleton(SegmentationNet):
    """U-Net frame: ``depth`` levels of widths ``width * 2**i``, ``depth - 1`` max-pools, convT up, concat.

    Level i (0 = full resolution) has encoder block ``in -> widths[i]``; each decoder level j < depth - 1
    upsamples ``widths[j + 1] -> widths[j]``, concatenates [up, skip_j] (2 * widths[j] channels) and runs
    ``block(2 * widths[j], widths[j])``. A 1x1 conv head gives ``classes`` logit maps.
    The skip module of level j sees the encoder feature, and a ``GatedSkip`` the decoder signal too
    (``DecoderSignal``: the level j+1 decoder feature before and after upsampling).
    Subclasses call ``self.build(...)`` then ``self.reset_parameters()``.
    """

    def build(self, block: BlockFactory, skip: SkipFactory | None = None) -> None:
        widths = self.widths
        ins = [self.in_channels, *widths[:-1]]
        self.encoder = nn.ModuleList(block(cin, c) for cin, c in zip(ins, widths))
        self.pool = nn.MaxPool2d(2)
        # Decoder modules are stored deepest first, in the order forward() uses them.
        levels = range(len(widths) - 2, -1, -1)
        self.ups = nn.ModuleList(up_conv(widths[j + 1], widths[j]) for j in levels)
        self.skips = nn.ModuleList((skip(widths[j]) if skip else nn.Identity()) for j in levels)
        self.decoder = nn.ModuleList(block(2 * widths[j], widths[j]) for j in levels)
        self.head = nn.Conv2d(widths[0], self.classes, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: N x in_channels x H x W (H, W multiples of 2**(depth-1)) -> logits N x classes x H x W."""
        self.check_input(x)
        features = []
        h = x
        for i, block in enumerate(self.encoder):
            h = block(self.pool(h) if i else h)
            features.append(h)
        h = features.pop()
        for up, skip, block in zip(self.ups, self.skips, self.decoder):
            encoder_feature, upsampled = features.pop(), up(h)
            skipped = apply_skip(skip, encoder_feature, DecoderSignal(len(features), h, upsampled))
            h = block(torch.cat([upsampled, skipped], dim=1))
        return self.head(h)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters as PyTorch counts them (BatchNorm running stats excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_macs(model: nn.Module, in_channels: int, size: int | tuple[int, int] = 256) -> int:
    """Multiply-accumulates of one 1 x C x H x W forward pass (torch's FlopCounterMode / 2).

    Counts conv, transposed conv and linear layers (docs/architectures.md, "Acceptance numbers"). The pass runs on
    the meta device, so it is fast even for the paper-size networks; ``model`` is not modified.
    """
    import copy

    from torch.utils.flop_counter import FlopCounterMode

    h, w = (size, size) if isinstance(size, int) else size
    meta = copy.deepcopy(model).to("meta").eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        meta(torch.empty(1, in_channels, h, w, device="meta", dtype=next(meta.parameters()).dtype))
    return counter.get_total_flops() // 2
