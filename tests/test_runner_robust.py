"""The runner under accidents, with real processes: two runs on one folder, Ctrl-C / SIGTERM of the
driver, a worker process that dies, a failing recomputation, damaged results, non-finite outputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from bench.config import load_profile, replace
from bench.results import store
from bench.results.store import ResultWarning
from bench.run.plan import plan, select
from bench.run.runner import CRASHED, dry_run_table, is_finished, mark_crashed, paths, run_job, run_jobs

TINY = {"epochs": "1", "image_size": "32", "width": "4", "depth": "3"}


def planned(
    results: Path, arch: str = "unet", dataset: str = "dsb2018", folds: tuple[int, ...] = (0,), **settings: str
) -> list:
    return plan(select(arch, dataset, False, "holdout", folds), load_profile("quick", {**TINY, **settings}), results)


def child_env() -> dict[str, str]:
    """The environment of a child Python that imports what this one does (the package and tests/)."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        "NO_ALBUMENTATIONS_UPDATE": "1",
        "OMP_NUM_THREADS": "1",
    }


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (dead, not yet reaped by its new parent) is gone for our purpose
        return " Z " not in Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1][:4]
    except (FileNotFoundError, IndexError):
        return False


# ------------------------------------------------------------------------------------------ no training


def test_a_job_held_by_another_process_is_not_started(tmp_path: Path) -> None:
    job = planned(tmp_path)[0]
    lock = store.job_lock(paths(job, tmp_path)["sidecar"])
    lock.acquire()
    try:
        status = run_job(job, tmp_path, wait=False)
    finally:
        lock.release()
    assert status.status == "busy" and not paths(job, tmp_path)["sidecar"].exists()


def test_a_held_job_is_waited_for_and_its_outcome_read(tmp_path: Path) -> None:
    import threading

    job = planned(tmp_path)[0]
    p = paths(job, tmp_path)
    store.atomic_write_json(p["sidecar"], {"key": job.key, "status": "running", "job": job.to_dict()})
    held = threading.Event()

    def other_process_fails() -> None:
        lock = store.job_lock(p["sidecar"])
        lock.acquire()
        held.set()
        time.sleep(0.5)
        store.atomic_write_json(
            p["sidecar"], {"key": job.key, "status": "failed", "job": job.to_dict(), "error": "RuntimeError: elsewhere"}
        )
        lock.release()

    thread = threading.Thread(target=other_process_fails)
    thread.start()
    held.wait()
    status = run_job(job, tmp_path)  # waits, then reads the outcome instead of training again
    thread.join()
    assert status.status == "failed" and "elsewhere" in status.error and "another process" in status.error


def test_a_running_job_of_a_live_process_is_not_marked_crashed(tmp_path: Path) -> None:
    job = planned(tmp_path)[0]
    p = paths(job, tmp_path)
    store.atomic_write_json(p["sidecar"], {"key": job.key, "status": "running", "job": job.to_dict()})
    lock = store.job_lock(p["sidecar"])
    lock.acquire()
    try:
        assert mark_crashed([job], tmp_path) == []
    finally:
        lock.release()
    assert [s.status for s in mark_crashed([job], tmp_path)] == ["failed"]


# ------------------------------------------------------------------------------------------ training

RUNNER = """
import json, sys
from pathlib import Path
from bench.config import load_profile
from bench.run.plan import plan, select
from bench.run.runner import run_jobs
results = Path(sys.argv[1])
profile = load_profile("quick", {"epochs": "2", "image_size": "32", "width": "4", "depth": "3"})
jobs = plan(select("unet,residual_unet", "dsb2018", False, "holdout", (0, 1)), profile, results)
for status in run_jobs(jobs, results, n_jobs=1, progress=False):
    print(json.dumps(status.to_json()), flush=True)
"""


@pytest.mark.slow
def test_two_runs_on_one_folder_share_the_work(tmp_path: Path) -> None:
    res = tmp_path / "results"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RUNNER, str(res)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    per_run = [[json.loads(line) for line in out.splitlines()] for out, _ in outs]
    assert all(any(s["status"] == "ok" for s in run) for run in per_run)  # both runs trained: they overlapped
    statuses = [s for run in per_run for s in run]
    by_key: dict[str, list[str]] = {}
    for s in statuses:
        by_key.setdefault(s["key"], []).append(s["status"])
    assert len(by_key) == 4
    for key, seen in by_key.items():  # each job trained once, by one of the two runs; never failed
        assert sorted(seen) == ["ok", "skipped"], (key, seen)
    df = store.load_all(res)
    assert df["job_key"].nunique() == 4 and not store.failures(res).size
    assert not list((res / "runs").rglob(".tmp-*"))


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGKILL, -9)])
def test_stopping_the_driver_stops_its_workers(tmp_path: Path, sig: signal.Signals, code: int) -> None:
    res = tmp_path / "results"
    cmd = [
        sys.executable,
        "-m",
        "bench.cli",
        "run",
        "--results",
        str(res),
        "--arch",
        "unet,residual_unet",
        "--dataset",
        "dsb2018",
        "--folds",
        "0",
        "--jobs",
        "2",
        "--quiet",
        "--set",
        "epochs=100000",
        "--set",
        "image_size=32",
        "--set",
        "width=4",
        "--set",
        "depth=3",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(), start_new_session=True
    )
    workers: list[int] = []
    try:
        deadline = time.time() + 120
        while len(workers) < 2 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.5)
            sides = [store.read_sidecar(p) or {} for p in (res / "runs").glob("*/*/*.json")]
            workers = [s["pid"] for s in sides if s.get("status") == "running" and "pid" in s]
        assert len(workers) == 2 and proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(1.0)  # both are training now
        os.kill(proc.pid, sig)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == code, err[-2000:]
        if sig != signal.SIGKILL:  # killed outright, the driver says nothing, but its workers still stop
            assert "Traceback" not in err and "run the same command again" in err and "0 of 2 jobs done" in err
            assert len([ln for ln in err.splitlines() if ln.strip()]) == 1, err
        deadline = time.time() + 5
        while any(alive(pid) for pid in workers) and time.time() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in workers if alive(pid)]
    finally:
        for pid in [proc.pid, *workers]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_a_dead_worker_fails_only_its_own_job(tmp_path: Path) -> None:
    from crash_arch import CrashJob

    job = planned(tmp_path, "unet", epochs="2", synthetic_n="12")[0]
    fields = {f: getattr(job, f) for f in job.__dataclass_fields__}
    # each waits until the other has started, so the process dies while both are in flight
    good, bad = (
        CrashJob(
            **{
                **fields,
                "arch": arch,
                "arch_kwargs": json.dumps({"wait_for": str(store.job_dir(tmp_path, job.dataset, other) / "*.json")}),
            }
        )
        for arch, other in (("wait_test", "crash_test"), ("crash_test", "wait_test"))
    )
    statuses = {s.key: s for s in run_jobs([good, bad], tmp_path, n_jobs=2, progress=False)}
    assert statuses[bad.key].status == "failed" and statuses[bad.key].error == CRASHED
    assert statuses[good.key].status == "ok" and is_finished(good, tmp_path)
    fails = store.failures(tmp_path)
    assert list(fails["arch"]) == ["crash_test"] and list(store.load_all(tmp_path)["arch"].unique()) == ["wait_test"]


def test_at_one_worker_a_job_that_kills_its_process_is_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    """What ``bench run --jobs 1`` does (``in_driver=False``): the job runs in a worker process, so a job that
    kills it (a segfault, the out-of-memory killer) fails alone and the driver runs the next one."""
    from crash_arch import CrashJob

    job = planned(tmp_path, "unet", epochs="1", synthetic_n="12")[0]
    fields = {f: getattr(job, f) for f in job.__dataclass_fields__}
    bad, good = (CrashJob(**{**fields, "arch": arch}) for arch in ("crash_test", "wait_test"))
    statuses = {s.key: s for s in run_jobs([bad, good], tmp_path, n_jobs=1, progress=False, in_driver=False)}
    assert statuses[bad.key].status == "failed" and statuses[bad.key].error == CRASHED
    assert statuses[good.key].status == "ok" and is_finished(good, tmp_path)


@pytest.mark.slow
def test_a_failed_recomputation_keeps_the_ok_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.run.execute

    jobs = planned(tmp_path)
    assert [s.status for s in run_jobs(jobs, tmp_path, progress=False)] == ["ok"]
    before = store.load_all(tmp_path)

    def broken(job, in_channels):
        raise RuntimeError("late boom")

    monkeypatch.setattr(bench.run.execute, "build_model", broken)
    [status] = run_jobs(jobs, tmp_path, force=True, progress=False)
    assert status.status == "failed" and "late boom" in status.error and "kept" in status.error
    assert is_finished(jobs[0], tmp_path)
    pd.testing.assert_frame_equal(store.load_all(tmp_path), before)
    side = store.read_sidecar(paths(jobs[0], tmp_path)["sidecar"])
    assert side["status"] == "ok" and "late boom" in side["last_failure"]["error"]


@pytest.mark.slow
def test_a_damaged_result_is_recomputed_by_the_next_run(tmp_path: Path) -> None:
    jobs = planned(tmp_path)
    list(run_jobs(jobs, tmp_path, progress=False))
    p = paths(jobs[0], tmp_path)
    expected = store.load_all(tmp_path)
    p["parquet"].write_bytes(p["parquet"].read_bytes()[:100])  # truncated beside an ok sidecar
    leftover = p["parquet"].with_name(f".tmp-{jobs[0].stem}.parquet.abcd.tmp")
    leftover.write_bytes(b"PAR1")  # what a killed writer leaves
    assert list(dry_run_table(jobs, tmp_path)["state"]) == ["damaged"]
    with pytest.warns(ResultWarning, match=str(p["parquet"])):
        statuses = list(run_jobs(jobs, tmp_path, progress=False))
    assert [s.status for s in statuses] == ["ok"] and not leftover.exists()
    pd.testing.assert_frame_equal(store.load_all(tmp_path), expected)


@pytest.mark.slow
def test_non_finite_predictions_fail_the_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.run.execute

    real_fit = bench.run.execute.fit

    class NanAfterTraining(torch.nn.Module):  # trains and selects normally, then predicts NaN
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net, self.trained = net, False

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.net(x)
            return out * float("nan") if self.trained else out

    def fit_then_poison(model, *args, **kwargs):
        result = real_fit(model, *args, **kwargs)
        result.model.trained = True
        return result

    real = bench.run.execute.build_model
    monkeypatch.setattr(bench.run.execute, "build_model", lambda job, c: NanAfterTraining(real(job, c)))
    monkeypatch.setattr(bench.run.execute, "fit", fit_then_poison)
    jobs = planned(tmp_path)
    [status] = run_jobs(jobs, tmp_path, progress=False)
    assert status.status == "failed" and "NonFinitePrediction" in status.error
    assert store.load_all(tmp_path).empty and "non-finite" in store.failures(tmp_path)["error"].iloc[0]


def test_settings_are_part_of_the_plan_not_a_late_failure(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="epochs"):
        planned(tmp_path, epochs="0")
    assert not (tmp_path / "runs").exists()
    assert replace(planned(tmp_path)[0].train, epochs=2).epochs == 2


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc (Linux)")
def test_workers_are_forked_from_a_server_that_has_imported_torch() -> None:
    import multiprocessing.forkserver

    from bench.run.workers import worker_pool

    with worker_pool(2, threads=1) as pool:
        parents = {f.result() for f in [pool.submit(os.getppid) for _ in range(4)]}
        server = multiprocessing.forkserver._forkserver._forkserver_pid
    assert parents == {server} and server != os.getpid()  # forked by the server, not started by the driver
    maps = Path(f"/proc/{server}/maps").read_text()
    assert "libtorch" in maps and "libarrow" in maps  # torch and the job's storage code, imported before the fork


def test_without_a_fork_server_the_workers_are_spawned(monkeypatch: pytest.MonkeyPatch) -> None:
    import multiprocessing

    from bench.run.workers import pool_context

    assert pool_context().get_start_method() == ("forkserver" if sys.platform != "win32" else "spawn")
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])  # as on Windows
    assert pool_context().get_start_method() == "spawn"


def test_the_fork_server_imports_the_modules_that_registered_a_users_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A network registered by a user's own module (imported before ``bench.cli.main``) is preloaded by the
    workers' fork server, so a worker knows it; the package's own modules are not listed again."""
    import importlib

    from bench.architectures import ARCHITECTURES
    from bench.run.workers import registering_modules

    (tmp_path / "my_lab_nets.py").write_text(
        "from torch import nn\nfrom bench.architectures import register_arch\n\n"
        "@register_arch('my_lab_net')\nclass MyLabNet(nn.Conv2d):\n"
        "    def __init__(self, in_channels=1, classes=1, **_):\n        super().__init__(in_channels, classes, 1)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.import_module("my_lab_nets")
    try:
        assert "my_lab_nets" in registering_modules()
        assert not [m for m in registering_modules() if m.startswith("bench")]
    finally:
        ARCHITECTURES.unregister("my_lab_net")
        sys.modules.pop("my_lab_nets", None)
    assert "my_lab_nets" not in registering_modules()
