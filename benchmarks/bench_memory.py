"""Memory of one job against dataset size, one worker and two workers on the same data.

    python benchmarks/bench_memory.py [--sizes 32,64,128,256,512] [--image-size 256] [--code DIR] [--fork]
    python benchmarks/bench_memory.py --cli DIR [DIR ...] [--sizes 256] [--rounds 2]

For each dataset size n (``synthetic_n``: the synthetic DSB-2018 stand-in, n whole images at
``--image-size``), the job U-Net (width 4, depth 3, 1 epoch: the network is kept small so the data
dominates) is planned once (planning builds the cache), then run (1) alone in a fresh process and (2)
as two processes at the same time (folds 0 and 1: the same prepared data). Each worker samples its own
memory every 20 ms from /proc: resident set (RSS; with a memory-mapped cache it includes file pages
shared with the page cache and other workers), anonymous (private) resident memory, and PSS (shared
pages divided among the processes mapping them: the sum over processes is what they use together).
The orchestrating process also samples both workers and records the peak of their *summed* memory
(RSS, PSS, USS = private pages). ``--fork`` adds a third run: one parent imports what a worker imports
(torch included) and forks the two workers, as a fork-based pool would; its column is the peak of the
PSS summed over that parent and both children. ``--code DIR`` runs the workers on another checkout
of the project (a before/after comparison).

``--cli DIR ...`` measures the real dispatch instead: ``bench run --jobs 1`` of one job (fold 0) against
``bench run --jobs 2`` of two (folds 0 and 1), both ``--force`` on the same planned data, with each
checkout DIR in turn (rotating which goes first each round). The orchestrator samples the command's
process tree and records the peak of the memory summed over the two workers, over the workers and
the pool's fork server (which holds a share of the pages they share), and over the whole tree (the
driver too); "one" is the ``--jobs 1`` process, which runs the job itself. Linux only (/proc).
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
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve()


def _status(pid: str = "self") -> dict[str, float]:
    """Current RSS, anonymous RSS, PSS and USS (private pages: ``Private_Clean + Private_Dirty``) of
    process ``pid``, MiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            out[key] = int(value.split()[0]) / 1024
    rollup = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, value = line.partition(":")
        rollup[key] = int(value.split()[0]) / 1024
    out["Pss"] = rollup["Pss"]
    out["Uss"] = rollup["Private_Clean"] + rollup["Private_Dirty"]
    return out


class Sampler(threading.Thread):
    """Peaks, sampled every ``period`` seconds, of every ``_status`` value of this process (``peak``)
    and of each value summed over the processes ``pids()`` names (``peak_sum``: the peak of the total,
    not the total of the peaks; a process that has exited counts 0)."""

    def __init__(self, pids: Callable[[], list[str]] = lambda: ["self"], period: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pids, self.period, self.done = pids, period, threading.Event()
        self.peak: dict[str, float] = {}
        self.peak_sum: dict[str, float] = {}

    def sample(self) -> None:
        total: dict[str, float] = {}
        for i, pid in enumerate(self.pids()):
            try:
                status = _status(pid)
            except (FileNotFoundError, ProcessLookupError, KeyError):  # exited (or a zombie) meanwhile
                continue
            for k, v in status.items():
                total[k] = total.get(k, 0.0) + v
                if i == 0:
                    self.peak[k] = max(self.peak.get(k, 0.0), v)
        for k, v in total.items():
            self.peak_sum[k] = max(self.peak_sum.get(k, 0.0), v)

    def run(self) -> None:
        while not self.done.is_set():
            self.sample()
            time.sleep(self.period)

    def stop(self) -> None:
        self.done.set()
        self.join()


def plan_jobs(results: Path, n: int, size: int) -> None:
    from bench.config import load_profile
    from bench.run.plan import plan, select

    settings = {"epochs": "1", "image_size": str(size), "width": "4", "depth": "3", "synthetic_n": str(n)}
    jobs = plan(select("unet", "dsb2018", False, "holdout", (0, 1)), load_profile("quick", settings), results)
    (results / "jobs.json").write_text(json.dumps([j.to_dict() for j in jobs]))


def run_job(results: Path, index: int) -> dict[str, float]:
    """Run job ``index`` of ``jobs.json`` in this process, sampling its memory; prints and returns the peaks."""
    sampler = Sampler()
    sampler.start()
    from bench.config import Job
    from bench.run.execute import execute

    job = Job.from_dict(json.loads((results / "jobs.json").read_text())[index])
    out = {"checkpoint": results / f"out{index}.pt", "predictions": results / f"out{index}.pred.npz"}
    start = time.perf_counter()
    execute(job, results, out)
    seconds = time.perf_counter() - start
    sampler.stop()
    peaks = {**{f"peak_{k}": round(v, 1) for k, v in sampler.peak.items()}, "seconds": round(seconds, 1)}
    print(json.dumps(peaks), flush=True)
    return peaks


#: What a job imports, in the order it does (the job's imports beyond ``bench.run.execute`` happen inside it:
#: torch.optim's first ``add_param_group`` imports ``torch._dynamo``, scoring ``bench.analysis.tables``, etc.).
PRELOAD = (
    "bench.config",
    "bench.run.execute",
    "bench.analysis.compute",
    "bench.run.devices",
    "bench.results.store",
    "torch._dynamo",
    "bench.analysis.tables",
    "torch.utils.flop_counter",
    "pyarrow.parquet",
    "tqdm.auto",
)


def fork_pair(results: Path) -> None:
    """Import what a job imports (``PRELOAD``), then fork two children that run jobs 0 and 1 at the same time (as
    workers forked from one parent that already imported torch would); prints the peak over time of the
    memory summed over the parent and both children (the parent's share of the pages they share
    counts too)."""
    import importlib

    for module in PRELOAD:
        importlib.import_module(module)

    children: list[str] = []
    sampler = Sampler(lambda: [str(os.getpid()), *children])
    sampler.sample()
    for index in (0, 1):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                with open(results / f"fork{index}.json", "w") as fh:
                    fh.write(json.dumps(run_job(results, index)))
                code = 0
            finally:
                os._exit(code)
        children.append(str(pid))
    sampler.start()
    codes = [os.waitpid(int(pid), 0)[1] for pid in children]
    sampler.stop()
    if any(codes):
        raise RuntimeError(f"a forked worker failed (wait status {codes})")
    print(json.dumps({f"sum_{k}": round(v, 1) for k, v in sampler.peak_sum.items()}), flush=True)


def _tree() -> dict[int, tuple[int, str]]:
    """Every process on this machine: pid -> (parent pid, command line)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            out[int(entry.name)] = (ppid, cmdline)
    return out


def _roles(driver: int) -> dict[str, list[str]]:
    """The processes of one ``bench run``: ``driver``; ``server`` (the pool's fork server, a child of the
    driver); ``workers`` (children of the fork server, or joblib/loky workers: children of the driver
    started from ``popen_loky``); ``tree`` (the driver and all its descendants: also resource trackers)."""
    procs = _tree()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    tree, todo = [], [driver]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    server = [pid for pid in children.get(driver, []) if "forkserver" in procs[pid][1]]
    workers = [pid for s in server for pid in children.get(s, [])]
    workers += [pid for pid in children.get(driver, []) if "popen_loky" in procs[pid][1]]
    return {"server": [str(p) for p in server], "workers": [str(p) for p in workers], "tree": [str(p) for p in tree]}


def cli_run(code: Path, results: Path, n: int, size: int, jobs: int) -> dict[str, dict[str, float]]:
    """``bench run --jobs {jobs}`` of folds 0..jobs-1 (``--force``: the cache is planned already) with the
    checkout ``code``; the peak over the run of the memory summed over its workers, over the workers
    and the fork server, and over the whole process tree (MiB)."""
    folds = ",".join(str(i) for i in range(jobs))
    settings = {"epochs": 1, "image_size": size, "width": 4, "depth": 3, "synthetic_n": n}
    cmd = [sys.executable, "-m", "bench.cli", "run", "--results", str(results), "--arch", "unet"]
    cmd += ["--dataset", "dsb2018", "--folds", folds, "--jobs", str(jobs), "--force", "--quiet"]
    cmd += [a for k, v in settings.items() for a in ("--set", f"{k}={v}")]
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    # run from the checkout: ``python -m`` puts the working directory first on the module path
    proc = subprocess.Popen(cmd, env=env, cwd=code, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks: dict[str, dict[str, float]] = {"workers": {}, "pool": {}, "tree": {}}

    def sample() -> None:  # one snapshot of every process of the run; the sums of all roles from it
        while proc.poll() is None:
            roles = _roles(proc.pid)
            if jobs == 1:  # the driver runs the job itself
                roles["workers"] = [str(proc.pid)]
            status = {}
            for pid in roles["tree"]:
                try:
                    status[pid] = _status(pid)
                except (FileNotFoundError, ProcessLookupError, KeyError):  # exited meanwhile
                    continue
            members = {"workers": roles["workers"], "pool": roles["workers"] + roles["server"], "tree": roles["tree"]}
            for name, pids in members.items():
                total: dict[str, float] = {}
                for pid in pids:
                    for k, v in status.get(pid, {}).items():
                        total[k] = total.get(k, 0.0) + v
                for k, v in total.items():
                    peaks[name][k] = max(peaks[name].get(k, 0.0), v)
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    sampler.join()
    if proc.returncode:
        raise RuntimeError(f"bench run --jobs {jobs} failed ({proc.returncode}): {err[-2000:]}")
    return {name: {k: round(v, 1) for k, v in peak.items()} for name, peak in peaks.items()}


def cli_main(codes: list[Path], sizes: list[int], size: int, rounds: int) -> None:
    """One job with ``bench run --jobs 1`` against two with ``--jobs 2``, each checkout in ``codes`` in
    turn (the order rotating every round), on the same planned data; prints one table row per run."""
    print(f"# U-Net width 4 depth 3, 1 epoch, {size} px, synthetic DSB-2018; peaks over the run of summed memory, MiB")
    print(
        "| images | round | code | one: RSS | one: anon | one: PSS | one: USS | two workers: sum RSS | sum anon "
        "| sum PSS | sum USS | workers + server: sum RSS | sum PSS | two / one: PSS, workers | PSS, workers + server "
        "| RSS, workers | RSS, workers + server | whole command: PSS two / one |"
    )
    print("|---:|---:|---|" + "---:|" * 14)
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            results = Path(tmp)
            plan = _worker(codes[0], "--worker", "plan", "--results", tmp, "--n", str(n), "--image-size", str(size))
            if plan.wait():
                raise RuntimeError("planning failed")
            for r in range(rounds):
                for code in codes[r % len(codes) :] + codes[: r % len(codes)]:
                    single = cli_run(code, results, n, size, 1)
                    two = cli_run(code, results, n, size, 2)
                    one, w, pool = single["workers"], two["workers"], two["pool"]
                    print(
                        f"| {n} | {r + 1} | {code.name} | {one['VmRSS']:.0f} | {one['RssAnon']:.0f} | "
                        f"{one['Pss']:.0f} | {one['Uss']:.0f} | {w['VmRSS']:.0f} | {w['RssAnon']:.0f} | "
                        f"{w['Pss']:.0f} | {w['Uss']:.0f} | {pool['VmRSS']:.0f} | {pool['Pss']:.0f} | "
                        f"{w['Pss'] / one['Pss']:.2f} | {pool['Pss'] / one['Pss']:.2f} | "
                        f"{w['VmRSS'] / one['VmRSS']:.2f} | {pool['VmRSS'] / one['VmRSS']:.2f} | "
                        f"{two['tree']['Pss'] / single['tree']['Pss']:.2f} |",
                        flush=True,
                    )


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
    parser.add_argument(
        "--fork",
        action="store_true",
        help="also run the pair as two children forked from one parent that imported torch",
    )
    parser.add_argument(
        "--cli",
        nargs="+",
        type=Path,
        metavar="DIR",
        help="instead: `bench run --jobs 1` (one job) against `--jobs 2` (two jobs) with each checkout DIR, interleaved",
    )
    parser.add_argument("--rounds", type=int, default=2, help="with --cli: rounds over the checkouts")
    parser.add_argument("--worker", choices=("plan", "run", "fork-pair"), help=argparse.SUPPRESS)
    parser.add_argument("--results", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "plan":
        return plan_jobs(args.results, args.n, args.image_size)
    if args.worker == "run":
        run_job(args.results, args.index)
        return None
    if args.worker == "fork-pair":
        return fork_pair(args.results)
    if args.cli:
        return cli_main(
            [c.resolve() for c in args.cli], list(map(int, args.sizes.split(","))), args.image_size, args.rounds
        )
    print(
        f"# code: {args.code}; U-Net width 4 depth 3, 1 epoch, {args.image_size} px, synthetic DSB-2018; MiB; "
        f"peaks over the job"
    )
    print(
        "| images | one: RSS | one: anon | one: PSS | one: USS | two: RSS each | two: sum RSS | two: sum PSS "
        "| two: sum USS | two / one (PSS) | two / one (RSS) | forked two: sum PSS | forked two / one (PSS) |"
    )
    print("|---:|" + "---:|" * 12)
    for n in map(int, args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            results = Path(tmp)
            plan = _worker(
                args.code, "--worker", "plan", "--results", tmp, "--n", str(n), "--image-size", str(args.image_size)
            )
            if plan.wait():
                raise RuntimeError("planning failed")
            one = _result(_worker(args.code, "--worker", "run", "--results", tmp, "--index", "0"))
            for f in results.glob("out*"):
                f.unlink()
            pair = [_worker(args.code, "--worker", "run", "--results", tmp, "--index", str(i)) for i in (0, 1)]
            pids = [str(p.pid) for p in pair]
            sampler = Sampler(lambda pids=pids: pids)
            sampler.start()
            two = [_result(p) for p in pair]
            sampler.stop()
            for f in results.glob("out*"):
                f.unlink()
            forked = _result(_worker(args.code, "--worker", "fork-pair", "--results", tmp)) if args.fork else {}
        both = sampler.peak_sum
        fork_pss = forked.get("sum_Pss")
        fork_cols = f"{fork_pss:.0f} | {fork_pss / one['peak_Pss']:.2f}" if fork_pss else "- | -"
        print(
            f"| {n} | {one['peak_VmRSS']:.0f} | {one['peak_RssAnon']:.0f} | {one['peak_Pss']:.0f} | "
            f"{one['peak_Uss']:.0f} | {two[0]['peak_VmRSS']:.0f} / {two[1]['peak_VmRSS']:.0f} | "
            f"{both['VmRSS']:.0f} | {both['Pss']:.0f} | {both['Uss']:.0f} | {both['Pss'] / one['peak_Pss']:.2f} | "
            f"{both['VmRSS'] / one['peak_VmRSS']:.2f} | {fork_cols} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
