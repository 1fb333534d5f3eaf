"""Each dataset's own quirks, on the fixtures its file writes (``native_layouts``) and on the real samples
in ``../shared/data`` (skipped when absent). What every dataset must do is tested, with no dataset named,
in ``test_datasets_native.py``.
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import numpy as np
import pytest
from native_layouts import (
    GLAS_NAMES,
    LGG_PATIENTS,
    blob,
    make_dsb,
    make_glas,
    make_isbi_png,
    make_isbi_tiff,
    make_isic,
    make_kvasir,
    make_lgg,
    make_non_binary,
    write,
)

from bench.datasets import DATASETS, PAPER_DATASETS, canonical_name, open_dataset
from bench.datasets.base import DataError, SegDataset
from bench.datasets.check import CheckReport, check_data_root, check_dataset, format_report
from bench.datasets.folders import native_classes


#: Every registered dataset with a native-layout reader (all of them: the stand-ins are not registered).
def read_all(ds: SegDataset) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {case.case_id: ds.read(case) for case in ds.cases()}


def has_problem(report: CheckReport, kind: str, path: Path) -> bool:
    """A problem of ``kind`` naming ``path`` (by full path, or by file name in a duplicate's detail)."""
    return any(p.kind == kind and (p.path.startswith(str(path)) or path.name in p.detail) for p in report.problems)


# ---------------------------------------------------------------- registry
def test_registry_names_and_attributes() -> None:
    assert set(PAPER_DATASETS) <= set(native_classes())
    assert canonical_name("mri") == "lgg_mri"
    patch = {name for name in PAPER_DATASETS if DATASETS.get(name).factory.patch_based}
    assert patch == {"isbi2012", "glas2015"}
    channels = {name: DATASETS.get(name).factory.channels for name in PAPER_DATASETS}
    assert channels == {"dsb2018": 3, "glas2015": 3, "isbi2012": 1, "isic2018": 3, "lgg_mri": 3}
    assert DATASETS.get("isbi2012").factory.__doc__ and "cell interior" in DATASETS.get("isbi2012").factory.__doc__


# ---------------------------------------------------------------- each layout's own quirks
def test_isbi_variants_agree_and_foreground_is_white(tmp_path: Path) -> None:
    png = read_all(open_dataset("isbi2012", make_isbi_png(tmp_path / "png").root))
    tiff_ds = open_dataset("isbi2012", make_isbi_tiff(tmp_path / "tiff").root)
    tiff = read_all(tiff_ds)
    assert list(png) == list(tiff) == ["slice_00", "slice_01", "slice_02", "slice_03"]
    for cid in png:
        np.testing.assert_array_equal(png[cid][0], tiff[cid][0])
        np.testing.assert_array_equal(png[cid][1], tiff[cid][1])
        assert png[cid][1].mean() > 0.5  # white (cell interior) is the majority foreground class
    assert [c.page for c in tiff_ds.cases()] == [0, 1, 2, 3]
    assert tiff_ds.options() == {"variant": "tiff"}


def test_isbi_png_numeric_order_and_variant_choice(tmp_path: Path) -> None:
    layout = make_isbi_png(tmp_path / "isbi", n=12)
    assert [c.case_id for c in open_dataset("isbi2012", layout.root).cases()][:3] == [
        "slice_00",
        "slice_01",
        "slice_02",
    ]
    make_isbi_tiff(layout.root, n=12)  # both variants present: auto uses the official stacks and says so
    auto = open_dataset("isbi2012", layout.root)
    assert auto.options() == {"variant": "tiff"}
    assert "not used" in check_dataset(auto).counts["note"]
    assert open_dataset("isbi2012", layout.root, variant="png").options() == {"variant": "png"}
    with pytest.raises(ValueError, match="variant"):
        open_dataset("isbi2012", layout.root, variant="zarr")


def test_isbi_tiff_page_count_mismatch(tmp_path: Path) -> None:
    layout = make_isbi_tiff(tmp_path / "isbi", n=4)
    write(layout.root / "train-labels.tif", np.stack([255 - blob(i) for i in range(3)]), stack=True)
    report = check_dataset(open_dataset("isbi2012", layout.root))
    assert [p.kind for p in report.problems] == ["missing_mask"] and "page 3" in report.problems[0].path
    assert report.n_cases == 3
    assert open_dataset("isbi2012", layout.root, skip=["slice_03"]).cases()[-1].case_id == "slice_02"


def test_lgg_numeric_sort_masks_groups_and_subsets(tmp_path: Path) -> None:
    layout = make_lgg(tmp_path / "lgg_mri")
    ds = open_dataset("mri", layout.root)
    assert ds.name == "lgg_mri" and ds.options() == {"subset": "all"}
    ids = [c.case_id for c in ds.cases()]
    assert ids == [f"{p}_{n}" for p in LGG_PATIENTS for n in (1, 2, 10)]  # _2 before _10, no _mask ids
    assert all(not str(c.image_path).endswith("_mask.tif") for c in ds.cases())
    assert dict(ds.cases()[0].meta)["patient"] == "TCGA_CS_4941"
    report = check_dataset(ds)
    assert report.n_groups == 2 and report.counts["empty_masks"] == 2 and report.counts["data_csv_rows"] == 3
    tumour = open_dataset("lgg_mri", layout.root, subset="tumour")
    assert tumour.options() == {"subset": "tumour"}
    assert [c.case_id for c in tumour.cases()] == [f"{p}_{n}" for p in LGG_PATIENTS for n in (2, 10)]
    assert all(mask.any() for _, mask in read_all(tumour).values())
    empty_slice = f"{LGG_PATIENTS[0]}_1"  # left out by the subset: still a known id for skip=
    assert len(open_dataset("lgg_mri", layout.root, subset="tumour", skip=[empty_slice]).cases()) == 4
    assert "subset='tumour'" in format_report(check_dataset(tumour))
    with pytest.raises(ValueError, match="tumour"):
        open_dataset("lgg_mri", layout.root, subset="paper")


def test_lgg_wrong_root_gets_a_hint(tmp_path: Path) -> None:
    layout = make_lgg(tmp_path / "lgg_mri")
    with pytest.raises(DataError, match="point root at the folder above kaggle_3m"):
        open_dataset("lgg_mri", layout.root / "kaggle_3m").cases()


def test_glas_grades_instances_and_missing_csv(tmp_path: Path) -> None:
    layout = make_glas(tmp_path / "glas2015")
    ds = open_dataset("glas2015", layout.root)
    cases = {c.case_id: dict(c.meta) for c in ds.cases()}
    assert set(cases) == set(GLAS_NAMES)
    assert cases["testA_1"] == {
        "official_split": "testA",
        "patient_id": "3",
        "grade_glas": "benign",
        "grade_sirinukunwattana": "adenomatous",
    }
    report = check_dataset(ds)
    assert report.ok and report.counts["grade_rows"] == 5 and report.counts["grade_rows_without_images"] == 1
    (layout.root / "Grade.csv").unlink()
    report = check_dataset(open_dataset("glas2015", layout.root))
    assert report.ok and report.counts["grade_csv"].startswith("missing")


def test_glas_images_one_folder_down(tmp_path: Path) -> None:
    root = tmp_path / "glas2015"
    make_glas(root / "Warwick QU Dataset (Released 2016_07_08)")
    assert {c.case_id for c in open_dataset("glas2015", root).cases()} == set(GLAS_NAMES)


def test_glas_patients_of_source_images_come_from_grade_csv(tmp_path: Path) -> None:
    """The report's ``--unit patient`` pairs GlaS patients: source image -> patient of Grade.csv."""
    glas = native_classes()["glas2015"]
    root = tmp_path / "glas2015"
    make_glas(root / "Warwick QU Dataset (Released 2016_07_08)")  # Grade.csv one folder down
    patients = glas.group_patients(root)
    assert patients == {
        name: f"patient {i + 1}" for i, name in enumerate(["train_1", "train_2", "testA_1", "testB_1", "testB_20"])
    }
    (root / "Warwick QU Dataset (Released 2016_07_08)" / "Grade.csv").unlink()
    assert glas.group_patients(root) == {}
    assert native_classes()["lgg_mri"].group_patients(make_lgg(tmp_path / "lgg").root) == {}  # groups are patients


def test_dsb_union_and_alpha(tmp_path: Path) -> None:
    layout = make_dsb(tmp_path / "dsb2018")
    ds = open_dataset("dsb2018", layout.root)
    images = read_all(ds)
    grey_stored_as_rgba = images["0a1b2c"][0]
    assert grey_stored_as_rgba.shape[2] == 3 and np.array_equal(
        grey_stored_as_rgba[..., 0], grey_stored_as_rgba[..., 2]
    )
    assert check_dataset(ds).counts["nucleus_masks"] == 9


# ---------------------------------------------------------------- bad files a layout reports its own way
def test_glas_instance_labels_are_not_non_binary(tmp_path: Path) -> None:
    layout = make_glas(tmp_path / "glas2015")
    make_non_binary(layout.mask("train_1"))
    assert check_dataset(open_dataset("glas2015", layout.root)).ok


def test_mask_with_differing_channels_is_reported(tmp_path: Path) -> None:
    layout = make_isic(tmp_path / "isic2018")
    mask = layout.mask("ISIC_0000002")
    coloured = np.stack([blob(1), blob(2), blob(3)], axis=2)
    mask.unlink()
    write(mask, coloured)
    assert has_problem(check_dataset(open_dataset("isic2018", layout.root)), "bad_channels", mask)


def test_unexpected_image_name_is_a_problem(tmp_path: Path) -> None:
    layout = make_isbi_png(tmp_path / "isbi")
    stray = write(layout.root / "train" / "image" / "slice_copy.png", blob(0))
    ignored = layout.root / "train" / "image" / "notes.txt"
    ignored.write_text("x")
    report = check_dataset(open_dataset("isbi2012", layout.root))
    assert has_problem(report, "unexpected_file", stray)
    assert str(ignored) in report.counts["ignored_files"]


def test_missing_and_empty_subfolders(tmp_path: Path) -> None:
    isic = make_isic(tmp_path / "isic2018")
    truth = isic.mask("ISIC_0000001").parent
    shutil.rmtree(truth)
    assert has_problem(check_dataset(open_dataset("isic2018", isic.root)), "missing_folder", truth)
    lgg = make_lgg(tmp_path / "lgg_mri")
    hollow = lgg.root / "kaggle_3m" / "TCGA_DU_A5TU_19980312"
    hollow.mkdir()
    assert has_problem(check_dataset(open_dataset("lgg_mri", lgg.root)), "empty_folder", hollow)


def test_check_data_root_finds_folders_by_name_and_layout(tmp_path: Path) -> None:
    make_isic(tmp_path / "isic2018")
    make_lgg(tmp_path / "MRI")
    make_dsb(tmp_path / "kaggle-nuclei")
    make_isbi_tiff(tmp_path / "em")
    (tmp_path / "notes").mkdir()
    (tmp_path / "README.md").write_text("data\n")
    reports = check_data_root(tmp_path)
    found = {r.root.name: r.dataset for r in reports if r.root is not None}
    assert found == {"em": "isbi2012", "isic2018": "isic2018", "kaggle-nuclei": "dsb2018", "MRI": "lgg_mri"}
    assert all(r.ok for r in reports)
    assert not check_data_root(tmp_path / "missing")[0].ok


def test_format_report_ok(tmp_path: Path) -> None:
    text = format_report(check_dataset(open_dataset("dsb2018", make_dsb(tmp_path / "dsb2018").root)))
    assert "stage1_train/<id>/images/<id>.png" in text and "found: 3 cases in 3 groups" in text
    assert text.splitlines()[-1] == "verdict: OK, 3 cases readable (paper Table 1: 670)"


# ---------------------------------------------------------------- the real samples
REAL = Path(__file__).resolve().parents[2] / "shared" / "data"
real_data = pytest.mark.skipif(not REAL.is_dir(), reason=f"real data samples not found at {REAL}")


@functools.cache
def real_report(name: str) -> CheckReport:
    return check_dataset(open_dataset(name, REAL / name))


@real_data
@pytest.mark.real_data
@pytest.mark.parametrize(
    ("name", "n_cases", "n_groups", "empty", "sizes"),
    [
        ("isic2018", 30, 30, 0, None),
        ("isbi2012", 30, 30, 0, {"512x512": 30}),
        ("lgg_mri", 66, 3, 40, {"256x256": 66}),
        ("dsb2018", 60, 60, 0, None),
        ("glas2015", 1, 1, 0, {"775x522": 1}),
    ],
)
def test_real_samples(name: str, n_cases: int, n_groups: int, empty: int, sizes: dict[str, int] | None) -> None:
    report = real_report(name)
    assert report.ok, format_report(report)
    assert (report.n_cases, report.n_groups, report.counts["empty_masks"]) == (n_cases, n_groups, empty)
    if sizes is not None:
        assert report.counts["image_sizes (W x H)"] == sizes


@real_data
@pytest.mark.real_data
@pytest.mark.parametrize(
    ("name", "channels", "fg_range"),
    [
        ("isbi2012", 1, (0.6, 0.95)),
        ("lgg_mri", 3, (0.0, 0.1)),
        ("glas2015", 3, (0.3, 0.95)),
        ("dsb2018", 3, (0.01, 0.5)),
        ("isic2018", 3, (0.01, 0.6)),
    ],
)
def test_real_first_case(name: str, channels: int, fg_range: tuple[float, float]) -> None:
    ds = open_dataset(name, REAL / name)
    case = ds.cases()[-1] if name == "lgg_mri" else ds.cases()[0]
    image, mask = ds.read(case)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == channels
    assert mask.dtype == bool and mask.shape == image.shape[:2]
    assert fg_range[0] <= real_report(name).counts["foreground_share_mean"] <= fg_range[1]


@real_data
@pytest.mark.real_data
def test_real_lgg_groups_tumour_subset_and_glas_grades() -> None:
    lgg = open_dataset("lgg_mri", REAL / "lgg_mri")
    assert sorted({c.group for c in lgg.cases()}) == [
        "TCGA_CS_4941_19960909",
        "TCGA_DU_A5TU_19980312",
        "TCGA_HT_7602_19951103",
    ]
    ids = [c.case_id for c in lgg.cases() if c.group == "TCGA_CS_4941_19960909"]
    assert ids[:3] == ["TCGA_CS_4941_19960909_1", "TCGA_CS_4941_19960909_2", "TCGA_CS_4941_19960909_3"]
    assert len(open_dataset("mri", REAL / "lgg_mri", subset="tumour").cases()) == 26
    glas = open_dataset("glas2015", REAL / "glas2015").cases()
    assert dict(glas[0].meta)["grade_glas"] == "benign"
    assert real_report("glas2015").counts["grade_rows_without_images"] == 164


# ---------------------------------------------------------------- lossy masks, options, folders
def test_kvasir_jpeg_masks_are_thresholded_not_refused_nor_noisy(tmp_path: Path) -> None:
    from bench.datasets.decode import as_mask, load_pixels
    from bench.datasets.problems import ReadFailure

    layout = make_kvasir(tmp_path / "kvasir_seg")
    ds = open_dataset("kvasir-seg", layout.root)
    for cid, expected in layout.masks_expected.items():
        stored = load_pixels(layout.mask(cid), role="mask")
        assert set(np.unique(stored)) - {0, 255}  # the fixture's JPEG masks carry compression noise
        with pytest.raises(ReadFailure, match="expected values"):  # the strict default would refuse them
            as_mask(stored, True, str(layout.mask(cid)))
        assert as_mask(stored, False, "").sum() > expected.sum()  # and `> 0` would count the noise as polyp
        np.testing.assert_array_equal(ds.decode_mask(layout.mask(cid)), expected)


def test_grey_levels_average_channels_that_differ() -> None:
    from bench.datasets.decode import grey_levels

    arr = np.zeros((2, 2, 4), np.uint8)
    arr[0, 0, :3] = (250, 255, 254)
    arr[..., 3] = 255  # alpha is dropped
    np.testing.assert_array_equal(grey_levels(arr, "m.jpg"), [[253, 0], [0, 0]])
    with pytest.raises(Exception, match="8-bit"):
        grey_levels(arr.astype(np.uint16), "m.png")


def test_dataset_options_are_declared_parsed_and_named_in_errors() -> None:
    from bench.datasets.options import DatasetOption, options_of, parse_dataset_options

    assert parse_dataset_options({"mri.subset": "tumour"}, "--dataset-option") == (("lgg_mri.subset", "tumour"),)
    assert options_of("lgg_mri", ()) == {"subset": "all"} and options_of("dsb2018", ()) == {}
    with pytest.raises(ValueError, match=r"--dataset-option: lgg_mri: option subset='paper': expected one of all, "):
        parse_dataset_options({"lgg_mri.subset": "paper"}, "--dataset-option")
    with pytest.raises(ValueError, match=r"lgg_mri: no option 'subst'; its options: subset \(all\|tumour"):
        parse_dataset_options({"lgg_mri.subst": "tumour"}, "--dataset-option")
    with pytest.raises(ValueError, match="dsb2018: no option 'size'; its options: none"):
        parse_dataset_options({"dsb2018.size": "3"}, "x")
    with pytest.raises(ValueError, match="nope"):
        parse_dataset_options({"nope.subset": "all"}, "x")
    with pytest.raises(ValueError, match="expected DATASET.OPTION"):
        parse_dataset_options({"subset": "all"}, "x")
    flag, count = DatasetOption("flag", False), DatasetOption("count", 2)
    assert (flag.parse("d", "yes"), flag.parse("d", True), count.parse("d", "7")) == (True, True, 7)
    with pytest.raises(ValueError, match="d: option count='x': expected an integer"):
        count.parse("d", "x")


def test_profile_yaml_and_command_line_dataset_options(tmp_path: Path) -> None:
    from bench.config import TrainConfig, load_profile
    from bench.run.plan import data_options

    assert "lgg_subset" not in TrainConfig.__dataclass_fields__
    paper = load_profile("paper")
    assert paper.dataset_options == (("lgg_mri.subset", "tumour"),)
    assert data_options("lgg_mri", paper, False) == {"subset": "tumour"}
    assert data_options("lgg_mri", paper, True) == {"size": 256}  # the stand-in has no reader options
    assert data_options("lgg_mri", load_profile("quick"), False) == {"subset": "all"}  # defaults are recorded
    assert load_profile("paper", None, {"lgg_mri.subset": "all"}).dataset_options == (("lgg_mri.subset", "all"),)
    from bench.config import Job

    old = Job(
        "lgg_mri", "unet", "holdout", 0, 0, "paper", paper.train, "d/lgg_mri", data_options='{"subset": "tumour"}'
    )
    record = old.to_dict() | {"train": {**paper.train.to_dict(), "lgg_subset": "tumour"}}  # written before the move
    assert Job.from_dict(record) == old
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 1\ndataset_options:\n  lgg_mri.subset: paper\n")
    with pytest.raises(ValueError, match=f"profile {bad}: dataset_options: lgg_mri: option subset='paper'"):
        load_profile(str(bad))


def test_one_rule_finds_dataset_folders(tmp_path: Path) -> None:
    from bench.datasets.folders import dataset_folders, find_dataset_folder
    from bench.run.plan import dataset_root

    make_lgg(tmp_path / "MRI")  # an alias, any case
    make_dsb(tmp_path / "kaggle-nuclei")  # by layout
    make_kvasir(tmp_path / "Kvasir-SEG")  # the release's folder name is an alias
    (tmp_path / "notes").mkdir()
    assert {k: [p.name for p in v] for k, v in dataset_folders(tmp_path).items()} == {
        "dsb2018": ["kaggle-nuclei"],
        "kvasir_seg": ["Kvasir-SEG"],
        "lgg_mri": ["MRI"],
    }
    assert dataset_root(tmp_path, "dsb2018") == tmp_path / "kaggle-nuclei"
    assert find_dataset_folder(tmp_path, "isic2018") is None
    with pytest.raises(FileNotFoundError, match=r"isic2018: no folder under .* holds it .* kaggle-nuclei \(dsb2018\)"):
        dataset_root(tmp_path, "isic2018")
    make_dsb(tmp_path / "dsb2018")  # named after it: preferred over a folder found by layout
    assert dataset_root(tmp_path, "dsb2018") == tmp_path / "dsb2018"
    make_lgg(tmp_path / "brain")
    make_lgg(tmp_path / "brain2")
    shutil.rmtree(tmp_path / "MRI")
    with pytest.raises(ValueError, match="several folders .* brain, brain2"):
        find_dataset_folder(tmp_path, "lgg_mri")


def test_run_and_data_check_find_the_same_folders(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from bench.cli import main

    data = tmp_path / "data"
    make_dsb(data / "kaggle-nuclei")
    assert main(["data", "check", "--data-root", str(data)]) == 0
    assert f"== dsb2018 at {data / 'kaggle-nuclei'}" in capsys.readouterr().out
    run = [
        "run",
        "--results",
        str(tmp_path / "r"),
        "--data-root",
        str(data),
        "--arch",
        "unet",
        "--set",
        "n_folds=2",
        "--folds",
        "0",
        "--dry-run",
    ]
    assert main([*run, "--dataset", "dsb2018"]) == 0
    assert "1 jobs" in capsys.readouterr().out
    assert main([*run, "--dataset", "isic2018"]) == 2
    err = capsys.readouterr().err
    assert f"no folder {data / 'isic2018'}" in err and "present none; missing isic2018" in err
    empty = tmp_path / "empty"
    (empty / "notes").mkdir(parents=True)
    assert main(["data", "check", "--data-root", str(empty)]) == 2
    assert "notes (no dataset layout recognised)" in capsys.readouterr().err


def test_data_check_takes_dataset_options(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from bench.cli import main

    make_lgg(tmp_path / "lgg_mri")
    assert main(["data", "check", "--data-root", str(tmp_path), "--dataset-option", "lgg_mri.subset=tumour"]) == 0
    out = capsys.readouterr().out
    assert "subset='tumour'" in out and "found: 4 cases in 2 groups" in out
    assert main(["data", "check", "mri", "--root", str(tmp_path / "lgg_mri"), "--dataset-option", "mri.subset=x"]) == 2
    assert "lgg_mri: option subset='x'" in capsys.readouterr().err
    assert (
        main(
            [
                "run",
                "--dataset",
                "mri",
                "--arch",
                "unet",
                "--dataset-option",
                "lgg_mri.subset=tumour",
                "--dry-run",
                "--results",
                str(tmp_path / "r"),
            ]
        )
        == 2
    )
    assert "needs --data-root" in capsys.readouterr().err


# ---------------------------------------------------------------- Kvasir-SEG end to end
def test_kvasir_is_not_in_all_but_runs_by_name() -> None:
    from bench.run.plan import select

    assert "kvasir_seg" not in select(None, None, True, "holdout").datasets
    assert select("unet", "kvasir-seg", False, "holdout").datasets == ("kvasir_seg",)


@pytest.mark.slow
def test_kvasir_checks_runs_and_reports_with_its_own_labels(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from bench.analysis.names import dataset_label
    from bench.cli import main

    data = tmp_path / "data"
    layout = make_kvasir(data / "Kvasir-SEG")
    for k, cid in enumerate(sorted(layout.files)):  # 6 images: enough for holdout with 2 folds
        for folder, path in (("images", layout.image(cid)), ("masks", layout.mask(cid))):
            shutil.copy(path, data / "Kvasir-SEG" / folder / f"copy{k}{path.suffix}")
    assert main(["data", "check", "--data-root", str(data)]) == 0
    assert "verdict: OK, 6 cases readable" in capsys.readouterr().out
    res = str(tmp_path / "r")
    assert (
        main(
            [
                "run",
                "--results",
                res,
                "--data-root",
                str(data),
                "--dataset",
                "kvasir_seg",
                "--arch",
                "unet",
                "--folds",
                "0",
                "--set",
                "n_folds=2",
                "--set",
                "epochs=1",
                "--set",
                "image_size=32",
                "--set",
                "width=4",
                "--set",
                "depth=3",
                "--quiet",
                "--jobs",
                "1",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert dataset_label("kvasir_seg") == "Kvasir-SEG"
    assert main(["report", "--table", "1", "--results", res]) == 0
    table1 = capsys.readouterr().out
    assert "Kvasir-SEG" in table1 and "colonoscopy" in table1 and "kvasir_seg" not in table1
    assert main(["report", "--table", "5", "--results", res]) == 0
    assert "Kvasir-SEG" in capsys.readouterr().out


def test_reproduce_commands_carry_dataset_options_that_differ_from_the_profile() -> None:
    from bench.run.reproduce import run_commands

    def side(profile: str, options: str) -> dict:
        job = {
            "dataset": "lgg_mri",
            "arch": "unet",
            "fold": 0,
            "seed": 0,
            "profile": profile,
            "protocol": "holdout",
            "data_root": "d/lgg_mri",
            "data_options": options,
            "train": {},
        }
        return {"status": "ok", "job": job}

    assert run_commands([side("quick", '{"subset": "tumour"}')])[0].endswith(" --dataset-option lgg_mri.subset=tumour")
    assert "--dataset-option" not in run_commands([side("paper", '{"subset": "tumour"}')])[0]
