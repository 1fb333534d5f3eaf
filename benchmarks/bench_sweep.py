"""A reduced quick sweep on two checkouts of the project, interleaved: CPU time and wall time.

    python benchmarks/bench_sweep.py --before DIR [--after DIR] [--rounds 3] [-- BENCH RUN ARGS...]

Each round runs ``bench run <args> --quiet --results <fresh folder>`` once per checkout (``--before``,
``--after``: default this checkout), the order alternating between rounds, each in a fresh process
tree whose CPU time (user + system of the whole tree, ``resource.getrusage(RUSAGE_CHILDREN)`` around
it) and wall time are recorded. Prints every round and the median over rounds of the per-round ratio
before / after (above 1: after is faster). The default arguments are the reduced sweep of the quick
profile at its default settings: ``--arch unet,mildnet,unetpp,resdunet --dataset dsb2018,isbi2012
--folds 0 --jobs 1``. Both checkouts must accept the same arguments.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from timing import load_note

HERE = Path(__file__).resolve()
DEFAULT = ["--arch", "unet,mildnet,unetpp,resdunet", "--dataset", "dsb2018,isbi2012", "--folds", "0", "--jobs", "1"]


def become_subreaper() -> None:
    """Adopt the command's orphaned descendants (Linux ``PR_SET_CHILD_SUBREAPER``).

    ``bench run --jobs N`` forks its workers from a fork server, a child of the driver that outlives it
    by a moment; without this, the server and its workers are re-parented to init when the driver
    exits and their CPU time never reaches ``RUSAGE_CHILDREN`` here (the sweep would look nearly free).
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(36, 1, 0, 0, 0) != 0:  # 36 = PR_SET_CHILD_SUBREAPER
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed: CPU times would miss workers")


def _reap_orphans() -> None:
    """Wait for every adopted descendant, so their CPU time is counted in ``RUSAGE_CHILDREN``."""
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def run_once(code: Path, args: list[str]) -> tuple[float, float]:
    """(CPU seconds of the process tree, wall seconds) of one ``bench run`` with ``code`` on the path."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    with tempfile.TemporaryDirectory() as tmp:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "bench.cli", "run", *args, "--quiet", "--results", tmp],
            env=env,
            cwd=code,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        wall = time.perf_counter() - start
        _reap_orphans()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, default=HERE.parent.parent)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("args", nargs=argparse.REMAINDER, help="bench run arguments (after --)")
    ns = parser.parse_args()
    become_subreaper()
    args = [a for a in ns.args if a != "--"] or DEFAULT
    codes = {"before": ns.before.resolve(), "after": ns.after.resolve()}
    print(f"# bench run {' '.join(args)} --quiet; before = {codes['before']}, after = {codes['after']}")
    print(f"# start: {load_note()}")
    print("| round | before: CPU s (wall s) | after: CPU s (wall s) | before / after (CPU) | (wall) |")
    print("|---|---:|---:|---:|---:|")
    ratios_cpu, ratios_wall = [], []
    for r in range(ns.rounds):
        out = {}
        for name in ("before", "after") if r % 2 == 0 else ("after", "before"):
            out[name] = run_once(codes[name], args)
        (bc, bw), (ac, aw) = out["before"], out["after"]
        ratios_cpu.append(bc / ac)
        ratios_wall.append(bw / aw)
        print(f"| {r + 1} | {bc:.1f} ({bw:.1f}) | {ac:.1f} ({aw:.1f}) | {bc / ac:.2f}x | {bw / aw:.2f}x |", flush=True)
    print(
        f"\nmedian before / after: CPU {statistics.median(ratios_cpu):.2f}x, wall {statistics.median(ratios_wall):.2f}x"
    )
    print(f"# end: {load_note()}")


if __name__ == "__main__":
    main()
