"""Planning reports every problem of a selection at once, each naming its dataset and the way forward."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from native_layouts import make_dsb, make_isic, make_lgg, truncate

from bench.cli import main
from bench.config import load_profile
from bench.run.plan import PlanError, plan, select

REAL = Path(os.environ.get("BENCH_REAL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
TINY = {"image_size": "32", "width": "4", "depth": "3", "epochs": "1"}


def profile(**overrides: str):
    return load_profile("quick", {**TINY, **overrides})


def problem_lines(err: PlanError) -> dict[str, str]:
    return {p.dataset: str(p) for p in err.problems}


def test_every_problem_of_an_all_run_in_one_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_lgg(data / "lgg_mri")  # 2 patients: holdout puts one in the test set, leaving 1 for the folds
    make_dsb(data / "dsb2018")  # 3 images: holdout leaves 2 outside the test set
    with pytest.raises(PlanError) as info:
        plan(select(None, None, True, "holdout"), profile(), tmp_path / "results", data)
    lines = problem_lines(info.value)
    assert set(lines) == {"isbi2012", "isic2018", "glas2015", "lgg_mri", "dsb2018"}
    assert "2 patient(s)" in lines["lgg_mri"] and "leave it out of --dataset" in lines["lgg_mri"]
    assert "Way forward: --set n_folds=" not in lines["lgg_mri"]  # no holdout fold count works
    assert "this data has 2" in lines["dsb2018"] and "--set n_folds=2 " in lines["dsb2018"]
    assert "--protocol cv --set n_folds=3" in lines["dsb2018"]
    for missing in ("isbi2012", "isic2018", "glas2015"):
        assert f"no folder {data / missing}" in lines[missing]
    text = str(info.value)
    assert "present lgg_mri, dsb2018; missing isbi2012, isic2018, glas2015" in text
    assert text.count("\n  - ") == 5  # one line per problem
    assert not (tmp_path / "results" / "runs").exists()  # nothing started


def test_the_suggested_fix_plans(tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_dsb(data / "dsb2018")
    sel = select("unet", "dsb2018", False, "holdout")
    with pytest.raises(PlanError, match="--set n_folds=2"):
        plan(sel, profile(), tmp_path / "a", data)
    jobs = plan(sel, profile(n_folds="2"), tmp_path / "b", data)
    assert [(j.dataset, j.fold) for j in jobs] == [("dsb2018", 0), ("dsb2018", 1)]


def test_fold_indices_beyond_the_split_are_named_per_dataset(tmp_path: Path) -> None:
    sel = select("unet", "isic2018,dsb2018", False, "holdout", folds=(0, 6))
    with pytest.raises(PlanError) as info:
        plan(sel, profile(synthetic_n="10"), tmp_path)
    lines = problem_lines(info.value)
    assert set(lines) == {"isic2018", "dsb2018"}
    assert all("fold(s) 6 do not exist" in v and "--folds 0" in v for v in lines.values())


def test_bad_files_and_too_few_groups_are_reported_together(tmp_path: Path) -> None:
    data = tmp_path / "data"
    bad = truncate(make_dsb(data / "dsb2018").image("3d4e5f"))
    make_lgg(data / "lgg_mri")
    with pytest.raises(PlanError) as info:
        plan(select("unet", "dsb2018,lgg_mri", False, "holdout"), profile(), tmp_path / "results", data)
    lines = problem_lines(info.value)
    assert str(bad) in lines["dsb2018"] and "--skip 3d4e5f" in lines["dsb2018"]
    assert "patient(s)" in lines["lgg_mri"]
    assert "No selected dataset can be planned" in str(info.value)


def test_run_prints_the_problems_and_starts_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "data"
    make_dsb(data / "dsb2018")
    args = [
        "run",
        "--arch",
        "unet",
        "--dataset",
        "dsb2018",
        "--data-root",
        str(data),
        "--results",
        str(tmp_path / "r"),
        *[f"--set={k}={v}" for k, v in TINY.items()],
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "dsb2018: 3 images, each its own group" in err and "--set n_folds=2" in err
    assert not (tmp_path / "r" / "runs").exists()


@pytest.mark.real_data
@pytest.mark.skipif(not REAL.is_dir(), reason=f"real data samples not found at {REAL}")
def test_real_samples_name_lgg_and_glas_with_their_fix(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["run", "--all", "--data-root", str(REAL), "--dry-run", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("  - ")]
    assert [ln.split(":")[0] for ln in lines] == ["  - lgg_mri", "  - glas2015"]
    assert "3 patient(s)" in lines[0] and "--set n_folds=2" in lines[0] and "--protocol cv --set n_folds=3" in lines[0]
    assert "leave it out of --dataset" in lines[1]
    assert "Plan without them: --dataset isbi2012,isic2018,dsb2018" in err


def test_one_skip_list_serves_several_datasets(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ids = tuple(f"ISIC_000000{i}" for i in range(1, 7))
    bad = truncate(make_isic(data / "isic2018", ids).image(ids[2]))
    make_dsb(data / "dsb2018")
    sel = select("unet", "isic2018,dsb2018", False, "holdout")
    with pytest.raises(PlanError) as info:
        plan(sel, profile(n_folds="2"), tmp_path / "r", data)
    assert str(bad) in problem_lines(info.value)["isic2018"] and f"--skip {ids[2]}" in str(info.value)
    with pytest.raises(PlanError) as info:
        plan(sel, profile(n_folds="2"), tmp_path / "r", data, skip=(ids[2], "ISIC_9999999"))
    assert problem_lines(info.value) == {
        "--skip": "--skip: no selected dataset present holds case id(s) "
        "ISIC_9999999. Way forward: check the ids against `bench data check`, "
        "or drop them from --skip"
    }
    jobs = plan(sel, profile(n_folds="2"), tmp_path / "r", data, skip=(ids[2],))
    options = {j.dataset: json.loads(j.data_options) for j in jobs}
    assert options["isic2018"]["skip"] == [ids[2]] and "skip" not in options["dsb2018"]
