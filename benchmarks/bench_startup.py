"""What starting the command line costs: CPU time of ``bench --help`` and the libraries it loads.

    python benchmarks/bench_startup.py [--runs 15] [--other PATH/TO/OTHER/bench]

Runs ``bench --help`` ``--runs`` times (interleaved with ``--other``, another installation's ``bench``
script, when given: e.g. a checkout of an older commit in its own venv) and prints the median and minimum
CPU time (user + system of the child) and which of the heavy libraries are loaded once every command's
parser is built. docs/architecture.md says which imports stay inside functions to keep this low.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "numpy", "cv2", "pandas", "pyarrow", "scipy", "matplotlib", "seaborn", "yaml", "albumentations")
PROBE = (
    "import sys, bench.cli; bench.cli.build_parser(); print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
)


def cpu_seconds(cmd: list[str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def loaded(script: str) -> list[str]:
    python = str(Path(script).with_name("python"))
    out = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, check=True).stdout.split()
    return [m for m in HEAVY if m in out]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--other", help="another installation's bench script, timed in the same rounds")
    args = parser.parse_args()
    scripts = {"this": shutil.which("bench") or sys.exit("no bench on PATH: pip install -e . first")}
    if args.other:
        scripts["other"] = args.other
    times: dict[str, list[float]] = {name: [] for name in scripts}
    for _ in range(args.runs):
        for name, script in scripts.items():
            times[name].append(cpu_seconds([script, "--help"]))
    for name, script in scripts.items():
        t = times[name]
        print(
            f"{name:<6} bench --help: median {statistics.median(t):.3f} s CPU, min {min(t):.3f} s "
            f"({args.runs} runs); heavy libraries loaded with every parser: {', '.join(loaded(script)) or 'none'}"
        )


if __name__ == "__main__":
    main()
