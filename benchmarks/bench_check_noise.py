"""Noise floor of the drift check's training layer: how far the check profile's per-image numbers move
when nothing but the CPU kernels change.

Runs the check profile once per variation, each in a fresh process (the kernel-selection variables are
read when torch and MKL load), and compares every variation's rows with the plain run:

- ``threads2``: two torch threads instead of one (other reduction splits);
- ``aten_avx2``: ``ATEN_CPU_CAPABILITY=avx2`` (ATen's vectorised kernels for AVX2, as on an older CPU);
- ``onednn_avx2``: ``ONEDNN_MAX_CPU_ISA=AVX2`` (oneDNN's convolution kernels for AVX2);
- ``mkl_avx2``: ``MKL_ENABLE_INSTRUCTIONS=AVX2`` (MKL's GEMM code path for AVX2);
- ``all_sse``: all three at their oldest level (default / SSE4.1 / SSE4.2).

Usage (about 1-2 minutes per run on an idle 2-core machine at fp64)::

    python benchmarks/bench_check_noise.py --precision fp64 fp32 --json noise.json
    python benchmarks/bench_check_noise.py --precision fp64 --write-meta results/baseline/meta.json

``--write-meta`` records the fp64 measurement under ``noise_floor`` in the baseline's metadata, which
``bench check`` prints and ``bench check --update`` keeps.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

VARIATIONS: dict[str, dict[str, str]] = {
    "threads2": {},
    "aten_avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "onednn_avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "mkl_avx2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "all_sse": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
}
CHILD = """
import sys
from pathlib import Path
from bench.check import run_benchmark
df = run_benchmark(Path(sys.argv[1]), 1, {archs!r}, {datasets!r}, overrides={overrides!r})
df.to_parquet(sys.argv[2])
"""


def run_variant(
    name: str, precision: str, archs: str | None, datasets: str | None, tmp: Path
) -> tuple[pd.DataFrame, float]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")
    }
    env.update(VARIATIONS.get(name, {}))
    overrides = {"precision": precision, "threads": 2 if name == "threads2" else 1}
    code = CHILD.format(archs=archs, datasets=datasets, overrides=overrides)
    out = tmp / f"{name}-{precision}.parquet"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, str(tmp / f"{name}-{precision}"), str(out)], env=env, check=True)
    return pd.read_parquet(out), time.perf_counter() - start


def compare(base: pd.DataFrame, other: pd.DataFrame) -> dict[str, float]:
    """Largest absolute difference per column, rows with any pixel moved, and pixels moved in all."""
    from bench.check import COUNTS, KEY, METRICS

    m = base.merge(other, on=KEY, suffixes=("", "_v"), validate="one_to_one")
    if len(m) != len(base) or len(m) != len(other):
        raise RuntimeError(f"row sets differ ({len(base)} vs {len(other)} rows)")
    out: dict[str, float] = {}
    for col in COUNTS + METRICS:
        a, b = m[col].to_numpy(float), m[f"{col}_v"].to_numpy(float)
        same = (a == b) | (np.isnan(a) & np.isnan(b))
        out[col] = float(np.nanmax(np.abs(np.where(same, 0.0, b - a)))) if len(a) else 0.0
    moved = (m["tp"] != m["tp_v"]) | (m["fp"] != m["fp_v"])
    out["rows_with_moved_pixels"] = int(moved.sum())
    out["pixels_moved"] = int((np.abs(m["tp"] - m["tp_v"]) + np.abs(m["fp"] - m["fp_v"])).sum())
    out["rows"] = len(m)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--precision", nargs="+", default=["fp64"], choices=["fp64", "fp32"])
    ap.add_argument("--archs", help="narrow the check selection (comma-separated)")
    ap.add_argument("--datasets", help="narrow the check selection (comma-separated)")
    ap.add_argument("--variations", nargs="+", default=list(VARIATIONS), choices=list(VARIATIONS))
    ap.add_argument("--json", help="write the measurement here")
    ap.add_argument("--write-meta", help="record the fp64 measurement under noise_floor in this meta.json")
    ap.add_argument("--from-json", help="don't measure: read an earlier --json output (to --write-meta it)")
    args = ap.parse_args()
    from bench.check import environment

    result: dict = {"environment": environment(), "date": time.strftime("%Y-%m-%d"), "by_precision": {}}
    if args.from_json:
        result = json.loads(Path(args.from_json).read_text())
        args.precision = []
    with tempfile.TemporaryDirectory() as tmp:
        for precision in args.precision:
            base, seconds = run_variant("plain", precision, args.archs, args.datasets, Path(tmp))
            print(f"{precision} plain: {len(base)} rows, {seconds:.0f} s", flush=True)
            per: dict = {"plain_seconds": round(seconds, 1)}
            for name in args.variations:
                rows, seconds = run_variant(name, precision, args.archs, args.datasets, Path(tmp))
                per[name] = {**compare(base, rows), "seconds": round(seconds, 1)}
                print(f"{precision} {name}: {per[name]}", flush=True)
            result["by_precision"][precision] = per
    print(markdown(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if args.write_meta and "fp64" in result["by_precision"]:
        meta_path = Path(args.write_meta)
        meta = json.loads(meta_path.read_text())
        meta["noise_floor"] = {
            "environment": result["environment"],
            "date": result["date"],
            "variations": result["by_precision"]["fp64"],
            "command": "python benchmarks/bench_check_noise.py --precision fp64 --write-meta " + args.write_meta,
        }
        from bench.results.store import atomic_write_json

        atomic_write_json(meta_path, meta)


def markdown(result: dict) -> str:
    cols = ["rows_with_moved_pixels", "pixels_moved", "tp", "fp", "dice", "iou", "hd", "hd95"]
    lines = ["| precision | variation | " + " | ".join(cols) + " |", "|---|---|" + "---:|" * len(cols)]
    for precision, per in result["by_precision"].items():
        for name, values in per.items():
            if isinstance(values, dict):
                lines.append(f"| {precision} | {name} | " + " | ".join(f"{values[c]:.3g}" for c in cols) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
