"""Memory of one job against dataset size, one worker and two workers on the same data.

    python benchmarks/bench_memory.py [--sizes 32,64,128,256,512] [--image-size 256] [--code DIR]

For each dataset size n (``synthetic_n``: the synthetic DSB-2018 stand-in, n whole images at
``--image-size``), the job U-Net (width 4, depth 3, 1 epoch: the network is kept small so the data
dominates) is planned once (planning builds the cache), then run (1) alone in a fresh process and (2)
as two processes at the same time (folds 0 and 1: the same prepared data). Each worker samples its own
memory every 20 ms from /proc: resident set (RSS; with a memory-mapped cache it includes file pages
shared with the page cache and other workers), anonymous (private) resident memory, and PSS (shared
pages divided among the processes mapping them: the sum over processes is what they use together).
``--code DIR`` runs the workers on another checkout of the project (a before/after comparison).
Linux only (/proc).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve()


def _status() -> dict[str, float]:
    """Current RSS, anonymous RSS and PSS of this process, MiB."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            out[key] = int(value.split()[0]) / 1024
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            out["Pss"] = int(line.split()[1]) / 1024
    return out


class Sampler(threading.Thread):
    """Peak of every ``_status`` value, sampled every ``period`` seconds."""

    def __init__(self, period: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.period, self.peak, self.done = period, {}, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for k, v in _status().items():
                self.peak[k] = max(self.peak.get(k, 0.0), v)
            time.sleep(self.period)


def plan_jobs(results: Path, n: int, size: int) -> None:
    from bench.config import load_profile
    from bench.plan import plan, select

    settings = {"epochs": "1", "image_size": str(size), "width": "4", "depth": "3", "synthetic_n": str(n)}
    jobs = plan(select("unet", "dsb2018", False, "holdout", (0, 1)), load_profile("quick", settings), results)
    (results / "jobs.json").write_text(json.dumps([j.to_dict() for j in jobs]))


def run_job(results: Path, index: int) -> None:
    sampler = Sampler()
    sampler.start()
    from bench.config import Job
    from bench.execute import execute

    job = Job.from_dict(json.loads((results / "jobs.json").read_text())[index])
    out = {"checkpoint": results / f"out{index}.pt", "predictions": results / f"out{index}.pred.npz"}
    start = time.perf_counter()
    execute(job, results, out)
    seconds = time.perf_counter() - start
    sampler.done.set()
    sampler.join()
    print(json.dumps({**{f"peak_{k}": round(v, 1) for k, v in sampler.peak.items()}, "seconds": round(seconds, 1)}))


def _worker(code: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(HERE), *args], env=env, stdout=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen) -> dict[str, float]:
    out, _ = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"worker failed ({proc.returncode}): {out}")
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="32,64,128,256,512")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--code", type=Path, default=HERE.parent.parent, help="project checkout the workers run")
    parser.add_argument("--worker", choices=("plan", "run"), help=argparse.SUPPRESS)
    parser.add_argument("--results", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "plan":
        return plan_jobs(args.results, args.n, args.image_size)
    if args.worker == "run":
        return run_job(args.results, args.index)
    print(f"# code: {args.code}; U-Net width 4 depth 3, 1 epoch, {args.image_size} px, synthetic DSB-2018; MiB")
    print("| images | one: peak RSS | one: peak anon | one: peak PSS | two: peak RSS each | two: sum of peak PSS "
          "| two / one (PSS) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n in map(int, args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            results = Path(tmp)
            plan = _worker(args.code, "--worker", "plan", "--results", tmp, "--n", str(n),
                           "--image-size", str(args.image_size))
            if plan.wait():
                raise RuntimeError("planning failed")
            one = _result(_worker(args.code, "--worker", "run", "--results", tmp, "--index", "0"))
            for f in results.glob("out*"):
                f.unlink()
            pair = [_worker(args.code, "--worker", "run", "--results", tmp, "--index", str(i)) for i in (0, 1)]
            two = [_result(p) for p in pair]
        both = two[0]["peak_Pss"] + two[1]["peak_Pss"]
        print(f"| {n} | {one['peak_VmRSS']:.0f} | {one['peak_RssAnon']:.0f} | {one['peak_Pss']:.0f} | "
              f"{two[0]['peak_VmRSS']:.0f} / {two[1]['peak_VmRSS']:.0f} | {both:.0f} | {both / one['peak_Pss']:.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
