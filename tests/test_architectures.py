"""Every registered architecture, tested with no per-architecture special cases (timm style)."""

from __future__ import annotations

import pytest
import torch

from bench.architectures import ARCHITECTURES, PAPER_ARCHS, create_model, list_models
from bench.architectures._blocks import count_macs, count_parameters

# docs/architectures.md, "Acceptance numbers": (params in=3, params in=1, GMACs) at width 32, depth 5, 256x256.
SPEC = {
    "unet": (7_760_097, 7_759_521, 12.071),
    "residual_unet": (8_118_599, 8_117_955, 12.749),
    "resdunet": (10_523_293, 10_522_653, 19.996),
    "unetpp": (9_042_177, 9_041_601, 29.788),
    "multiresunet": (7_238_228, 7_237_982, 15.674),
    "mildnet": (25_381_447, 25_379_651, 45.477),
    "mildnet_no_mlr": (22_242_247, 22_240_451, 35.813),
    "unet_mlr": (10_899_297, 10_898_721, 21.735),
}

# docs/architectures.md, "Readings of the MLDR block": the registered readings, same columns as SPEC.
READINGS_SPEC = {
    "mildnet_p2": (25_381_383, 25_379_587, 45.477),
    "mildnet_p1": (25_381_383, 25_379_587, 45.477),
    "mildnet_pq": (25_734_055, 25_732_195, 46.154),
    "mildnet_p2_preact": (25_381_447, 25_379_651, 45.477),
    "mildnet_p1_preact": (25_381_447, 25_379_651, 45.477),
    "mildnet_pq_preact": (25_734_119, 25_732_259, 46.154),
}

NAMES = list_models()


def tiny(name: str, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, **{"in_channels": 3, "classes": 1, "width": 4, "depth": 3, **kw})


def test_all_paper_architectures_registered() -> None:
    assert set(PAPER_ARCHS) <= set(NAMES)
    assert set(SPEC) == set(PAPER_ARCHS)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("in_channels", [1, 3])
def test_forward_shape_dtype_and_backward(name: str, in_channels: int) -> None:
    model = tiny(name, in_channels=in_channels).train()
    x = torch.rand(2, in_channels, 32, 48)
    out = model(x)
    outs = out if isinstance(out, (list, tuple)) else [out]
    for o in outs:
        assert o.shape == (2, 1, 32, 48) and o.dtype == torch.float32
    sum(o.mean() for o in outs).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", NAMES)
def test_eval_returns_single_logit_map(name: str) -> None:
    model = tiny(name, classes=2).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 32, 32))
    assert isinstance(out, torch.Tensor) and out.shape == (1, 2, 32, 32)


@pytest.mark.parametrize("name", NAMES)
def test_width_and_depth_are_honoured(name: str) -> None:
    small, wide, deep = tiny(name), tiny(name, width=8), tiny(name, depth=4)
    assert count_parameters(wide) > 3 * count_parameters(small)
    assert count_parameters(deep) > 3 * count_parameters(small)
    with torch.no_grad():
        assert deep.eval()(torch.rand(1, 3, 32, 32)).shape[-2:] == (32, 32)


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_size_is_a_clear_error(name: str) -> None:
    model = tiny(name, depth=4).eval()
    with pytest.raises(ValueError, match="multiples of 8"):
        model(torch.rand(1, 3, 36, 36))


@pytest.mark.parametrize("name", NAMES)
def test_seeded_init_is_reproducible_and_xavier(name: str) -> None:
    a, b = tiny(name), tiny(name)
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(pa, pb)
    convs = [m for m in a.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert convs and all(m.bias is None or not m.bias.any() for m in convs)
    normal = tiny(name, init="xavier_normal")
    assert any(not torch.equal(x, y) for x, y in zip(a.state_dict().values(), normal.state_dict().values()))


@pytest.mark.parametrize("name", sorted(SPEC) + sorted(READINGS_SPEC))
def test_paper_size_parameters_and_macs_match_the_specification(name: str) -> None:
    params3, params1, gmacs = {**SPEC, **READINGS_SPEC}[name]
    with torch.device("meta"):
        m3 = create_model(name, in_channels=3, classes=1, width=32, depth=5)
        m1 = create_model(name, in_channels=1, classes=1, width=32, depth=5)
    assert count_parameters(m3) == params3
    assert count_parameters(m1) == params1
    assert count_macs(m3, 3, 256) / 1e9 == pytest.approx(gmacs, rel=1e-3)


def test_registry_rejects_duplicates_naming_both_origins() -> None:
    with pytest.raises(ValueError, match="duplicate architecture name 'unet'.*registered by .*and again by"):
        ARCHITECTURES.register("unet", torch.nn.Identity)


def test_registry_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(KeyError, match="did you mean mildnet"):
        create_model("mildnett")


def test_registry_wildcards() -> None:
    assert list_models("mildnet*") == ["mildnet", "mildnet_no_mlr", *sorted(READINGS_SPEC)]
    assert list_models("mildnet_p?") == ["mildnet_p1", "mildnet_p2", "mildnet_pq"]
    assert {"unet", "unet_mlr", "unetpp"} <= set(list_models("unet*"))


def test_smp_bridge_builds_random_init_models() -> None:
    model = create_model("smp:Unet:resnet18", in_channels=1, classes=1)
    with torch.no_grad():
        assert model.eval()(torch.rand(1, 1, 64, 64)).shape == (1, 1, 64, 64)
    with pytest.raises(KeyError, match="unknown smp encoder"):
        create_model("smp:Unet:not_an_encoder")


def test_unetpp_deep_supervision_trains_all_heads_and_averages_at_eval() -> None:
    model = tiny("unetpp", deep_supervision=True, dropout=0.0).train()  # no dropout: train == eval up to heads
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        heads = model(x)
        assert isinstance(heads, list) and len(heads) == 2 and all(h.shape == (1, 1, 32, 32) for h in heads)
        assert torch.allclose(model.eval()(x), torch.stack(heads).mean(0))
    with torch.device("meta"):
        full = create_model("unetpp", width=32, depth=5, deep_supervision=True)
    assert count_parameters(full) == 9_042_276
