"""MILDNet specifics: MLDR block formula and semantics (each reading of its shortcuts), structure arguments,
the pre-activation head, no-MLR ablation, the registered readings, a tiny fit."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.architectures import create_model, display_name, get_arch
from bench.architectures._blocks import MLRBlock, count_parameters
from bench.architectures.mildnet import DEFAULT_READING, DEFAULT_SATURATES_AT_INIT, SHORTCUTS, MILDNet, MLDRBlock

# Registered readings of the MLDR block: name -> (shortcut, head_preact, display name).
READINGS = {
    "mildnet_p2": ("shared_twice", False, "MILDNet (P twice)"),
    "mildnet_p1": ("once", False, "MILDNet (P once)"),
    "mildnet_pq": ("outer_projection", False, "MILDNet (P + outer Q)"),
    "mildnet_p2_preact": ("shared_twice", True, "MILDNet (P twice, pre-act head)"),
    "mildnet_p1_preact": ("once", True, "MILDNet (P once, pre-act head)"),
    "mildnet_pq_preact": ("outer_projection", True, "MILDNet (P + outer Q, pre-act head)"),
}


def mldr_params(cin: int, c: int, n_dil: int = 3, levels: int = 2, shortcut: str = "shared_twice") -> int:
    """The MLDR formula of docs/architectures.md ("MILDNet"), generalised to n dilation rates and L levels;
    the outer projection reading adds Q (1x1 conv with bias) and its BN."""
    first = 2 * cin + n_dil * (9 * cin * c + c)
    later = 2 * c + n_dil * (9 * c * c + c)
    outer = cin * c + 3 * c if shortcut == "outer_projection" else 0
    return first + (cin * c + c) + (levels - 1) * later + outer


def tiny(**kw) -> MILDNet:
    torch.manual_seed(0)
    return MILDNet(**{"in_channels": 3, "classes": 1, "width": 4, "depth": 3, **kw})


@pytest.mark.parametrize("shortcut", SHORTCUTS)
@pytest.mark.parametrize("cin,c", [(3, 4), (1, 4), (8, 4), (4, 4)])
def test_mldr_parameter_formula_at_small_width(cin: int, c: int, shortcut: str) -> None:
    assert count_parameters(MLDRBlock(cin, c, shortcut=shortcut)) == mldr_params(cin, c, shortcut=shortcut)
    assert count_parameters(MLDRBlock(cin, c, levels=3, shortcut=shortcut)) == mldr_params(
        cin, c, levels=3, shortcut=shortcut
    )


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
    block = MLDRBlock(3, 4, levels=2, shortcut="shared_twice").eval()
    assert block.shortcut == "shared_twice" and not hasattr(block, "outer")
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        p = block.project(x)
        h1 = block.levels[0](x) + p
        expected = block.levels[1](h1) + h1 + p
        assert torch.allclose(block(x), expected, atol=1e-6)


@pytest.mark.parametrize("levels", [1, 2, 3])
def test_mldr_readings_differ_only_in_the_outer_connection(levels: int) -> None:
    x = torch.rand(2, 3, 8, 8)
    blocks = {}
    for shortcut in SHORTCUTS:
        torch.manual_seed(0)
        blocks[shortcut] = MLDRBlock(3, 4, levels=levels, shortcut=shortcut).eval()
    twice, once, outer = blocks["shared_twice"], blocks["once"], blocks["outer_projection"]
    with torch.no_grad():
        h = once.levels[0](x) + once.project(x)
        for level in once.levels[1:]:
            h = level(h) + h
        assert torch.allclose(once(x), h, atol=1e-6)
        # same seed, same modules in the same order: (a) and (b) share their weights
        assert torch.allclose(twice(x), h + once.project(x), atol=1e-6)
        assert isinstance(outer.outer[0], nn.Conv2d) and outer.outer[0].kernel_size == (1, 1)
        assert isinstance(outer.outer[1], nn.BatchNorm2d) and outer.outer[0].bias is not None
        assert torch.allclose(outer(x), h + outer.outer(x), atol=1e-6)
        assert not torch.allclose(outer.outer[0].weight, outer.project.weight)


def test_unknown_shortcut_reading_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="shortcut must be one of shared_twice, once, outer_projection"):
        MLDRBlock(3, 4, shortcut="twice")
    with pytest.raises(ValueError, match="shortcut must be one of"):
        tiny(shortcut="identity")


def test_pre_activation_head_is_bn_relu_before_the_1x1_conv() -> None:
    plain, preact = tiny(head_preact=False), tiny()  # the default reading has the pre-activation head
    assert isinstance(plain.head, nn.Conv2d)
    bn, act, conv = preact.head
    assert isinstance(bn, nn.BatchNorm2d) and bn.num_features == 4 and isinstance(act, nn.ReLU)
    assert isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1) and conv.out_channels == 1
    assert count_parameters(preact) - count_parameters(plain) == 2 * 4
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert preact.train()(x).shape == (2, 1, 16, 16)


@pytest.mark.parametrize("name", sorted(READINGS))
def test_readings_are_registered_with_their_own_names(name: str) -> None:
    shortcut, preact, shown = READINGS[name]
    model = create_model(name, in_channels=3, classes=1, width=4, depth=3)
    assert isinstance(model, MILDNet) and model.mlr_skips
    assert model.shortcut == shortcut and model.head_preact == preact
    assert all(b.shortcut == shortcut for b in [*model.encoder, *model.decoder])
    assert display_name(name) == shown and not get_arch(name).paper_rows
    assert get_arch(name).saturates_at_init == (shortcut == "shared_twice" and not preact)


def test_paper_entries_build_the_default_reading() -> None:
    for name in ("mildnet", "mildnet_no_mlr"):
        entry = get_arch(name)
        assert {k: entry.defaults[k] for k in DEFAULT_READING} == DEFAULT_READING
        assert entry.saturates_at_init == DEFAULT_SATURATES_AT_INIT
        model = create_model(name, in_channels=3, classes=1, width=4, depth=3)
        assert (model.shortcut, model.head_preact) == (DEFAULT_READING["shortcut"], DEFAULT_READING["head_preact"])
    # the paper's entry is the same network as the registered reading it names
    (same,) = [
        n
        for n, (sc, pre, _) in READINGS.items()
        if (sc, pre) == (DEFAULT_READING["shortcut"], DEFAULT_READING["head_preact"])
    ]
    torch.manual_seed(0)
    default = create_model("mildnet", width=4, depth=3)
    torch.manual_seed(0)
    reading = create_model(same, width=4, depth=3)
    assert default.state_dict().keys() == reading.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(default.state_dict().values(), reading.state_dict().values()))


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


def test_the_default_reading_is_p_once_with_a_pre_activation_head() -> None:
    """The class, ``mildnet`` and ``mildnet_no_mlr`` build reading (b) with the BN-ReLU head
    (docs/architectures.md, "Readings of the MLDR block": the decision and its measurements)."""
    for model in (tiny(), create_model("mildnet", width=4, depth=3), create_model("mildnet_no_mlr", width=4, depth=3)):
        assert model.shortcut == "once" and model.head_preact
        assert all(block.shortcut == "once" for block in [*model.encoder, *model.decoder])
