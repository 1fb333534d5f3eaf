"""UNet++ (Zhou et al., DLMIA 2018 / TMI 2020), official Keras topology (MrGiovanni/UNetPlusPlus).

docs/architectures.md ("UNet++"): a grid of nodes X(i, j), level i (widths ``width * 2**i``), column
j = 0 .. depth-1-i. X(i, 0) is the encoder (standard unit on maxpool(X(i-1, 0))); X(i, j >= 1) runs a
standard unit on concat[Up(X(i+1, j-1)), X(i, 0), ..., X(i, j-1)] (up-sampled tensor first), where Up is
each node's own 2x2/2 transposed conv ``widths[i+1] -> widths[i]``. Standard unit (official):
conv3x3-ReLU-Dropout-conv3x3-ReLU-Dropout, bias on, no BatchNorm; dropout 0.5 is the official choice.

Heads are 1x1 convs on X(0, 1) .. X(0, depth-1) (logits, no sigmoid). Without deep supervision only the
X(0, depth-1) head exists (as in the Keras model, which builds only the heads it returns). With deep
supervision there are ``depth - 1`` heads: train mode returns their logit maps as a list (one BCE loss
each, summed, as the official Keras training); eval mode returns one tensor, the mean of the heads'
logits ("accurate mode").
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bench.architectures import register_arch
from bench.architectures._blocks import InitMode, SegmentationNet, conv3x3, up_conv


def standard_unit(in_channels: int, out_channels: int, dropout: float) -> nn.Sequential:
    """Official UNet++ unit: conv3x3-ReLU-Dropout-conv3x3-ReLU-Dropout (bias on, no BN)."""
    return nn.Sequential(
        conv3x3(in_channels, out_channels),
        nn.ReLU(),
        nn.Dropout(dropout),
        conv3x3(out_channels, out_channels),
        nn.ReLU(),
        nn.Dropout(dropout),
    )


class NestedNode(nn.Module):
    """Node X(i, j >= 1): its own convT up of X(i+1, j-1), concat [up, X(i,0..j-1)], standard unit."""

    def __init__(self, channels: int, below: int, column: int, dropout: float) -> None:
        super().__init__()
        self.up = up_conv(below, channels)
        self.unit = standard_unit((column + 1) * channels, channels, dropout)

    def forward(self, below: Tensor, same_level: list[Tensor]) -> Tensor:
        return self.unit(torch.cat([self.up(below), *same_level], dim=1))


@register_arch("unetpp", paper_rows={"table5": 1})
class UNetPlusPlus(SegmentationNet):
    """UNet++ with the official Keras topology; ``deep_supervision`` adds the ``depth - 2`` extra heads.

    Paper size (in=3, width 32, depth 5): 9,042,177 params (in=1: 9,041,601), 29.788 GMACs; with deep
    supervision 9,042,276 params, 29.794 GMACs.
    """

    display_name = "UNet++"

    def __init__(
        self,
        in_channels: int = 3,
        classes: int = 1,
        width: int = 32,
        depth: int = 5,
        init: InitMode = "xavier_uniform",
        deep_supervision: bool = False,
        dropout: float = 0.5,
    ) -> None:
        super().__init__(in_channels, classes, width, depth, init)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"UNetPlusPlus dropout must be in [0, 1), got {dropout}")
        self.deep_supervision, self.dropout = deep_supervision, dropout
        widths = self.widths
        self.encoder = nn.ModuleList(
            standard_unit(cin, c, dropout) for cin, c in zip([in_channels, *widths[:-1]], widths)
        )
        self.pool = nn.MaxPool2d(2)
        # nodes[i][j - 1] is X(i, j) for j = 1 .. depth-1-i.
        self.nodes = nn.ModuleList(
            nn.ModuleList(NestedNode(widths[i], widths[i + 1], j, dropout) for j in range(1, depth - i))
            for i in range(depth - 1)
        )
        n_heads = depth - 1 if deep_supervision else 1
        self.heads = nn.ModuleList(nn.Conv2d(widths[0], classes, kernel_size=1) for _ in range(n_heads))
        self.reset_parameters()

    def grid(self, x: Tensor) -> list[Tensor]:
        """Node outputs X(0, 1) .. X(0, depth-1), computed in the official order (anti-diagonals)."""
        rows: list[list[Tensor]] = [[] for _ in range(self.depth)]
        for k, encoder in enumerate(self.encoder):
            rows[k].append(encoder(self.pool(rows[k - 1][0]) if k else x))
            for j in range(1, k + 1):  # X(k-1, 1), X(k-2, 2), ..., X(0, k)
                i = k - j
                rows[i].append(self.nodes[i][j - 1](rows[i + 1][j - 1], rows[i]))
        return rows[0][1:]

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        """``x``: N x in_channels x H x W -> logits N x classes x H x W.

        With deep supervision in train mode: a list of ``depth - 1`` logit maps (shallowest first).
        """
        self.check_input(x)
        top = self.grid(x)
        if not self.deep_supervision:
            return self.heads[0](top[-1])
        logits = [head(node) for head, node in zip(self.heads, top)]
        return logits if self.training else torch.stack(logits).mean(dim=0)
