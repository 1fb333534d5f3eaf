"""Gradient saliency per decoder stage (bench.report.saliency, bench saliency)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from seeing_sweep import train_tiny

from bench.architectures import create_model
from bench.cli import main
from bench.report.saliency import decoder_stages, saliency_maps
from bench.results.checkpoint import load_model
from bench.results.stored import stored_models

TINY = {"in_channels": 3, "classes": 1, "width": 4, "depth": 3}


@pytest.mark.parametrize(
    "arch,n_stages",
    [
        ("unet", 2),
        ("mildnet", 2),
        ("multiresunet", 2),
        ("resdunet", 2),
        ("residual_unet", 2),
        ("unetpp", 3),
        ("unet_mlr", 2),
    ],
)
def test_every_architecture_has_its_decoder_stages(arch: str, n_stages: int) -> None:
    torch.manual_seed(0)
    model = create_model(arch, **TINY)
    assert len(decoder_stages(model)) == n_stages
    maps, stages = saliency_maps(model, torch.rand(2, 3, 32, 32))
    assert maps.shape == (2, 32, 32) and stages.shape == (2, n_stages, 32, 32)
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
    np.testing.assert_allclose(maps, stages.mean(axis=1), rtol=1e-6)


def test_smp_decoder_blocks() -> None:
    model = create_model("smp:Unet:resnet18", in_channels=3, classes=1)
    assert len(decoder_stages(model)) == 5
    maps, _ = saliency_maps(model, torch.rand(1, 3, 32, 32))
    assert maps.shape == (1, 32, 32) and np.isfinite(maps).all()


def test_a_model_without_decoder_stages_is_refused() -> None:
    with pytest.raises(ValueError, match="no decoder stages found"):
        decoder_stages(torch.nn.Conv2d(3, 1, 1))


def test_each_image_is_its_own_backward_pass() -> None:
    torch.manual_seed(0)
    model = create_model("unet", **TINY)
    x = torch.rand(3, 3, 32, 32)
    together, _ = saliency_maps(model, x)
    alone, _ = saliency_maps(model, x[1:2])
    np.testing.assert_allclose(together[1], alone[0], rtol=1e-5, atol=1e-6)
    assert not any(p.grad is not None for p in model.parameters())


@pytest.mark.slow
def test_trained_model_saliency_has_the_input_shape_and_varies(tmp_path: Path) -> None:
    results = train_tiny(tmp_path / "results")
    out = tmp_path / "fig"
    assert (
        main(
            [
                "saliency",
                "--dataset",
                "dsb2018",
                "--arch",
                "unet,mildnet",
                "--n",
                "2",
                "--results",
                str(results),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert (out / "saliency_dsb2018.png").stat().st_size > 1000
    with np.load(out / "saliency_dsb2018.npz") as z:
        images = z["images"]
        assert list(z["case_ids"]) and len(z["case_ids"]) == 2
        for arch in ("unet", "mildnet"):
            maps = z[arch]
            assert maps.shape == (2, *images.shape[-2:])  # the input's shape
            assert np.isfinite(maps).all()
            assert all(m.std() > 0 for m in maps)  # not constant
            assert z[f"{arch}__stages"].shape == (2, 2, *images.shape[-2:])
    # the same maps as recomputing from the stored checkpoint
    model, _ = load_model(stored_models(results, "dsb2018", "unet")[0].checkpoint, "unet")
    again, _ = saliency_maps(model, torch.from_numpy(images))
    with np.load(out / "saliency_dsb2018.npz") as z:
        np.testing.assert_allclose(again, z["unet"], rtol=1e-5, atol=1e-6)
    # the report draws the figure only: the raw maps stay with `bench saliency`
    from bench.report.saliency import saliency

    drawn = saliency(results, "dsb2018", ["unet"], tmp_path / "report", n=1, raw=False)
    assert drawn and not any(p.suffix == ".npz" for p in drawn) and not list((tmp_path / "report").glob("*.npz"))
