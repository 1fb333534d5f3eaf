"""MultiResUNet (Ibtehaz & Rahman, Neural Networks 2020), official Keras semantics in PyTorch.

docs/architectures.md ("MultiResUNet"; nibtehaz/MultiResUNet ``tensorflow/MultiResUNet.py``). Level l has
U = ``width * 2**l`` and W = alpha * U; a MultiRes block chains three 3x3 conv units of int(0.167 W),
int(0.333 W), int(0.5 W) filters (truncation; at least 1 each, which only matters for tiny widths) and
outputs their concat. Skips go through Res Paths of length depth-1 .. 1; the decoder up-samples with a
2x2/2 transposed conv to U channels and concatenates [up, res path] (2U channels).

Keras ``conv2d_bn`` units have no conv bias and ``BatchNormalization(scale=False)``: gamma is fixed to 1
and only beta is learned. We build that BN as ``BatchNorm2d(affine=False)`` plus a learnable shift (see
``ShiftOnlyBatchNorm2d``), so the fixed gamma is not a parameter at all: trainable and total parameter
counts agree (7,238,228 at paper size, in=3) and nothing (init, ``requires_grad_``) can make gamma move.
The standalone BNs (after the concat, after the residual add) are full BatchNorm2d (gamma and beta).
BN eps / momentum are PyTorch's defaults, like every other network here (Keras: eps 1e-3, momentum 0.99).
The head is conv1x1 + shift-only BN (Keras had a sigmoid after it; we return logits).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bench.architectures import register_arch
from bench.architectures._blocks import InitMode, UNetSkeleton, up_conv


class ShiftOnlyBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d with gamma fixed to 1 and a learnable beta (Keras ``BatchNormalization(scale=False)``).

    Built as ``affine=False`` with a ``bias`` parameter; ``weight`` stays None, so gamma is not a parameter.
    """

    def __init__(self, channels: int) -> None:
        super().__init__(channels, affine=False)
        self.bias = nn.Parameter(torch.zeros(channels))

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if getattr(self, "bias", None) is not None:
            nn.init.zeros_(self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, scale=False (learnable shift only)"


class ConvBN(nn.Sequential):
    """Keras ``conv2d_bn``: conv (no bias, 'same' padding) -> shift-only BN -> optional ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, relu: bool) -> None:
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        super().__init__(conv, ShiftOnlyBatchNorm2d(out_channels), *([nn.ReLU()] if relu else []))


def split_filters(units: int, alpha: float) -> tuple[int, int, int]:
    """Filters of the three chained 3x3 convs: int(0.167 W), int(0.333 W), int(0.5 W), W = alpha * U.

    Same float expressions as the Keras code (53.44 * 0.167 -> 8 at U=32); each is at least 1.
    """
    w = alpha * units
    return max(1, int(w * 0.167)), max(1, int(w * 0.333)), max(1, int(w * 0.5))


class MultiResBlock(nn.Module):
    """Cin -> a+b+c: out = BN(ReLU(BN(concat[a, b, c]) + shortcut)), a -> b -> c chained 3x3 conv units."""

    def __init__(self, in_channels: int, units: int, alpha: float) -> None:
        super().__init__()
        a, b, c = split_filters(units, alpha)
        self.out_channels = a + b + c
        self.shortcut = ConvBN(in_channels, self.out_channels, 1, relu=False)
        self.convs = nn.ModuleList([ConvBN(in_channels, a, 3, True), ConvBN(a, b, 3, True), ConvBN(b, c, 3, True)])
        self.concat_bn = nn.BatchNorm2d(self.out_channels)
        self.out_bn = nn.BatchNorm2d(self.out_channels)

    def forward(self, x: Tensor) -> Tensor:
        branches, h = [], x
        for conv in self.convs:
            h = conv(h)
            branches.append(h)
        y = self.concat_bn(torch.cat(branches, dim=1))
        return self.out_bn(torch.relu(y + self.shortcut(x)))


class ResPathUnit(nn.Module):
    """Cin -> C: BN(ReLU(conv3x3_bn_relu(x) + conv1x1_bn(x)))."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.shortcut = ConvBN(in_channels, channels, 1, relu=False)
        self.conv = ConvBN(in_channels, channels, 3, relu=True)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(torch.relu(self.conv(x) + self.shortcut(x)))


def res_path(in_channels: int, channels: int, length: int) -> nn.Sequential:
    """``length`` Res Path units; the first maps the block width to U, the others U -> U."""
    return nn.Sequential(*(ResPathUnit(in_channels if k == 0 else channels, channels) for k in range(length)))


@register_arch("multiresunet", paper_rows={"table5": 4})
class MultiResUNet(UNetSkeleton):
    """MultiResUNet; ``alpha`` scales every MultiRes block's width (official 1.67).

    Paper size (in=3, width 32, depth 5): 7,238,228 trainable params (in=1: 7,237,982), 15.674 GMACs.
    """

    display_name = "MultiResUNet"

    def __init__(
        self,
        in_channels: int = 3,
        classes: int = 1,
        width: int = 32,
        depth: int = 5,
        init: InitMode = "xavier_uniform",
        alpha: float = 1.67,
    ) -> None:
        super().__init__(in_channels, classes, width, depth, init)
        if alpha <= 0:
            raise ValueError(f"MultiResUNet alpha must be > 0, got {alpha}")
        self.alpha = alpha
        units = self.widths
        self.encoder = nn.ModuleList()
        cin = in_channels
        for u in units:
            self.encoder.append(MultiResBlock(cin, u, alpha))
            cin = self.encoder[-1].out_channels
        self.pool = nn.MaxPool2d(2)
        # Decoder modules are stored deepest first, in the order forward() uses them.
        levels = range(depth - 2, -1, -1)
        # The Res Paths are this network's skip modules (UNetSkeleton.forward applies them before the concat).
        self.skips = nn.ModuleList(res_path(self.encoder[j].out_channels, units[j], depth - 1 - j) for j in levels)
        self.ups, self.decoder = nn.ModuleList(), nn.ModuleList()
        for j in levels:
            self.ups.append(up_conv(cin, units[j]))
            self.decoder.append(MultiResBlock(2 * units[j], units[j], alpha))
            cin = self.decoder[-1].out_channels
        self.head = ConvBN(cin, classes, 1, relu=False)
        self.reset_parameters()
