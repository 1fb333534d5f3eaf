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
from pathlib import Path

import pandas as pd
import pytest
import torch
from tiny_sweep import per_image, tiny_jobs

from bench.analysis.compute import COMPUTE_COLUMNS, compute_table
from bench.cli import main
from bench.results import store
from bench.run.devices import device_slot, precision_for, resolve_device, validate_device
from bench.run.engines import EngineConfig, dask_client
from bench.run.runner import run_jobs
from bench.run.slurm import SlurmOptions, slurm_options

REPO = Path(__file__).resolve().parents[1]


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


@pytest.mark.slow
def test_separate_scheduler_and_worker_processes_give_the_local_table(
    tmp_path: Path, local_table: pd.DataFrame
) -> None:
    env = {**os.environ, "DASK_CONFIG": str(REPO / "scripts" / "dask-worker.yaml")}  # workers: the driver's Python
    sched_file = tmp_path / "scheduler.json"
    procs = []
    try:
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dask",
                    "scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--dashboard-address",
                    "127.0.0.1:0",
                    "--scheduler-file",
                    str(sched_file),
                ],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        _wait_for(sched_file, procs[0])
        address = json.loads(sched_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dask",
                    "worker",
                    address,
                    "--nthreads",
                    "1",
                    "--host",
                    "127.0.0.1",
                    "--dashboard-address",
                    "127.0.0.1:0",
                ],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        results = tmp_path / "results"
        engine = EngineConfig("dask", n_jobs=1, scheduler=address)
        with dask_client(address, 1) as client:
            client.wait_for_workers(1, timeout=60)
            (worker_env,) = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_")).values()
            assert worker_env is None  # scripts/dask-worker.yaml unsets dask's default
        statuses = list(run_jobs(tiny_jobs(results), results, engine=engine, progress=False))
        assert sorted(s.status for s in statuses) == ["ok", "ok"]
        pd.testing.assert_frame_equal(per_image(results), local_table)
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


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


def test_cli_refuses_bad_engine_and_device_options(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    base = ["run", "--results", str(tmp_path), "--arch", "unet", "--dataset", "dsb2018", "--quiet"]
    assert main([*base, "--no-wait"]) == 2
    assert "--no-wait needs --engine submitit" in capsys.readouterr().err
    assert main([*base, "--device", "gpu0"]) == 2
    assert "must be auto, cpu, cuda or cuda:N" in capsys.readouterr().err
    assert main([*base, "--engine", "dask", "--scheduler", "localhost"]) == 2
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
