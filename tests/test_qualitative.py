"""Qualitative grids and failure galleries from stored predictions (bench.report.qualitative, bench figure)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from results_fixture import make_rows
from seeing_sweep import train_tiny

from bench.cli import main
from bench.report.qualitative import (
    CaseGrid,
    _galleries,
    disagreement_cases,
    grid_figure,
    load_grid,
    qualitative_panels,
    scored_rows,
    short_id,
    worst_cases,
)
from bench.results import store
from bench.results.predictions import load_predictions


def table():
    """3 images x 3 archs on a 4-pixel image (tp, fp, fn, tn). c2 is MILDNet's worst (Dice 0), U-Net's
    worst is c3; the archs disagree most on c2 (1, 1, 0)."""
    counts = {
        "unet": {"c1": (2, 0, 0, 2), "c2": (2, 0, 0, 2), "c3": (1, 1, 1, 1)},
        "unetpp": {"c1": (2, 0, 0, 2), "c2": (2, 0, 0, 2), "c3": (2, 1, 0, 1)},
        "mildnet": {"c1": (2, 1, 0, 1), "c2": (0, 2, 2, 0), "c3": (2, 0, 0, 2)},
    }
    records = [
        {"arch": a, "case_id": c, "tp": tp, "fp": fp, "fn": fn, "tn": tn}
        for a, cases in counts.items()
        for c, (tp, fp, fn, tn) in cases.items()
    ]
    return make_rows(records, dataset="isic2018")


def test_worst_cases_pick_each_architectures_lowest_score() -> None:
    rows = table()
    assert worst_cases(rows, "mildnet", "dice", 1) == ["c2"]
    assert worst_cases(rows, "unet", "dice", 1) == ["c3"]
    assert worst_cases(rows, "unet", "dice", 3)[0] == "c3"
    rows["hd"] = np.where(rows["case_id"] == "c1", 9.0, 1.0)  # distances: the highest is the worst
    assert worst_cases(rows, "unet", "hd", 1) == ["c1"]


def test_disagreement_picks_where_the_architectures_differ_most() -> None:
    assert disagreement_cases(table(), "dice", 1) == ["c2"]
    assert disagreement_cases(table(), "dice", 3)[0] == "c2"


def test_scored_rows_one_fold_per_architecture() -> None:
    rows = table()
    two = rows.assign(fold=1)
    both = pd.concat([rows, two], ignore_index=True)
    picked = scored_rows(both, "isic2018")
    assert set(picked["fold"]) == {0} and len(picked) == 9
    assert set(scored_rows(both, "isic2018", fold=1)["fold"]) == {1}
    with pytest.raises(ValueError, match="no results for resdunet"):
        scored_rows(both, "isic2018", archs=["resdunet"])
    with pytest.raises(ValueError, match="no scored rows of 'lgg_mri'"):
        scored_rows(both, "lgg_mri")


def test_grid_has_image_truth_and_one_panel_per_architecture() -> None:
    rng = np.random.default_rng(0)
    cases = ("a", "b")
    grid = CaseGrid(
        cases,
        rng.random((2, 3, 16, 16), dtype=np.float32),
        rng.random((2, 16, 16)) > 0.5,
        {a: rng.random((2, 16, 16)) > 0.5 for a in ("unet", "mildnet", "unetpp")},
        {"unet": np.array([0.5, 0.25]), "mildnet": np.array([0.75, 1.0]), "unetpp": np.array([0.0, 0.125])},
    )
    fig = grid_figure(grid, "t")
    gids = [ax.get_gid() for ax in fig.get_axes()]
    assert len(gids) == len(cases) * (2 + 3)
    for case in cases:
        assert {f"image:{case}", f"truth:{case}"} <= set(gids)
        assert {f"pred:{a}:{case}" for a in ("unet", "mildnet", "unetpp")} <= set(gids)
    titles = {ax.get_gid(): ax.get_title() for ax in fig.get_axes()}
    assert titles["pred:mildnet:b"] == "MILDNet\nDice 1.000"
    assert titles["pred:unetpp:a"] == "UNet++\nDice 0.000"


@pytest.mark.slow
def test_gallery_from_a_trained_sweep_uses_the_stored_predictions(tmp_path: Path) -> None:
    results = train_tiny(tmp_path / "results")
    df = store.load_all(results)
    rows = scored_rows(df, "dsb2018")
    case = worst_cases(rows, "mildnet", "dice", 1)[0]
    grid = load_grid(results, rows, [case])
    for arch in ("unet", "mildnet"):
        side = next(s for s in store.sidecars(results) if s["job"]["arch"] == arch)
        ids, _, masks = load_predictions(Path(side["_path"]).with_suffix(".pred.npz"))
        np.testing.assert_array_equal(grid.predictions[arch][0], masks[ids.index(case)])
        row = rows[(rows["arch"] == arch) & (rows["case_id"] == case)]
        assert grid.scores[arch][0] == pytest.approx(float(row["dice"].iloc[0]))
        assert int(grid.truth[0].sum()) == int(row["n_ref"].iloc[0])  # the prepared mask the row was scored on
    panels = qualitative_panels(df, results, "dsb2018", tmp_path / "fig", worst=2, n=2)
    galleries = {a: p.cases for p in panels for a in p.archs}
    assert set(galleries) == {"unet", "mildnet"}  # every architecture's worst images, shared when the same
    stems = {"qualitative_dsb2018", "failures_dsb2018_unet"}
    if set(galleries["unet"]) != set(galleries["mildnet"]):
        stems.add("failures_dsb2018_mildnet")
    assert sorted(p.name for panel in panels for p in panel.paths) == sorted(
        f"{s}.{e}" for s in stems for e in ("png", "pdf")
    )
    assert all(case in panels[0].caption for case in panels[0].cases)  # full ids in the caption
    assert (
        main(
            [
                "figure",
                "--qualitative",
                "--dataset",
                "dsb2018",
                "--cases",
                case,
                "--results",
                str(results),
                "--out",
                str(tmp_path / "cli"),
            ]
        )
        == 0
    )
    assert (tmp_path / "cli" / "qualitative_dsb2018.png").stat().st_size > 1000
    assert (
        main(
            [
                "figure",
                "--qualitative",
                "--dataset",
                "dsb2018",
                "--cases",
                "nope",
                "--results",
                str(results),
                "--out",
                str(tmp_path / "cli"),
            ]
        )
        == 2
    )


def test_report_lists_a_picture_it_cannot_make_with_the_reason(tmp_path: Path) -> None:
    from bench.report.report import picture_items

    items = dict(picture_items(table(), tmp_path / "results", tmp_path / "fig"))
    assert set(items) == {"Qualitative: ISIC-2018", "Saliency: ISIC-2018 (gradient per decoder stage, averaged)"}
    assert (
        items["Qualitative: ISIC-2018"].startswith("not built: ")
        and "no finished sidecar" in items["Qualitative: ISIC-2018"]
    )
    assert items["Saliency: ISIC-2018 (gradient per decoder stage, averaged)"].startswith("not built: no finished job")


def test_long_case_ids_are_shortened_in_titles_and_flagged_models_marked() -> None:
    long = "0a7d30b252359a10fd298b638b90cb9ada3acced4e0c0e5a3692013f432ee4e9"
    assert short_id("c1") == "c1" and len(short_id(long)) == 14 and short_id(long).startswith("0a7d30b25")
    rng = np.random.default_rng(0)
    grid = CaseGrid(
        (long,),
        rng.random((1, 1, 16, 16), dtype=np.float32),
        rng.random((1, 16, 16)) > 0.5,
        {a: rng.random((1, 16, 16)) > 0.5 for a in ("unet", "mildnet")},
        {"unet": np.array([0.0]), "mildnet": np.array([0.5])},
        not_learned={"unet": (True,), "mildnet": (False,)},
    )
    titles = {ax.get_gid(): ax.get_title() for ax in grid_figure(grid, "t").get_axes()}
    assert titles[f"image:{long}"] == f"Image 1\n{short_id(long)}"
    assert titles[f"pred:unet:{long}"] == "U-Net\nDice 0.000\ndid not learn"
    assert titles[f"pred:mildnet:{long}"] == "MILDNet\nDice 0.500"


def test_galleries_of_the_same_images_are_merged() -> None:
    rows = table()
    # U-Net's and UNet++'s worst image is c3 (ties by case id), MILDNet's c2: two galleries, not three
    assert _galleries(rows, 1, "dice") == [(["c3"], ["unet", "unetpp"]), (["c2"], ["mildnet"])]
    same = rows.assign(dice=np.where(rows["case_id"] == "c1", 0.0, 1.0))  # c1 is everyone's worst
    assert _galleries(same, 1, "dice") == [(["c1"], ["unet", "unetpp", "mildnet"])]
