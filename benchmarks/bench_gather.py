"""Gathering batches from the memory-mapped cache: three ways, their resident memory and CPU time.

    python benchmarks/bench_gather.py [--n 512] [--size 256] [--batch 4] [--repeats 5]

The synthetic DSB-2018 stand-in with n images at ``--size`` px is prepared into a temporary cache
(uint8 images, bool masks: ``.npy`` files). Then every row is gathered once, in shuffled batches of
``--batch`` (one epoch of a training job's data reads), three ways:

- ``mmap``: indexing the ``np.load(mmap_mode="r")`` arrays (the cache as opened before): every page a
  batch reads stays mapped, so it counts in the process's RSS (``RssFile``) until the process exits;
- ``mmap + madvise``: the same, then ``madvise(MADV_DONTNEED)`` on the whole mapping after each
  batch, which drops the pages from this process (they stay in the page cache);
- ``pread``: ``bench.datasets.prepare.take_rows``, one positional read per row into a new array,
  nothing mapped (what jobs do now).

Each way runs in a fresh process (so the mapped pages of one do not count for another), ``--repeats``
times in rotating order; printed: the largest ``RssFile`` growth while gathering and the median CPU
seconds per epoch, and whether every batch equals the ``mmap`` batch bit for bit. Linux only.
"""

from __future__ import annotations

import argparse
import json
import mmap
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
WAYS = ("mmap", "mmap + madvise", "pread")


def _rss_file_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no RssFile in /proc/self/status")


def _madvised(path: str) -> tuple[np.ndarray, mmap.mmap]:
    """The ``.npy`` at ``path`` mapped with ``mmap`` (so its pages can be released), and the mapping."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(fh)
        offset = fh.tell()
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    assert not fortran
    return np.frombuffer(mm, dtype, offset=offset, count=int(np.prod(shape))).reshape(shape), mm


def gather(meta: str, way: str, batch: int, seed: int) -> dict[str, object]:
    """One epoch of batches the given ``way``; RssFile growth (MiB), CPU seconds and a digest of the batches."""
    import hashlib

    from bench.datasets.prepare import array_path, load_cache, take_rows

    data = load_cache(Path(meta))
    order = np.random.default_rng(seed).permutation(len(data))
    maps = []
    if way == "mmap + madvise":
        (pixels, mm1), (masks, mm2) = (_madvised(str(array_path(Path(meta), n))) for n in ("images", "masks"))
        maps = [mm1, mm2]
    else:
        pixels, masks = data.pixels, data.masks
    digest, start, peak = hashlib.sha256(), _rss_file_mib(), 0.0
    c0 = time.process_time()
    for i in range(0, len(order), batch):
        rows = order[i : i + batch]
        if way == "pread":
            x, y = take_rows(pixels, rows), take_rows(masks, rows)
        else:
            x, y = np.asarray(pixels[rows]), np.asarray(masks[rows])
        digest.update(x.tobytes())
        digest.update(y.tobytes())
        for mm in maps:
            mm.madvise(mmap.MADV_DONTNEED)
        peak = max(peak, _rss_file_mib() - start)
    cpu = time.process_time() - c0
    del pixels, masks
    return {"rss_file_growth": peak, "cpu": cpu, "digest": digest.hexdigest()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--meta", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(gather(args.meta, args.worker, args.batch, seed=0)))
        return
    from bench.datasets.prepare import prepare
    from bench.datasets.synthetic import SyntheticDataset

    with tempfile.TemporaryDirectory() as tmp:
        prepare(SyntheticDataset("dsb2018", n=args.n), args.size, cache_dir=Path(tmp))
        meta = str(next(Path(tmp).glob("*.meta.json")))
        runs: dict[str, list[dict]] = {w: [] for w in WAYS}
        for r in range(args.repeats):
            for way in WAYS[r % 3 :] + WAYS[: r % 3]:
                out = subprocess.run(
                    [sys.executable, str(HERE), "--worker", way, "--meta", meta, "--batch", str(args.batch)],
                    check=False,
                    capture_output=True,
                    text=True,
                )
                if out.returncode:
                    raise RuntimeError(f"{way} failed:\n{out.stderr}")
                runs[way].append(json.loads(out.stdout.strip().splitlines()[-1]))
    data_mib = args.n * (3 + 1) * args.size**2 / 2**20
    print(
        f"# {args.n} images x {args.size} px (uint8 images + bool masks: {data_mib:.0f} MiB), batches of "
        f"{args.batch}, {args.repeats} runs per way"
    )
    print("| way | RssFile growth, MiB (max over runs) | CPU s per epoch (median) | batches equal to mmap |")
    print("|---|---:|---:|---|")
    ref = runs["mmap"][0]["digest"]
    for way in WAYS:
        rs = runs[way]
        same = all(r["digest"] == ref for r in rs)
        print(
            f"| {way} | {max(r['rss_file_growth'] for r in rs):.1f} | "
            f"{statistics.median(r['cpu'] for r in rs):.3f} | {'yes' if same else 'NO'} |"
        )


if __name__ == "__main__":
    main()
