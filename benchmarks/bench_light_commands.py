"""CPU time of the commands that train nothing, against ``bench --help``, interleaved.

    python benchmarks/bench_light_commands.py RESULTS [--rounds 7] [--before DIR]

Each round runs, in a rotating order, ``bench --help``, ``bench report --table 5 --results RESULTS``,
``bench list`` and the floors of the two tables' own work (``python -c "import pandas, pyarrow.parquet,
scipy.stats"``: the libraries Table 5 is computed with; ``python -c "import bench.datasets; ..."``: the
dataset registry and the architectures' stored metadata the listing prints), each a fresh process, and
records its CPU time (user + system, from ``os.times`` of the children). With ``--before DIR`` (a source tree of another
version, ``git archive COMMIT | tar -x -C DIR``) the report and list commands of that version run in the
same rounds. Prints the medians and the ratios of the medians.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

FLOOR = "import pandas, pyarrow.parquet, scipy.stats"
LIST_FLOOR = "import bench.datasets; from bench.registry import stored_metadata; stored_metadata('architecture')"


def cpu_seconds(cmd: list[str], env: dict[str, str]) -> float:
    before = os.times()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    after = os.times()
    return (after.children_user - before.children_user) + (after.children_system - before.children_system)


def package_copy(tree: Path, out: Path) -> Path:
    pkg = out / "bench"
    shutil.copytree(tree / "bench", pkg)
    for sub in ("architectures", "datasets"):
        shutil.copytree(tree / sub, pkg / sub)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--before", type=Path)
    args = parser.parse_args()
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    bench = [sys.executable, "-m", "bench.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        commands: dict[str, tuple[list[str], dict[str, str]]] = {
            "bench --help": ([*bench, "--help"], env),
            "bench report --table 5": ([*bench, "report", "--table", "5", "--results", str(args.results)], env),
            "bench list": ([*bench, "list"], env),
            "floor: import pandas, pyarrow, scipy.stats": ([sys.executable, "-c", FLOOR], env),
            "list floor: import bench.datasets, read the stored metadata": ([sys.executable, "-c", LIST_FLOOR], env),
        }
        if args.before:
            old = {**env, "PYTHONPATH": str(package_copy(args.before, Path(tmp)))}
            commands["before: bench report --table 5"] = (commands["bench report --table 5"][0], old)
            commands["before: bench list"] = ([*bench, "list"], old)
        names = list(commands)
        times: dict[str, list[float]] = {n: [] for n in names}
        for name in names:  # one untimed warm-up each (page cache, .pyc files)
            cpu_seconds(*commands[name])
        for r in range(args.rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                times[name].append(cpu_seconds(*commands[name]))
    med = {n: statistics.median(t) for n, t in times.items()}
    help_s = med["bench --help"]
    floors = {"report": med["floor: import pandas, pyarrow, scipy.stats"]}
    floors["list"] = med["list floor: import bench.datasets, read the stored metadata"]
    print(f"load average at the end: {os.getloadavg()[0]:.1f}; {args.rounds} rounds")
    print("| command | median CPU s | min | max | / `bench --help` | / (`bench --help` + its floor) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, t in times.items():
        floor = next((f for k, f in floors.items() if name.endswith(f"bench {k}") or f"bench {k} " in name), None)
        with_floor = f"{med[name] / (help_s + floor):.2f}x" if floor is not None else "-"
        print(f"| {name} | {med[name]:.2f} | {min(t):.2f} | {max(t):.2f} | {med[name] / help_s:.2f}x | {with_floor} |")


if __name__ == "__main__":
    main()
