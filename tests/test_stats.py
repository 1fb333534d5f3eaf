"""Paired tests on the tidy table: equal to scipy on the same vectors, strict pairing, corrections, units."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from results_fixture import make_results
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from bench.analysis import stats
from bench.report.tests_table import format_tests


@pytest.fixture(scope="module")
def effect() -> pd.DataFrame:
    return make_results(
        datasets=("isic2018",), archs=("unet", "mildnet"), n_cases=40, quality={"unet": 0.66, "mildnet": 0.84}
    )


def _cv_vector(df: pd.DataFrame, arch: str, metric: str = "iou") -> np.ndarray:
    rows = df[(df["arch"] == arch) & (df["protocol"] == "cv")].sort_values("case_id")
    return rows[metric].to_numpy(float)


def test_known_effect_matches_scipy_and_is_significant(effect: pd.DataFrame) -> None:
    res = stats.paired_test(effect, dataset="isic2018")
    assert list(res.columns) == stats.RESULT_COLUMNS and len(res) == 1
    row = res.iloc[0]
    a, b = _cv_vector(effect, "mildnet"), _cv_vector(effect, "unet")
    tt = sps.ttest_rel(a, b)
    ci = tt.confidence_interval(0.95)
    assert row["n"] == 40 and row["other"] == "unet" and row["reference"] == "mildnet"
    assert row["statistic"] == pytest.approx(tt.statistic, rel=1e-12)
    assert row["p_raw"] == pytest.approx(tt.pvalue, rel=1e-12)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-12)
    assert row["mean_diff"] == pytest.approx(np.mean(a - b))
    assert row["d_z"] == pytest.approx(np.mean(a - b) / np.std(a - b, ddof=1))
    assert row["significant"] and row["mean_diff"] > 0 and row["p_adj"] == row["p_raw"]  # one comparison
    assert row["unit"] == "out-of-fold images (cv)" and row["models_ref"] == 5


def test_no_effect_is_not_significant() -> None:
    df = make_results(
        datasets=("isic2018",),
        archs=("unet", "mildnet"),
        n_cases=40,
        protocols=("cv",),
        quality={"unet": 0.8, "mildnet": 0.8},
        rng_seed=3,
    )
    row = stats.paired_test(df, dataset="isic2018").iloc[0]
    assert not row["significant"] and row["p_raw"] > 0.05
    assert row["ci_low"] < 0 < row["ci_high"]


def test_wilcoxon_matches_scipy(effect: pd.DataFrame) -> None:
    row = stats.paired_test(effect, dataset="isic2018", test="wilcoxon", metric="dice").iloc[0]
    w = sps.wilcoxon(_cv_vector(effect, "mildnet", "dice"), _cv_vector(effect, "unet", "dice"))
    assert (row["statistic"], row["p_raw"]) == pytest.approx((w.statistic, w.pvalue), rel=1e-12)
    assert row["test"] == "wilcoxon"


def test_holdout_averages_over_fold_models(effect: pd.DataFrame) -> None:
    row = stats.paired_test(effect, dataset="isic2018", protocol="holdout").iloc[0]
    test = effect[(effect["protocol"] == "holdout") & (effect["split"] == "test")]
    per = test.groupby(["arch", "case_id"])["iou"].mean().unstack("arch")
    tt = sps.ttest_rel(per["mildnet"], per["unet"])
    assert row["n"] == len(per) == 12 and row["models_ref"] == 5
    assert row["p_raw"] == pytest.approx(tt.pvalue, rel=1e-12)
    assert "averaged over fold models" in row["unit"] and "holdout" in row["unit"]


def test_unmatched_ids_are_refused_and_listed(effect: pd.DataFrame) -> None:
    dropped = effect[~((effect["arch"] == "unet") & (effect["case_id"] == "isic2018-007"))]
    with pytest.raises(ValueError, match=r"unmatched images.*1 only in mildnet \[isic2018-007\]"):
        stats.paired_test(dropped, dataset="isic2018")


def test_duplicate_rows_are_refused(effect: pd.DataFrame) -> None:
    doubled = pd.concat([effect, effect[effect["arch"] == "unet"].assign(job_key="other")])
    with pytest.raises(ValueError, match="duplicate result rows"):
        stats.paired_test(doubled, dataset="isic2018")


@pytest.fixture(scope="module")
def three() -> pd.DataFrame:
    return make_results(
        datasets=("lgg_mri",),
        archs=("unet", "unetpp", "multiresunet", "mildnet"),
        n_cases=30,
        protocols=("cv",),
        quality={"unet": 0.78, "unetpp": 0.80, "multiresunet": 0.82, "mildnet": 0.84},
    )


def test_holm_matches_hand_computation(three: pd.DataFrame) -> None:
    res = stats.paired_test(three, dataset="mri", correction="holm")  # alias resolves to lgg_mri
    assert set(res["other"]) == {"unet", "unetpp", "multiresunet"} and (res["dataset"] == "lgg_mri").all()
    p = res["p_raw"].to_numpy()
    order, m = np.argsort(p), len(p)
    hand, running = np.empty(m), 0.0
    for rank, i in enumerate(order):  # step-down: max over the earlier (smaller) p's of (m - rank) * p
        running = max(running, min(1.0, (m - rank) * p[i]))
        hand[i] = running
    assert res["p_adj"].to_numpy() == pytest.approx(hand, rel=1e-12)
    assert (res["significant"] == (hand <= 0.05)).all()
    bonf = stats.paired_test(three, dataset="lgg_mri", correction="bonferroni")
    assert bonf["p_adj"].to_numpy() == pytest.approx(np.minimum(1, m * p), rel=1e-12)
    none = stats.paired_test(three, dataset="lgg_mri", correction="none")
    assert (none["p_adj"] == none["p_raw"]).all()


def test_adjust_on_known_p_values() -> None:
    p_adj, sig = stats.adjust([0.01, 0.04, 0.03], "holm")
    assert p_adj == pytest.approx([0.03, 0.06, 0.06])
    assert list(sig) == [True, False, False]
    assert p_adj == pytest.approx(multipletests([0.01, 0.04, 0.03], method="holm")[1])
    p_adj, sig = stats.adjust([np.nan, 0.01], "holm")
    assert np.isnan(p_adj[0]) and p_adj[1] == pytest.approx(0.01) and list(sig) == [False, True]


def test_against_subset_and_errors(three: pd.DataFrame) -> None:
    res = stats.paired_test(three, dataset="lgg_mri", against=["unet"])
    assert list(res["other"]) == ["unet"]
    with pytest.raises(ValueError, match="no results for resdunet"):
        stats.paired_test(three, dataset="lgg_mri", against="resdunet")
    with pytest.raises(ValueError, match="test must be"):
        stats.paired_test(three, dataset="lgg_mri", test="z")
    with pytest.raises(KeyError, match="unknown dataset|mri"):
        stats.paired_test(three, dataset="mrii")


def test_warns_on_five_units() -> None:
    df = make_results(datasets=("isic2018",), archs=("unet", "mildnet"), n_cases=5, protocols=("cv",))
    with pytest.warns(UserWarning, match="n <= 5"):
        stats.paired_test(df, dataset="isic2018")


def test_nan_pairs_are_excluded_and_counted(three: pd.DataFrame) -> None:
    df = three.copy()
    df.loc[(df["arch"] == "unet") & df["case_id"].isin(["lgg_mri-000", "lgg_mri-001"]), "iou"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        row = stats.paired_test(df, dataset="lgg_mri", against="unet", unit="image").iloc[0]
        group = stats.paired_test(df, dataset="lgg_mri", against="unet").iloc[0]
    assert row["n"] == 28 and row["n_excluded"] == 2
    assert group["n"] == 8 and group["n_excluded"] == 2 and group["n_images"] == 28  # patient p000 keeps 2 slices


def test_format_tests_states_the_unit(three: pd.DataFrame) -> None:
    res = stats.paired_tests(three)
    for fmt in ("text", "md"):
        out = format_tests(res, fmt)
        assert "unit: patients (each the mean of its out-of-fold slices; cv)" in out and "holm" in out
        assert "mildnet vs unet" in out and "95% CI" in out
    latex = format_tests(res, "latex")
    assert "\\begin{tabular}" in latex and "95\\% CI" in latex and "patients" in latex
    assert format_tests(res, "md").startswith("| dataset |")
    csv = format_tests(res, "csv")
    assert csv.startswith("# p folds: the fold-level corrected resampled t-test")  # the caveats, as a comment line
    assert pd.read_csv(__import__("io").StringIO(csv), skiprows=1).shape == res.shape


# ----------------------------------------------------------------------------- unit of analysis


def _group_means(df: pd.DataFrame, arch: str, protocol: str = "cv", split: str = "val") -> pd.Series:
    rows = df[(df["arch"] == arch) & (df["protocol"] == protocol) & (df["split"] == split)]
    per_image = rows.groupby(["group", "case_id"])["iou"].mean()  # over fold models first
    return per_image.groupby("group").mean().sort_index()


def test_group_level_p_equals_scipy_on_group_means() -> None:
    """LGG: slices of one patient are averaged, then patients are paired (4 slices per patient here)."""
    df = make_results(
        datasets=("lgg_mri",), archs=("unet", "mildnet"), n_cases=40, quality={"unet": 0.78, "mildnet": 0.84}
    )
    row = stats.paired_test(df, dataset="lgg_mri").iloc[0]
    a, b = _group_means(df, "mildnet"), _group_means(df, "unet")
    tt = sps.ttest_rel(a, b)
    ci = tt.confidence_interval(0.95)
    assert row["n"] == 10 and row["n_images"] == 40 and row["unit_level"] == "group"
    assert row["p_raw"] == pytest.approx(tt.pvalue, rel=1e-12)
    assert row["statistic"] == pytest.approx(tt.statistic, rel=1e-12)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-12)
    assert row["unit"] == "patients (each the mean of its out-of-fold slices; cv)"
    image = stats.paired_test(df, dataset="lgg_mri", unit="image").iloc[0]
    assert image["n"] == 40 and image["unit_level"] == "image" and image["p_raw"] < row["p_raw"]
    assert image["unit"].startswith("out-of-fold slices (cv), image level") and "not independent" in image["unit"]
    held = stats.paired_test(df, dataset="lgg_mri", protocol="holdout").iloc[0]
    tt = sps.ttest_rel(_group_means(df, "mildnet", "holdout", "test"), _group_means(df, "unet", "holdout", "test"))
    assert held["p_raw"] == pytest.approx(tt.pvalue, rel=1e-12)
    assert held["unit"] == "patients (each the mean of its test-set slices, averaged over fold models; holdout)"
    with pytest.raises(ValueError, match="unit must be"):
        stats.paired_test(df, dataset="lgg_mri", unit="subject")


def test_unit_names_patches_and_source_images() -> None:
    df = make_results(datasets=("isbi2012",), archs=("unet", "mildnet"), n_cases=12, protocols=("cv",))
    df["group"] = df["case_id"].str[:-1]  # patches of one source image share a group
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        assert stats.paired_test(df, dataset="isbi2012").iloc[0]["unit"].startswith("source images (each the mean")
    assert stats.paired_test(df, dataset="isbi2012", unit="image").iloc[0]["unit"].startswith("out-of-fold patches")


def test_protocol_with_results_is_used_when_none_is_given() -> None:
    df = make_results(datasets=("lgg_mri",), archs=("unet", "mildnet"), protocols=("holdout",))
    protocol, note = stats.resolve_protocol(df, "mri", None)
    assert protocol == "holdout" and "no cv results for dataset lgg_mri" in note and "--protocol cv" in note
    assert stats.resolve_protocol(df, "mri", "cv") == ("cv", "")
    both = make_results(datasets=("lgg_mri",), archs=("unet", "mildnet"))
    assert stats.resolve_protocol(both, "lgg_mri", None)[0] == "cv"
    with pytest.raises(
        ValueError,
        match=r"no cv or holdout results for dataset isic2018: `bench run --dataset "
        r"isic2018 --arch mildnet,unet --protocol cv --folds 0,1,2,3,4`",
    ):
        stats.resolve_protocol(df, "isic2018", None)
    with pytest.raises(ValueError, match="--protocol cv --folds 0,1,2,3,4` makes them"):
        stats.paired_test(df, dataset="lgg_mri", protocol="cv")


def test_fold_level_corrected_resampled_t_test() -> None:
    df = make_results(datasets=("isic2018",), archs=("unet", "mildnet"), n_cases=40, protocols=("cv",))
    row = stats.fold_level_test(df, dataset="isic2018").iloc[0]
    cv = df[df["protocol"] == "cv"]
    per = cv.groupby(["arch", "fold"])["iou"].mean().unstack("arch")
    d = (per["mildnet"] - per["unet"]).to_numpy()
    se = np.sqrt((1 / 5 + 8 / 32) * np.var(d, ddof=1))  # 8 scored images per fold model, 32 outside its fold
    assert row["n_folds"] == 5 and row["test_train_ratio"] == pytest.approx(0.25)
    assert row["statistic"] == pytest.approx(d.mean() / se, rel=1e-12)
    assert row["p_raw"] == pytest.approx(2 * sps.t.sf(abs(d.mean() / se), 4), rel=1e-12)
    assert row["ci_high"] - row["mean_diff"] == pytest.approx(sps.t.ppf(0.975, 4) * se, rel=1e-12)
    naive = sps.ttest_rel(per["mildnet"], per["unet"])
    assert row["p_raw"] > naive.pvalue  # the correction widens the variance
    text = format_tests(stats.fold_level_test(df, dataset="isic2018"))
    assert "Nadeau C. & Bengio Y. 2003" in text and "fold models (cv)" in text


def test_glas_patient_unit_from_grade_csv(tmp_path) -> None:
    """GlaS: patches -> source images (group) -> patients of Grade.csv (--unit patient)."""
    from bench.report.data import attach_patients

    df = make_results(
        datasets=("glas2015",),
        archs=("unet", "mildnet"),
        n_cases=36,
        protocols=("cv",),
        quality={"unet": 0.78, "mildnet": 0.84},
    )
    df["group"] = "train_" + (df["case_id"].str[-3:].astype(int) // 2).astype(str)  # 2 patches per source image
    (tmp_path / "Grade.csv").write_text(
        "name,patient ID,grade (GlaS), grade (Sirinukunwattana et al. 2015)\r\n"
        + "".join(f"train_{i},{i // 3}, benign, healthy\r\n" for i in range(18))
    )  # 3 source images per patient
    sides = [{"job": {"dataset": "glas2015", "data_root": str(tmp_path)}}]
    with_patients = attach_patients(df, sides)
    row = stats.paired_test(with_patients, dataset="glas2015", unit="patient").iloc[0]
    cv = with_patients[with_patients["protocol"] == "cv"]
    per = cv.groupby(["arch", "patient", "case_id"])["iou"].mean().groupby(["arch", "patient"]).mean().unstack("arch")
    tt = sps.ttest_rel(per["mildnet"], per["unet"])
    assert row["n"] == 6 and row["n_images"] == 36 and row["p_raw"] == pytest.approx(tt.pvalue, rel=1e-12)
    assert row["unit"] == "patients (Grade.csv) (each the mean of its out-of-fold patches; cv)"
    assert stats.paired_test(with_patients, dataset="glas2015").iloc[0]["n"] == 18  # source images
    with pytest.raises(ValueError, match="--unit patient needs each image's patient"):
        stats.paired_test(df, dataset="glas2015", unit="patient")
