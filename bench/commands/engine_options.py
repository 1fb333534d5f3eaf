"""Where the jobs of ``bench run`` and ``bench tune`` run (``--engine`` and the SLURM options) and on which device."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from bench.errors import InvalidInput

if TYPE_CHECKING:
    from bench.config import Profile
    from bench.run.engines import EngineConfig


def engine_config(args: argparse.Namespace, profile: Profile) -> EngineConfig:
    """The EngineConfig of ``bench run`` from its options and the profile's ``slurm:`` section."""
    from bench.run.devices import validate_device
    from bench.run.engines import EngineConfig
    from bench.run.slurm import slurm_options

    validate_device(profile.train.device)
    slurm = slurm_options(
        dict(profile.slurm),
        {
            "partition": args.partition,
            "gpus_per_node": args.gpus,
            "cpus_per_task": args.cpus_per_task,
            "mem_gb": args.mem_gb,
            "time_min": args.time_min,
            "array_parallelism": args.array_parallelism,
        },
        wait=not args.no_wait,
    )
    if args.no_wait and args.engine != "submitit":
        raise InvalidInput(
            "--no-wait needs --engine submitit (Dask and the local engine need the driver for the whole sweep)"
        )
    return EngineConfig(
        args.engine, n_jobs=worker_count(args, profile.train.device), scheduler=args.scheduler, slurm=slurm
    )


def worker_count(args: argparse.Namespace, device: str) -> int:
    """--jobs, else one worker per GPU for a GPU run, else one per CPU core."""
    if args.jobs:
        return args.jobs
    if device in ("auto", "cuda"):
        from bench.run.devices import cuda_devices

        if cuda_devices():
            return len(cuda_devices())
    return os.cpu_count() or 1


def add_engine_options(p: argparse.ArgumentParser) -> None:
    """Where jobs run (bench.run.engines) and on which device."""
    g = p.add_argument_group("engine and device")
    g.add_argument(
        "--engine",
        default="local",
        choices=["local", "dask", "submitit"],
        help="local: worker processes here (default); dask: a Dask cluster (--scheduler, or a "
        "LocalCluster of --jobs workers); submitit: one SLURM job array",
    )
    g.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://10.0.0.5:8786 (--engine dask)")
    g.add_argument(
        "--no-wait",
        action="store_true",
        help="submitit: exit once the array is queued; `bench status` follows it, rerunning `bench run` collects",
    )
    g.add_argument("--partition", help="SLURM partition (default: the cluster's default; profile key slurm.partition)")
    g.add_argument("--gpus", type=int, help="SLURM GPUs per task (profile key slurm.gpus_per_node; default 0)")
    g.add_argument("--cpus-per-task", type=int, help="SLURM CPUs per task (default: the profile's threads)")
    g.add_argument("--mem-gb", type=float, help="SLURM memory per task in GB")
    g.add_argument("--time-min", type=int, help="SLURM time limit per task in minutes (default 1440)")
    g.add_argument("--array-parallelism", type=int, help="SLURM tasks of the array running at once (default 16)")
    g.add_argument(
        "--device",
        help="auto | cpu | cuda | cuda:N (default: the profile's); a plain cuda on a "
        "machine with several GPUs runs one job per GPU at a time",
    )
