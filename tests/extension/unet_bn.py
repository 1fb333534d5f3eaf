"""U-Net with BatchNorm after every 3x3 conv: the example of docs/extending.md ("An architecture"), written
as a user adds an architecture (one file). ``test_extension.py`` runs the suite's generic architecture
tests on it; it is not part of the package."""

from __future__ import annotations

from torch import nn

from bench.architectures import register_arch
from bench.architectures._blocks import InitMode, UNetSkeleton, conv3x3


def double_conv_bn(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        conv3x3(in_channels, out_channels, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
        conv3x3(out_channels, out_channels, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    )


@register_arch("unet_bn")
class UNetBN(UNetSkeleton):
    display_name = "U-Net (BN)"

    def __init__(
        self, in_channels: int = 3, classes: int = 1, width: int = 32, depth: int = 5, init: InitMode = "xavier_uniform"
    ) -> None:
        super().__init__(in_channels, classes, width, depth, init)
        self.build(double_conv_bn)  # encoder/decoder blocks; optional second argument: a skip module
        self.reset_parameters()  # Xavier weights, zero biases
