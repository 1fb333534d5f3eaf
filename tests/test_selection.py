"""--where selection over the recorded settings and the like-for-like refusal of every comparison."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest
from results_fixture import every_comparison, make_failures, make_results, make_sidecars

from bench.analysis import stats, tables
from bench.results import selection


def _mixed() -> tuple[pd.DataFrame, list[dict], pd.DataFrame]:
    """A folder holding two configurations: every arch at 20 epochs, and unet again at 1 epoch / lr 0.01."""
    base = make_results(datasets=("lgg_mri",), archs=("unet", "mildnet"), n_cases=20)
    sides = make_sidecars(base, epochs=20)
    other = make_results(datasets=("lgg_mri",), archs=("unet",), n_cases=20, rng_seed=1)
    other["job_key"] = "x" + other["job_key"].str[1:]
    sides += make_sidecars(other, epochs=1, lr=0.01)
    return pd.concat([base, other], ignore_index=True), sides, base


def test_settings_table_has_one_row_per_job_with_the_recipe() -> None:
    df, sides, _ = _mixed()
    table = selection.settings_table(sides)
    assert len(table) == df["job_key"].nunique() and table["job_key"].is_unique
    assert {"epochs", "lr", "image_size", "dataset", "arch", "protocol", "fold", "profile"} <= set(table.columns)
    assert sorted(table["epochs"].unique()) == [1, 20]
    overview = selection.settings_overview(table)
    assert set(overview.columns) >= {"epochs", "lr", "jobs"} and "epochs, lr" in overview.attrs["caption"]


def test_where_selects_one_configuration_and_names_unknown_keys() -> None:
    df, sides, base = _mixed()
    rows, _, kept, chosen = selection.apply_selection(df, None, sides, selection.parse_where(["epochs=20"]))
    assert set(rows["job_key"]) == set(base["job_key"]) and len(kept) == len(chosen) == base["job_key"].nunique()
    rows, _, _, _ = selection.apply_selection(df, None, sides, {"lr": "1e-2", "arch": "unet"})
    assert set(rows["job_key"]).isdisjoint(base["job_key"]) and set(rows["arch"]) == {"unet"}
    with pytest.raises(KeyError, match=r"no recorded setting 'epoch'; known settings: .*epochs"):
        selection.apply_selection(df, None, sides, {"epoch": "20"})
    with pytest.raises(ValueError, match="--where epochs=3 matches no job; recorded values of epochs: 1, 20"):
        selection.apply_selection(df, None, sides, {"epochs": "3"})
    with pytest.raises(ValueError, match="key=value"):
        selection.parse_where(["epochs"])
    assert selection.matches(True, "yes") and selection.matches(None, "none") and not selection.matches(0.1, "x")


def test_every_comparison_refuses_a_mixed_configuration(tmp_path: Path) -> None:
    """Same archs, one of them also run at another epoch count and learning rate: every table, test and
    figure refuses, naming the settings and their values per arch, and points at --where."""
    df, sides, _ = _mixed()
    df = df.assign(job_key=df["job_key"])  # keys differ per configuration, so rows are not duplicates
    df.loc[df["job_key"].str.startswith("x"), "fold"] += 10  # the second unet run: other fold models
    full = selection.attach(df, selection.settings_table(sides))
    pattern = (
        r"differ in more than the architecture: lgg_mri: epochs \(mildnet: 20; unet: 1/20\); lgg_mri: lr "
        r"\(mildnet: 0.001; unet: 0.001/0.01\).*--where"
    )
    comparisons = every_comparison(full)
    for name, make in comparisons.items():
        with pytest.raises(ValueError, match=pattern):
            make()
        print(name, "refused")
    chosen, _, _, settings = selection.apply_selection(df, None, sides, {"epochs": "20"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        assert len(stats.paired_test(selection.attach(chosen, settings), dataset="mri")) == 1


def test_rows_alone_refuse_other_splits_and_data_options() -> None:
    df = make_results(datasets=("isic2018",), archs=("unet", "mildnet"), n_cases=20, protocols=("cv",))
    moved = df.assign(split_hash=df["split_hash"].where(df["arch"] == "unet", "other-split"))
    with pytest.raises(ValueError, match=r"split_hash \(mildnet: other-split; unet: split-isic2018-cv\)"):
        stats.paired_test(moved, dataset="isic2018")
    opts = df.assign(data_options=df["data_options"].where(df["arch"] == "unet", '{"n": 10}'))
    with pytest.raises(ValueError, match="data_options"):
        tables.table5(opts.assign(protocol="holdout", split="test"))


def test_failure_notes_only_from_the_same_configuration() -> None:
    _, sides, base = _mixed()
    for side in sides:  # finished jobs record what their numerics resolved to; the failed ones below do not
        side["compute"] = {"device": "cpu", "precision": "fp32", "grad_scaler": False, "channels_last": True}
    fails = make_failures(
        [
            ("lgg_mri", "unetpp", "holdout", 0, "RuntimeError: other config"),
            ("lgg_mri", "resdunet", "holdout", 0, "RuntimeError: same config"),
        ]
    )
    sides += [
        {
            "job": {
                "dataset": "lgg_mri",
                "arch": a,
                "protocol": "holdout",
                "fold": 0,
                "seed": 0,
                "profile": "quick",
                "source": "synthetic",
                "arch_kwargs": "{}",
                "train": {**sides[0]["job"]["train"], "epochs": e},
            },
            "key": k,
            "status": "failed",
        }
        for a, e, k in (("unetpp", 1, "k0"), ("resdunet", 20, "k1"))
    ]
    rows, kept, _, settings = selection.apply_selection(base, fails, sides, {})
    assert list(kept["arch"]) == ["resdunet"]
    t5 = tables.table5(selection.attach(rows, settings), failures=kept)
    notes = dict(zip(t5["arch"], t5["note"]))
    assert "same config" in notes["resdunet"] and notes.get("unetpp") == "not run"


def _write_folder(root: Path, df: pd.DataFrame, sides: list[dict]) -> None:
    """The store's layout: one Parquet + sidecar per job under runs/<dataset>/<arch>/."""
    from bench.results.store import atomic_write_json, atomic_write_parquet

    for side in sides:
        part = df[df["job_key"] == side["key"]]
        stem = root / "runs" / side["job"]["dataset"] / side["job"]["arch"] / side["key"]
        atomic_write_parquet(stem.with_suffix(".parquet"), part)
        atomic_write_json(stem.with_suffix(".json"), {**side, "n_written": len(part)})


def test_ttest_and_fig8_right_after_a_holdout_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`bench run --all` writes holdout results only: ttest and Fig. 8 use them and say so."""
    from bench.cli import main

    df = make_results(datasets=("lgg_mri",), archs=("unet", "mildnet"), n_cases=40, protocols=("holdout",))
    _write_folder(tmp_path, df, make_sidecars(df))
    assert main(["ttest", "--dataset", "mri", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "protocol holdout (test set): no cv results for dataset lgg_mri" in out and "mildnet vs unet" in out
    assert "unit: patients (each the mean of its test-set slices" in out
    assert main(["report", "--figure", "8", "--results", str(tmp_path), "--out", str(tmp_path / "f")]) == 0
    assert (tmp_path / "f" / "fig8_lgg_mri.png").exists()
    assert main(["ttest", "--dataset", "isic2018", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no cv or holdout results for dataset isic2018: `bench run --dataset isic2018" in err
    assert main(["ttest", "--dataset", "mri", "--results", str(tmp_path), "--where", "epochs=3"]) == 2
    assert "--where epochs=3 matches no job" in capsys.readouterr().err


def test_export_where_writes_only_the_selection(tmp_path: Path) -> None:
    df, sides, base = _mixed()
    _write_folder(tmp_path, df, sides)
    out = selection.export_selected(tmp_path, tmp_path / "x.csv", "csv", {"epochs": "20"})
    assert set(pd.read_csv(out)["job_key"]) == set(base["job_key"])
    with pytest.raises(ValueError, match="matches no job"):
        selection.export_selected(tmp_path, tmp_path / "y.csv", "csv", {"epochs": "5"})


@pytest.mark.parametrize("column", ["arch_kwargs", "arch_defaults"])
def test_one_architecture_under_two_sets_of_constructor_arguments_is_refused(column: str) -> None:
    """Different archs may take different arguments; the same arch twice may not: two tuned dilation rates
    (``arch_kwargs``), or results of an entry's old and new reading of the paper (``arch_defaults``)."""
    base = make_results(datasets=("lgg_mri",), archs=("unet", "mildnet"), n_cases=20, protocols=("holdout",))
    sides = make_sidecars(base, epochs=20)
    for side in sides:
        if side["job"]["arch"] == "mildnet":
            side["job"][column] = '{"dilations": [1, 3, 5]}'
    other = make_results(datasets=("lgg_mri",), archs=("mildnet",), n_cases=20, rng_seed=1, protocols=("holdout",))
    other["job_key"] = "x" + other["job_key"].str[1:]
    other["fold"] += 10
    more = make_sidecars(other, epochs=20)
    for side in more:
        side["job"][column] = '{"dilations": [1, 2, 4]}'
    ok = selection.attach(base, selection.settings_table(sides))
    selection.check_like_for_like(ok)  # unet {} vs mildnet dilations: different archs, allowed
    mixed = selection.attach(pd.concat([base, other], ignore_index=True), selection.settings_table(sides + more))
    with pytest.raises(ValueError, match=rf"{column} \(mildnet: .*1, 2, 4.* / .*1, 3, 5"):
        selection.check_like_for_like(mixed)


def test_an_entrys_own_arguments_are_part_of_the_job_key(tmp_path: Path) -> None:
    """What a registry name builds can change (a new reading of the paper): the entry's defaults go into the
    planned job and its key, so results of the old reading never count as the new one's. Entries without
    defaults record none."""
    import dataclasses
    import json

    from bench.architectures import ARCHITECTURES
    from bench.config import load_profile
    from bench.run.plan import plan, select

    jobs = plan(select("mildnet,unet", "dsb2018", False, "holdout", (0,)), load_profile("quick"), tmp_path)
    mildnet = next(j for j in jobs if j.arch == "mildnet")
    unet = next(j for j in jobs if j.arch == "unet")
    assert json.loads(mildnet.arch_defaults) == ARCHITECTURES.get("mildnet").defaults != {}
    older = dataclasses.replace(mildnet, arch_defaults=json.dumps({"shortcut": "an older reading"}))
    assert older.key != mildnet.key != dataclasses.replace(mildnet, arch_defaults="{}").key
    assert unet.arch_defaults == "{}"


def _tuned(chosen: dict[str, float], untuned: tuple[str, ...] = ()) -> pd.DataFrame:
    """LGG rows of unet and mildnet whose jobs ran `bench run --tuned t` (lr per arch as ``chosen``); the
    archs in ``untuned`` ran the same lr without the tuning."""
    import json

    df = make_results(datasets=("lgg_mri",), archs=("unet", "mildnet"), n_cases=20)
    sides = []
    for arch, lr in chosen.items():
        record = {"name": "t", "mode": "fair", "grid": {"lr": [0.001, 0.0003]}, "folds": [0, 1], "epochs": 20}
        for side in make_sidecars(df[df["arch"] == arch], lr=lr, epochs=20):
            side["job"]["tuning"] = "{}" if arch in untuned else json.dumps({**record, "chosen": {"lr": lr}})
            sides.append(side)
    return selection.attach(df, selection.settings_table(sides))


def test_a_tuned_comparison_is_like_for_like_in_procedure() -> None:
    """Each architecture at its own best lr of one tuning: every comparison accepts it, and the caption
    says how the values were chosen; an untuned value beside a tuned one still refuses."""
    full = _tuned({"unet": 0.0003, "mildnet": 0.001})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for make in every_comparison(full).values():
            make()
    from bench.report import report

    caption = report.build_table(full, 5).attrs["caption"]
    assert (
        "each architecture at its own best of the same grid (tuning t: lr over 0.001, 0.0003; 2 folds; 20 epochs"
        in caption
    )
    mixed = _tuned({"unet": 0.0003, "mildnet": 0.001}, untuned=("unet",))
    with pytest.raises(ValueError, match=r"differ in more than the architecture: lgg_mri: tuning \(mildnet: tuning t"):
        tables.table5(mixed)
    with pytest.raises(ValueError, match=r"lr \(mildnet: 0.001; unet: 0.0003\)"):
        stats.paired_test(mixed, dataset="mri")
