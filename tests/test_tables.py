"""Tables 3-5, floors, sensitivity and the renderers, from fixture tables in the results schema."""

from __future__ import annotations

import ast
import io
import math
import re
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from results_fixture import make_failures, make_results, make_rows, make_sidecars

from bench.analysis import tables
from bench.report import report, table_render


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return make_results(datasets=("isic2018", "lgg_mri"), n_cases=20)


def test_table5_rows_columns_values(df: pd.DataFrame) -> None:
    t5 = tables.table5(df)
    assert list(t5["dataset"].unique()) == ["isic2018", "lgg_mri"]  # paper order
    models = t5[t5["kind"] == "model"]
    assert len(models) == 16 and len(t5[t5["kind"] == "floor"]) == 4
    assert list(models["arch"][:6]) == ["unet", "unetpp", "residual_unet", "resdunet", "multiresunet", "mildnet"]
    for col in ("dice_mean", "dice_std", "iou_mean", "iou_std", "hd_mean", "hd_std", "n_models", "n_images", "note"):
        assert col in t5.columns
    test = df[
        (df["protocol"] == "holdout") & (df["split"] == "test") & (df["dataset"] == "isic2018") & (df["arch"] == "unet")
    ]
    per_fold = test.groupby("fold")["dice"].mean()
    row = t5[(t5["dataset"] == "isic2018") & (t5["arch"] == "unet")].iloc[0]
    assert row["dice_mean"] == pytest.approx(per_fold.mean()) and row["dice_std"] == pytest.approx(per_fold.std())
    assert row["n_models"] == 5 and row["n_images"] == 6 and row["note"] == ""


def test_table5_bold_best_per_dataset(df: pd.DataFrame) -> None:
    t5 = tables.table5(df)
    bold = t5.attrs["bold"]
    for ds in ("isic2018", "lgg_mri"):
        models = t5[(t5["dataset"] == ds) & (t5["kind"] == "model")]
        for m, best in (("dice", models["dice_mean"].idxmax()), ("hd", models["hd_mean"].idxmin())):
            assert (best, m) in bold
    assert len(bold) == 6  # 2 datasets x 3 metrics, no ties, floors never bold
    md = table_render.render(t5, "md")
    best = t5.loc[t5["dataset"] == "isic2018"].loc[lambda t: t["kind"] == "model", "dice_mean"].idxmax()
    assert f"**{t5.at[best, 'dice_mean']:.3f} ± " in md
    assert md.count("**") == 2 * 6
    assert "| Dataset | Model | Fold models | Images | DC ↑ | IoU ↑ | HD ↓ |" in md
    html = table_render.render(t5, "html")
    assert html.count("<b>") == 6 and "<th>HD ↓</th>" in html
    assert table_render.render(t5, "latex").count("\\textbf{") == 6


def test_table4_uses_validation_folds(df: pd.DataFrame) -> None:
    t4 = tables.table4(df)
    models = t4[t4["kind"] == "model"]
    assert list(models["arch"][:4]) == ["unet", "unet_mlr", "mildnet_no_mlr", "mildnet"] and len(models) == 8
    assert (models["n_images"] == 14).all()  # the 70% split into 5 validation folds
    val = df[
        (df["protocol"] == "holdout")
        & (df["split"] == "val")
        & (df["dataset"] == "lgg_mri")
        & (df["arch"] == "mildnet")
    ]
    row = models[(models["dataset"] == "lgg_mri") & (models["arch"] == "mildnet")].iloc[0]
    assert row["iou_mean"] == pytest.approx(val.groupby("fold")["iou"].mean().mean())
    assert "validation folds" in t4.attrs["caption"]


def test_vs_paper_puts_published_values_beside_ours(df: pd.DataFrame) -> None:
    t5 = tables.table5(df, vs_paper=True)
    row = t5[(t5["dataset"] == "isic2018") & (t5["arch"] == "mildnet")].iloc[0]
    assert (row["paper_dice"], row["paper_iou"], row["paper_hd"]) == ("0.94 ± 0.0005", "0.90 ± 0.0001", "7.54 ± 0.004")
    cols = list(t5.columns)
    assert cols.index("paper_dice") == cols.index("dice_std") + 1
    assert t5[t5["arch"] == "unet_mlr"]["paper_dice"].isna().all()  # not in Table 5
    md = table_render.render(t5, "md")
    assert "DC ↑ (paper)" in md and "| 0.94 ± 0.0005 |" in md
    t4 = tables.table4(df, vs_paper=True)
    assert t4[(t4["dataset"] == "lgg_mri") & (t4["arch"] == "unet_mlr")]["paper_iou"].iloc[0] == "0.79 ± 0.0003"


def test_vs_paper_keeps_the_printed_strings() -> None:
    """9.395 stays 9.395 (not 9.39), 8.36 stays 8.36 (not 8.4), 0.80 keeps its zero: in md, LaTeX and CSV."""
    df = make_results(datasets=("isbi2012",), archs=("multiresunet", "mildnet", "resdunet"), n_cases=20)
    t5 = tables.table5(df, vs_paper=True)
    cell = dict(zip(t5["arch"], t5["paper_hd"]))
    assert cell["mildnet"] == "9.395 ± 0.0031"
    assert dict(zip(t5["arch"], t5["paper_dice"]))["multiresunet"] == "0.88 ± 8.36"
    assert dict(zip(t5["arch"], t5["paper_iou"]))["resdunet"] == "0.80 ± 0.0004"
    for fmt in ("md", "latex", "csv", "html"):
        out = table_render.render(t5, fmt)
        assert "9.395" in out and "8.36" in out and "0.80" in out, fmt
        assert "9.39 " not in out and "8.4 " not in out, fmt


def test_synthetic_caption_and_real_caption(df: pd.DataFrame) -> None:
    assert "SYNTHETIC DATA" in tables.table5(df).attrs["caption"]
    real = df.assign(source="real")
    assert "SYNTHETIC" not in tables.table5(real).attrs["caption"]
    md = table_render.render(tables.table5(df), "md")
    assert md.splitlines()[0].startswith("Table 5.") and "SYNTHETIC DATA" in md.splitlines()[0]


def test_missing_results_show_why_never_zero(df: pd.DataFrame) -> None:
    cut = df[~((df["dataset"] == "lgg_mri") & (df["arch"].isin(["unetpp", "multiresunet"])))]
    cut = cut[~((cut["dataset"] == "isic2018") & (cut["arch"] == "resdunet") & (cut["fold"] == 2))]
    fails = make_failures(
        [
            ("mri", "multiresunet", "holdout", 3, "RuntimeError: CUDA out of memory\nTraceback"),
            ("isic2018", "resdunet", "holdout", 2, "ValueError: bad"),
        ]
    )
    t5 = tables.table5(cut, failures=fails)
    get = lambda ds, a: t5[(t5["dataset"] == ds) & (t5["arch"] == a)].iloc[0]
    assert get("lgg_mri", "unetpp")["note"] == "not run" and math.isnan(get("lgg_mri", "unetpp")["dice_mean"])
    assert get("lgg_mri", "multiresunet")["note"] == "failed (fold 3): RuntimeError: CUDA out of memory"
    assert get("isic2018", "resdunet")["note"] == "failed (fold 2): ValueError: bad; 4 fold models ok"
    assert get("isic2018", "resdunet")["n_models"] == 4
    md = table_render.render(t5, "md")
    line = next(ln for ln in md.splitlines() if "| UNet++ |" in ln and "not run" in ln)
    assert line.count("–") == 3 and "0.000" not in line


def test_floor_rows_from_counts() -> None:
    recs = [
        {"arch": "unet", "case_id": "a", "tp": 3, "fp": 1, "fn": 1, "tn": 11},  # n_ref 4 of N 16
        {"arch": "unet", "case_id": "b", "tp": 0, "fp": 0, "fn": 0, "tn": 16},
    ]  # empty reference
    fl = tables.floor_rows(make_rows(recs)).set_index("arch")
    diag = math.hypot(4, 4)
    fg, bg = fl.loc["all_foreground"], fl.loc["all_background"]
    assert fg["dice_mean"] == pytest.approx((2 * 4 / (4 + 16) + 0.0) / 2)  # empty ref + prediction -> 0
    assert fg["iou_mean"] == pytest.approx((4 / 16 + 0.0) / 2)
    assert math.isnan(fg["hd_mean"]) and "needs the masks" in fg["note"]
    assert bg["dice_mean"] == pytest.approx((0.0 + 1.0) / 2) and bg["iou_mean"] == pytest.approx(0.5)  # both empty
    assert bg["hd_mean"] == pytest.approx((diag + 0.0) / 2)
    assert (fl["kind"] == "floor").all()


def test_latex_escaping_and_bold() -> None:
    assert (
        table_render.latex_escape("a_b & 50% #1 {x} $y ~ ^ \\")
        == r"a\_b \& 50\% \#1 \{x\} \$y \textasciitilde{} \textasciicircum{} \textbackslash{}"
    )
    assert table_render.latex_escape("0.9 ± 0.1 ↑ ↓ –") == r"0.9 $\pm$ 0.1 $\uparrow$ $\downarrow$ --"
    t = pd.DataFrame({"setting": ["lgg_subset", "100% & more"], "value": ["a#b", "x"]})
    tex = table_render.render(t, "latex", bold=[(0, "value")], caption="Setting_names & 5%")
    assert r"lgg\_subset & \textbf{a\#b} \\" in tex and r"100\% \& more & x \\" in tex
    assert r"\caption{Setting\_names \& 5\%}" in tex and "\\begin{tabular}{ll}" in tex


def test_render_formats_and_csv_roundtrip(df: pd.DataFrame) -> None:
    t5 = tables.table5(df)
    csv = table_render.render(t5, "csv")
    assert csv.startswith("# Table 5.")
    back = pd.read_csv(io.StringIO(csv), comment="#")
    assert back["dice_mean"].to_numpy() == pytest.approx(t5["dice_mean"].to_numpy(), nan_ok=True)
    html = table_render.render(t5, "html")
    assert html.startswith("<table>") and "<caption>Table 5." in html and "MILDNet" in html
    with pytest.raises(ValueError, match="fmt must be"):
        table_render.render(t5, "docx")
    generic = table_render.render(pd.DataFrame({"dataset": ["mri"], "images": [3929], "fg": [0.1234567]}), "md")
    assert "| MRI | 3929 | 0.1235 |" in generic


def test_table3_from_sidecars(df: pd.DataFrame) -> None:
    sides = make_sidecars(df[df["arch"] == "unet"]) + make_sidecars(df[df["arch"] == "mildnet"], batch_size=8)
    t3 = tables.table3(sides).set_index("key")
    assert t3.loc["batch_size", "value"] == "4, 8" and t3.loc["batch_size", "paper"] == "4"
    assert t3.loc["lr", "value"] == "0.001" and t3.loc["plateau_factor", "paper"] == "not stated"
    t3 = tables.table3(sides)
    assert (int(np.flatnonzero(t3["key"] == "batch_size")[0]), "value") in t3.attrs["bold"]
    assert "**4, 8**" in table_render.render(t3, "md")
    with pytest.raises(ValueError, match="sidecars"):
        tables.table3([])


def test_table3_paper_column_and_citation(df: pd.DataFrame) -> None:
    """The paper states width 32 (filters 32..512) and Xavier initialisation without its variant."""
    t3 = tables.table3(make_sidecars(df[df["arch"] == "unet"], width=8))
    by_key = t3.set_index("key")
    assert by_key.loc["width", "paper"] == "32" and by_key.loc["init", "paper"] == "Xavier (variant not stated)"
    assert by_key.loc["inner_fraction", "paper"] == "not stated"
    bold = {t3.at[i, "key"] for i, _ in t3.attrs["bold"]}
    assert "width" in bold and "init" not in bold  # xavier_uniform is a Xavier initialisation
    assert "uniform or normal not stated" in t3.attrs["caption"]
    from bench.datasets.summary import paper_counts

    assert "Sci Rep 11, 14105 (2021)" in paper_counts()["source"]


def test_table3_shows_the_optimizer_scheduler_and_tuned_architecture_arguments(df: pd.DataFrame) -> None:
    """Table 3's grid names the optimizer, the scheduler, the levels and the dilation rates: each is a row
    beside the paper's optimum, from the recipe or from the tuned architecture arguments."""
    sides = make_sidecars(df[df["arch"] == "mildnet"], optimizer="sgd")
    for side in sides:
        side["job"]["arch_kwargs"] = '{"dilations": [1, 2, 4], "levels": 1}'
    t3 = tables.table3(sides).set_index("key")
    assert t3.loc["optimizer", ["setting", "value", "paper"]].tolist() == ["Optimizer", "sgd", "adam"]
    assert t3.loc["scheduler", "paper"] == "plateau" and t3.loc["scheduler", "value"] == "plateau"
    assert t3.loc["dilations", "value"] == "(1, 2, 4)" and t3.loc["levels", ["value", "paper"]].tolist() == ["1", "2"]
    bold = {tables.table3(sides).at[i, "key"] for i, _ in tables.table3(sides).attrs["bold"]}
    assert {"optimizer", "dilations", "levels"} <= bold and "scheduler" not in bold


def test_sensitivity_detects_a_ranking_flip() -> None:
    # only the ranking logic matters: A wins on Dice thanks to a both-empty image, B wins once it is excluded;
    # A wins on HD, B on HD95.
    recs = [
        {"arch": "unet", "case_id": "x", "tp": 3, "fp": 7, "fn": 7, "tn": 83, "hd": 1.0, "hd95": 9.0},
        {"arch": "unet", "case_id": "y", "tp": 0, "fp": 0, "fn": 0, "tn": 100, "hd": 0.0, "hd95": 0.0},
        {"arch": "mildnet", "case_id": "x", "tp": 9, "fp": 1, "fn": 1, "tn": 89, "hd": 5.0, "hd95": 1.0},
        {"arch": "mildnet", "case_id": "y", "tp": 0, "fp": 5, "fn": 0, "tn": 95, "hd": 5.0, "hd95": 1.0},
    ]
    table, line = tables.sensitivity(make_rows(recs, eval_size=10))
    row = table.iloc[0]
    assert row["ranking_dice"] == "unet > mildnet" and row["ranking_dice_excl_empty"] == "mildnet > unet"
    assert row["changed_by_empty_rule"] and row["changed_by_hd95"] and row["n_both_empty"] == 1
    assert line.startswith("Excluding both-empty images changes the Dice ranking in 1/1 datasets (isic2018)")


def test_report_table_entry_point(df: pd.DataFrame) -> None:
    md = report.report_table(df, 5, "md", vs_paper=True)
    assert "DC ↑ (paper)" in md and "SYNTHETIC DATA" in md
    assert report.report_table(df, "4", "tex").startswith("\\begin{table}")
    assert "Paired tests" in report.report_table(df, "tests", "md", protocol="cv")
    with pytest.raises(ValueError, match="sidecars"):
        report.report_table(df, 3)
    with pytest.raises(ValueError, match="unknown table"):
        report.report_table(df, 9)


# ----------------------------------------------------------------------------- facts read from the registries


@pytest.fixture
def newcomers() -> Iterator[tuple[str, str]]:
    """A dataset and an architecture the paper does not have, registered for one test and removed after.
    Their names sort before every paper name, so the tables must put the paper's items first on purpose."""
    from bench.architectures import ARCHITECTURES
    from bench.datasets import DATASETS
    from bench.datasets.base import Case, SegDataset

    class Polyps(SegDataset):
        name, display_name, modality, channels, source = "aaa_polyps", "Polyp-Test", "colonoscopy", 3, "synthetic"
        unit_nouns = ("patients", "frames")

        def list_cases(self) -> list[Case]:
            return [Case(f"polyp{i}", f"polyp{i}") for i in range(3)]

        def read(self, case: Case) -> tuple[np.ndarray, np.ndarray]:
            mask = np.zeros((40, 48), bool)
            mask[5:20, 8:30] = True
            return np.full((40, 48, 3), 90, np.uint8), mask

    DATASETS.register("aaa_polyps", Polyps)
    ARCHITECTURES.register("aaa_net", lambda **kw: None, display_name="AAA-Net (test)")
    try:
        yield "aaa_polyps", "aaa_net"
    finally:
        DATASETS.unregister("aaa_polyps")
        ARCHITECTURES.unregister("aaa_net")


def test_table5_shows_a_new_dataset_and_architecture_by_their_own_names_after_the_papers(
    newcomers: tuple[str, str],
) -> None:
    dataset, arch = newcomers
    paper5 = ["unet", "unetpp", "residual_unet", "resdunet", "multiresunet", "mildnet"]
    df = make_results(datasets=("lgg_mri", dataset), archs=(arch, "unet", "mildnet"), quality={arch: 0.8}, n_cases=10)
    t5 = tables.table5(df)
    assert list(t5["dataset"].unique()) == ["lgg_mri", dataset]  # the paper's first, though "aaa" sorts first
    for ds in ("lgg_mri", dataset):
        models = t5[(t5["dataset"] == ds) & (t5["kind"] == "model")]
        assert list(models["arch"]) == [*paper5, arch]  # every Table 5 network (not run: a note), then the newcomer
    md = table_render.render(t5, "md")
    assert "| Polyp-Test | U-Net |" in md and "| AAA-Net (test) |" in md
    assert re.search(r"Polyp-Test: \d+ test frames\)", t5.attrs["caption"])  # its name and image noun (ungrouped)
    assert dataset not in md.replace(dataset + "-", "") and "| aaa_net" not in md


def test_table1_shows_a_new_datasets_display_name_and_modality(newcomers: tuple[str, str]) -> None:
    from bench.datasets import DATASETS, open_dataset
    from bench.datasets.prepare import prepare
    from bench.datasets.summary import table1

    dataset, _ = newcomers
    t1 = table1(prepare(DATASETS.create(dataset, root=None), 32), prepare(open_dataset("isic2018"), 32))
    row = t1.set_index("dataset").loc[dataset]
    assert row["modality"] == "colonoscopy" and row["images"] == 3 and row["majority_size"] == "48x40"
    md = table_render.render(t1, "md")
    assert "| Polyp-Test | synthetic | colonoscopy |" in md and "| ISIC-2018 |" in md


def test_the_papers_order_is_read_from_the_registries() -> None:
    from bench.analysis.names import arch_label, dataset_label, ordered_archs, ordered_datasets
    from bench.architectures import PAPER_ARCHS, paper_archs
    from bench.datasets import PAPER_DATASETS

    assert PAPER_DATASETS == ("isbi2012", "isic2018", "lgg_mri", "glas2015", "dsb2018")
    assert PAPER_ARCHS == (
        "unet",
        "unetpp",
        "residual_unet",
        "resdunet",
        "multiresunet",
        "mildnet",
        "unet_mlr",
        "mildnet_no_mlr",
    )
    assert paper_archs("table4") == ("unet", "unet_mlr", "mildnet_no_mlr", "mildnet")
    assert paper_archs("table5") == PAPER_ARCHS[:6]
    assert ordered_archs(["smp:Unet:resnet34", "mildnet", "unet_mlr", "unet"]) == [
        "unet",
        "mildnet",
        "unet_mlr",
        "smp:Unet:resnet34",
    ]
    assert ordered_datasets(["dsb2018", "mri_other", "isbi2012"]) == ["isbi2012", "dsb2018", "mri_other"]
    assert [dataset_label(d) for d in ("mri", "lgg_mri", "glas2015", "gone")] == ["MRI", "MRI", "GlaS-2015", "gone"]
    assert [arch_label(a) for a in ("unetpp", "mildnet_no_mlr", "gone")] == ["UNet++", "MILDNet (without MLR)", "gone"]
    assert arch_label("smp:Unet:resnet34") == "smp Unet (resnet34)"  # a name the prefix resolves
    assert arch_label("smp:NoSuchNet") == "smp:NoSuchNet"


def _name_lists(tree: ast.AST, names: frozenset[str]) -> list[int]:
    """Lines of tuple/list/set literals naming two or more of ``names``, and of name -> text dicts (label
    tables) keyed by two or more of them."""
    lines = []
    for node in ast.walk(tree):
        labels = isinstance(node, ast.Dict) and all(
            isinstance(v, ast.Constant) and isinstance(v.value, str) for v in node.values
        )
        items = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else (node.keys if labels else [])
        found = {i.value for i in items if isinstance(i, ast.Constant) and i.value in names}
        if len(found) >= 2:
            lines.append(node.lineno)
    return lines


def test_the_papers_lists_and_display_names_live_only_in_the_registries() -> None:
    """No module repeats the paper's dataset or network lists, or a name -> label table of them: only
    ``bench.datasets`` holds the dataset order; networks carry theirs on their registry entries."""
    from pathlib import Path

    root = Path(tables.__file__).resolve().parents[2]
    datasets = frozenset({"isbi2012", "isic2018", "lgg_mri", "glas2015", "dsb2018", "mri"})
    archs = frozenset(
        {"unet", "unetpp", "residual_unet", "resdunet", "multiresunet", "mildnet", "unet_mlr", "mildnet_no_mlr"}
    )
    import bench.datasets

    home = Path(bench.datasets.__file__).resolve()  # datasets/ in a checkout, bench/datasets/ when installed
    copies = []
    files = {p.resolve() for d in ("bench", "architectures", "datasets") for p in (root / d).rglob("*.py")}
    assert home in files and len(files) > 50, "the scan must cover the package wherever it is installed"
    for path in sorted(files):
        tree = ast.parse(path.read_text())
        copies += [f"{path.relative_to(root)}:{n} (archs)" for n in _name_lists(tree, archs)]
        if path != home:
            copies += [f"{path.relative_to(root)}:{n} (datasets)" for n in _name_lists(tree, datasets)]
    assert not copies, f"copies of the paper's lists: {copies}"


def test_a_missing_count_shows_as_a_dash_not_na() -> None:
    """Nullable integer columns (a dataset not in the paper has no paper count) render "–", never "<NA>"."""
    df = pd.DataFrame({"dataset": ["isic2018", "x"], "images": pd.array([2594, None], dtype="Int64")})
    for fmt in ("md", "html", "latex"):
        text = table_render.render(df, fmt)
        assert "<NA>" not in text and "NA" not in text.replace("NAME", "")
    assert "| x | – |" in table_render.render(df, "md")
