"""The results store under ordinary accidents: leftovers of a kill, truncated or short Parquet files,
unreadable sidecars, paths outside the results folder, exporting nothing. No training here."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from results_fixture import make_results

from bench.cli import main
from bench.results import store
from bench.results.store import ResultWarning


def write_job(
    results: Path, dataset: str = "isic2018", arch: str = "unet", fold: int = 0, key: str = "0123456789abcdef"
) -> Path:
    """One finished job as the runner writes it (Parquet, then the ok sidecar); returns the sidecar path."""
    df = make_results(datasets=(dataset,), archs=(arch,), protocols=("holdout",), n_cases=12)
    rows = df[(df["fold"] == fold) & (df["seed"] == 0)].assign(job_key=key).reset_index(drop=True)
    side = store.job_dir(results, dataset, arch) / f"holdout_f{fold}_s0_{key[:8]}.json"
    store.atomic_write_parquet(side.with_suffix(".parquet"), rows)
    job = {"dataset": dataset, "arch": arch, "protocol": "holdout", "fold": fold, "seed": 0}
    store.atomic_write_json(side, {"job": job, "key": key, "status": "ok", "n_written": len(rows)})
    return side


def test_a_kill_between_write_and_rename_leaves_nothing_that_is_read(tmp_path: Path) -> None:
    side = write_job(tmp_path)
    # what a writer killed before os.replace leaves: complete temporary copies, old-style and current names
    (side.parent / ".tmp-k3j2.json").write_text(side.read_text())
    (side.parent / f".tmp-{side.name}.x1y2.tmp").write_text(side.read_text())
    (side.parent / f".tmp-{side.stem}.parquet.x1y2.tmp").write_bytes(b"PAR1 half")
    assert [s["_path"] for s in store.sidecars(tmp_path)] == [str(side)]
    assert len(store.load_all(tmp_path)) == json.loads(side.read_text())["n_written"]


def test_temporary_names_are_unique_and_never_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: seen.append(Path(a).name) or real(a, b))
    for _ in range(2):
        store.atomic_write_json(tmp_path / "a.json", {"x": 1})
    from bench.results.predictions import load_predictions, save_predictions

    save_predictions(tmp_path / "p.pred.npz", np.full((1, 4, 4), 0.75, np.float32), ["c0"])
    assert len(set(seen)) == 3 and all(n.startswith(".tmp-") and n.endswith(".tmp") for n in seen)
    assert load_predictions(tmp_path / "p.pred.npz")[2].all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "p.pred.npz"]


@pytest.mark.parametrize("damage", ["truncated", "fewer_rows", "nan_metric", "missing_column", "other_key"])
def test_a_damaged_result_is_not_read_and_is_named(tmp_path: Path, damage: str) -> None:
    good = write_job(tmp_path, arch="mildnet")
    side = write_job(tmp_path)
    parquet = side.with_suffix(".parquet")
    rows = pd.read_parquet(parquet)
    if damage == "truncated":
        parquet.write_bytes(parquet.read_bytes()[: parquet.stat().st_size // 2])
    elif damage == "fewer_rows":
        rows.iloc[:-2].to_parquet(parquet, index=False)
    elif damage == "nan_metric":
        rows.assign(dice=np.where(rows.index == 0, np.nan, rows["dice"])).to_parquet(parquet, index=False)
    elif damage == "missing_column":
        rows.drop(columns="hd95").to_parquet(parquet, index=False)
    else:
        rows.assign(job_key="ffffffffffffffff").to_parquet(parquet, index=False)
    with pytest.warns(ResultWarning, match=str(parquet)):
        df = store.load_all(tmp_path)
    assert set(df["arch"]) == {"mildnet"}  # the good job is still read
    with pytest.warns(ResultWarning, match="treated as not done"):
        assert not store.is_done(side, "0123456789abcdef")
    assert store.is_done(good, "0123456789abcdef")
    bad = store.unreadable(tmp_path)
    assert list(bad["path"]) == [str(parquet)] and list(bad["arch"]) == ["unet"] and list(bad["fold"]) == [0]
    fails = store.failures(tmp_path)
    assert list(fails["status"]) == ["unreadable"] and fails["error"].iloc[0].startswith(f"unreadable: {parquet}")


def test_an_unreadable_sidecar_is_reported_and_reports_say_so(tmp_path: Path) -> None:
    from bench.analysis.tables import model_summary

    write_job(tmp_path, arch="mildnet")
    side = write_job(tmp_path)
    side.write_text('{"job": {"dataset": "isic2018", "ar')  # cut short
    with pytest.warns(ResultWarning, match=str(side)):
        sides = store.sidecars(tmp_path)
    assert len(sides) == 1
    bad = store.unreadable(tmp_path)
    assert list(bad[["dataset", "arch", "protocol", "fold", "seed"]].iloc[0]) == ["isic2018", "unet", "holdout", 0, 0]
    with pytest.warns(ResultWarning):
        df, fails = store.load_all(tmp_path), store.failures(tmp_path)
    table = model_summary(
        df, protocol="holdout", split="test", archs=["unet", "mildnet"], datasets=["isic2018"], failures=fails
    )
    note = table.set_index("arch")["note"]
    assert note["unet"].startswith(f"unreadable: {side}") and note["mildnet"] == ""


def test_stale_temporary_files_are_cleaned_but_not_a_live_writers(tmp_path: Path) -> None:
    side = write_job(tmp_path)
    folder = side.parent
    stale = folder / f".tmp-{side.stem}.parquet.aaaa.tmp"
    stale.write_bytes(b"x")
    store.job_lock(side).acquire()
    store.job_lock(side).release()  # the job has a lock file, and no one holds it
    other = folder / "holdout_f1_s0_fedcba98.json"
    live = folder / f".tmp-{other.stem}.json.bbbb.tmp"
    live.write_bytes(b"x")
    held = store.job_lock(other)
    held.acquire()  # a writer is busy with this job
    old_unknown, new_unknown = folder / ".tmp-oldstyle.json", folder / ".tmp-newer.json"
    for p in (old_unknown, new_unknown):
        p.write_bytes(b"x")
    os.utime(old_unknown, (time.time() - 2 * store.STALE_AFTER,) * 2)
    try:
        removed = store.clean_stale(tmp_path)
    finally:
        held.release()
    assert sorted(removed) == sorted([stale, old_unknown])
    assert live.exists() and new_unknown.exists() and side.exists()


def test_writes_stay_inside_the_results_folder(tmp_path: Path) -> None:
    for arch in ("smp:Unet:../../../escape", "../x", "a/b"):
        with pytest.raises(ValueError, match="cannot name a results folder"):
            store.job_dir(tmp_path, "dsb2018", arch)
    with pytest.raises(ValueError, match="outside the results folder"):
        store.confine(tmp_path / "r", tmp_path / "r" / ".." / "elsewhere.json")
    assert store.confine(tmp_path, tmp_path / "runs" / "x.json") == tmp_path / "runs" / "x.json"


def test_an_smp_name_with_path_separators_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    res = tmp_path / "deep" / "results"
    code = main(
        [
            "run",
            "--results",
            str(res),
            "--arch",
            "smp:Unet:../../../../escape",
            "--dataset",
            "dsb2018",
            "--quiet",
            "--jobs",
            "1",
            "--set",
            "epochs=1",
            "--set",
            "image_size=32",
        ]
    )
    assert code == 2 and "unknown smp encoder" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.rglob("*")) == []
    assert (
        main(
            [
                "run",
                "--results",
                str(res),
                "--arch",
                "smp:Nonet:resnet18",
                "--dataset",
                "dsb2018",
                "--dry-run",
                "--quiet",
            ]
        )
        == 2
    )
    assert "unknown smp architecture 'Nonet'" in capsys.readouterr().err


def test_export_of_an_empty_folder_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "t.csv"
    assert main(["export", "--results", str(tmp_path / "empty"), "--out", str(out)]) == 2
    assert str(tmp_path / "empty" / "runs") in capsys.readouterr().err and not out.exists()


def test_export_writes_the_verified_rows(tmp_path: Path) -> None:
    side = write_job(tmp_path)
    out = tmp_path / "t.parquet"
    assert main(["export", "--results", str(tmp_path), "--format", "parquet", "--out", str(out)]) == 0
    assert len(pd.read_parquet(out)) == json.loads(side.read_text())["n_written"]


def test_the_cli_names_a_damaged_file_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write_job(tmp_path, arch="mildnet")
    parquet = write_job(tmp_path).with_suffix(".parquet")
    parquet.write_bytes(parquet.read_bytes()[:300])
    assert main(["export", "--results", str(tmp_path), "--out", str(tmp_path / "t.csv")]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"bench: warning: {parquet} is unreadable") and len(err.splitlines()) == 1
