"""SLURM through submitit against a real cluster (``scripts/slurm-local.sh`` starts a single-node one;
``.ci/run`` does so before the tests). Skipped when no cluster answers, except under ``CI=true``,
where a missing cluster is a failure: CI must prove the SLURM path, not skip it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from tiny_sweep import TINY_SETTINGS, per_image, tiny_jobs

from bench.results import store
from bench.run import slurm
from bench.run.engines import EngineConfig
from bench.run.runner import run_jobs
from bench.run.slurm import SlurmOptions
from bench.run.status import counts, sweep_status

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]


def _cluster_answers() -> str:
    """'' when a SLURM node is idle or busy, else why not."""
    if shutil.which("sinfo") is None:
        return "no `sinfo` on PATH (start one with scripts/slurm-local.sh)"
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30, check=False)
    states = set(proc.stdout.split())
    if proc.returncode != 0 or not states & {"idle", "mixed", "allocated", "completing"}:
        return f"no usable SLURM node (sinfo exit {proc.returncode}: {(proc.stdout + proc.stderr).strip()[:200]})"
    return ""


@pytest.fixture(scope="module", autouse=True)
def cluster() -> None:
    why = _cluster_answers()
    if why:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but SLURM does not answer: {why}")
        pytest.skip(why)


@pytest.fixture(scope="module")
def local_table(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    results = tmp_path_factory.mktemp("local")
    assert [s.status for s in run_jobs(tiny_jobs(results), results, n_jobs=2, progress=False)] == ["ok", "ok"]
    return per_image(results)


def _wait_until_out_of_queue(tasks: list[str], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while set(tasks) & set(slurm.queue_states() or {}):
        assert time.monotonic() < deadline, f"SLURM tasks {tasks} still queued after {seconds}s"
        time.sleep(1)


def test_slurm_array_gives_the_local_table(tmp_path: Path, local_table: pd.DataFrame) -> None:
    engine = EngineConfig("submitit", slurm=SlurmOptions(time_min=10, poll_s=1))
    statuses = list(run_jobs(tiny_jobs(tmp_path), tmp_path, engine=engine, progress=False))
    assert sorted(s.status for s in statuses) == ["ok", "ok"], statuses
    pd.testing.assert_frame_equal(per_image(tmp_path), local_table)
    (record,) = [store.read_sidecar(p) for p in (tmp_path / "slurm").glob("array-*.json")]
    assert sorted(record["tasks"].values()) == [f"{record['array_job_id']}_0", f"{record['array_job_id']}_1"]
    # the tasks ran this interpreter (the tox / venv one), not whatever `python` the node finds first
    sub = next((tmp_path / "slurm" / "logs").glob("*_submission.sh")).read_text()
    import sys

    assert sys.executable in sub and "NO_ALBUMENTATIONS_UPDATE=1" in sub


def test_no_wait_then_status_then_a_second_run_collects_without_resubmitting(
    tmp_path: Path, local_table: pd.DataFrame
) -> None:
    jobs = tiny_jobs(tmp_path)
    opts = SlurmOptions(time_min=10, poll_s=1, wait=False)
    statuses = list(run_jobs(jobs, tmp_path, engine=EngineConfig("submitit", slurm=opts), progress=False))
    assert [s.status for s in statuses] == ["submitted", "submitted"]
    first = sweep_status(jobs, tmp_path)
    assert set(first["state"]) <= {"queued", "running", "done"} and first["slurm_task"].str.contains("_").all()
    # a later run (a new driver) follows the same tasks to their end and submits nothing new
    again = list(
        run_jobs(jobs, tmp_path, engine=EngineConfig("submitit", slurm=SlurmOptions(poll_s=1)), progress=False)
    )
    assert sorted(s.status for s in again) in (["ok", "ok"], ["ok", "skipped"], ["skipped", "skipped"])
    assert len(list((tmp_path / "slurm").glob("array-*.json"))) == 1
    assert counts(sweep_status(jobs, tmp_path))["done"] == 2
    pd.testing.assert_frame_equal(per_image(tmp_path), local_table)


def test_cancelled_tasks_are_failed_jobs_with_the_slurm_reason(tmp_path: Path) -> None:
    jobs = tiny_jobs(tmp_path, folds=(0,))
    # hold the array so it cannot start, then cancel it: the task leaves the queue without a result
    tasks = slurm.submit(jobs, tmp_path, SlurmOptions(time_min=10))
    (task,) = tasks.values()
    subprocess.run(["scontrol", "hold", task.split("_")[0]], check=False, capture_output=True)
    subprocess.run(["scancel", task.split("_")[0]], check=True)
    _wait_until_out_of_queue([task])
    table = sweep_status(jobs, tmp_path)
    assert table["state"].tolist() == ["failed"]
    assert table["reason"].iloc[0].startswith(f"SLURM task {task} ended without a result")
    # following it (a `bench run` that waits) records the failure in the job's sidecar
    statuses = list(slurm.wait_for(jobs, tmp_path, poll_s=0.2))
    assert statuses[0].status == "failed" and "ended without a result" in statuses[0].error
    assert store.failures(tmp_path)["error"].str.contains("ended without a result").all()


def test_the_command_line_submits_reports_and_collects(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from bench.cli import main

    args = [
        "--results",
        str(tmp_path),
        "--arch",
        "unet",
        "--dataset",
        "dsb2018",
        "--folds",
        "0",
        "--set",
        "epochs=1",
        "--set",
        "image_size=32",
        "--set",
        "width=4",
        "--set",
        "depth=3",
    ]
    assert main(["run", *args, "--quiet", "--engine", "submitit", "--no-wait", "--time-min", "10"]) == 0
    assert "1 jobs are in the SLURM queue (array job" in capsys.readouterr().out
    assert main(["status", *args]) == 0
    head = capsys.readouterr().out.splitlines()[0]
    assert head.startswith("1 jobs: ") and "0 failed | 0 missing" in head
    assert main(["run", *args, "--quiet", "--engine", "submitit"]) == 0
    out = capsys.readouterr().out
    assert "Mean per image" in out and "0 failed" in out
    assert len(list((tmp_path / "slurm").glob("array-*.json"))) == 1  # the second run submitted nothing
    assert main(["status", *args]) == 0
    out = capsys.readouterr().out
    assert out.startswith("1 jobs: 1 done | ") and "| 0 running |" in out and "| 0 failed | 0 missing" in out


# ------------------------------------------------------------------ sweeps of any size
def eight_jobs(results: Path) -> list:
    """The tiny sweep widened to 8 jobs (folds 0-3, seeds 0 and 1)."""
    from bench.config import load_profile
    from bench.run.plan import plan, select

    return plan(
        select("unet", "dsb2018", False, "holdout", (0, 1, 2, 3), (0, 1)), load_profile("quick", TINY_SETTINGS), results
    )


@pytest.fixture(scope="module")
def local_table_8(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    results = tmp_path_factory.mktemp("local8")
    assert {s.status for s in run_jobs(eight_jobs(results), results, n_jobs=2, progress=False)} == {"ok"}
    return per_image(results)


@pytest.fixture
def max_array_size_3() -> Iterator[None]:
    """The cluster's MaxArraySize lowered to 3 (slurm.conf + `scontrol reconfigure`), restored after."""
    conf = Path(slurm.parse_config_text(slurm._slurm_command(["scontrol", "show", "config"]), "SLURM_CONF") or "")
    if not conf.is_file() or not os.access(conf, os.W_OK):
        why = f"cannot change the cluster's slurm.conf ({conf or 'SLURM_CONF unknown'})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {why}")
        pytest.skip(why)
    original = conf.read_text()
    try:
        conf.write_text(original + "\nMaxArraySize=3\n")
        subprocess.run(["scontrol", "reconfigure"], check=True, capture_output=True)
        assert slurm.cluster_limits().max_array_size == 3
        yield
    finally:
        conf.write_text(original)
        subprocess.run(["scontrol", "reconfigure"], check=True, capture_output=True)
    assert slurm.cluster_limits().max_array_size != 3


def _arrays(results: Path) -> list[dict]:
    return sorted(
        (store.read_sidecar(p) for p in (results / "slurm").glob("array-*.json")), key=lambda r: r["submitted"]
    )


def test_a_sweep_larger_than_max_array_size_runs_as_several_arrays(
    tmp_path: Path, local_table_8: pd.DataFrame, max_array_size_3: None
) -> None:
    jobs = eight_jobs(tmp_path)
    engine = EngineConfig("submitit", slurm=SlurmOptions(time_min=10, poll_s=1))
    statuses = list(run_jobs(jobs, tmp_path, engine=engine, progress=False))
    assert [s.status for s in statuses] == ["ok"] * 8, statuses
    assert [len(a["tasks"]) for a in _arrays(tmp_path)] == [3, 3, 2]
    pd.testing.assert_frame_equal(per_image(tmp_path), local_table_8)
    where = [s["where"] for s in store.sidecars(tmp_path)]
    tasks = {t for a in _arrays(tmp_path) for t in a["tasks"].values()}
    assert {w["engine"] for w in where} == {"submitit"} and {w["slurm_task"] for w in where} == tasks


def test_jobs_per_task_packs_the_sweep_into_fewer_tasks_run_in_one_process(
    tmp_path: Path, local_table_8: pd.DataFrame, max_array_size_3: None
) -> None:
    jobs = eight_jobs(tmp_path)
    engine = EngineConfig("submitit", slurm=SlurmOptions(time_min=10, poll_s=1, jobs_per_task=4))
    statuses = list(run_jobs(jobs, tmp_path, engine=engine, progress=False))
    assert [s.status for s in statuses] == ["ok"] * 8, statuses
    (array,) = _arrays(tmp_path)
    assert len(set(array["tasks"].values())) == 2  # 8 jobs, 2 array tasks
    pd.testing.assert_frame_equal(per_image(tmp_path), local_table_8)
    by_task: dict[str, set] = {}
    for side in store.sidecars(tmp_path):
        by_task.setdefault(side["where"]["slurm_task"], set()).add(side["where"]["pid"])
    assert sorted(by_task) == sorted(set(array["tasks"].values()))
    assert all(len(pids) == 1 for pids in by_task.values())  # the 4 jobs of a task ran in one process


def test_sbatch_errors_are_one_line_with_slurms_message(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from bench.cli import main

    args = ["run", "--results", str(tmp_path), "--arch", "unet", "--dataset", "dsb2018", "--folds", "0", "--quiet"]
    assert main([*args, "--engine", "submitit", "--partition", "no_such_partition"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench run: error: sbatch refused an array of 1 tasks: ")
    assert "invalid partition" in err.lower() and len(err.strip().splitlines()) == 1, err


def test_a_cancelled_running_task_fails_its_job_and_the_rerun_resubmits_only_it(tmp_path: Path) -> None:
    """scancel of a task while its job runs: `bench status` says failed with SLURM's reason; the next run
    resubmits that job alone, which ends ok, and its sidecar records the try that died."""
    from bench.config import load_profile
    from bench.results.job_files import paths
    from bench.run.plan import plan, select

    profile = load_profile("quick", {**TINY_SETTINGS, "epochs": "600"})  # about 15 s: outlasts the cancel (KillWait)
    (job,) = plan(select("unet", "dsb2018", False, "holdout", (0,)), profile, tmp_path)
    opts = SlurmOptions(time_min=10, poll_s=1, wait=False)
    (submitted,) = run_jobs([job], tmp_path, engine=EngineConfig("submitit", slurm=opts), progress=False)
    side = paths(job, tmp_path)["sidecar"]
    deadline = time.monotonic() + 180
    while (store.read_sidecar(side) or {}).get("status") != "running":
        assert time.monotonic() < deadline, "the task never started its job"
        time.sleep(0.2)
    # scancel sends SIGTERM, which submitit's task ignores (it keeps the signal for preemption), then SIGKILL after
    # KillWait (2 s on the local cluster): the job must still be running then, or it rightly ends done
    subprocess.run(["scancel", submitted.task], check=True)
    _wait_until_out_of_queue([submitted.task])
    table = sweep_status([job], tmp_path)
    assert table["state"].tolist() == ["failed"]
    assert table["reason"].iloc[0].startswith(f"SLURM task {submitted.task} ended without a result")
    again = list(
        run_jobs([job], tmp_path, engine=EngineConfig("submitit", slurm=SlurmOptions(poll_s=1)), progress=False)
    )
    assert [s.status for s in again] == ["ok"]
    first, second = _arrays(tmp_path)
    assert list(first["tasks"]) == list(second["tasks"]) == [job.key]
    record = store.read_sidecar(side)
    assert record["attempts"] == 2 and record["died"][0]["slurm_task"] == submitted.task
    assert record["where"]["slurm_task"] == second["tasks"][job.key]
