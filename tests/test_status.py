"""`bench status`: done / running / queued / failed / missing per job, from the result files (and the
SLURM queue, faked here; tests/test_slurm.py asks a real one)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tiny_sweep import TINY_SETTINGS, tiny_jobs

from bench.cli import main
from bench.results.store import job_lock
from bench.run.runner import paths, run_jobs
from bench.run.status import files_status, format_status, job_state, one_line, sweep_status

SELECTION = [
    "--arch",
    "unet,resdunet,residual_unet",
    "--dataset",
    "dsb2018",
    "--folds",
    "0,1",
    *[a for k, v in TINY_SETTINGS.items() for a in ("--set", f"{k}={v}")],
]


@pytest.fixture(scope="module")
def partly_done(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """unet done (2 folds), resdunet failed (2 folds), residual_unet fold 0 running, fold 1 missing."""
    import bench.run.execute

    results = tmp_path_factory.mktemp("status")
    jobs = tiny_jobs(results, "unet,resdunet,residual_unet")
    real = bench.run.execute.build_model

    def flaky(job, in_channels):
        if job.arch == "resdunet":
            raise RuntimeError(f"out of GPU memory, fold {job.fold}\nsecond line")
        return real(job, in_channels)

    bench.run.execute.build_model = flaky
    try:
        list(run_jobs([j for j in jobs if j.arch in ("unet", "resdunet")], results, progress=False))
    finally:
        bench.run.execute.build_model = real
    running = next(j for j in jobs if j.arch == "residual_unet" and j.fold == 0)
    p = paths(running, results)
    p["sidecar"].parent.mkdir(parents=True, exist_ok=True)
    p["sidecar"].write_text(
        json.dumps({"key": running.key, "status": "running", "job": running.to_dict(), "started": time.time()})
    )
    lock = job_lock(p["sidecar"])  # a live run holds its job's lock (a free one would mean it crashed)
    lock.acquire()
    yield results
    lock.release()


def test_partly_done_and_failed_sweep(partly_done: Path) -> None:
    table = sweep_status(tiny_jobs(partly_done, "unet,resdunet,residual_unet"), partly_done)
    state = {(r.arch, r.fold): r.state for r in table.itertuples()}
    assert state == {
        ("unet", 0): "done",
        ("unet", 1): "done",
        ("resdunet", 0): "failed",
        ("resdunet", 1): "failed",
        ("residual_unet", 0): "running",
        ("residual_unet", 1): "missing",
    }
    reasons = dict(zip(table["arch"] + table["fold"].astype(str), table["reason"]))
    assert reasons["resdunet0"] == "RuntimeError: out of GPU memory, fold 0"  # one line of a multi-line error
    assert reasons["resdunet1"] == "RuntimeError: out of GPU memory, fold 1"
    assert reasons["residual_unet0"].startswith("started ")
    assert reasons["unet0"] == "" and reasons["residual_unet1"] == ""
    assert (
        format_status(table).splitlines()[0]
        == "6 jobs: 2 done | 0 damaged | 1 running | 0 crashed | 0 queued | 2 failed | 1 missing"
    )


def test_status_without_a_plan_lists_the_jobs_with_files(partly_done: Path) -> None:
    table = files_status(partly_done)
    assert sorted(table["state"]) == ["done", "done", "failed", "failed", "running"]  # no plan: nothing is missing


def test_status_command(partly_done: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["status", "--results", str(partly_done), *SELECTION]) == 0
    out = capsys.readouterr().out
    assert out.startswith("6 jobs: 2 done | 0 damaged | 1 running | 0 crashed | 0 queued | 2 failed | 1 missing")
    failed = [ln for ln in out.splitlines() if ln.lstrip().startswith("failed")]
    assert len(failed) == 2 and all("resdunet" in ln for ln in failed)
    assert main(["status", "--results", str(partly_done), "--format", "csv"]) == 0
    assert capsys.readouterr().out.count("\n") == 1 + 5


def test_one_line_reason() -> None:
    assert one_line("\nValueError: bad input\n  detail\n") == "ValueError: bad input"
    assert one_line("x" * 500, width=20) == "x" * 19 + "…"


def _sidecar(tmp_path: Path, **side: object) -> Path:
    path = tmp_path / "runs" / "d" / "a" / "holdout_f0_s0_k.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"job": {}, "key": "k", **side}))
    return path


def test_queue_state_wins_over_older_files_and_lost_tasks_are_failures(tmp_path: Path) -> None:
    failed_before = _sidecar(tmp_path, status="failed", error="RuntimeError: old")
    assert job_state(failed_before, "k", "7_1", {"7_1": "PENDING"}, tmp_path) == ("queued", "SLURM pending")
    assert job_state(None, "k", "7_1", {"7_1": "RUNNING"}, tmp_path) == ("running", "SLURM running")
    # submitted, gone from the queue, no result: failed, with the last line of the task's SLURM log
    log = tmp_path / "slurm" / "logs" / "7_1_0_log.err"
    log.parent.mkdir(parents=True)
    log.write_text(
        "loading\nslurmstepd: error: *** JOB 8 ON vm CANCELLED AT 2026-11-30T08:00:00 DUE TO TIME LIMIT ***\n"
    )
    running = _sidecar(tmp_path, status="running", started=time.time())
    state, reason = job_state(running, "k", "7_1", {}, tmp_path)
    assert state == "failed" and reason.startswith("SLURM task 7_1 ended without a result: slurmstepd")
    assert "TIME LIMIT" in reason
    # no SLURM to ask (queue None): the files alone decide; nobody holds the lock: crashed
    assert job_state(running, "k", "7_1", None, tmp_path)[0] == "crashed"
    lock = job_lock(running)
    with lock:
        assert job_state(running, "k", "7_1", None, tmp_path)[0] == "running"
    assert job_state(None, "k", None, None, tmp_path) == ("missing", "")
    assert job_state(running, "other-key", None, None, tmp_path) == ("missing", "")


DRIVER = """
import json, sys, time
from pathlib import Path
from bench.results.store import job_lock
sidecar = Path(sys.argv[1])
lock = job_lock(sidecar)
lock.acquire()
sidecar.write_text(json.dumps({"job": {}, "key": "k", "status": "running", "started": time.time(), "pid": 1}))
print("claimed", flush=True)
time.sleep(600)
"""


def test_killed_driver_is_crashed_within_seconds_not_running(tmp_path: Path) -> None:
    """kill -9 of the process that holds a job: the OS frees its lock, and status says crashed at once."""
    sidecar = tmp_path / "runs" / "d" / "a" / "holdout_f0_s0_k.json"
    sidecar.parent.mkdir(parents=True)
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(sidecar)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "claimed"
        assert files_status(tmp_path)["state"].tolist() == ["running"]
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    start = time.monotonic()
    table = files_status(tmp_path)
    assert table["state"].tolist() == ["crashed"] and time.monotonic() - start < 5
    assert "its lock is free" in table["reason"][0]
    assert "1 crashed" in format_status(table)
