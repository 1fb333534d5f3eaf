"""ResidualU-Net: U-Net with pre-activation residual blocks (docs/architectures.md, "ResidualU-Net").

Residual unit of Zhang, Liu & Wang, "Road extraction by deep residual U-Net", IEEE GRSL 2018
(BN-ReLU-conv3x3 twice, 1x1 conv + BN shortcut when the channel count changes), on the U-Net skeleton
(max-pool down, 2x2/2 transposed conv up, concat [up, skip]).
"""

from __future__ import annotations

from torch import Tensor, nn

from bench.architectures import register_arch
from bench.architectures._blocks import InitMode, PreActConv, UNetSkeleton


class PreActResBlock(nn.Module):
    """Cin -> C: ``PreActConv(Cin, C) -> PreActConv(C, C)`` plus shortcut; no activation after the add.

    Shortcut: conv1x1 (bias on) + BN(C) when Cin != C, identity otherwise. The first block of the
    network applies BN-ReLU directly to the image (literal pre-activation).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(PreActConv(in_channels, out_channels), PreActConv(out_channels, out_channels))
        self.shortcut: nn.Module = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels))
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + self.shortcut(x)


@register_arch("residual_unet", paper_rows={"table5": 2})
class ResidualUNet(UNetSkeleton):
    """U-Net whose double-conv blocks are pre-activation residual blocks.

    Paper size (in=3, width 32, depth 5): 8,118,599 params, 12.749 GMACs.
    """

    display_name = "ResidualU-Net"

    def __init__(
        self, in_channels: int = 3, classes: int = 1, width: int = 32, depth: int = 5, init: InitMode = "xavier_uniform"
    ) -> None:
        super().__init__(in_channels, classes, width, depth, init)
        self.build(PreActResBlock)
        self.reset_parameters()
