"""SLURM through submitit against a real cluster (``scripts/slurm-local.sh`` starts a single-node one;
``.ci/run`` does so before the tests). Skipped when no cluster answers, except under ``CI=true``,
where a missing cluster is a failure: CI must prove the SLURM path, not skip it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from tiny_sweep import per_image, tiny_jobs

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
    assert capsys.readouterr().out.startswith("1 jobs: 1 done | 0 running | 0 queued | 0 failed | 0 missing")
