"""Preprocessed-cache build and load times for the real dataset samples.

    python benchmarks/bench_cache.py [DATA_ROOT] [--size 256]

DATA_ROOT holds one native-layout folder per dataset (default: ../shared/data beside the repo).
Builds each dataset's cache in a fresh temporary folder (decode, resize, patch), then loads it
again (a cache hit), and compares one epoch's load with a training step at the same size.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.datasets import PAPER_DATASETS, open_dataset
from bench.datasets.prepare import prepare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "data_root", nargs="?", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    print(f"{'dataset':<10} {'sources':>7} {'rows':>5} {'build s':>8} {'load s':>7} {'cache MB':>9}")
    for name in PAPER_DATASETS:
        root = args.data_root / name
        if not root.is_dir():
            print(f"{name:<10} (no folder at {root})")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            data = prepare(open_dataset(name, root), args.size, cache_dir=Path(tmp))
            build = time.perf_counter() - start
            start = time.perf_counter()
            again = prepare(open_dataset(name, root), args.size, cache_dir=Path(tmp))
            load = time.perf_counter() - start
            size = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file()) / 1e6
        assert again.fingerprint == data.fingerprint
        print(
            f"{name:<10} {len(set(data.source_ids or data.case_ids)):>7} {len(data.case_ids):>5} {build:>8.2f} "
            f"{load:>7.3f} {size:>9.1f}"
        )


if __name__ == "__main__":
    main()
