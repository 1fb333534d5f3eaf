"""ResDUNet (Amer, Ye, Zolgharni, Janan, EMBC 2020) -- OUR RECONSTRUCTION, not the authors' code.

No reference implementation exists; the abstracts (EMBC 2020; IEEE Access 2021, 10.1109/ACCESS.2021.3122256)
state only: U-Net backbone, residual blocks "enriched with squeeze-and-excitation", and skip connections
enriched by "cascaded dilation". docs/architectures.md ("ResDUNet") resolves the rest as follows:

- ``ResSEBlock``: conv3x3-BN-ReLU-conv3x3-BN (no conv bias) -> SE -> + shortcut (conv1x1 no bias + BN when
  Cin != C) -> ReLU.
- SE: global average pool -> Linear(C, max(1, C // se_ratio)) -> ReLU -> Linear -> sigmoid -> channel scale.
- ``CascadedDilatedSkip`` on every encoder skip: serial 3x3 convs with dilations (1, 2, 4), each
  conv(no bias)-BN-ReLU; output = skip + every stage's output (sum). Decoder sees [up, enriched skip].
- Skeleton as U-Net (max-pool, 2x2/2 transposed conv, concat, 1x1 head).

Unknowns (recorded here and as constructor arguments where cheap): the dilation rates (1,2,4 vs 1,2,4,8 or
level-dependent) -> ``dilations``; the SE reduction ratio -> ``se_ratio``; where SE sits (before the add,
as here, or after it); how the dilated features merge (sum, as here, vs the "cat3" reading that
concatenates [up, raw skip, cascade features]: 11,393,693 params).
"""

from __future__ import annotations

from functools import partial

from torch import Tensor, nn

from bench.architectures import register_arch
from bench.architectures._blocks import InitMode, UNetSkeleton, conv3x3


def conv_bn_relu(in_channels: int, out_channels: int, dilation: int = 1) -> nn.Sequential:
    """conv3x3 (no bias, padding = dilation) -> BN -> ReLU."""
    return nn.Sequential(
        conv3x3(in_channels, out_channels, dilation, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU()
    )


class SqueezeExcitation(nn.Module):
    """Channel attention (Hu et al., CVPR 2018): x * sigmoid(W2 relu(W1 avgpool(x))); hidden max(1, C // ratio)."""

    def __init__(self, channels: int, ratio: int = 16) -> None:
        super().__init__()
        if ratio < 1:
            raise ValueError(f"SE ratio must be >= 1, got {ratio}")
        hidden = max(1, channels // ratio)
        self.fc = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        weights = self.fc(x.mean(dim=(2, 3)))
        return x * weights[:, :, None, None]


class ResSEBlock(nn.Module):
    """Cin -> C post-activation residual block with SE before the add, ReLU after it."""

    def __init__(self, in_channels: int, out_channels: int, se_ratio: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn_relu(in_channels, out_channels),
            conv3x3(out_channels, out_channels, bias=False),
            nn.BatchNorm2d(out_channels),
            SqueezeExcitation(out_channels, se_ratio),
        )
        self.shortcut: nn.Module = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
        )
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class CascadedDilatedSkip(nn.Module):
    """C -> C: serial dilated conv-BN-ReLU stages; returns x + the sum of every stage's output."""

    def __init__(self, channels: int, dilations: tuple[int, ...] = (1, 2, 4)) -> None:
        super().__init__()
        if not dilations or min(dilations) < 1:
            raise ValueError(f"dilations must be a non-empty tuple of ints >= 1, got {dilations!r}")
        self.stages = nn.ModuleList(conv_bn_relu(channels, channels, d) for d in dilations)

    def forward(self, x: Tensor) -> Tensor:
        out, h = x, x
        for stage in self.stages:
            h = stage(h)
            out = out + h
        return out


@register_arch("resdunet", paper_rows={"table5": 3})
class ResDUNet(UNetSkeleton):
    """ResDUNet, our reconstruction (see the module docstring for what is assumed).

    Paper size (in=3, width 32, depth 5, se_ratio 16, dilations 1-2-4): 10,523,293 params, 19.996 GMACs.
    """

    display_name = "ResDUNet"

    def __init__(
        self,
        in_channels: int = 3,
        classes: int = 1,
        width: int = 32,
        depth: int = 5,
        init: InitMode = "xavier_uniform",
        se_ratio: int = 16,
        dilations: tuple[int, ...] = (1, 2, 4),
    ) -> None:
        super().__init__(in_channels, classes, width, depth, init)
        self.se_ratio, self.dilations = se_ratio, tuple(dilations)
        self.build(partial(ResSEBlock, se_ratio=se_ratio), partial(CascadedDilatedSkip, dilations=self.dilations))
        self.reset_parameters()
