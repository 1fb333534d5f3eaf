"""Every registered architecture starts unsaturated: its logits at initialisation stay below a bound.

At its default settings (width 8, depth 5, 64 px, batch 4, seed 0, train mode; architectures/_init_stats.py)
each entry's logits std must stay below ``LOGITS_STD_BOUND``. Measured (docs/architectures.md, "Readings of the
MLDR block"): U-Net 0.03, ResidualU-Net 1.8, ResDUNet 0.8, MultiResUNet 1.0, UNet++ 0.76, MILDNet with P added
once 3.9, with an outer projection 5.4, with a pre-activation head below 1; MILDNet with P added twice 44 (31
without MLR). An entry kept on purpose to reproduce a saturating reading is registered with
``saturates_at_init=True``, and then its logits must exceed the bound: the flag is checked both ways, so it
cannot go stale when a default changes.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from bench.architectures import get_arch, list_models
from bench.architectures._init_stats import (
    InitStats,
    format_table,
    init_stats,
    model_stats,
    stage_of,
    synthetic_batch,
)
from bench.cli import main

#: Between the largest unflagged entry (5.4) and the smallest flagged one (31), about a factor 2 from each.
LOGITS_STD_BOUND = 10.0
NAMES = list_models()


@pytest.fixture(scope="module")
def stats() -> dict[str, InitStats]:
    return {name: init_stats(name, width=8, depth=5, size=64, batch=4, seed=0) for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_logits_at_init_stay_below_the_bound_unless_flagged(name: str, stats: dict[str, InitStats]) -> None:
    s = stats[name]
    assert math.isfinite(s.logits_std) and math.isfinite(s.bce)
    if get_arch(name).saturates_at_init:
        assert s.logits_std > LOGITS_STD_BOUND, (
            f"{name} is registered with saturates_at_init=True but its logits std at init is {s.logits_std:.3g}, "
            f"below the bound {LOGITS_STD_BOUND}: remove the flag"
        )
    else:
        assert s.logits_std < LOGITS_STD_BOUND, (
            f"{name}: logits std at init {s.logits_std:.3g} exceeds {LOGITS_STD_BOUND} (block output stds "
            f"{[round(v, 2) for _, v in s.block_stds]}); fix the architecture, or register it with "
            "saturates_at_init=True if it reproduces a saturating reading on purpose"
        )


def test_the_paper_baselines_pass_with_margin(stats: dict[str, InitStats]) -> None:
    for name in ("unet", "residual_unet", "resdunet", "unetpp", "multiresunet"):
        assert stats[name].logits_std < LOGITS_STD_BOUND / 4, name


def test_every_stage_gets_a_gradient_and_blocks_are_reported_in_running_order(stats: dict[str, InitStats]) -> None:
    for name in NAMES:
        s = stats[name]
        assert all(v > 0 and math.isfinite(v) for v in s.grad_norms.values()), (name, s.grad_norms)
        groups = [g for g, _ in s.block_stds]
        assert groups[:5] == ["enc"] * 5, (name, groups)
    assert [g for g, _ in stats["mildnet"].block_stds] == ["enc"] * 5 + ["dec"] * 4
    assert [g for g, _ in stats["unet"].block_stds] == ["enc"] * 5 + ["dec"] * 4


def test_synthetic_batch_is_seeded_and_the_mask_is_neither_empty_nor_full() -> None:
    (x1, y1), (x2, y2) = synthetic_batch(4, 3, 64, seed=0), synthetic_batch(4, 3, 64, seed=0)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert x1.shape == (4, 3, 64, 64) and y1.shape == (4, 1, 64, 64)
    assert set(y1.unique().tolist()) <= {0.0, 1.0}
    assert all(0.01 < float(m.mean()) < 0.9 for m in y1)
    assert not torch.equal(synthetic_batch(4, 3, 64, seed=1)[1], y1)


def test_a_model_without_encoder_and_decoder_lists_gets_its_children_hooked() -> None:
    class Plain(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(3, 4, 3, padding=1)
            self.body = nn.ModuleList([nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)])
            self.act = nn.ReLU()
            self.segmentation_head = nn.Conv2d(4, 1, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.act(self.stem(x))
            for conv in self.body:
                x = self.act(conv(x))
            return self.segmentation_head(x)

    torch.manual_seed(0)
    images, masks = synthetic_batch(2, 3, 16, seed=0)
    s = model_stats(Plain().train(), images, masks, "plain")
    assert [g for g, _ in s.block_stds] == ["stem", "body", "body", "segmentation_head"]
    assert s.block_stds[-1][1] == pytest.approx(s.logits_std)
    assert s.grad_norms["head"] > 0 and s.grad_norms["decoder"] > 0 and s.grad_norms["encoder"] == 0
    assert "plain" in format_table([s]) and "stem" not in format_table([s])


def test_stages_of_parameter_names() -> None:
    assert stage_of("encoder.0.levels.0.bn.weight") == "encoder"
    assert stage_of("head.weight") == stage_of("heads.0.bias") == stage_of("segmentation_head.0.weight") == "head"
    for name in ("skips.1.levels.0.0.0.weight", "ups.0.weight", "nodes.0.0.up.bias", "decoder.3.project.weight"):
        assert stage_of(name) == "decoder", name


def _script_main():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "init_stats.py"
    spec = importlib.util.spec_from_file_location("init_stats_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_bench_list_init_stats_prints_the_scripts_table(capsys: pytest.CaptureFixture) -> None:
    assert main(["list", "mildnet_p*", "--init-stats", "--width", "4", "--size", "32"]) == 0
    listed = capsys.readouterr().out
    assert _script_main()(["mildnet_p*", "--width", "4", "--size", "32"]) == 0
    assert capsys.readouterr().out == listed
    lines = listed.splitlines()
    assert lines[0].startswith("Initialisation statistics (train mode, in_channels=3, width=4, depth=5, batch 4")
    assert [ln.split()[0] for ln in lines[2:]] == list_models("mildnet_p*")
    assert "saturates" in next(ln for ln in lines if ln.startswith("mildnet_p2 "))
    assert "Datasets:" not in listed
