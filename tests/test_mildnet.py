"""MILDNet specifics: MLDR block formula and semantics, structure arguments, no-MLR ablation, a tiny fit."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.architectures import create_model, display_name
from bench.architectures._blocks import MLRBlock, count_parameters
from bench.architectures.mildnet import MILDNet, MLDRBlock


def mldr_params(cin: int, c: int, n_dil: int = 3, levels: int = 2) -> int:
    """The MLDR formula of docs/architectures.md ("MILDNet"), generalised to n dilation rates and L levels."""
    first = 2 * cin + n_dil * (9 * cin * c + c)
    later = 2 * c + n_dil * (9 * c * c + c)
    return first + (cin * c + c) + (levels - 1) * later


def tiny(**kw) -> MILDNet:
    torch.manual_seed(0)
    return MILDNet(**{"in_channels": 3, "classes": 1, "width": 4, "depth": 3, **kw})


@pytest.mark.parametrize("cin,c", [(3, 4), (1, 4), (8, 4), (4, 4)])
def test_mldr_parameter_formula_at_small_width(cin: int, c: int) -> None:
    assert count_parameters(MLDRBlock(cin, c)) == mldr_params(cin, c)


def test_mldr_formula_matches_the_spec_per_block_number() -> None:
    assert mldr_params(3, 32) == 30_630 and mldr_params(512, 256) == 5_442_816


@pytest.mark.parametrize("dilations,levels", [((1, 3, 5), 1), ((1, 2, 4), 3), ((2,), 2), ((1, 3, 7), 5)])
def test_dilations_and_levels_set_the_block_structure(dilations: tuple[int, ...], levels: int) -> None:
    block = MLDRBlock(3, 4, dilations, levels)
    assert len(block.levels) == levels
    for level in block.levels:
        assert [conv.dilation for conv in level.branches] == [(d, d) for d in dilations]
        assert [conv.padding for conv in level.branches] == [(d, d) for d in dilations]
    assert count_parameters(block) == mldr_params(3, 4, len(dilations), levels)
    assert block(torch.rand(2, 3, 16, 16)).shape == (2, 4, 16, 16)


def test_network_passes_dilations_and_levels_to_every_block() -> None:
    model = tiny(dilations=(1, 2), levels=3)
    blocks = [m for m in model.modules() if isinstance(m, MLDRBlock)]
    assert len(blocks) == 2 * 3 - 1
    assert all(len(b.levels) == 3 and len(b.levels[0].branches) == 2 for b in blocks)
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 1, 32, 32)


def test_mldr_forward_is_multilevel_residual_with_shared_projection() -> None:
    torch.manual_seed(0)
    block = MLDRBlock(3, 4, levels=2).eval()
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        p = block.project(x)
        h1 = block.levels[0](x) + p
        expected = block.levels[1](h1) + h1 + p
        assert torch.allclose(block(x), expected, atol=1e-6)


def test_bad_block_arguments_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="levels >= 1"):
        MLDRBlock(3, 4, levels=0)
    with pytest.raises(ValueError, match="dilation"):
        MLDRBlock(3, 4, dilations=())


def test_no_mlr_ablation_has_plain_skips() -> None:
    full, ablation = tiny(), create_model("mildnet_no_mlr", in_channels=3, classes=1, width=4, depth=3)
    assert isinstance(ablation, MILDNet) and not ablation.mlr_skips
    assert all(isinstance(s, nn.Identity) for s in ablation.skips)
    assert not any(isinstance(m, MLRBlock) for m in ablation.modules())
    assert sum(isinstance(m, MLRBlock) for m in full.modules()) == 2
    mlr = sum(4 * (9 * c * c + 3 * c) for c in (4, 8))
    assert count_parameters(full) - count_parameters(ablation) == mlr
    assert display_name("mildnet") == "MILDNet" and display_name("mildnet_no_mlr") == "MILDNet (without MLR)"


def test_three_training_steps_lower_the_loss_on_a_toy_problem() -> None:
    model = tiny().train()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 3, 32, 32, generator=g)
    y = (x[:, :1] > 0.5).float()
    loss_fn = nn.BCEWithLogitsLoss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(4):
        loss = loss_fn(model(x), y)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[-1] < losses[0]


def test_tuned_constructor_arguments_from_a_job_build_the_same_network() -> None:
    """A job's arch_kwargs come back from JSON with lists: the network is the one the tuple builds."""
    import json

    from_json = tiny(**json.loads('{"dilations": [1, 2, 4], "levels": 1}'))
    assert from_json.dilations == (1, 2, 4) and len(from_json.encoder[0].levels) == 1
    direct = tiny(dilations=(1, 2, 4), levels=1)
    assert all(torch.equal(a, b) for a, b in zip(from_json.state_dict().values(), direct.state_dict().values()))
    assert [m.dilation for m in from_json.encoder[0].levels[0].branches] == [(1, 1), (2, 2), (4, 4)]


def test_mlr_levels_without_mlr_skips_is_refused() -> None:
    with pytest.raises(ValueError, match="mlr_levels=1 has no effect without MLR skips"):
        create_model("mildnet_no_mlr", in_channels=1, width=4, depth=3, mlr_levels=1)
    assert tiny(mlr_levels=1) is not None and create_model("mildnet_no_mlr", width=4, depth=3) is not None
