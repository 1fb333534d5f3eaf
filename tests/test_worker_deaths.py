"""A worker that dies under a job leaves its mark: the retry that succeeds records how many tries the job
took and which process died (``attempts``, ``died`` in the sidecar), and `bench status` shows it."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

from tiny_sweep import TINY_SETTINGS

from bench.config import load_profile
from bench.results import store
from bench.results.job_files import paths
from bench.run.job import run_job
from bench.run.plan import plan, select
from bench.run.status import files_status, format_status


def test_a_retry_after_a_worker_death_records_the_dead_try_and_status_shows_it(tmp_path: Path) -> None:
    profile = load_profile("quick", {**TINY_SETTINGS, "epochs": "15"})  # long enough to be killed mid-run
    (job,) = plan(select("unet", "dsb2018", False, "holdout", (0,)), profile, tmp_path)
    (tmp_path / "job.pkl").write_bytes(pickle.dumps(job))
    code = f"import pickle; from bench.run.job import run_job; run_job(pickle.load(open({str(tmp_path / 'job.pkl')!r}, 'rb')), {str(tmp_path)!r})"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p), "OMP_NUM_THREADS": "1"}
    worker = subprocess.Popen([sys.executable, "-c", code], env=env)
    side = paths(job, tmp_path)["sidecar"]
    deadline = time.monotonic() + 120
    while (store.read_sidecar(side) or {}).get("status") != "running":
        assert worker.poll() is None and time.monotonic() < deadline, "the worker never started the job"
        time.sleep(0.1)
    os.kill(worker.pid, signal.SIGKILL)  # the out-of-memory killer, say
    worker.wait()
    record = run_job(job, tmp_path)  # the retry (a rescheduled task, a rerun): ends ok
    assert record.status == "ok" and record.attempts == 2
    assert [d["pid"] for d in record.died] == [worker.pid] and record.where["pid"] == os.getpid()
    stored = store.read_sidecar(side)
    assert stored["attempts"] == 2 and stored["died"][0]["pid"] == worker.pid
    assert stored["died"][0]["engine"] == "local" and stored["where"]["engine"] == "local"
    shown = format_status(files_status(tmp_path))
    assert shown.startswith("1 jobs: 1 done")
    assert f"2 attempts: the worker died under pid {worker.pid} on " in shown
    again = run_job(job, tmp_path, force=True)  # a fresh run after a result starts again at one try
    assert again.attempts == 1 and again.died is None
