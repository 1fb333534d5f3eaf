"""Every table, test, rank and figure carries its own caveats: "did not learn" on the rows it concerns, the
fold-level verdict beside the unit-level one under cv, the floors beside the means, what is not comparable
with the paper, unequal fold models and mixed recipes refused, Wilcoxon's n, the family-wide correction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from results_fixture import make_results, make_rows
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from test_learning import HISTORY_IMPROVES, learning_job, trivial_job, write_job

from bench.analysis import comparisons, stats, tables
from bench.analysis.learning import COLUMN
from bench.cli import main
from bench.errors import InvalidInput, NoResults
from bench.models.external import external_drop
from bench.report.table_render import render


@pytest.fixture(scope="module")
def flagged() -> pd.DataFrame:
    """Holdout and cv results on ISIC (3 archs, 2 fold models) where U-Net's fold models did not learn."""
    df = make_results(datasets=("isic2018",), archs=("unet", "mildnet", "resdunet"), n_cases=24, n_folds=2)
    return df.assign(**{COLUMN: df["arch"] == "unet"})


def test_table5_note_says_did_not_learn_on_exactly_the_flagged_models(flagged: pd.DataFrame) -> None:
    t5 = tables.table5(flagged)
    models = t5[t5["kind"] == "model"].set_index("arch")
    assert models.loc["unet", "note"] == "did not learn 2/2"
    assert models.loc["mildnet", "note"] == "" and models.loc["resdunet", "note"] == ""
    csv = render(t5, "csv")
    assert "did not learn 2/2" in csv.splitlines()[2 + list(t5["arch"]).index("unet")]  # caption, header
    partly = flagged.assign(**{COLUMN: (flagged["arch"] == "resdunet") & (flagged["fold"] == 1)})
    t = tables.table5(partly)
    assert t.set_index("arch").loc["resdunet", "note"] == "did not learn 1/2"


def test_no_bold_at_or_below_a_floor() -> None:
    """A model that predicts background everywhere scores exactly the all-background floor: never bold."""
    records = []
    for i in range(4):
        empty = i < 3  # 3 of 4 test images empty: all background scores Dice 0.75
        fg = 0 if empty else 4
        records += [
            {"arch": "unet", "case_id": f"c{i}", "tp": 0, "fp": 0, "fn": fg, "tn": 16 - fg},  # all background
            {"arch": "mildnet", "case_id": f"c{i}", "tp": 0, "fp": 1, "fn": fg, "tn": 15 - fg},  # worse still
        ]
    df = make_rows(records)
    t5 = tables.table5(df)
    floor = tables.better_floor_value(t5, "isic2018", "dice")
    assert floor == pytest.approx(0.75)
    bold_rows = {t5.iloc[i]["arch"] for i, m in t5.attrs["bold"] if m == "dice"}
    assert bold_rows == set()  # U-Net equals the floor, MILDNet is below it: nothing is best
    md_rows = [line for line in render(t5, "md").splitlines() if line.startswith("| ")]
    assert not any("**0.750" in line or "**0.000" in line for line in md_rows)


def test_external_rows_are_flagged_against_the_cohort_floors() -> None:
    records = []
    for i in range(4):
        fg = 0 if i < 3 else 4
        records += [
            {"arch": "unet", "case_id": f"e{i}", "tp": 0, "fp": 0, "fn": fg, "tn": 16 - fg},
            {"arch": "mildnet", "case_id": f"e{i}", "tp": fg, "fp": 0, "fn": 0, "tn": 16 - fg},
        ]
    external = make_rows(records, split="external").assign(**{COLUMN: np.nan})
    t5 = tables.table5(external, split="external")
    models = t5[t5["kind"] == "model"].set_index("arch")
    assert models.loc["unet", "note"] == "did not learn 1/1" and models.loc["mildnet", "note"] == ""
    assert {t5.iloc[i]["arch"] for i, m in t5.attrs["bold"]} == {"mildnet"}
    assert set(t5.loc[t5["kind"] == "floor", "arch"]) == {"all_foreground", "all_background"}


def test_external_drop_shows_each_cohorts_floors_and_marks_untrained_models() -> None:
    records, ext = [], []
    for i in range(4):
        fg_in, fg_ex = (4, 0 if i < 3 else 4)
        records += [
            {"arch": "unet", "case_id": f"c{i}", "tp": 0, "fp": 0, "fn": fg_in, "tn": 16 - fg_in},
            {"arch": "mildnet", "case_id": f"c{i}", "tp": fg_in, "fp": 0, "fn": 0, "tn": 16 - fg_in},
        ]
        ext += [
            {"arch": "unet", "case_id": f"e{i}", "tp": 0, "fp": 0, "fn": fg_ex, "tn": 16 - fg_ex},
            {"arch": "mildnet", "case_id": f"e{i}", "tp": fg_ex, "fp": 0, "fn": 0, "tn": 16 - fg_ex},
        ]
    internal = make_rows(records).assign(**{COLUMN: lambda d: d["arch"] == "unet"})
    df = pd.concat([internal, make_rows(ext, split="external").assign(**{COLUMN: np.nan})], ignore_index=True)
    drop = external_drop(df).set_index("arch")
    assert drop.loc["unet", "dice_floor_internal"] == pytest.approx(2 * 4 / 20)  # all foreground on 4-pixel masks
    assert drop.loc["unet", "dice_floor_external"] == pytest.approx(0.75)  # all background: 3 of 4 empty
    assert drop.loc["unet", "dice_drop"] < 0  # "improved" from 0 to 0.75 by predicting nothing ...
    assert "did not learn" in drop.loc["unet", "note"] and "nothing about generalisation" in drop.loc["unet", "note"]
    assert drop.loc["mildnet", "note"] == ""
    assert "floor" in drop.attrs["caption"]


def test_tests_mark_comparisons_with_models_that_did_not_learn(flagged: pd.DataFrame) -> None:
    table = comparisons.tests_table(flagged, protocol="holdout")
    row = table.set_index("arch").loc["unet"]
    assert row["note"] == "unet: did not learn 2/2" and row["verdict"].startswith("no verdict")
    assert table.set_index("arch").loc["resdunet", "note"] == ""
    assert "training randomness is not included" in table.attrs["caption"]
    assert set(table["floor"]) <= {"all foreground", "all background"} and table["floor_value"].notna().all()


def test_cv_shows_both_verdicts_and_nadeau_bengio_uses_the_fitted_part() -> None:
    df = make_results(datasets=("lgg_mri",), archs=("unet", "mildnet"), protocols=("cv",), n_cases=40)
    n_test = df.drop_duplicates(["fold", "case_id"]).groupby("fold").size()
    df = df.assign(n_fit=df["fold"].map(lambda f: int(0.9 * (40 - n_test[f]))))  # inner part left out
    table = comparisons.tests_table(df, protocol="cv")
    row = table.iloc[0]
    assert {"p_folds", "p_adj_folds", "significant_units", "significant_folds", "verdict"} <= set(table.columns)
    assert row["significant"] == (row["significant_units"] and row["significant_folds"])
    # independent recomputation of the corrected resampled t-test with n_test / n_fit
    per = df.groupby(["arch", "fold"])["iou"].mean().unstack("arch")
    d = (per["mildnet"] - per["unet"]).to_numpy()
    fit = df.groupby("fold")["n_fit"].first()
    ratio = float(np.mean(n_test / fit))
    t = d.mean() / np.sqrt((1 / len(d) + ratio) * d.var(ddof=1))
    assert row["p_folds"] == pytest.approx(2 * sps.t.sf(abs(t), len(d) - 1), rel=1e-12)
    folds = stats.fold_level_test(df, dataset="lgg_mri")
    assert folds["ratio_basis"].iloc[0].startswith("n_fit: each fold model's fitted images")
    counted = stats.fold_level_test(df.drop(columns="n_fit"), dataset="lgg_mri")  # no record: said so
    assert "inner validation part included" in counted["ratio_basis"].iloc[0]


def test_the_verdict_is_the_more_conservative_one() -> None:
    out = pd.DataFrame(
        {
            "p_raw": [0.001, 0.001],
            "n_folds": [5.0, 5.0],
            "p_folds": [0.2, 0.001],
            "did_not_learn": [False, False],
        }
    )
    res = stats.apply_correction(out.assign(p_adj_folds=np.nan, significant_folds=pd.NA), "none", 0.05)
    assert list(res["significant"]) == [False, True]
    assert "more conservative" in res.loc[0, "verdict"] and res.loc[1, "verdict"].startswith("significant at unit")


def test_unequal_fold_models_are_refused_naming_them() -> None:
    df = make_results(datasets=("isic2018",), archs=("unet", "mildnet"), protocols=("holdout",), n_folds=2)
    one = df[~((df["arch"] == "mildnet") & (df["fold"] == 1))]
    with pytest.raises(
        InvalidInput, match=r"mildnet 1 fold model\(s\) \(fold 0\), unet 2 fold model\(s\) \(folds 0, 1\)"
    ):
        stats.paired_test(one, dataset="isic2018", protocol="holdout")
    res = stats.paired_test(one, dataset="isic2018", protocol="holdout", allow_unequal_folds=True)
    assert "compared anyway (--allow-unequal-folds)" in res["note"].iloc[0]


def test_ttest_with_a_fold_sidecar_removed_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for fold in (0, 1):
        write_job(tmp_path, trivial_job(fold), HISTORY_IMPROVES)
        write_job(tmp_path, learning_job(fold), HISTORY_IMPROVES)
    sidecar = next(p for p in (tmp_path / "runs").rglob("*.json") if "mildnet" in str(p) and "_f1" in p.name)
    sidecar.unlink()
    assert main(["ttest", "--dataset", "dsb2018", "--results", str(tmp_path), "--protocol", "holdout"]) == 2
    err = capsys.readouterr().err
    assert "mildnet 1 fold model(s) (fold 0), unet 2 fold model(s) (folds 0, 1)" in err
    assert main(["ttest", "--dataset", "dsb2018", "--results", str(tmp_path), "--allow-unequal-folds"]) == 0
    out = capsys.readouterr().out
    assert "--allow-unequal-folds" in out and "training randomness is not included" in out


def test_tables_over_datasets_trained_differently_are_refused() -> None:
    df = make_results(datasets=("isbi2012", "lgg_mri"), archs=("unet", "mildnet"), protocols=("holdout",))
    df["epochs"] = np.where(df["dataset"] == "isbi2012", 2, 3)
    for build in (tables.table5, tables.table4, lambda d: comparisons.tests_table(d, protocol="holdout")):
        with pytest.raises(NoResults, match=r"epochs \(isbi2012: 2; lgg_mri: 3"):
            build(df)
    assert len(tables.table5(df, datasets=["lgg_mri"]))  # one dataset at a time is fine
    df["n_folds"] = np.where(df["dataset"] == "isbi2012", 5, 2)  # a dataset's own split may differ
    assert len(tables.table5(df.assign(epochs=3)))


def test_wilcoxon_reports_the_n_it_used() -> None:
    df = make_results(datasets=("isic2018",), archs=("unet", "mildnet"), protocols=("holdout",), n_cases=30)
    ids = sorted(df.loc[df["split"] == "test", "case_id"].unique())[:5]
    tie = df["case_id"].isin(ids)
    df.loc[tie, "iou"] = 0.5  # both architectures score these images alike: zero differences
    row = stats.paired_test(df, dataset="isic2018", protocol="holdout", test="wilcoxon", unit="image").iloc[0]
    data = stats.per_image(df, dataset="isic2018", protocol="holdout", unit="image")
    a, b, _ = stats.paired_vectors(data, "mildnet", "unet")
    zeros = int((a - b == 0).sum())
    assert zeros >= 5 and row["n_zero"] == zeros and row["n_used"] == row["n"] - zeros
    assert row["p_raw"] == pytest.approx(sps.wilcoxon(a, b).pvalue)
    table = comparisons.tests_table(df, protocol="holdout", test="wilcoxon", unit="image")
    assert {"n_used", "n_zero"} <= set(table.columns) and "scipy drops zero differences" in table.attrs["caption"]


def test_family_all_corrects_over_every_dataset_and_comparison() -> None:
    df = make_results(datasets=("isic2018", "lgg_mri"), archs=("unet", "unetpp", "mildnet"), protocols=("holdout",))
    per = stats.paired_tests(df, protocol="holdout")
    for correction in ("holm", "fdr_bh"):
        fam = stats.paired_tests(df, protocol="holdout", family="all", correction=correction)
        expected = multipletests(per["p_raw"], method=correction)[1]
        np.testing.assert_allclose(fam["p_adj"], expected, rtol=1e-12)
        assert "over all 4 dataset x comparison tests" in stats.family_text(fam)
    assert "within each dataset" in stats.family_text(per)


def test_vs_paper_says_what_is_not_comparable_per_dataset() -> None:
    df = make_results(datasets=("isic2018", "lgg_mri"), archs=("unet", "mildnet"), protocols=("holdout",))
    t5 = tables.table5(df, vs_paper=True)
    notes = t5[t5["kind"] == "paper_note"].set_index("dataset")["note"]
    assert set(notes.index) == {"isic2018", "lgg_mri"}
    for text in notes:
        assert "32x32 masks, the paper's 256x256" in text and "x8 at 256" in text
        assert "std over 5 fold model(s)" in text and "does not say what its ± is" in text
    assert "by patients here" in notes["lgg_mri"] and "by image" in notes["isic2018"]
    assert "not comparable with the paper" in render(t5, "md")


def test_captions_count_diagonal_hd_and_name_a_floor_in_the_top_half() -> None:
    records = []
    for i in range(8):
        fg = 0 if i < 6 else 4  # 6 of 8 empty: all background scores Dice 0.75
        records += [
            {"arch": "unet", "case_id": f"c{i}", "tp": fg, "fp": 1, "fn": 0, "tn": 15 - fg},  # a speck on empty images
            {"arch": "mildnet", "case_id": f"c{i}", "tp": fg, "fp": 0, "fn": 0, "tn": 16 - fg},
            {"arch": "resdunet", "case_id": f"c{i}", "tp": 0, "fp": 2, "fn": fg, "tn": 14 - fg},
        ]
    t5 = tables.table5(make_rows(records))
    caption = t5.attrs["caption"]
    assert "HD set to the image diagonal by the empty-mask rule" in caption and "U-Net 6/8 (75%)" in caption
    assert "Floor in the top half" in caption and "would rank 2nd of 4" in caption


def _texts(fig: object) -> str:
    parts = [t.get_text() for ax in fig.axes for t in ax.texts]  # type: ignore[attr-defined]
    parts += [t.get_text() for ax in fig.axes for t in ax.get_xticklabels()]  # type: ignore[attr-defined]
    return "\n".join(parts + [fig._suptitle.get_text()])  # type: ignore[attr-defined]


def test_fig8_marks_untrained_models_and_shows_both_levels_under_cv(flagged: pd.DataFrame) -> None:
    from bench.report.figures import fig8_figure

    cv = _texts(fig8_figure(flagged, protocol="cv"))
    assert "U-Net †" in cv and "no stars:\ndid not learn" in cv  # left out of the stars, with the reason
    assert "\nfolds p" in cv and "more conservative" in cv and "(floor)" in cv
    holdout = _texts(fig8_figure(flagged, protocol="holdout"))
    assert "training randomness is not included" in holdout and "\nfolds p" not in holdout


def test_report_table_learning_and_the_tests_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for fold in (0, 1):
        write_job(tmp_path, trivial_job(fold), HISTORY_IMPROVES)
        write_job(tmp_path, learning_job(fold), HISTORY_IMPROVES)
    assert main(["report", "--table", "learning", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "2 of 4 finished fold models did not" in out and "predicted background on every scored image" in out
    args = ["report", "--table", "tests", "--results", str(tmp_path), "--format", "csv", "--protocol", "holdout"]
    assert main([*args, "--correction", "fdr_bh", "--family", "all"]) == 0
    captured = capsys.readouterr()
    assert "Benjamini-Hochberg (FDR) over all 1 dataset x comparison tests" in captured.out
    assert "unet: did not learn 2/2" in captured.out
    assert "Traceback" not in captured.err and ".py:" not in captured.err  # warnings are one line each
