"""Engines against the real thing: a Dask LocalCluster and a `dask scheduler` + `dask worker` pair
started as separate processes on 127.0.0.1 must give the per-image table the local engine gives. Also the
engine options, the device rules (a fake GPU pool), mixed-precision defaults and the compute record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch
from tiny_sweep import TINY_SETTINGS, per_image, tiny_jobs

from bench.analysis.compute import COMPUTE_COLUMNS, compute_table
from bench.cli import main
from bench.config import load_profile
from bench.results import store
from bench.results.job_files import paths
from bench.run.devices import device_slot, precision_for, resolve_device, validate_device
from bench.run.engines import EngineConfig, dask_client
from bench.run.plan import plan, select
from bench.run.runner import run_jobs
from bench.run.slurm import SlurmOptions, slurm_options

REPO = Path(__file__).resolve().parents[1]
TINY_CLI = [
    "--arch",
    "unet",
    "--dataset",
    "dsb2018",
    *(a for k, v in TINY_SETTINGS.items() for a in ("--set", f"{k}={v}")),
]


@pytest.fixture(scope="module")
def local_table(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    results = tmp_path_factory.mktemp("local")
    statuses = list(run_jobs(tiny_jobs(results), results, n_jobs=2, progress=False))
    assert [s.status for s in statuses] == ["ok", "ok"]
    return per_image(results)


# ------------------------------------------------------------------ Dask
@pytest.mark.slow
def test_dask_local_cluster_gives_the_local_table(tmp_path: Path, local_table: pd.DataFrame) -> None:
    engine = EngineConfig("dask", n_jobs=2)
    statuses = list(run_jobs(tiny_jobs(tmp_path), tmp_path, engine=engine, progress=False))
    assert sorted(s.status for s in statuses) == ["ok", "ok"]
    pd.testing.assert_frame_equal(per_image(tmp_path), local_table)


def test_local_cluster_workers_do_not_get_dasks_malloc_trim_setting() -> None:
    with dask_client(None, 1) as client:
        env = client.run(lambda: {k: os.environ.get(k) for k in ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS")})
    (worker_env,) = env.values()
    assert worker_env == {"MALLOC_TRIM_THRESHOLD_": None, "OMP_NUM_THREADS": "1"}


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{proc.args[:3]} did not write {path} (exit {proc.poll()})")
        time.sleep(0.2)


DASK_ENV = {**os.environ, "DASK_CONFIG": str(REPO / "scripts" / "dask-worker.yaml")}  # workers: the driver's Python


class DaskProcesses:
    """A `dask scheduler` and `dask worker --nthreads 1` processes on 127.0.0.1, each its own process
    (as at a site: nothing shares the driver's interpreter), stopped by ``close``."""

    def __init__(self, folder: Path, scheduler_env: dict[str, str] | None = None) -> None:
        self.folder, self.procs = folder, []
        sched_file = folder / "scheduler.json"
        self.procs.append(
            self._start(
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--scheduler-file",
                str(sched_file),
                env=scheduler_env,
            )
        )
        _wait_for(sched_file, self.procs[0])
        self.address = json.loads(sched_file.read_text())["address"]
        assert self.address.startswith("tcp://127.0.0.1:")

    def _start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "dask", *args, "--dashboard-address", "127.0.0.1:0"]
        log = open(self.folder / f"{args[0]}-{len(self.procs)}.log", "wb")  # noqa: SIM115 (closed with the process)
        return subprocess.Popen(
            cmd, env={**DASK_ENV, **(env or {})}, cwd=self.folder, stdout=log, stderr=subprocess.STDOUT
        )

    def add_worker(self) -> subprocess.Popen:
        proc = self._start("worker", self.address, "--nthreads", "1", "--host", "127.0.0.1")
        self.procs.append(proc)
        return proc

    def workers(self, n: int, seconds: float = 120) -> dict[str, int]:
        """{address: pid} of the workers once ``n`` have joined."""
        from distributed import Client

        with Client(self.address, timeout="30s") as client:
            client.wait_for_workers(n, timeout=seconds)
            return {addr: pid for addr, pid in client.run(os.getpid).items()}

    def close(self) -> None:
        for proc in reversed(self.procs):  # workers first, all at once; then the scheduler
            proc.terminate()
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def dask_procs(tmp_path: Path) -> Iterator[DaskProcesses]:
    procs = DaskProcesses(tmp_path)
    yield procs
    procs.close()


def _where(results: Path) -> list[dict]:
    """The ``where`` record of every job's sidecar (engine, host, pid, Dask worker)."""
    return [side.get("where", {}) for side in store.sidecars(results)]


@pytest.mark.slow
def test_one_single_thread_worker_runs_every_job_and_the_driver_only_waits(
    dask_procs: DaskProcesses, local_table: pd.DataFrame
) -> None:
    """joblib's Dask backend ran every job in the driver when the cluster had one thread; jobs must run on
    the worker: every sidecar names it (its address and pid), and the driver's CPU time stays near zero."""
    dask_procs.add_worker()
    (worker, pid), *_ = dask_procs.workers(1).items()
    with dask_client(dask_procs.address, 1) as client:
        (worker_env,) = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_")).values()
        assert worker_env is None  # scripts/dask-worker.yaml unsets dask's default
    results = dask_procs.folder / "results"
    jobs = tiny_jobs(results)
    engine = EngineConfig("dask", n_jobs=1, scheduler=dask_procs.address)
    cpu = time.process_time()
    statuses = list(run_jobs(jobs, results, engine=engine, progress=False))
    driver_cpu = time.process_time() - cpu
    assert sorted(s.status for s in statuses) == ["ok", "ok"]
    assert [(w["engine"], w["dask_worker"], w["pid"]) for w in _where(results)] == [("dask", worker, pid)] * 2
    job_seconds = sum(s.seconds for s in statuses)
    assert driver_cpu < 0.2 * job_seconds, (driver_cpu, job_seconds)
    pd.testing.assert_frame_equal(per_image(results), local_table)


@pytest.mark.slow
def test_a_driver_started_before_its_workers_waits_for_them_and_both_workers_run_jobs(
    dask_procs: DaskProcesses,
) -> None:
    """Normal with dask-jobqueue or an autoscaler: the driver starts first, says it waits, and the sweep
    completes on the workers that join later (two, each with one thread: both get jobs)."""
    results = dask_procs.folder / "results"
    args = [*TINY_CLI, "--folds", "0,1,2,3", "--results", str(results), "--quiet"]
    err = dask_procs.folder / "driver.err"
    with open(err, "wb") as fh:
        driver = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.cli",
                "run",
                *args,
                "--engine",
                "dask",
                "--scheduler",
                dask_procs.address,
                "--wait-workers",
                "180",
            ],
            env=DASK_ENV,
            stdout=subprocess.DEVNULL,
            stderr=fh,
        )
    try:
        deadline = time.monotonic() + 120
        while "waiting up to 180 s for the first Dask worker" not in err.read_text():
            assert driver.poll() is None and time.monotonic() < deadline, err.read_text()
            time.sleep(0.5)
        time.sleep(8)  # the driver has waited, with no worker, well past the 10 s joblib gave up after
        assert driver.poll() is None
        dask_procs.add_worker()
        dask_procs.add_worker()
        workers = dask_procs.workers(2)
        assert driver.wait(timeout=400) == 0, err.read_text()
    finally:
        if driver.poll() is None:
            driver.kill()
    where = _where(results)
    assert len(where) == 4 and {w["engine"] for w in where} == {"dask"}
    assert {(w["dask_worker"], w["pid"]) for w in where} == set(workers.items())  # both workers ran jobs
    assert driver.pid not in {w["pid"] for w in where}


@pytest.mark.slow
@pytest.mark.parametrize("allowed_failures", [3, 0])
def test_a_worker_killed_mid_job_is_rescheduled_and_its_death_recorded(tmp_path: Path, allowed_failures: int) -> None:
    """Dask reschedules the job of a worker that died; the job ends ok on a worker, and its sidecar keeps
    the dead try (pid, worker) beside the try that finished. A scheduler that allows no failure gives up
    (``KilledWorker``): the job is recorded as crashed, with the dead try, and the sweep ends normally."""
    env = {"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": str(allowed_failures)}
    dask_procs = DaskProcesses(tmp_path, scheduler_env=env)
    try:
        _kill_one_worker_mid_job(dask_procs, allowed_failures)
    finally:
        dask_procs.close()


def _kill_one_worker_mid_job(dask_procs: DaskProcesses, allowed_failures: int) -> None:
    n_workers = 2 if allowed_failures else 1  # a retry needs a worker left; giving up needs only one
    for _ in range(n_workers):
        dask_procs.add_worker()
    dask_procs.workers(n_workers)
    results = dask_procs.folder / "results"
    profile = load_profile("quick", {**TINY_SETTINGS, "epochs": "15"})  # long enough to be killed mid-run
    (job,) = plan(select("unet", "dsb2018", False, "holdout", (0,)), profile, results)
    engine = EngineConfig("dask", scheduler=dask_procs.address)
    out: list = []
    driver = threading.Thread(target=lambda: out.extend(run_jobs([job], results, engine=engine, progress=False)))
    driver.start()
    side = paths(job, results)["sidecar"]
    deadline = time.monotonic() + 120
    while (store.read_sidecar(side) or {}).get("status") != "running":
        assert driver.is_alive() and time.monotonic() < deadline, "no worker started the job"
        time.sleep(0.1)
    first = store.read_sidecar(side)["where"]
    os.kill(first["pid"], 9)  # the worker process (its nanny starts a new one)
    driver.join(timeout=300)
    assert not driver.is_alive()
    (record,) = out
    if allowed_failures == 0:
        assert record.status == "failed" and record.crashed and record.crashed_pid == first["pid"], record
        assert "Dask gave up after 1 worker deaths" in record.error
        assert store.read_sidecar(side)["died"][0]["dask_worker"] == first["dask_worker"]
        return
    assert record.status == "ok" and record.attempts == 2, record
    (died,) = record.died
    assert (died["pid"], died["dask_worker"], died["engine"]) == (first["pid"], first["dask_worker"], "dask")
    assert record.where["engine"] == "dask" and record.where["pid"] != first["pid"]


def test_a_cluster_without_workers_or_at_a_wrong_address_is_one_line_exit_2(
    dask_procs: DaskProcesses, capsys: pytest.CaptureFixture
) -> None:
    base = ["run", *TINY_CLI, "--folds", "0", "--results", str(dask_procs.folder / "r"), "--quiet", "--engine", "dask"]
    assert main([*base, "--scheduler", dask_procs.address, "--wait-workers", "2"]) == 2
    err = capsys.readouterr().err
    assert f"waiting up to 2 s for the first Dask worker to join {dask_procs.address}" in err
    assert f"bench run: error: no Dask worker joined the scheduler at {dask_procs.address} within 2 s" in err
    assert "internal error" not in err and "Traceback" not in err
    assert main([*base, "--scheduler", "tcp://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench run: error: --scheduler tcp://127.0.0.1:9: no Dask scheduler answers there")
    assert len(err.strip().splitlines()) == 1
    assert not list((dask_procs.folder / "r").glob("runs/*/*/*.json"))  # nothing ran
    if not torch.cuda.is_available():  # workers without a GPU: a cuda sweep is refused before any job starts
        dask_procs.add_worker()
        assert main([*base, "--scheduler", dask_procs.address, "--device", "cuda"]) == 2
        err = capsys.readouterr().err
        assert "bench run: error: device 'cuda' requested, but torch sees no CUDA device on the Dask workers" in err
        assert not list((dask_procs.folder / "r").glob("runs/*/*/*.json"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_device_cuda_without_cuda_exits_2_at_planning_before_any_job(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    base = ["run", *TINY_CLI, "--folds", "0", "--results", str(tmp_path), "--quiet"]
    assert main([*base, "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench run: error: device 'cuda' requested but torch sees no CUDA device")
    assert main([*base, "--device", "cuda:1", "--engine", "dask"]) == 2  # a LocalCluster here: same machine
    assert "torch sees no CUDA device" in capsys.readouterr().err
    assert main([*base, "--device", "cuda", "--engine", "submitit"]) == 2  # tasks that ask for no GPU
    assert "the SLURM tasks ask for no GPU; give --gpus N" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()  # refused before planning


# ------------------------------------------------------------------ options
def test_engine_options_are_validated() -> None:
    with pytest.raises(ValueError, match="unknown engine 'ray'"):
        EngineConfig("ray")
    with pytest.raises(ValueError, match="--scheduler is an address for --engine dask"):
        EngineConfig("local", scheduler="tcp://127.0.0.1:8786")
    with pytest.raises(ValueError, match="tcp://host:8786"):
        EngineConfig("dask", scheduler="127.0.0.1:8786")
    with pytest.raises(ValueError, match="array_parallelism must be >= 1"):
        SlurmOptions(array_parallelism=0)
    with pytest.raises(KeyError, match="unknown key.*gpu.*slurm section"):
        slurm_options({"gpu": 1}, {})
    opts = slurm_options({"partition": "gpu", "gpus_per_node": 1, "time_min": 600}, {"time_min": 30, "mem_gb": None})
    assert (opts.partition, opts.gpus_per_node, opts.time_min, opts.mem_gb) == ("gpu", 1, 30, None)


def test_sweeps_are_packed_and_split_to_the_clusters_limits() -> None:
    from bench.run.slurm import ClusterLimits, arrays, pack, parse_config_value, parse_submit_limit

    jobs = list(range(8))
    assert pack(jobs, 1) == [[j] for j in jobs] and pack(jobs, 3) == [[0, 1, 2], [3, 4, 5], [6, 7]]
    tasks = pack(jobs, 1)
    assert [len(a) for a in arrays(tasks, ClusterLimits(max_array_size=3))] == [3, 3, 2]
    assert [len(a) for a in arrays(tasks, ClusterLimits(max_array_size=1001))] == [8]
    # a per-user submit limit of 5 with 2 of this user's jobs already queued leaves room for 3 tasks now
    assert [len(a) for a in arrays(tasks, ClusterLimits(max_array_size=2, max_submit=5), queued=2)] == [2, 1]
    assert arrays(tasks, ClusterLimits(max_submit=4), queued=4) == []
    config = "Configuration data as of 2026-01-01T00:00:00\nMaxArraySize            = 3\nMaxJobCount = 10000\n"
    assert parse_config_value(config, "MaxArraySize") == 3 and parse_config_value(config, "MaxStepCount") is None
    assoc = "ClusterName=c Account=a UserName=u(1000) Partition= ID=2\n    MaxJobs= MaxSubmitJobs=40(12) MaxWallPJ=\n"
    qos = "QOS=normal(1)\n    MaxSubmitPU=25(3) MaxJobsPU="
    assert parse_submit_limit(assoc) == 40 and parse_submit_limit(assoc + qos) == 25
    assert parse_submit_limit("No associations currently cached in Slurm.") is None
    assert slurm_options({"jobs_per_task": 2}, {"jobs_per_task": 4}).jobs_per_task == 4
    with pytest.raises(ValueError, match="jobs_per_task must be >= 1"):
        SlurmOptions(jobs_per_task=0)


def test_cli_refuses_bad_engine_and_device_options(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    base = ["run", "--results", str(tmp_path), "--arch", "unet", "--dataset", "dsb2018", "--quiet"]
    assert main([*base, "--no-wait"]) == 2
    assert "--no-wait needs --engine submitit" in capsys.readouterr().err
    assert main([*base, "--device", "gpu0"]) == 2
    assert "must be auto, cpu, cuda or cuda:N" in capsys.readouterr().err
    assert main([*base, "--engine", "dask", "--scheduler", "localhost"]) == 2
    assert main([*base, "--engine", "dask", "--dask-resources", "GPU"]) == 2
    assert "--dask-resources expects NAME=AMOUNT" in capsys.readouterr().err
    assert main([*base, "--dask-resources", "GPU=1"]) == 2
    assert "--dask-resources/--dask-workers are for --engine dask" in capsys.readouterr().err
    assert main([*base, "--engine", "dask", "--wait-workers", "0"]) == 2
    assert "--wait-workers must be > 0 seconds" in capsys.readouterr().err
    assert main([*base, "--engine", "submitit", "--jobs-per-task", "0"]) == 2
    assert "jobs_per_task must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # refused before anything ran


def test_profile_slurm_section_reaches_the_engine(tmp_path: Path) -> None:
    from bench.config import load_profile

    prof = tmp_path / "cluster.yaml"
    prof.write_text("image_size: 32\nslurm:\n  partition: gpu\n  gpus_per_node: 1\n  mem_gb: 16\n")
    profile = load_profile(str(prof))
    assert dict(profile.slurm) == {"partition": "gpu", "gpus_per_node": 1, "mem_gb": 16}
    assert slurm_options(dict(profile.slurm), {"partition": "debug"}).partition == "debug"


# ------------------------------------------------------------------ devices
def test_device_names_are_validated() -> None:
    for ok in ("auto", "cpu", "cuda", "cuda:0", "cuda:12"):
        assert validate_device(ok) == ok
    for bad in ("gpu", "cuda:", "cuda:x", "CPU", "mps", ""):
        with pytest.raises(ValueError, match="device must be auto, cpu, cuda or cuda:N"):
            validate_device(bad)
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without a GPU")
def test_cuda_without_a_gpu_is_an_error_not_a_cpu_run() -> None:
    with pytest.raises(RuntimeError, match="'cuda:1' requested but torch sees no CUDA device"):
        resolve_device("cuda:1")


def test_precision_defaults_cpu_unchanged_gpu_mixed_and_channels_last() -> None:
    cpu = precision_for("cpu")
    assert (cpu.name, cpu.scaler, cpu.channels_last) == ("fp32", False, False)
    assert precision_for("cuda:0", bf16_supported=True).to_dict() == {
        "precision": "bf16",
        "grad_scaler": False,
        "channels_last": True,
    }
    assert precision_for("cuda", bf16_supported=False).to_dict() == {
        "precision": "fp16",
        "grad_scaler": True,
        "channels_last": True,
    }
    off = precision_for("cuda", amp="off", channels_last="off")
    assert (off.name, off.channels_last) == ("fp32", False)
    with pytest.raises(ValueError, match="amp must be one of"):
        precision_for("cpu", amp="fp8")


def test_device_pool_runs_one_job_per_gpu_at_a_time(tmp_path: Path) -> None:
    pool = ["cuda:0", "cuda:1"]
    held, order, lock = [], [], threading.Lock()
    release = threading.Event()

    def job(i: int) -> None:
        with device_slot("cuda", tmp_path, devices=pool, poll_s=0.05) as dev:
            with lock:
                held.append(dev)
                order.append((i, dev, len(held)))
            release.wait(5)
            with lock:
                held.remove(dev)

    threads = [threading.Thread(target=job, args=(i,)) for i in range(3)]
    for t in threads[:2]:
        t.start()
    deadline = time.monotonic() + 5
    while len(order) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    threads[2].start()
    time.sleep(0.5)
    assert sorted(dev for _, dev, _ in order) == pool and len(order) == 2  # the third waits for a free GPU
    release.set()
    for t in threads:
        t.join(10)
    assert len(order) == 3 and max(n for _, _, n in order) <= 2
    with device_slot("cpu", tmp_path, devices=pool) as dev:
        assert dev == "cpu"
    with device_slot("cuda:1", tmp_path, devices=pool) as dev:
        assert dev == "cuda:1"  # an explicit GPU is not pooled


# ------------------------------------------------------------------ compute beside accuracy
def test_each_job_records_its_compute_and_the_report_shows_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    jobs = tiny_jobs(tmp_path, folds=(0,))
    assert [s.status for s in run_jobs(jobs, tmp_path, progress=False)] == ["ok"]
    (side,) = store.sidecars(tmp_path)
    c = side["compute"]
    from bench.architectures._blocks import count_macs
    from bench.run.execute import build_model

    model = build_model(jobs[0], 3)
    assert c["parameters"] == sum(p.numel() for p in model.parameters()) == side["parameters"]
    assert c["gmacs"] == pytest.approx(count_macs(model, 3, 32) / 1e9)
    assert 0 < c["train_seconds_per_epoch"] <= side["train_seconds"] + 1e-9
    assert 0 < c["infer_ms_per_image"] < 10_000
    assert c["memory_kind"] in ("rss", "rss_process") and 50 < c["peak_memory_mb"] < 100_000
    # the quick profile trains channels-last (benchmarks/README.md, section 6)
    assert (c["device"], c["precision"], c["channels_last"], c["threads"]) == ("cpu", "fp32", True, 1)
    table = compute_table(store.load_all(tmp_path), store.sidecars(tmp_path))
    assert list(table["arch"]) == ["unet"] and table["jobs"].tolist() == [1]
    assert table["dice"].iloc[0] == pytest.approx(store.load_all(tmp_path).query("split == 'test'")["dice"].mean())
    assert all(pd.notna(table[col].iloc[0]) for col in COMPUTE_COLUMNS)
    assert main(["report", "--table", "compute", "--results", str(tmp_path), "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert "train_seconds_per_epoch" in out and "unet" in out


def test_mixed_precision_training_path_runs_and_cpu_default_is_plain_fp32() -> None:
    """The GPU defaults' code path (autocast, GradScaler, channels-last), exercised on CPU by asking
    for it explicitly; the CPU default (amp auto) trains exactly like amp off."""
    from bench.architectures import create_model
    from bench.config import load_profile, replace
    from bench.run.train import fit

    cfg = load_profile("quick", {"epochs": "2", "image_size": "32", "width": "4", "depth": "3"}).train
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(8, 3, 32, 32, generator=gen), (torch.rand(8, 1, 32, 32, generator=gen) > 0.5).float()
    weights = {}
    for amp, last in [("auto", "auto"), ("off", "off"), ("bf16", "on"), ("fp16", "on")]:
        torch.manual_seed(0)
        model = create_model("unet", in_channels=3, classes=1, width=4, depth=3)
        result = fit(model, replace(cfg, amp=amp, channels_last=last), (x, y), (x[:2], y[:2]), seed=0)
        assert all(torch.isfinite(torch.tensor(h["train_loss"])) for h in result.history)
        weights[amp] = torch.cat([p.detach().flatten() for p in result.model.parameters()])
    assert torch.equal(weights["auto"], weights["off"])
    assert not torch.equal(weights["bf16"], weights["off"])  # autocast really changed the arithmetic


def test_submitit_without_slurm_is_a_clear_error_not_a_local_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import bench.run.slurm

    monkeypatch.setattr(bench.run.slurm.shutil, "which", lambda name: None)
    args = [
        "run",
        "--results",
        str(tmp_path),
        "--arch",
        "unet",
        "--dataset",
        "dsb2018",
        "--folds",
        "0",
        "--quiet",
        "--engine",
        "submitit",
        "--set",
        "image_size=32",
    ]
    assert main(args) == 2
    assert "--engine submitit submits to SLURM, but `sbatch`/`squeue` are not on PATH" in capsys.readouterr().err
    assert not list((tmp_path / "runs").glob("*/*/*.json"))
