"""MILDNet: multi-level dilated residual U-Net (Gudhe et al., Sci Rep 2021; docs/architectures.md, "MILDNet").

U-Net skeleton (max-pool down, 2x2 transposed conv up halving channels, concat ``[up, skip]``, 1x1 head)
whose conv blocks are MLDR blocks and whose skips pass through MLR blocks (``mlr_skips=False`` gives
the Table 4 ablation with plain skips). Returns logits of the input's H x W.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bench.architectures import register_arch
from bench.architectures._blocks import InitMode, MLRBlock, SegmentationNet, conv3x3, up_conv


class DilatedSum(nn.Module):
    """BN -> ReLU -> parallel 3x3 convs, one per dilation rate (padding = rate), summed: Cin -> C."""

    def __init__(self, in_channels: int, out_channels: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_channels)
        self.act = nn.ReLU(inplace=False)
        self.branches = nn.ModuleList(conv3x3(in_channels, out_channels, d) for d in dilations)

    def forward(self, x: Tensor) -> Tensor:
        h = self.act(self.bn(x))
        out = self.branches[0](h)
        for branch in self.branches[1:]:
            out = out + branch(h)
        return out


class MLDRBlock(nn.Module):
    """Multi-level dilated residual block, Cin -> C (docs/architectures.md, "MILDNet").

    Level 1: ``h = F_1(x) + P(x)`` with ``P`` a shared 1x1 projection (bias on, no BN); level k > 1:
    ``h = F_k(h) + h``; outer residual ``out = h + P(x)`` reusing the same ``P`` (computed once). Each
    ``F_k`` is a :class:`DilatedSum`. No activation after the final add. The projection is used even
    when Cin == C, so the parameter count follows one formula; for two levels it is
    ``2Cin + 3(9 Cin C + C) + (Cin C + C) + 2C + 3(9C^2 + C)`` with three dilation rates.
    """

    def __init__(
        self, in_channels: int, out_channels: int, dilations: tuple[int, ...] = (1, 3, 5), levels: int = 2
    ) -> None:
        super().__init__()
        if levels < 1:
            raise ValueError(f"MLDRBlock needs levels >= 1, got {levels}")
        if not dilations or any(d < 1 for d in dilations):
            raise ValueError(f"MLDRBlock needs at least one dilation rate, all >= 1, got {dilations}")
        self.project = nn.Conv2d(in_channels, out_channels, kernel_size=1)
        self.levels = nn.ModuleList(
            DilatedSum(in_channels if k == 0 else out_channels, out_channels, dilations) for k in range(levels)
        )

    def forward(self, x: Tensor) -> Tensor:
        shortcut = self.project(x)
        h = self.levels[0](x) + shortcut
        for level in self.levels[1:]:
            h = level(h) + h
        return h + shortcut


@register_arch("mildnet", paper_rows={"table4": 3, "table5": 5})
class MILDNet(SegmentationNet):
    """MILDNet with ``depth`` levels of widths ``width * 2**i``; MLDR blocks everywhere, MLR skips.

    ``levels`` and ``dilations`` configure every MLDR block (paper: 2 and (1, 3, 5), Table 3);
    ``mlr_levels`` the MLR skip blocks (paper: 2).
    """

    display_name = "MILDNet"

    def __init__(
        self,
        in_channels: int = 3,
        classes: int = 1,
        width: int = 32,
        depth: int = 5,
        init: InitMode = "xavier_uniform",
        dilations: tuple[int, ...] = (1, 3, 5),
        levels: int = 2,
        mlr_skips: bool = True,
        mlr_levels: int = 2,
    ) -> None:
        super().__init__(in_channels, classes, width, depth, init)
        if not mlr_skips and mlr_levels != 2:
            raise ValueError(f"mlr_levels={mlr_levels} has no effect without MLR skips (mlr_skips=False)")
        self.dilations, self.levels, self.mlr_skips = tuple(dilations), levels, mlr_skips
        widths = self.widths
        ins = [in_channels, *widths[:-1]]
        self.encoder = nn.ModuleList(MLDRBlock(i, c, self.dilations, levels) for i, c in zip(ins, widths))
        self.pool = nn.MaxPool2d(2)
        self.skips = nn.ModuleList(MLRBlock(c, mlr_levels) if mlr_skips else nn.Identity() for c in widths[:-1])
        self.ups = nn.ModuleList(up_conv(2 * c, c) for c in widths[:-1])
        self.decoder = nn.ModuleList(MLDRBlock(2 * c, c, self.dilations, levels) for c in widths[:-1])
        self.head = nn.Conv2d(widths[0], classes, kernel_size=1)
        self.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        skips: list[Tensor] = []
        for i, block in enumerate(self.encoder):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for i in reversed(range(len(self.decoder))):
            x = self.decoder[i](torch.cat([self.ups[i](x), self.skips[i](skips[i])], dim=1))
        return self.head(x)


register_arch(
    "mildnet_no_mlr", MILDNet, mlr_skips=False, display_name="MILDNet (without MLR)", paper_rows={"table4": 2}
)
