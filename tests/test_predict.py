"""Checkpoints, native-size prediction (tiling, reassembly, resizing back) and ``bench predict``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from native_layouts import grey, make_dsb, make_isbi_png, write
from PIL import Image

from bench.architectures import create_model
from bench.cli import main
from bench.datasets import open_dataset
from bench.datasets.prepare import prepare
from bench.models.mask_io import find_images, read_input, write_masks
from bench.models.predict import covering_offsets, native_probability, network_input, reassemble, tiling, to_native
from bench.results.checkpoint import (
    CheckpointError,
    CheckpointMeta,
    Preprocessing,
    load_model,
    read_checkpoint,
    save_checkpoint,
)
from bench.run.evaluate import predict as predict_batches

TINY = ["--set", "epochs=1", "--set", "image_size=32", "--set", "width=4", "--set", "depth=3", "--quiet", "--jobs", "1"]
KWARGS = {"in_channels": 1, "classes": 1, "width": 4, "depth": 3}


def meta(arch: str = "unet", prep: Preprocessing | None = None, **kwargs: object) -> CheckpointMeta:
    return CheckpointMeta(
        arch=arch,
        model_kwargs={**KWARGS, **kwargs},
        preprocessing=prep or Preprocessing(32, 1),
        dataset="isbi2012",
        source="real",
        data_options="{}",
        data_fingerprint="f" * 64,
        job_key="0" * 16,
        protocol="holdout",
        fold=0,
        seed=0,
        profile="quick",
    )


def tiny_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model("unet", **KWARGS).eval()


# ------------------------------------------------------------------------------------------ checkpoint


def test_checkpoint_is_plain_tensors_and_metadata(tmp_path: Path) -> None:
    model = tiny_model()
    save_checkpoint(tmp_path / "m.pt", model, meta())
    raw = torch.load(tmp_path / "m.pt", weights_only=True)
    assert set(raw) == {"meta", "state_dict"}
    assert raw["meta"]["arch"] == "unet" and raw["meta"]["preprocessing"]["image_size"] == 32
    loaded, m = load_model(tmp_path / "m.pt", "unet")
    assert m.model_kwargs == KWARGS and m.preprocessing == Preprocessing(32, 1)
    x = torch.rand(1, 1, 32, 32)
    assert torch.equal(loaded(x), model(x))


def test_checkpoint_errors_name_the_file_and_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny_model()
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="plain.pt.*not a bench-checkpoint"):
        read_checkpoint(tmp_path / "plain.pt")
    save_checkpoint(tmp_path / "m.pt", model, meta())
    with pytest.raises(CheckpointError, match="holds architecture 'unet', not the requested 'mildnet'"):
        load_model(tmp_path / "m.pt", "mildnet")
    save_checkpoint(tmp_path / "wide.pt", model, meta(width=8))  # weights of width 4, metadata says 8
    with pytest.raises(CheckpointError, match="do not fit unet"):
        load_model(tmp_path / "wide.pt")
    import bench.results.checkpoint

    monkeypatch.setattr(bench.results.checkpoint, "__version__", "9.9.9")  # the version this code records
    with pytest.raises(CheckpointError, match=r"written by bench 0\.1\.0.*this is bench 9\.9\.9"):
        read_checkpoint(tmp_path / "m.pt")


# ------------------------------------------------------------------------------------------ tiling


def test_covering_offsets_add_one_edge_tile_only_when_pixels_remain() -> None:
    assert covering_offsets(64, 32, 32) == [0, 32]
    assert covering_offsets(70, 32, 30) == [0, 30, 38]
    assert covering_offsets(32, 32, 28) == [0]


def test_training_patches_are_the_tiles_prediction_cuts(tmp_path: Path) -> None:
    """prepare's patches (what the model trained on) equal predict's tiles at the same origins."""
    layout = make_isbi_png(tmp_path / "isbi2012")
    ds = open_dataset("isbi2012", layout.root)
    data = prepare(ds, 16, patch_size=16, patch_padding=4)  # 40x32 sources, step 12: a 3 x 2 grid + edge tiles
    prep = Preprocessing(16, 1, patch_size=16, patch_padding=4)
    case = ds.cases()[0]
    image, _ = ds.read(case)
    tiles, t = network_input(image, prep)
    assert t.ys == (0, 12, 16) and t.xs == (0, 12, 24)
    rows = [i for i, s in enumerate(data.source_ids) if s == case.case_id]
    train_origins = [(0, 0), (0, 12), (0, 24), (12, 0), (12, 12), (12, 24)]  # prepare's row-major patch order
    for row, origin in zip(rows, train_origins):
        np.testing.assert_array_equal(data.images[row], tiles[t.origins.index(origin)])


def test_reassembly_has_no_seams() -> None:
    """Predicting an image tile by tile and reassembling gives the prediction of the whole image at once
    for a per-pixel model, and the same mask as reassembling per-patch predictions one at a time."""
    torch.manual_seed(0)
    pointwise = torch.nn.Conv2d(1, 1, 1).eval()
    prep = Preprocessing(32, 1, patch_size=32, patch_padding=6)
    image = grey(1, 70, 90)[..., None]
    tiled = native_probability([pointwise], image, prep)
    x = image.transpose(2, 0, 1)[None].astype(np.float32)  # factor 1: the tiles come from the native image
    x = (x - x.min()) / (x.max() - x.min())
    whole = predict_batches(pointwise, torch.from_numpy(x), 1)[0]
    np.testing.assert_allclose(tiled, whole, atol=1e-6)
    net = tiny_model()
    tiles, t = network_input(image, prep)
    assert t.ys == (0, 26, 38) and t.xs == (0, 26, 52, 58)  # step 26 plus one edge tile per axis
    one_by_one = np.stack([predict_batches(net, torch.from_numpy(tiles[i : i + 1]), 1)[0] for i in range(len(tiles))])
    expected = to_native(reassemble(one_by_one, t), image.shape[:2])
    np.testing.assert_allclose(native_probability([net], image, prep), expected, atol=1e-6)
    np.testing.assert_array_equal(native_probability([net], image, prep) > 0.5, expected > 0.5)


def test_whole_image_prediction_is_resized_back_to_native_size() -> None:
    net = tiny_model()
    prep = Preprocessing(32, 1)
    image = grey(2, 48, 80)[..., None]
    prob = native_probability([net], image, prep)
    assert prob.shape == (48, 80)
    x, t = network_input(image, prep)
    assert t.shape == (32, 32) and x.shape == (1, 1, 32, 32)
    small = predict_batches(net, torch.from_numpy(x), 1)[0]
    np.testing.assert_allclose(prob, to_native(small, (48, 80)), atol=1e-6)
    same = grey(3, 32, 32)[..., None]  # native size == input size: no resizing at all
    np.testing.assert_allclose(
        native_probability([net], same, prep),
        predict_batches(net, torch.from_numpy(network_input(same, prep)[0]), 1)[0],
    )


def test_ensemble_is_the_mean_probability() -> None:
    a, b, prep = tiny_model(0), tiny_model(1), Preprocessing(32, 1)
    image = grey(4, 40, 40)[..., None]
    mean = (native_probability([a], image, prep) + native_probability([b], image, prep)) / 2
    np.testing.assert_allclose(native_probability([a, b], image, prep), mean, atol=1e-6)


def test_tiling_refuses_an_image_smaller_than_a_tile() -> None:
    with pytest.raises(ValueError, match="smaller than one 32 px tile"):
        tiling((20, 20), Preprocessing(32, 1, patch_size=32, patch_padding=4))


# ------------------------------------------------------------------------------------------ mask files


def test_inputs_skip_masks_and_expand_stacks(tmp_path: Path) -> None:
    make_dsb(tmp_path / "dsb")
    items = find_images(tmp_path / "dsb", "dsb2018")
    assert [i.rel.parts[-2] for i in items] == ["images"] * 3  # nucleus masks are not inputs
    (tmp_path / "stack").mkdir()
    tifffile.imwrite(tmp_path / "stack" / "test-volume.tif", np.zeros((3, 8, 9), np.uint8), photometric="minisblack")
    stack = find_images(tmp_path / "stack", "isbi2012")
    assert [i.page for i in stack] == [0, 1, 2]
    masks = [np.eye(8, 9, k, dtype=bool) for k in range(3)]
    (path,) = write_masks(tmp_path / "out", "isbi2012", stack, masks)
    assert path.name == "test-labels.tif"
    np.testing.assert_array_equal(tifffile.imread(path), np.stack(masks).astype(np.uint8) * 255)


def test_an_unreadable_input_names_the_file(tmp_path: Path) -> None:
    write(tmp_path / "in" / "colour.png", np.dstack([grey(0), grey(1), grey(2)]))
    (item,) = find_images(tmp_path / "in", "isbi2012")
    with pytest.raises(ValueError, match="colour.png.*expected 1 channel"):
        read_input(item, 1)


@pytest.mark.parametrize(
    ("dataset", "name"),
    [
        ("isic2018", "a/x_segmentation.png"),
        ("lgg_mri", "a/x_mask.tif"),
        ("glas2015", "a/x_anno.bmp"),
        ("isbi2012", "a/x.png"),
        ("dsb2018", "a/x/masks/x.png"),
        ("kvasir_seg", "a/x_mask.png"),  # the default: lossless, not the release's JPEG
    ],
)
def test_masks_in_each_datasets_format(tmp_path: Path, dataset: str, name: str) -> None:
    write(tmp_path / "in" / "a" / "x.png", grey(0, 12, 20))
    (item,) = find_images(tmp_path / "in", dataset)
    mask = np.zeros((12, 20), bool)
    mask[2:5, 2:6] = mask[8:10, 12:18] = True
    (path,) = write_masks(tmp_path / "out", dataset, [item], [mask])
    assert path == tmp_path / "out" / name
    stored = tifffile.imread(path) if path.suffix == ".tif" else np.array(Image.open(path))
    assert stored.shape == (12, 20)
    np.testing.assert_array_equal(stored > 0, mask)
    assert sorted(np.unique(stored)) == ([0, 1, 2] if dataset == "glas2015" else [0, 255])


# ------------------------------------------------------------------------------------------ bench predict


@pytest.mark.slow
def test_predict_writes_native_masks_per_fold_and_the_ensemble(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    results = tmp_path / "results"
    assert (
        main(["run", "--results", str(results), "--dataset", "isbi2012", "--arch", "unet", "--folds", "0,1", *TINY])
        == 0
    )
    images = tmp_path / "new"
    images.mkdir()
    tifffile.imwrite(
        images / "test-volume.tif", np.stack([grey(k, 50, 70) for k in range(3)]), photometric="minisblack"
    )
    write(images / "png" / "7.png", grey(9, 45, 61))
    assert (
        main(
            [
                "predict",
                "--from",
                str(results),
                "--dataset",
                "isbi2012",
                "--arch",
                "unet",
                "--images",
                str(images),
                "--out",
                str(tmp_path / "masks"),
                "--ensemble",
                "--include-untrained",  # tiny models at 1 epoch may not learn: the mean is what is tested here
            ]
        )
        == 0
    )
    assert "ensemble: 2 mask file(s)" in capsys.readouterr().out
    for sub in ("fold0", "fold1", "ensemble"):
        assert tifffile.imread(tmp_path / "masks" / sub / "test-labels.tif").shape == (3, 50, 70)
        png = np.array(Image.open(tmp_path / "masks" / sub / "png" / "7.png"))
        assert png.shape == (45, 61) and set(np.unique(png)) <= {0, 255}
    models = [load_model(p)[0] for p in sorted((results / "runs" / "isbi2012" / "unet").glob("*.pt"))]
    prep = read_checkpoint(next((results / "runs" / "isbi2012" / "unet").glob("*.pt")))[0].preprocessing
    expected = native_probability(models, grey(9, 45, 61)[..., None], prep) > 0.5
    np.testing.assert_array_equal(np.array(Image.open(tmp_path / "masks" / "ensemble" / "png" / "7.png")) > 0, expected)
    assert prep.patch_size == 256 and prep.patch_padding == 16  # the paper's patches, recorded


def test_ensemble_leaves_out_fold_models_that_did_not_learn(tmp_path: Path) -> None:
    import json
    from types import SimpleNamespace

    from bench.errors import InvalidInput
    from bench.models.predict import ensemble_members

    chosen = []
    for fold, bad in ((0, False), (1, True)):
        side = tmp_path / f"f{fold}.json"
        side.write_text(json.dumps({"status": "ok", "job": {}, "learning": {"did_not_learn": bad, "reasons": []}}))
        chosen.append(SimpleNamespace(sidecar=side, name=f"fold{fold}"))
    with pytest.warns(UserWarning, match="fold1 did not learn"):
        assert ensemble_members(chosen) == [0]
    assert ensemble_members(chosen, include_untrained=True) == [0, 1]
    with pytest.raises(InvalidInput, match="every fold model"):
        ensemble_members(chosen[1:])
