"""Peak memory of a first ``bench run`` (the one that builds the preprocessed cache), whole driver process.

    python benchmarks/bench_first_run.py [--sizes 32,2594] [--jobs 0,1,2] [--before DIR] [--rounds 1]

For each dataset size n and each ``--jobs`` value: ``bench run --arch unet --dataset dsb2018 --folds 0
--jobs J`` on the synthetic DSB-2018 stand-in of n images at 256 px (U-Net width 4, depth 3, 1 epoch: the
network is small so the data dominates), in a fresh results folder, so the driver builds the cache; at
``--jobs 0`` it then runs the job itself, at 1 or more a worker process does. The driver's peak resident
set (``VmHWM`` of /proc/PID/status, read every 20 ms until it exits: the kernel's own peak, so no sampling
gap) is printed beside the cache's bytes (the ``.npy`` files) and the peak the job recorded for its own
process (``peak_memory_mb`` in its sidecar: the driver's at ``--jobs 0``, the worker's otherwise). With
``--before DIR`` (a source tree of another version: ``git archive COMMIT | tar -x -C DIR``) each size
is also run with that version (made importable as a package copy), alternating which goes first.
Linux only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve()
SETTINGS = ("image_size=256", "width=4", "depth=3", "epochs=1")


def _hwm_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def package_copy(tree: Path, out: Path) -> Path:
    """An importable copy of a source tree: ``bench`` with ``architectures`` and ``datasets`` inside it
    (where the installed package puts them)."""
    pkg = out / "bench"
    shutil.copytree(tree / "bench", pkg)
    for sub in ("architectures", "datasets"):
        shutil.copytree(tree / sub, pkg / sub)
    return out


def run(n: int, jobs: int, pythonpath: Path | None) -> tuple[float, float, float, float]:
    """(driver peak MiB, cache MiB, the job's recorded process peak MiB, wall s) of one first run on ``n`` images."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "bench.cli", "run", "--arch", "unet", "--dataset", "dsb2018", "--folds", "0"]
        cmd += ["--jobs", str(jobs), "--quiet", "--results", tmp, "--set", f"synthetic_n={n}"]
        for s in SETTINGS:
            cmd += ["--set", s]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
        if pythonpath is not None:
            env["PYTHONPATH"] = str(pythonpath)
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        peak = [0.0]

        def sample() -> None:
            while proc.poll() is None:
                now = _hwm_mb(proc.pid)
                if now is not None:
                    peak[0] = max(peak[0], now)
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        err = proc.communicate()[1]
        sampler.join()
        if proc.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{err}")
        cache = sum(p.stat().st_size for p in Path(tmp, "cache").glob("*.npy")) / 2**20
        sidecar = json.loads(next(Path(tmp, "runs").glob("*/*/*.json")).read_text())
        return peak[0], cache, sidecar["compute"]["peak_memory_mb"], time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="32,2594")
    parser.add_argument("--jobs", default="0,1,2", help="the --jobs values to run each size with")
    parser.add_argument("--before", type=Path, help="source tree of the version to compare with")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        versions: list[tuple[str, Path | None]] = [("after", None)]
        if args.before:
            versions.insert(0, ("before", package_copy(args.before, Path(tmp))))
        print(
            "| images | --jobs | round | version | driver peak (MiB) | cache (MiB) | driver peak / cache "
            "| job's process peak (MiB) | wall s |"
        )
        print("|---:|---:|---:|---|---:|---:|---:|---:|---:|")
        for r in range(args.rounds):
            for n in map(int, args.sizes.split(",")):
                for jobs in map(int, args.jobs.split(",")):
                    order = versions if r % 2 == 0 else versions[::-1]
                    for name, path in order:
                        peak, cache, job_peak, wall = run(n, jobs, path)
                        print(
                            f"| {n} | {jobs} | {r + 1} | {name} | {peak:,.0f} | {cache:,.1f} | {peak / cache:.2f} "
                            f"| {job_peak:,.0f} | {wall:.0f} |"
                        )
                        sys.stdout.flush()


if __name__ == "__main__":
    main()
