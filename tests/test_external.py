"""``bench evaluate``: external-cohort rows in the store, native-resolution scores, reports that never mix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from native_layouts import blob, make_isic, rgb, write
from results_fixture import make_results

from bench.analysis import tables
from bench.analysis.stats import select
from bench.architectures import create_model
from bench.cli import main
from bench.datasets import open_dataset
from bench.datasets.prepare import prepare
from bench.metrics import image_metrics
from bench.models.external import score_native
from bench.models.predict import to_native
from bench.results import store
from bench.results.checkpoint import CheckpointMeta, Preprocessing
from bench.run.evaluate import predict as predict_batches
from bench.run.scoring import score

TINY = ["--set", "epochs=1", "--set", "image_size=32", "--set", "width=4", "--set", "depth=3", "--quiet", "--jobs", "1"]
METRICS = ["tp", "fp", "fn", "tn", "dice", "iou", "hd", "hd95", "hd_worst_case"]


def net_and_meta(size: int) -> tuple[torch.nn.Module, CheckpointMeta]:
    torch.manual_seed(0)
    net = create_model("unet", in_channels=3, classes=1, width=4, depth=3).eval()
    meta = CheckpointMeta(
        arch="unet",
        model_kwargs={},
        preprocessing=Preprocessing(size, 3),
        dataset="isic2018",
        source="real",
        data_options="{}",
        data_fingerprint="",
        job_key="",
        protocol="holdout",
        fold=0,
        seed=0,
        profile="quick",
    )
    return net, meta


def square_isic(root: Path, side: int) -> None:
    for i in range(3):
        write(root / "ISIC2018_Task1-2_Training_Input" / f"ISIC_000000{i}.jpg", rgb(i, side, side))
        write(root / "ISIC2018_Task1_Training_GroundTruth" / f"ISIC_000000{i}_segmentation.png", blob(i, side, side))


def test_native_scores_equal_input_scores_when_the_sizes_are_equal(tmp_path: Path) -> None:
    square_isic(tmp_path / "isic2018", 32)
    ds = open_dataset("isic2018", tmp_path / "isic2018")
    net, meta = net_and_meta(32)
    data = prepare(ds, 32)
    probs = predict_batches(net, torch.from_numpy(np.asarray(data.images)), 4)
    assert len({int((p > 0.5).sum()) for p in probs}) > 1  # not a constant prediction
    at_input = score(probs, data.masks, list(data.case_ids), list(data.groups))
    native = score_native(net, meta, ds, tuple(ds.cases()))
    pd.testing.assert_frame_equal(native[["case_id", *METRICS]], at_input[["case_id", *METRICS]])
    assert (native["height"] == 32).all() and (native["width"] == 32).all()


def test_native_scores_use_the_upsampled_prediction_and_native_pixels(tmp_path: Path) -> None:
    layout = make_isic(tmp_path / "isic2018")  # 40 x 32 (W x H) images
    ds = open_dataset("isic2018", layout.root)
    net, meta = net_and_meta(16)
    data = prepare(ds, 16)
    probs = predict_batches(net, torch.from_numpy(np.asarray(data.images)), 4)
    native = score_native(net, meta, ds, tuple(ds.cases())).set_index("case_id")
    for prob, cid in zip(probs, data.case_ids):
        expected = image_metrics(layout.masks_expected[cid], to_native(prob, (32, 40)) > 0.5)
        assert native.loc[cid, "tp"] + native.loc[cid, "fp"] + native.loc[cid, "fn"] + native.loc[cid, "tn"] == 32 * 40
        for m in METRICS:
            assert native.loc[cid, m] == pytest.approx(expected[m]), m
    assert (native["eval_size"] == 16).all() and (native["height"] == 32).all() and (native["width"] == 40).all()


def test_reports_never_mix_input_and_native_rows() -> None:
    df = make_results(datasets=("isic2018",), archs=("unet", "mildnet"), protocols=("holdout",))
    df = df.assign(eval_resolution="input")
    native = df.assign(eval_resolution="native", dice=df["dice"] * 0.5, hd=df["hd"] * 8)
    both = pd.concat([df, native], ignore_index=True)
    assert set(select(both, protocol="holdout")["eval_resolution"]) == {"input"}
    pd.testing.assert_frame_equal(tables.table5(both), tables.table5(df))
    only_native = tables.table5(native)
    assert "native resolution" in only_native.attrs["caption"]
    unet = only_native[(only_native["arch"] == "unet") & (only_native["kind"] == "model")].iloc[0]
    assert unet["dice_mean"] == pytest.approx(tables.table5(df).set_index("arch").loc["unet", "dice_mean"] * 0.5)
    test = df[df["split"] == "test"]
    cohorts = pd.concat(
        [
            test.assign(split="external", cohort_fingerprint="a" * 64),
            test.assign(split="external", cohort_fingerprint="b" * 64, case_id=test["case_id"] + "_b"),
        ]
    )
    assert tables.table5(pd.concat([df, cohorts.iloc[: len(test)]]), split="external")["n_images"].max() > 0
    with pytest.raises(ValueError, match="mix cohort_fingerprint"):  # two external cohorts are never pooled
        tables.table5(pd.concat([df, cohorts]), split="external")
    legacy = df.drop(columns="eval_resolution")  # rows written before the column existed are input-size rows
    assert len(select(pd.concat([legacy, native], ignore_index=True), protocol="holdout")) == len(
        select(df, protocol="holdout")
    )


@pytest.mark.slow
def test_evaluate_writes_external_rows_that_table5_reports_separately(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    results = tmp_path / "results"
    assert (
        main(["run", "--results", str(results), "--dataset", "isic2018", "--arch", "unet", "--folds", "0,1", *TINY])
        == 0
    )
    before = store.load_all(results)
    internal = tables.table5(before)
    cohort = make_isic(tmp_path / "cohort" / "isic2018")
    args = [
        "evaluate",
        "--from",
        str(results),
        "--data-root",
        str(tmp_path / "cohort"),
        "--dataset",
        "isic2018",
        "--resolution",
        "both",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Table 5 (external cohort)" in out and "drop" in out
    df = store.load_all(results)
    ext = df[df["split"] == "external"]
    assert len(ext) == 3 * 2 * 2  # 3 images x 2 fold models x 2 resolutions
    assert set(ext["case_id"]) == set(cohort.files) and set(ext["job_key"]) == set(before["job_key"])
    assert ext["cohort_fingerprint"].nunique() == 1 and len(ext["cohort_fingerprint"].iloc[0]) == 64
    nat = ext[ext["eval_resolution"] == "native"]
    assert (nat["height"] == 32).all() and (nat["width"] == 40).all()
    pd.testing.assert_frame_equal(tables.table5(df), internal)  # the holdout test table is unchanged
    external = tables.table5(df, split="external")
    row = external[(external["arch"] == "unet") & (external["kind"] == "model")].iloc[0]
    assert row["n_models"] == 2 and row["n_images"] == 3
    inp = ext[ext["eval_resolution"] == "input"]
    assert row["dice_mean"] == pytest.approx(inp.groupby("fold")["dice"].mean().mean())
    assert main(["report", "--results", str(results), "--table", "5", "--split", "external"]) == 0
    assert "external cohort" in capsys.readouterr().out
    assert main(args) == 0
    assert capsys.readouterr().out.count("skipped") == 4  # finished evaluations are not recomputed


SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.slow
@pytest.mark.real_data
@pytest.mark.skipif(not (SHARED_DATA / "dsb2018").is_dir(), reason="the real samples (../shared/data) are not present")
def test_real_sample_sweep_then_predict_and_external_evaluation(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The README's three commands on the real DSB-2018 sample: train, predict unlabelled images, score a cohort."""
    import shutil

    from PIL import Image

    results = tmp_path / "results"
    assert (
        main(
            [
                "run",
                "--results",
                str(results),
                "--data-root",
                str(SHARED_DATA),
                "--dataset",
                "dsb2018",
                "--arch",
                "unet",
                "--folds",
                "0",
                *TINY,
            ]
        )
        == 0
    )
    folders = sorted((SHARED_DATA / "dsb2018" / "stage1_train").iterdir())
    for folder in folders[:2]:  # unlabelled: the images only
        shutil.copytree(folder / "images", tmp_path / "new" / folder.name / "images")
    for folder in folders[-4:]:  # a labelled cohort in the same native layout
        shutil.copytree(folder, tmp_path / "cohort" / "dsb2018" / "stage1_train" / folder.name)
    assert (
        main(
            [
                "predict",
                "--from",
                str(results),
                "--dataset",
                "dsb2018",
                "--arch",
                "unet",
                "--images",
                str(tmp_path / "new"),
                "--out",
                str(tmp_path / "masks"),
            ]
        )
        == 0
    )
    for folder in folders[:2]:
        mask = np.array(Image.open(tmp_path / "masks" / "fold0" / folder.name / "masks" / f"{folder.name}.png"))
        assert mask.shape == Image.open(folder / "images" / f"{folder.name}.png").size[::-1]
    assert (
        main(
            [
                "evaluate",
                "--from",
                str(results),
                "--data-root",
                str(tmp_path / "cohort"),
                "--dataset",
                "dsb2018",
                "--resolution",
                "both",
            ]
        )
        == 0
    )
    assert "Table 5 (external cohort)" in capsys.readouterr().out
    ext = store.load_all(results).query("split == 'external'")
    assert len(ext) == 8 and set(ext["eval_resolution"]) == {"input", "native"} and set(ext["source"]) == {"real"}
