"""MILDNet: multi-level dilated residual U-Net (Gudhe et al., Sci Rep 2021; docs/architectures.md, "MILDNet").

U-Net skeleton (max-pool down, 2x2 transposed conv up halving channels, concat ``[up, skip]``, 1x1 head)
whose conv blocks are MLDR blocks and whose skips pass through MLR blocks (``mlr_skips=False`` gives
the Table 4 ablation with plain skips). Returns logits of the input's H x W.

The paper leaves open how the MLDR block's shortcuts carry the channel change; ``shortcut`` picks one of
three readings and ``head_preact`` adds a BN-ReLU before the 1x1 head (docs/architectures.md, "Readings of
the MLDR block"). Each combination is registered under its own name (``mildnet_p2``, ``mildnet_p1``,
``mildnet_pq`` and their ``_preact`` forms); the paper's entries ``mildnet`` and ``mildnet_no_mlr`` use
``DEFAULT_READING``.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from bench.architectures import register_arch
from bench.architectures._blocks import InitMode, MLRBlock, SegmentationNet, conv3x3, up_conv

#: How an MLDR block's shortcuts are built (docs/architectures.md, "Readings of the MLDR block"):
#: ``shared_twice`` (a) the 1x1 projection P is added at level 1 and again by the outer connection;
#: ``once`` (b) P is added at level 1 only and the outer connection is the identity over the levels;
#: ``outer_projection`` (c) the outer connection has its own 1x1 projection Q followed by BN.
Shortcut = Literal["shared_twice", "once", "outer_projection"]
SHORTCUTS: tuple[str, ...] = ("shared_twice", "once", "outer_projection")

#: The reading the paper's entries ``mildnet`` and ``mildnet_no_mlr`` build: (b) with the pre-activation head,
#: chosen on the measurements in docs/architectures.md ("Readings of the MLDR block"). Switching it is this line.
DEFAULT_READING: dict[str, Any] = {"shortcut": "once", "head_preact": True}  # also the constructors' defaults
#: Whether that reading's logits exceed the init-stats bound (tests/test_init_stats.py): true for reading (a)
#: without the pre-activation head. Set it with DEFAULT_READING.
DEFAULT_SATURATES_AT_INIT = False


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

    Level 1: ``h = F_1(x) + P(x)`` with ``P`` a 1x1 projection (bias on, no BN); level k > 1:
    ``h = F_k(h) + h``. Each ``F_k`` is a :class:`DilatedSum`. The outer ("residual of residual")
    connection depends on ``shortcut``:

    - ``"shared_twice"`` (a): ``out = h + P(x)``, reusing the same ``P`` (computed once), so for two levels
      ``out = F_2(h_1) + F_1(x) + 2 P(x)``;
    - ``"once"`` (b): ``out = h``; ``P`` enters once, the outer connection is the identity over the levels;
    - ``"outer_projection"`` (c): ``out = h + Q(x)``, ``Q`` its own 1x1 conv (bias on) followed by BN, as
      the projection shortcuts of residual-of-residual networks (Zhang et al. 2017) are.

    No activation after the final add. ``P`` is used even when Cin == C, so the parameter count follows
    one formula; for two levels and three dilation rates, (a) and (b) have
    ``2Cin + 3(9 Cin C + C) + (Cin C + C) + 2C + 3(9C^2 + C)`` and (c) ``Cin C + 3C`` more (Q's weights and
    bias, BN's gamma and beta).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dilations: tuple[int, ...] = (1, 3, 5),
        levels: int = 2,
        shortcut: Shortcut = "once",
    ) -> None:
        super().__init__()
        if levels < 1:
            raise ValueError(f"MLDRBlock needs levels >= 1, got {levels}")
        if not dilations or any(d < 1 for d in dilations):
            raise ValueError(f"MLDRBlock needs at least one dilation rate, all >= 1, got {dilations}")
        if shortcut not in SHORTCUTS:
            raise ValueError(f"MLDRBlock shortcut must be one of {', '.join(SHORTCUTS)}; got {shortcut!r}")
        self.shortcut = shortcut
        self.project = nn.Conv2d(in_channels, out_channels, kernel_size=1)
        self.levels = nn.ModuleList(
            DilatedSum(in_channels if k == 0 else out_channels, out_channels, dilations) for k in range(levels)
        )
        if shortcut == "outer_projection":
            self.outer = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: Tensor) -> Tensor:
        projected = self.project(x)
        h = self.levels[0](x) + projected
        for level in self.levels[1:]:
            h = level(h) + h
        if self.shortcut == "shared_twice":
            return h + projected
        if self.shortcut == "outer_projection":
            return h + self.outer(x)
        return h


@register_arch(
    "mildnet",
    paper_rows={"table4": 3, "table5": 5},
    saturates_at_init=DEFAULT_SATURATES_AT_INIT,
    **DEFAULT_READING,
)
class MILDNet(SegmentationNet):
    """MILDNet with ``depth`` levels of widths ``width * 2**i``; MLDR blocks everywhere, MLR skips.

    ``levels`` and ``dilations`` configure every MLDR block (paper: 2 and (1, 3, 5), Table 3);
    ``mlr_levels`` the MLR skip blocks (paper: 2). ``shortcut`` is the reading of the MLDR block's
    shortcuts (see :class:`MLDRBlock`); ``head_preact`` puts BN -> ReLU before the 1x1 head (the
    pre-activation convention of He et al. 2016), adding ``2 * width`` parameters.
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
        shortcut: Shortcut = "once",
        head_preact: bool = True,
    ) -> None:
        super().__init__(in_channels, classes, width, depth, init)
        if not mlr_skips and mlr_levels != 2:
            raise ValueError(f"mlr_levels={mlr_levels} has no effect without MLR skips (mlr_skips=False)")
        self.dilations, self.levels, self.mlr_skips = tuple(dilations), levels, mlr_skips
        self.shortcut, self.head_preact = shortcut, head_preact
        widths = self.widths
        ins = [in_channels, *widths[:-1]]
        self.encoder = nn.ModuleList(MLDRBlock(i, c, self.dilations, levels, shortcut) for i, c in zip(ins, widths))
        self.pool = nn.MaxPool2d(2)
        self.skips = nn.ModuleList(MLRBlock(c, mlr_levels) if mlr_skips else nn.Identity() for c in widths[:-1])
        self.ups = nn.ModuleList(up_conv(2 * c, c) for c in widths[:-1])
        self.decoder = nn.ModuleList(MLDRBlock(2 * c, c, self.dilations, levels, shortcut) for c in widths[:-1])
        conv = nn.Conv2d(widths[0], classes, kernel_size=1)
        self.head = nn.Sequential(nn.BatchNorm2d(widths[0]), nn.ReLU(), conv) if head_preact else conv
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
    "mildnet_no_mlr",
    MILDNet,
    mlr_skips=False,
    display_name="MILDNet (without MLR)",
    paper_rows={"table4": 2},
    saturates_at_init=DEFAULT_SATURATES_AT_INIT,
    **DEFAULT_READING,
)

# The readings of the MLDR block under their own names, whatever DEFAULT_READING is. Reading (a) without the
# pre-activation head starts with logits far above the init-stats bound: it is kept to reproduce that.
register_arch(
    "mildnet_p2",
    MILDNet,
    shortcut="shared_twice",
    head_preact=False,
    display_name="MILDNet (P twice)",
    saturates_at_init=True,
)
register_arch("mildnet_p1", MILDNet, shortcut="once", head_preact=False, display_name="MILDNet (P once)")
register_arch(
    "mildnet_pq", MILDNet, shortcut="outer_projection", head_preact=False, display_name="MILDNet (P + outer Q)"
)
register_arch(
    "mildnet_p2_preact",
    MILDNet,
    shortcut="shared_twice",
    head_preact=True,
    display_name="MILDNet (P twice, pre-act head)",
)
register_arch(
    "mildnet_p1_preact", MILDNet, shortcut="once", head_preact=True, display_name="MILDNet (P once, pre-act head)"
)
register_arch(
    "mildnet_pq_preact",
    MILDNet,
    shortcut="outer_projection",
    head_preact=True,
    display_name="MILDNet (P + outer Q, pre-act head)",
)
