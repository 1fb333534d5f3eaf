"""Memory of two pool workers that have imported torch and taken a training step: loky against a
forkserver that preloads torch.

    python benchmarks/bench_pool_memory.py

Two pools of 2 workers each run the same task (import ``bench.run.execute``, one forward, backward and
Adam step of a small convolution, then report the worker's memory from /proc/self/smaps_rollup):
(1) joblib's default ``loky`` backend, which starts every worker as a fresh interpreter (what
``bench run --jobs 2`` did before it used a fork server); (2) ``concurrent.futures.ProcessPoolExecutor``
with the standard library's ``forkserver`` context and ``set_forkserver_preload`` of torch, ``torch._dynamo`` and
``bench.run.execute``, so every worker is forked from a process that already holds them and shares those
pages copy-on-write (what ``bench run --jobs 2`` does now: ``bench.run.runner._worker_pool``, whose
``PRELOAD`` also holds the modules a job imports lazily; ``benchmarks/bench_memory.py --cli`` measures
that real path). Prints each worker's RSS, PSS and USS (private pages) and their sums, MiB (the
forkserver process itself, which holds the shared pages' other share, is not included). Linux only.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from pathlib import Path

PRELOAD = ["torch", "torch._dynamo", "bench.run.execute"]


def worker_memory(_: int) -> dict[str, int]:
    """One small training step in this worker, then its pid, RSS, PSS and USS (MiB)."""
    import torch

    import bench.run.execute  # noqa: F401  (what a job imports)

    conv = torch.nn.Conv2d(3, 8, 3)
    opt = torch.optim.Adam(conv.parameters())
    conv(torch.zeros(4, 3, 64, 64)).sum().backward()
    opt.step()
    time.sleep(1)  # both workers alive at once
    rollup = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
        key, _, value = line.partition(":")
        rollup[key] = int(value.split()[0]) // 1024
    return {
        "pid": os.getpid(),
        "rss": rollup["Rss"],
        "pss": rollup["Pss"],
        "uss": rollup["Private_Clean"] + rollup["Private_Dirty"],
    }


def main() -> None:
    from concurrent.futures import ProcessPoolExecutor

    from joblib import Parallel, delayed, parallel_config

    with parallel_config(backend="loky"):
        loky = Parallel(n_jobs=2)(delayed(worker_memory)(i) for i in range(2))
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([*PRELOAD, __name__ if __name__ != "__main__" else "bench_pool_memory"])
    with ProcessPoolExecutor(2, mp_context=ctx) as pool:
        forked = list(pool.map(worker_memory, range(2)))
    print("| pool | worker RSS | worker PSS | worker USS | sum PSS | sum USS |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, out in (("loky (fresh interpreters)", loky), ("forkserver, torch preloaded", forked)):
        print(
            f"| {name} | {' / '.join(str(o['rss']) for o in out)} | {' / '.join(str(o['pss']) for o in out)} | "
            f"{' / '.join(str(o['uss']) for o in out)} | {sum(o['pss'] for o in out)} | "
            f"{sum(o['uss'] for o in out)} |"
        )
    print(json.dumps({"loky": loky, "forkserver": forked}))


if __name__ == "__main__":
    main()
