"""Engine dispatch overhead on CPU, and training/inference throughput on a GPU.

    python benchmarks/bench_engines.py [--tasks 40] [--slurm-tasks 8]   # CPU: per-task overhead per engine
    python benchmarks/bench_engines.py --sweep                          # + the tiny 4-job sweep per engine
    python benchmarks/bench_engines.py --gpu [--archs unet,mildnet]     # GPU section (needs CUDA)

(1) Dispatch overhead: the wall time per task of a task that does nothing, sent through each engine
the way ``bench run`` sends jobs: joblib/loky (2 workers), one Dask task per job (``client.submit``,
``pure=False``, collected with ``as_completed``) on a LocalCluster (2 one-thread workers), and a SLURM
array through submitit (needs a cluster, e.g.
``scripts/slurm-local.sh``). Each task imports ``bench.run.runner`` (torch, smp) as a real job does, so
a fresh process per task (SLURM) pays that import every time, a warm worker once.

(2) With ``--sweep``: the wall time of the same 4 tiny jobs (U-Net, 2 datasets x 2 folds, 32 px, width
4, 1 epoch) on each engine, and whether the per-image tables are identical.

(2b) With ``--packing``: 8 tiny jobs (U-Net, DSB stand-in, folds 0-3, seeds 0-1) on SLURM with
``--jobs-per-task`` 1 (8 tasks) and 4 (2 tasks): wall time from submission to the last result, and
whether the per-image tables are identical.

(3) With ``--gpu``: images per second of training steps (forward, backward, Adam) and of inference, at
256 px, width 32, depth 5, batch 4 and 32, fp32 against the mixed-precision default (bf16 where
supported, else fp16 + GradScaler; channels-last), and the peak memory (max_memory_allocated).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd


def noop(i: int) -> int:
    import bench.run.runner  # noqa: F401  (what a real job imports first)

    return i


def loky_overhead(n: int) -> tuple[float, float]:
    from joblib import Parallel, delayed

    out = []
    for _ in range(2):  # cold (spawns and imports), then warm
        start = time.perf_counter()
        Parallel(n_jobs=2)(delayed(noop)(i) for i in range(n))
        out.append((time.perf_counter() - start) / n)
    return out[0], out[1]


def dask_overhead(n: int) -> tuple[float, float, float]:
    from distributed import as_completed

    from bench.run.engines import dask_client

    start = time.perf_counter()
    with dask_client(None, 2) as client:
        client.wait_for_workers(2)
        startup = time.perf_counter() - start
        out = []
        for _ in range(2):
            start = time.perf_counter()
            futures = [client.submit(noop, i, pure=False) for i in range(n)]
            assert sorted(f.result() for f in as_completed(futures)) == list(range(n))
            out.append((time.perf_counter() - start) / n)
    return startup, out[0], out[1]


def slurm_overhead(n: int) -> float | None:
    import submitit

    from bench.run.slurm import queue_states, task_environment

    if shutil.which("sbatch") is None:
        return None
    folder = Path(tempfile.mkdtemp(prefix="bench-slurm-"))
    ex = submitit.SlurmExecutor(folder=folder, python=sys.executable)
    ex.update_parameters(time=10, cpus_per_task=1, array_parallelism=2, setup=task_environment(), job_name="noop")
    start = time.perf_counter()
    jobs = ex.map_array(noop, list(range(n)))
    ids = {j.job_id for j in jobs}
    while ids & set(queue_states() or {}) or not all(j.paths.result_pickle.exists() for j in jobs):
        time.sleep(0.2)
    per_task = (time.perf_counter() - start) / n
    assert [j.result() for j in jobs] == list(range(n))
    shutil.rmtree(folder, ignore_errors=True)
    return per_task


def sweep(root: Path) -> None:
    from bench.config import load_profile
    from bench.results.store import load_all
    from bench.run.engines import EngineConfig
    from bench.run.plan import plan, select
    from bench.run.runner import run_jobs
    from bench.run.slurm import SlurmOptions

    prof = load_profile("quick", {"epochs": "1", "image_size": "32", "width": "4", "depth": "3"})
    engines = {"local": EngineConfig("local", n_jobs=2), "dask": EngineConfig("dask", n_jobs=2)}
    if shutil.which("sbatch"):
        engines["submitit"] = EngineConfig("submitit", slurm=SlurmOptions(time_min=10, poll_s=0.5, array_parallelism=2))
    tables = {}
    for name, engine in engines.items():
        results = root / name
        shutil.rmtree(results, ignore_errors=True)
        jobs = plan(select("unet", "dsb2018,mri", False, "holdout", (0, 1)), prof, results)
        start = time.perf_counter()
        statuses = list(run_jobs(jobs, results, n_jobs=2, progress=False, engine=engine))
        wall = time.perf_counter() - start
        assert all(s.status == "ok" for s in statuses), statuses
        tables[name] = load_all(results).sort_values(["dataset", "fold", "split", "case_id"]).reset_index(drop=True)
        print(f"(2) {name:<8} 4 tiny jobs: {wall:.1f} s wall")
    ref = tables["local"].drop(columns="profile")
    for name, table in tables.items():
        pd.testing.assert_frame_equal(table.drop(columns="profile"), ref)
    print(f"(2) per-image tables identical across {', '.join(tables)} ({len(ref)} rows)")


def packing(root: Path) -> None:
    from bench.config import load_profile
    from bench.results.store import load_all
    from bench.run.engines import EngineConfig
    from bench.run.plan import plan, select
    from bench.run.runner import run_jobs
    from bench.run.slurm import SlurmOptions

    prof = load_profile("quick", {"epochs": "1", "image_size": "32", "width": "4", "depth": "3"})
    tables = {}
    for per_task in (1, 4):
        results = root / f"packed-{per_task}"
        shutil.rmtree(results, ignore_errors=True)
        jobs = plan(select("unet", "dsb2018", False, "holdout", (0, 1, 2, 3), (0, 1)), prof, results)
        opts = SlurmOptions(time_min=10, poll_s=0.5, array_parallelism=2, jobs_per_task=per_task)
        start = time.perf_counter()
        statuses = list(run_jobs(jobs, results, progress=False, engine=EngineConfig("submitit", slurm=opts)))
        wall = time.perf_counter() - start
        assert all(s.status == "ok" for s in statuses), statuses
        tables[per_task] = load_all(results).sort_values(["fold", "seed", "split", "case_id"]).reset_index(drop=True)
        print(f"(2b) 8 tiny jobs, --jobs-per-task {per_task}: {len(jobs) // per_task} tasks, {wall:.1f} s wall")
    pd.testing.assert_frame_equal(tables[1], tables[4])
    print(f"(2b) per-image tables identical ({len(tables[1])} rows)")


def gpu_case(arch: str, batch: int, amp: str, steps: int) -> str:
    """One table row: training and inference images/s and peak training memory of ``arch``."""
    import torch

    from bench.architectures import create_model
    from bench.run.devices import precision_for

    prec = precision_for("cuda", amp, "auto" if amp == "auto" else "off")
    torch.manual_seed(0)
    model = (
        create_model(arch, in_channels=3, classes=1, width=32, depth=5).cuda().to(memory_format=prec.memory_format())
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda") if prec.scaler else None
    x = torch.randn(batch, 3, 256, 256, device="cuda").to(memory_format=prec.memory_format())
    y = (torch.rand(batch, 1, 256, 256, device="cuda") > 0.5).float()
    crit = torch.nn.BCEWithLogitsLoss()

    def step() -> None:
        with prec.autocast("cuda"):
            out = model(x)
            loss = sum(crit(o, y) for o in (out if isinstance(out, (list, tuple)) else [out]))
        opt.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            opt.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()

    try:
        for _ in range(3):
            step()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
        train = steps * batch / (time.perf_counter() - start)
        peak = torch.cuda.max_memory_allocated() / 2**20
        model.eval()
        with torch.no_grad(), prec.autocast("cuda"):
            model(x)
            torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(steps):
                model(x)
            torch.cuda.synchronize()
        infer = steps * batch / (time.perf_counter() - start)
        return f"| {arch} | {batch} | {prec.name} | {train:.1f} | {infer:.1f} | {peak:.0f} |"
    except torch.cuda.OutOfMemoryError:
        return f"| {arch} | {batch} | {prec.name} | out of memory | | |"


def gpu(archs: list[str], steps: int) -> None:
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("--gpu needs a CUDA device (torch.cuda.is_available() is False)")
    torch.backends.cudnn.benchmark = False
    print(
        f"(3) {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}; "
        "256 px, width 32, depth 5"
    )
    print("| network | batch | precision | train img/s | infer img/s | peak MiB (train) |")
    print("|---|---:|---|---:|---:|---:|")
    for arch in archs:
        for batch in (4, 32):
            for amp in ("off", "auto"):
                print(gpu_case(arch, batch, amp, steps), flush=True)
                torch.cuda.empty_cache()  # the case's model and optimiser are gone with its frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=40, help="no-op tasks for loky and Dask")
    parser.add_argument("--slurm-tasks", type=int, default=8, help="no-op tasks in the SLURM array (0: skip)")
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--packing", action="store_true", help="only (2b): SLURM with --jobs-per-task 1 and 4")
    parser.add_argument("--gpu", action="store_true")
    parser.add_argument("--archs", default="unet,residual_unet,resdunet,unetpp,multiresunet,mildnet")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--results", type=Path, default=Path(tempfile.gettempdir()) / "bench-engines")
    args = parser.parse_args()
    if args.gpu:
        gpu(args.archs.split(","), args.steps)
        return
    if args.packing:
        packing(args.results)
        return
    cold, warm = loky_overhead(args.tasks)
    print(f"(1) loky, 2 workers:         cold {cold * 1e3:8.1f} ms/task, warm {warm * 1e3:8.2f} ms/task")
    startup, dcold, dwarm = dask_overhead(args.tasks)
    print(
        f"(1) dask LocalCluster 2x1:   cold {dcold * 1e3:8.1f} ms/task, warm {dwarm * 1e3:8.2f} ms/task "
        f"(cluster start {startup:.1f} s)"
    )
    if args.slurm_tasks:
        per = slurm_overhead(args.slurm_tasks)
        print(
            "(1) submitit/SLURM array:    no sbatch on PATH"
            if per is None
            else f"(1) submitit/SLURM array:    {per * 1e3:8.1f} ms/task (submit to last result, "
            f"{args.slurm_tasks} tasks, 2 at a time; a fresh process and imports per task)"
        )
    if args.sweep:
        sweep(args.results)


if __name__ == "__main__":
    main()
