"""Figures (Fig. 8 box plots, bars, ranks) and the full report, on a small fixture (Agg, no display)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from results_fixture import make_failures, make_results, make_sidecars

from bench.report import figures, report


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return make_results(datasets=("isic2018", "dsb2018"), archs=("unet", "multiresunet", "mildnet"), n_cases=12)


def _texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def _check_files(paths: list[Path]) -> None:
    for path in paths:
        data = path.read_bytes()
        assert len(data) > 1000, path
        assert data[:8] == b"\x89PNG\r\n\x1a\n" if path.suffix == ".png" else data[:5] == b"%PDF-"


def test_boxplot_panel_has_annotations(df: pd.DataFrame) -> None:
    fig = figures.boxplot_fig8(df, "isic2018")
    assert len(fig.axes) == 1
    texts = _texts(fig)
    assert "ref." in texts and sum(t.endswith(tuple("0123456789")) or "p<" in t for t in texts) == 2
    assert "SYNTHETIC" in fig._suptitle.get_text()
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["U-Net", "MultiResUNet", "MILDNet"]


def test_fig8_files_and_panels(df: pd.DataFrame, tmp_path: Path) -> None:
    paths = figures.fig8(df, tmp_path)
    assert sorted(p.name for p in paths) == sorted(
        f"{stem}.{ext}" for stem in ("fig8_isic2018", "fig8_dsb2018", "fig8") for ext in ("png", "pdf")
    )
    _check_files(paths)
    assert len(figures.fig8_figure(df).axes) == 2


def test_unmatched_images_are_marked_unpaired(df: pd.DataFrame) -> None:
    cut = df[~((df["arch"] == "unet") & (df["case_id"] == "isic2018-003"))]
    with pytest.warns(UserWarning, match="unmatched"):
        fig = figures.boxplot_fig8(cut, "isic2018")
    assert _texts(fig).count("unpaired") == 2


def test_bars_and_ranking(df: pd.DataFrame, tmp_path: Path) -> None:
    bars = figures.bar_chart(df, tmp_path)
    assert [p.name for p in bars] == ["bars.png", "bars.pdf"]
    _check_files(bars)
    assert len(figures.bar_figure(df).axes) == 2
    ranked = figures.mean_ranks(df)
    assert ranked.iloc[0]["arch"] == "mildnet" and ranked.iloc[0]["mean_rank"] == 1.0
    _check_files(figures.ranking(df, tmp_path))


def test_build_report_writes_everything(df: pd.DataFrame, tmp_path: Path) -> None:
    fails = make_failures([("isic2018", "unetpp", "holdout", 0, "RuntimeError: boom")])
    with pytest.warns(UserWarning, match="n <= 5"):  # 4 holdout test images: the report's holdout tests warn
        index = report.build_report(df, tmp_path, sidecars=make_sidecars(df), failures=fails)
    text = index.read_text()
    assert "SYNTHETIC DATA" in text and "Profile(s): quick" in text and "status ok: 60" in text
    assert "Both masks empty: Dice = IoU = 1" in text and "scipy:" in text and "RuntimeError: boom" in text
    for name in (
        "table3",
        "table4",
        "table5",
        "floors",
        "sensitivity",
        "tests_cv",
        "tests_holdout",
        "tests_cv_image",
        "tests_holdout_image",
        "folds",
        "ranks",
        "settings",
    ):
        for ext in ("md", "tex", "csv", "html"):
            assert (tmp_path / "tables" / f"{name}.{ext}").stat().st_size > 0
            assert f"tables/{name}.{ext}" in text
    assert "figures/fig8.png" in text
    assert (tmp_path / "index.html").read_text().count("<img") == 6  # 2 panels + Fig. 8, bars, ranking, ranks
    assert "Nadeau" in (tmp_path / "tables" / "folds.md").read_text()
    assert "standard 5-fold cross-validation" in text and "inner validation part" in text
    assert "UNet++" in (tmp_path / "tables" / "table5.md").read_text()  # failed arch shown with its reason


@pytest.mark.filterwarnings("ignore:paired test on n <= 5")
def test_fig8_states_the_unit_and_uses_holdout_when_cv_is_missing() -> None:
    lgg = make_results(datasets=("lgg_mri",), archs=("unet", "mildnet"), n_cases=24)
    fig = figures.boxplot_fig8(lgg, "lgg_mri")
    title = fig.axes[0].get_title()
    assert "n = 6 patients (each the mean of its out-of-fold slices; cv)" in title
    assert "unit: patients" in fig._suptitle.get_text()
    assert len(fig.axes[0].collections[-1].get_offsets()) == 6  # one point per patient (last strip: mildnet)
    image = figures.boxplot_fig8(lgg, "lgg_mri", unit="image")
    assert "n = 24 out-of-fold slices" in image.axes[0].get_title()
    holdout_only = lgg[lgg["protocol"] == "holdout"]
    fig = figures.fig8_figure(holdout_only, protocol=None)
    assert "holdout" in fig._suptitle.get_text() and "no cv results" in fig._suptitle.get_text()


def test_rank_uncertainty_figure(df: pd.DataFrame, tmp_path: Path) -> None:
    paths = figures.rank_uncertainty(df, tmp_path, n_boot=200)
    assert [p.name for p in paths] == ["rank_uncertainty_dice.png", "rank_uncertainty_dice.pdf"]
    _check_files(paths)
    fig = figures.rank_figure(df, n_boot=200)
    assert len(fig.axes) == 3  # two datasets and across datasets
    assert fig.axes[0].get_yticklabels()[0].get_text() == "MILDNet"
