"""U-Net (Ronneberger et al., MICCAI 2015) with jaxony/unet-pytorch semantics, and its MLR-skip ablation.

architectures.md section 1: no BatchNorm, ReLU after every 3x3 conv (bias on), 2x2 max-pool down,
2x2/2 transposed conv up (halving channels), decoder input = concat [upsampled, skip]. ``unet_mlr``
(Table 4 ablation, section 6) puts an ``MLRBlock`` on each of the ``depth - 1`` skips before the concat.

``UNetSkeleton`` is the shared encoder-decoder frame; ``residual_unet`` and ``resdunet`` reuse it with
their own conv blocks and skip modules.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from bench.architectures import register_arch
from bench.architectures._blocks import InitMode, MLRBlock, SegmentationNet, conv3x3, up_conv

#: ``block(in_channels, out_channels)`` -> a conv block that keeps H x W.
BlockFactory = Callable[[int, int], nn.Module]
#: ``skip(channels)`` -> a C -> C module applied to an encoder skip before the concat.
SkipFactory = Callable[[int], nn.Module]


class UNetSkeleton(SegmentationNet):
    """U-Net frame: ``depth`` levels of widths ``width * 2**i``, ``depth - 1`` max-pools, convT up, concat.

    Level i (0 = full resolution) has encoder block ``in -> widths[i]``; each decoder level j < depth - 1
    upsamples ``widths[j + 1] -> widths[j]``, concatenates [up, skip_j] (2 * widths[j] channels) and runs
    ``block(2 * widths[j], widths[j])``. A 1x1 conv head gives ``classes`` logit maps.
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
            h = block(torch.cat([up(h), skip(features.pop())], dim=1))
        return self.head(h)


def double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """conv3x3-ReLU-conv3x3-ReLU, bias on, no BatchNorm (jaxony ``DownConv`` / ``UpConv`` body)."""
    return nn.Sequential(conv3x3(in_channels, out_channels), nn.ReLU(), conv3x3(out_channels, out_channels), nn.ReLU())


@register_arch("unet")
class UNet(UNetSkeleton):
    """Classical U-Net; ``mlr_skips=True`` adds an ``MLRBlock`` on every skip (the ``unet_mlr`` entry).

    Paper size (in=3, width 32, depth 5): 7,760,097 params, 12.071 GMACs; with MLR skips
    10,899,297 params, 21.735 GMACs.
    """

    display_name = "U-Net"

    def __init__(
        self,
        in_channels: int = 3,
        classes: int = 1,
        width: int = 32,
        depth: int = 5,
        init: InitMode = "xavier_uniform",
        mlr_skips: bool = False,
    ) -> None:
        super().__init__(in_channels, classes, width, depth, init)
        self.mlr_skips = mlr_skips
        self.build(double_conv, MLRBlock if mlr_skips else None)
        self.reset_parameters()


register_arch("unet_mlr", UNet, mlr_skips=True, display_name="U-Net (with MLR)")
