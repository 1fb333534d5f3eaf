"""U-Net (Ronneberger et al., MICCAI 2015) with jaxony/unet-pytorch semantics, and its MLR-skip ablation.

docs/architectures.md ("U-Net"): no BatchNorm, ReLU after every 3x3 conv (bias on), 2x2 max-pool down,
2x2/2 transposed conv up (halving channels), decoder input = concat [upsampled, skip]. ``unet_mlr``
(Table 4 ablation, see "MILDNet" there) puts an ``MLRBlock`` on each of the ``depth - 1`` skips before the concat.

The encoder-decoder frame is ``UNetSkeleton`` (``_blocks.py``), shared with ``residual_unet``,
``resdunet`` and ``multiresunet``.
"""

from __future__ import annotations

from torch import nn

from bench.architectures import register_arch
from bench.architectures._blocks import InitMode, MLRBlock, UNetSkeleton, conv3x3


def double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """conv3x3-ReLU-conv3x3-ReLU, bias on, no BatchNorm (jaxony ``DownConv`` / ``UpConv`` body)."""
    return nn.Sequential(conv3x3(in_channels, out_channels), nn.ReLU(), conv3x3(out_channels, out_channels), nn.ReLU())


@register_arch("unet", paper_rows={"table4": 0, "table5": 0})
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


register_arch("unet_mlr", UNet, mlr_skips=True, display_name="U-Net (with MLR)", paper_rows={"table4": 1})
