"""Initialisation diagnostics of registry entries: how large activations, logits, loss and gradients start.

``init_stats("mildnet")`` builds the entry at its default init (``torch.manual_seed(seed)`` first, as the
tests do), in train mode (BatchNorm uses batch statistics), and runs one forward and backward pass on a
seeded synthetic batch: uniform random images and a mask of random elliptic blobs. It reports

- the standard deviation of each top-level block's output, in the order the blocks run: the elements of the
  model's ``encoder`` and ``decoder`` ModuleLists where it has them, otherwise (generic fallback) every
  top-level child that holds parameters (a ModuleList child: each of its elements);
- the standard deviation of the logits and the BCE-with-logits against the mask;
- the gradient norm of each stage's parameters: ``encoder`` (parameters under the top-level ``encoder``),
  ``head`` (under a top-level child whose name contains "head") and ``decoder`` (everything else: up-sampling,
  skip blocks and decoder blocks).

``python benchmarks/init_stats.py`` and ``bench list --init-stats`` print ``format_table`` of every
registered entry; tests/test_init_stats.py bounds the logits' standard deviation. See docs/architectures.md,
"Readings of the MLDR block", for the measurements.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class InitStats:
    """One entry's statistics at initialisation (see the module docstring)."""

    name: str
    display_name: str
    logits_std: float
    bce: float
    #: (group, std) per block output, in the order the blocks ran; group ``enc`` or ``dec`` (the elements of
    #: ``encoder`` / ``decoder``), or in the generic fallback the name of the model's child.
    block_stds: tuple[tuple[str, float], ...]
    #: stage -> L2 norm of the gradient of its parameters: ``encoder``, ``decoder``, ``head``.
    grad_norms: dict[str, float]
    saturates_at_init: bool = False

    @property
    def max_block_std(self) -> float:
        return max((s for _, s in self.block_stds), default=math.nan)


def synthetic_batch(
    batch: int = 4, channels: int = 3, size: int = 64, seed: int = 0, blobs: int = 3
) -> tuple[Tensor, Tensor]:
    """``(images, masks)``: N x C x S x S uniform noise in [0, 1) and an N x 1 x S x S mask of ``blobs``
    random ellipses per image (centres anywhere, semi-axes 5-25% of the side), from a generator seeded ``seed``."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, channels, size, size, generator=g)
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    centres = torch.rand(batch, blobs, 2, generator=g)
    axes = 0.05 + 0.2 * torch.rand(batch, blobs, 2, generator=g)
    dy = (yy - centres[..., 0, None, None]) / axes[..., 0, None, None]
    dx = (xx - centres[..., 1, None, None]) / axes[..., 1, None, None]
    masks = ((dy**2 + dx**2) <= 1).any(dim=1, keepdim=True).float()
    return images, masks


def _blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(group, module) of every block to hook: ``enc``/``dec`` elements, or the generic fallback."""
    lists = [(g, getattr(model, a, None)) for g, a in (("enc", "encoder"), ("dec", "decoder"))]
    found = [(g, m) for g, m in lists if isinstance(m, nn.ModuleList)]
    if found:
        return [(g, block) for g, blocks in found for block in blocks]
    out: list[tuple[str, nn.Module]] = []
    for name, child in model.named_children():
        if not any(True for _ in child.parameters()):
            continue
        members = list(child) if isinstance(child, nn.ModuleList) else [child]
        out += [(name, m) for m in members]
    return out


def stage_of(parameter_name: str) -> str:
    """``encoder``, ``head`` or ``decoder`` for a ``named_parameters`` name (see the module docstring)."""
    top = parameter_name.split(".", 1)[0]
    if top == "encoder":
        return "encoder"
    return "head" if "head" in top else "decoder"


def model_stats(
    model: nn.Module,
    images: Tensor,
    masks: Tensor,
    name: str = "",
    display_name: str | None = None,
    saturates_at_init: bool = False,
) -> InitStats:
    """One forward and backward pass of ``model`` as it is (put it in train mode first) on ``images``; BCE
    against ``masks``. A model returning a list of logit maps (deep supervision) gets the mean of their losses
    and the std of the last map. ``name``, ``display_name``, ``saturates_at_init`` are copied to the result."""
    ran: list[tuple[str, float]] = []

    def hook_for(group: str) -> Callable[[nn.Module, object, object], None]:
        def hook(_module: nn.Module, _inputs: object, output: object) -> None:
            if isinstance(output, Tensor):
                ran.append((group, output.detach().float().std().item()))

        return hook

    handles = [block.register_forward_hook(hook_for(group)) for group, block in _blocks(model)]
    try:
        out = model(images)
    finally:
        for handle in handles:
            handle.remove()
    heads = list(out) if isinstance(out, (list, tuple)) else [out]
    loss = sum(F.binary_cross_entropy_with_logits(h, masks) for h in heads) / len(heads)
    loss.backward()
    squares = {"encoder": 0.0, "decoder": 0.0, "head": 0.0}
    for pname, p in model.named_parameters():
        if p.grad is not None:
            squares[stage_of(pname)] += float(p.grad.detach().double().pow(2).sum())
    return InitStats(
        name=name,
        display_name=name if display_name is None else display_name,
        logits_std=heads[-1].detach().float().std().item(),
        bce=float(loss.detach()),
        block_stds=tuple(ran),
        grad_norms={k: v**0.5 for k, v in squares.items()},
        saturates_at_init=saturates_at_init,
    )


def init_stats(
    name: str,
    *,
    width: int = 8,
    depth: int = 5,
    size: int = 64,
    batch: int = 4,
    seed: int = 0,
    in_channels: int = 3,
) -> InitStats:
    """Statistics of registry entry ``name`` at its default init (module docstring); one class (``classes=1``)."""
    from bench.architectures import ARCHITECTURES

    entry = ARCHITECTURES.get(name)
    torch.manual_seed(seed)
    model = ARCHITECTURES.create(name, in_channels=in_channels, classes=1, width=width, depth=depth).train()
    images, masks = synthetic_batch(batch, in_channels, size, seed)
    return model_stats(
        model,
        images,
        masks,
        name,
        display_name=ARCHITECTURES.display_name(name),
        saturates_at_init=entry.saturates_at_init,
    )


def measure(names: Iterable[str] | None = None, **kwargs: int) -> list[InitStats]:
    """``init_stats`` of each name (default: every registered entry; open-ended ``smp:`` names are never listed)."""
    from bench.architectures import list_models

    return [init_stats(n, **kwargs) for n in (list_models() if names is None else names)]


def _num(value: float) -> str:
    """Three significant digits, without exponents below 10^4."""
    if math.isnan(value):
        return "-"
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.3g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.1e}"


def _blocks_text(stats: InitStats) -> str:
    """Block stds, encoder then decoder blocks, each group in running order: ``1.2 3.4 / 5.6 7.8``."""
    groups: dict[str, list[str]] = {}
    for group, std in stats.block_stds:
        groups.setdefault(group, []).append(_num(std))
    return " / ".join(" ".join(v) for v in groups.values())


def header(
    *, width: int = 8, depth: int = 5, size: int = 64, batch: int = 4, seed: int = 0, in_channels: int = 3
) -> str:
    """The line above ``format_table`` that states the settings."""
    return (
        f"Initialisation statistics (train mode, in_channels={in_channels}, width={width}, depth={depth}, "
        f"batch {batch} x {size}x{size}, seed {seed}):"
    )


COLUMNS = ("name", "logits std", "BCE", "grad enc", "grad dec", "grad head", "max block", "flag", "block output std")


def _rows(stats: Iterable[InitStats]) -> list[list[str]]:
    return [
        [
            s.name,
            _num(s.logits_std),
            _num(s.bce),
            _num(s.grad_norms["encoder"]),
            _num(s.grad_norms["decoder"]),
            _num(s.grad_norms["head"]),
            _num(s.max_block_std),
            "saturates" if s.saturates_at_init else "",
            _blocks_text(s),
        ]
        for s in stats
    ]


def format_table(stats: Iterable[InitStats], markdown: bool = False) -> str:
    """The statistics as an aligned text table (or a Markdown table): one row per entry.

    "flag" says ``saturates`` for an entry registered with ``saturates_at_init``; "block output std" lists the
    encoder blocks' output stds, then (after ``/``) the decoder blocks', each in the order they run.
    """
    rows = _rows(stats)
    if markdown:
        lines = ["| " + " | ".join(COLUMNS) + " |", "|---|" + "---:|" * (len(COLUMNS) - 3) + "---|---|"]
        lines += ["| " + " | ".join([f"`{r[0]}`", *r[1:]]) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(COLUMNS)]

    def line(cells: list[str]) -> str:
        first = f"{cells[0]:<{widths[0]}}"
        middle = [f"{c:>{w}}" for c, w in zip(cells[1:-2], widths[1:-2])]
        return "  ".join([first, *middle, f"{cells[-2]:<{widths[-2]}}", cells[-1]]).rstrip()

    return "\n".join([line(list(COLUMNS)), *(line(r) for r in rows)])
