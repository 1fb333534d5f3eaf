"""The runner end to end on tiny synthetic data: plan, train, score, store, resume, failures."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bench.cli import main
from bench.config import load_profile
from bench.results import store
from bench.run.plan import plan, select
from bench.run.runner import is_finished, paths, run_jobs

TINY = ["--set", "epochs=1", "--set", "image_size=32", "--set", "width=4", "--set", "depth=3", "--quiet", "--jobs", "1"]


def tiny_profile(**extra: str):
    return load_profile("quick", {"epochs": "2", "image_size": "32", "width": "4", "depth": "3", **extra})


def run_cli(tmp: Path, *args: str) -> int:
    return main(["run", "--results", str(tmp), *TINY, *args])


def table(results: Path) -> pd.DataFrame:
    df = store.load_all(results)
    return df.sort_values(["dataset", "arch", "fold", "split", "case_id"]).reset_index(drop=True)


@pytest.mark.slow
def test_every_paper_architecture_on_every_dataset(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert run_cli(tmp_path, "--all", "--folds", "0") == 0
    df = store.load_all(tmp_path)
    assert set(df["arch"]) == {
        "unet",
        "unetpp",
        "residual_unet",
        "resdunet",
        "multiresunet",
        "mildnet",
        "unet_mlr",
        "mildnet_no_mlr",
    }
    assert set(df["dataset"]) == {"isbi2012", "isic2018", "lgg_mri", "glas2015", "dsb2018"}
    assert set(df["source"]) == {"synthetic"} and set(df["split"]) == {"val", "test"}
    for col in [
        "tp",
        "fp",
        "fn",
        "tn",
        "n_ref",
        "n_pred",
        "empty_ref",
        "empty_pred",
        "dice",
        "iou",
        "hd",
        "hd95",
        "case_id",
        "group",
        "eval_size",
        "split_hash",
        "job_key",
        "protocol",
        "fold",
        "seed",
        "profile",
    ]:
        assert col in df.columns
    assert df["dice"].between(0, 1).all() and (df["hd"] >= 0).all()
    # identical folds: every architecture of a dataset is scored on the same images
    per_arch = df.groupby(["dataset", "arch"])["case_id"].apply(lambda s: tuple(sorted(s)))
    assert per_arch.groupby("dataset").nunique().eq(1).all()
    assert "Mean per image" in capsys.readouterr().out


def test_same_job_twice_gives_identical_tables(tmp_path: Path) -> None:
    args = ("--arch", "unet", "--dataset", "lgg_mri", "--folds", "0")
    assert run_cli(tmp_path / "a", *args) == 0
    assert run_cli(tmp_path / "b", *args) == 0
    a, b = table(tmp_path / "a"), table(tmp_path / "b")
    pd.testing.assert_frame_equal(a, b)


def test_resume_skips_finished_jobs_and_matches_uninterrupted_run(tmp_path: Path) -> None:
    prof = tiny_profile()
    jobs = plan(select("unet,resdunet", "dsb2018", False, "holdout", (0,)), prof, tmp_path / "r")
    first = list(run_jobs(jobs[:1], tmp_path / "r", progress=False))
    assert [s.status for s in first] == ["ok"]
    # a job killed mid-write leaves a 'running' sidecar and a temp file: neither is read as a result
    p = paths(jobs[1], tmp_path / "r")
    p["sidecar"].parent.mkdir(parents=True, exist_ok=True)
    p["sidecar"].write_text(json.dumps({"key": jobs[1].key, "status": "running", "job": jobs[1].to_dict()}))
    (p["parquet"].parent / ".tmp-half.parquet").write_bytes(b"PAR1 half")
    assert set(store.load_all(tmp_path / "r")["arch"]) == {jobs[0].arch}
    statuses = list(run_jobs(jobs, tmp_path / "r", progress=False))
    assert sorted(s.status for s in statuses) == ["ok", "skipped"]
    assert all(is_finished(j, tmp_path / "r") for j in jobs)
    list(run_jobs(jobs, tmp_path / "u", progress=False))
    pd.testing.assert_frame_equal(table(tmp_path / "r"), table(tmp_path / "u"))


def test_failing_job_is_recorded_and_the_sweep_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.run.execute

    real = bench.run.execute.build_model

    def flaky(job, in_channels):
        if job.arch == "resdunet":
            raise RuntimeError("boom")
        return real(job, in_channels)

    monkeypatch.setattr(bench.run.execute, "build_model", flaky)
    code = run_cli(
        tmp_path, "--arch", "unet,resdunet,residual_unet", "--dataset", "isic2018", "--folds", "0", "--jobs", "0"
    )
    assert code == 1
    assert set(store.load_all(tmp_path)["arch"]) == {"unet", "residual_unet"}
    fails = store.failures(tmp_path)
    assert list(fails["arch"]) == ["resdunet"] and "boom" in fails["error"].iloc[0]


def test_non_finite_loss_is_a_failed_job(tmp_path: Path) -> None:
    code = run_cli(
        tmp_path, "--arch", "unet", "--dataset", "isbi2012", "--folds", "0", "--set", "lr=1e30", "--set", "epochs=3"
    )
    fails = store.failures(tmp_path)
    assert code == 1 and "NonFiniteLoss" in fails["error"].iloc[0]


def test_cv_protocol_scores_every_image_once_out_of_fold(tmp_path: Path) -> None:
    assert run_cli(tmp_path, "--arch", "unet", "--dataset", "mri", "--protocol", "cv", "--folds", "0,1,2,3,4") == 0
    df = store.load_all(tmp_path)
    assert set(df["split"]) == {"val"} and df["case_id"].is_unique
    from bench.datasets import open_dataset

    assert set(df["case_id"]) == {c.case_id for c in open_dataset("mri", size=32).cases()}  # every slice, once


def test_dry_run_prints_plan_and_done_state(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert run_cli(tmp_path, "--arch", "unet", "--dataset", "dsb2018", "--folds", "0") == 0
    capsys.readouterr()
    assert run_cli(tmp_path, "--arch", "unet,mildnet", "--dataset", "dsb2018", "--folds", "0", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "2 jobs (1 already done)" in out and "missing" in out


def test_bad_selection_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert run_cli(tmp_path, "--arch", "mildnett", "--dataset", "mri") == 2
    assert "did you mean mildnet" in capsys.readouterr().err
    assert run_cli(tmp_path, "--arch", "unet", "--dataset", "mri", "--folds", "7") == 2


def test_export_writes_the_tidy_table(tmp_path: Path) -> None:
    assert run_cli(tmp_path, "--arch", "unet", "--dataset", "dsb2018", "--folds", "0") == 0
    out = tmp_path / "t.csv"
    assert main(["export", "--results", str(tmp_path), "--out", str(out)]) == 0
    assert len(pd.read_csv(out)) == len(store.load_all(tmp_path))


@pytest.mark.slow
def test_two_workers_give_the_same_table_as_one(tmp_path: Path) -> None:
    args = ("--arch", "unet,residual_unet", "--dataset", "dsb2018", "--folds", "0")
    assert run_cli(tmp_path / "seq", *args) == 0
    assert run_cli(tmp_path / "par", *args, "--jobs", "2") == 0
    pd.testing.assert_frame_equal(table(tmp_path / "seq"), table(tmp_path / "par"))


def test_a_job_left_running_by_a_dead_worker_becomes_a_failed_row(tmp_path: Path) -> None:
    from bench.run.runner import mark_crashed

    jobs = plan(select("unet", "dsb2018", False, "holdout", (0,)), tiny_profile(), tmp_path)
    p = paths(jobs[0], tmp_path)
    p["sidecar"].parent.mkdir(parents=True, exist_ok=True)
    p["sidecar"].write_text(json.dumps({"key": jobs[0].key, "status": "running", "job": jobs[0].to_dict()}))
    assert [s.status for s in mark_crashed(jobs, tmp_path)] == ["failed"]
    assert "worker process died" in store.failures(tmp_path)["error"].iloc[0]


def test_augmentation_option_trains_and_is_part_of_the_job_key(tmp_path: Path) -> None:
    args = ("--arch", "unet", "--dataset", "isic2018", "--folds", "0")
    assert run_cli(tmp_path, *args) == 0
    assert run_cli(tmp_path, *args, "--augment") == 0
    sides = store.sidecars(tmp_path)
    assert sorted(s["job"]["train"]["augment"] for s in sides) == [False, True]
    assert len({s["key"] for s in sides}) == 2


def test_a_bad_file_stops_the_run_until_skipped_explicitly(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from native_layouts import make_isic, truncate

    ids = tuple(f"ISIC_{i:07d}" for i in range(10))
    layout = make_isic(tmp_path / "data" / "isic2018", ids)
    bad = truncate(layout.files[ids[3]][0])
    args = ("--data-root", str(tmp_path / "data"), "--arch", "unet", "--dataset", "isic2018", "--folds", "0")
    assert run_cli(tmp_path / "r", *args) == 2
    assert str(bad) in capsys.readouterr().err  # the run names the file instead of silently dropping it
    assert run_cli(tmp_path / "r", *args, "--skip", ids[3]) == 0
    df = store.load_all(tmp_path / "r")
    assert ids[3] not in set(df["case_id"]) and json.loads(df["data_options"].iloc[0])["skip"] == [ids[3]]


# ------------------------------------------------------------------------------ one job: a Job in, a record out


def test_a_failed_job_returns_the_record_its_sidecar_holds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.run.execute
    from bench.results.record import JobRecord, Status
    from bench.run.runner import run_job

    def broken(job, results, out, progress=False):
        raise ZeroDivisionError("in the job body")

    monkeypatch.setattr(bench.run.execute, "execute", broken)
    [job] = plan(select("unet", "dsb2018", False, "holdout", (0,)), tiny_profile(), tmp_path)
    record = run_job(job, tmp_path)
    assert isinstance(record, JobRecord) and record.status is Status.FAILED and not record.crashed
    assert record.label == job.label and record.key == job.key and record.seconds > 0
    assert record.error == "ZeroDivisionError: in the job body" and "in broken" in record.traceback
    side = json.loads(paths(job, tmp_path)["sidecar"].read_text())
    assert JobRecord.from_json(side) == record and side["status"] == "failed" and side["job"] == job.to_dict()
    assert {"error", "traceback", "seconds", "environment"} <= set(side) and side["environment"]["versions"]
    assert store.failures(tmp_path)["error"].tolist() == [record.error]


def test_a_finished_job_returns_its_ok_record_and_is_then_skipped(tmp_path: Path) -> None:
    from bench.results.record import Status
    from bench.run.runner import run_job

    [job] = plan(select("unet", "dsb2018", False, "holdout", (0,)), tiny_profile(epochs="1"), tmp_path)
    record = run_job(job, tmp_path)
    assert record.status is Status.OK and record.n_written == len(store.load_all(tmp_path))
    assert record == store.read_record(paths(job, tmp_path)["sidecar"])
    assert {"best_epoch", "history", "compute", "learning"} <= set(record.details)
    assert record.environment and record.started and record.seconds > 0
    again = run_job(job, tmp_path)
    assert again.status is Status.SKIPPED and again.key == job.key and not again.to_json().get("error")


def test_a_crashed_job_is_a_failed_record_that_says_so(tmp_path: Path) -> None:
    from bench.run.runner import mark_crashed

    [job] = plan(select("unet", "dsb2018", False, "holdout", (0,)), tiny_profile(), tmp_path)
    p = paths(job, tmp_path)
    p["sidecar"].parent.mkdir(parents=True, exist_ok=True)
    p["sidecar"].write_text(json.dumps({"key": job.key, "status": "running", "job": job.to_dict(), "pid": 4242}))
    [record] = mark_crashed([job], tmp_path)
    assert record.crashed and record.crashed_pid == 4242 and record == store.read_record(p["sidecar"])
    assert json.loads(p["sidecar"].read_text())["crashed_pid"] == 4242


def test_a_job_refuses_data_or_a_split_that_changed_since_planning(tmp_path: Path) -> None:
    from bench.config import replace
    from bench.results.job_data import load_job_data

    [job] = plan(select("unet", "dsb2018", False, "holdout", (0,)), tiny_profile(), tmp_path)
    data, split = load_job_data(job, tmp_path / "cache")
    assert data.fingerprint == job.data_fingerprint and split.hash == job.split_hash
    with pytest.raises(RuntimeError, match="the data changed since planning"):
        load_job_data(replace(job, data_fingerprint="0" * 16), tmp_path / "cache")
    with pytest.raises(RuntimeError, match="changed since planning"):
        load_job_data(replace(job, split_hash="0" * 16), tmp_path / "cache")
