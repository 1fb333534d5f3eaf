"""Time bench.metrics against scipy, medpy and MONAI on realistic 256x256 mask pairs, and check the values agree.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_metrics.py [--n 200] [--size 256] [--seed 0] [--threads 1]``.
medpy and MONAI are optional (``pip install medpy monai``); each missing one is skipped with a message.

Compared per pair (all in pixels, unit spacing):
- ours: ``bench.metrics.image_metrics`` (counts, Dice, IoU, HD over all pixels, HD95 over boundaries);
- scipy: ``directed_hausdorff`` both ways on ``np.argwhere`` (HD only) -> must equal our ``hd`` exactly;
- medpy: ``dc, jc, hd, hd95`` -> Dice/IoU equal; its ``hd95`` pools both directions (compared with our
  ``hd95_pooled``); its ``hd`` is boundary-based, so it differs from ours on holes and speckle (counted);
- MONAI: ``compute_dice, compute_iou, compute_hausdorff_distance`` (max and ``percentile=95``) -> Dice/IoU/HD95
  equal to float32 precision (MONAI returns float32); its ``hd`` is boundary-based like medpy's.
Pairs where a mask is empty are left out of the timing (medpy raises, MONAI returns NaN there).
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
from scipy import ndimage as ndi
from scipy.spatial.distance import directed_hausdorff

from bench import metrics

Pair = tuple[np.ndarray, np.ndarray]


# ----------------------------------------------------------------------------- realistic pairs


def _smooth_field(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    field = ndi.gaussian_filter(rng.standard_normal((size, size)), sigma)
    return (field - field.mean()) / field.std()


def _lesion(rng: np.random.Generator, size: int) -> np.ndarray:
    """One large blob with a wobbly edge (ISIC / LGG-like): a thresholded radial profile plus smooth noise."""
    r, c = np.mgrid[:size, :size]
    cy, cx = rng.uniform(0.3, 0.7, 2) * size
    radius = rng.uniform(0.1, 0.35) * size
    dist = np.hypot(r - cy, c - cx) / radius
    return dist + 0.15 * _smooth_field(rng, size, size / 16) < 1.0


def _cells(rng: np.random.Generator, size: int) -> np.ndarray:
    """Many small blobs (nuclei / glands, DSB / GlaS-like)."""
    return _smooth_field(rng, size, rng.uniform(3, 8)) > rng.uniform(0.5, 1.2)


def _membranes(rng: np.random.Generator, size: int) -> np.ndarray:
    """Foreground everywhere except thin dark lines (ISBI-2012-like cells with membranes = holes)."""
    field = _smooth_field(rng, size, rng.uniform(6, 12))
    return np.abs(field) > 0.12


def _predict(rng: np.random.Generator, ref: np.ndarray) -> np.ndarray:
    """A plausible network output: the reference with a perturbed edge, a few false blobs, some misses."""
    size = ref.shape[0]
    sdf = ndi.distance_transform_edt(ref) - ndi.distance_transform_edt(~ref)
    pred = sdf + rng.uniform(1.0, 4.0) * _smooth_field(rng, size, size / 24) + rng.uniform(-1.5, 1.5) > 0
    speckle = _smooth_field(rng, size, 2.0) > rng.uniform(2.8, 4.0)
    return pred | speckle


def make_pairs(n: int, size: int, seed: int) -> list[Pair]:
    """``n`` seeded (ref, pred) pairs, a mix of lesions, cells and membranes; none empty."""
    rng = np.random.default_rng(seed)
    kinds = (_lesion, _cells, _membranes)
    pairs: list[Pair] = []
    while len(pairs) < n:
        ref = kinds[len(pairs) % len(kinds)](rng, size)
        pred = _predict(rng, ref)
        if ref.any() and pred.any():
            pairs.append((ref, pred))
    return pairs


# ----------------------------------------------------------------------------- implementations


def _ours(pairs: list[Pair]) -> list[dict[str, Any]]:
    return [metrics.image_metrics(ref, pred) for ref, pred in pairs]


def _ours_hd(pairs: list[Pair]) -> list[dict[str, Any]]:
    return [{"hd": metrics.hausdorff(ref, pred)} for ref, pred in pairs]


def _scipy_hd(pairs: list[Pair]) -> list[dict[str, Any]]:
    out = []
    for ref, pred in pairs:
        a, b = np.argwhere(ref), np.argwhere(pred)
        out.append({"hd": max(directed_hausdorff(a, b)[0], directed_hausdorff(b, a)[0])})
    return out


def _medpy() -> Callable[[list[Pair]], list[dict[str, Any]]] | None:
    try:
        from medpy.metric import binary
    except ImportError:
        return None

    def run(pairs: list[Pair]) -> list[dict[str, Any]]:
        return [
            {"dice": binary.dc(p, r), "iou": binary.jc(p, r), "hd": binary.hd(p, r), "hd95": binary.hd95(p, r)}
            for r, p in pairs
        ]

    return run


def _monai() -> Callable[[list[Pair]], list[dict[str, Any]]] | None:
    try:
        import torch
        from monai.metrics import compute_dice, compute_hausdorff_distance, compute_iou
    except ImportError:
        return None
    torch.set_num_threads(1)

    def run(pairs: list[Pair]) -> list[dict[str, Any]]:
        out = []
        for ref, pred in pairs:
            y, yp = (torch.from_numpy(m[None, None].astype(np.float32)) for m in (ref, pred))
            kw = {"include_background": True}
            out.append(
                {
                    "dice": float(compute_dice(yp, y, **kw)[0, 0]),
                    "iou": float(compute_iou(yp, y, **kw)[0, 0]),
                    "hd": float(compute_hausdorff_distance(yp, y, **kw)[0, 0]),
                    "hd95": float(compute_hausdorff_distance(yp, y, percentile=95, **kw)[0, 0]),
                }
            )
        return out

    return run


# ----------------------------------------------------------------------------- timing and checks


def _time(fn: Callable[[list[Pair]], list[dict[str, Any]]], pairs: list[Pair], repeats: int) -> tuple[float, list]:
    """Best-of-``repeats`` ms per pair, and the values of the last run."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        values = fn(pairs)
        best = min(best, (time.perf_counter() - start) / len(pairs) * 1e3)
    return best, values


def _mismatches(ours: list[dict], theirs: list[dict], key: str, rtol: float) -> int:
    a = np.array([row[key] for row in ours[: len(theirs)]])
    b = np.array([row[key] for row in theirs])
    return int(np.count_nonzero(~np.isclose(a, b, rtol=rtol, atol=rtol)))


def _check(name: str, ours: list[dict], theirs: list[dict], pooled: list[float]) -> list[str]:
    notes = []
    for key, rtol in (("dice", 1e-12), ("iou", 1e-12), ("hd", 0.0), ("hd95", 1e-12)):
        if key not in theirs[0]:
            continue
        if name == "MONAI":
            rtol = max(rtol, 1e-5)  # float32 results (torch.quantile in float32: ~2e-6 relative)
        if name == "medpy" and key == "hd95":
            bad = _mismatches([{"hd95": v} for v in pooled], theirs, key, rtol)
            notes.append(
                f"hd95 vs our hd95_pooled: {bad} mismatches; vs our hd95 (max of directed): "
                f"{_mismatches(ours, theirs, key, rtol)} differ"
            )
        elif name in ("medpy", "MONAI") and key == "hd":
            notes.append(
                f"hd (boundary-based) differs from our all-pixel hd on {_mismatches(ours, theirs, key, rtol)}"
                f" pairs (expected where masks have holes/speckle)"
            )
        else:
            notes.append(f"{key}: {_mismatches(ours, theirs, key, rtol)} mismatches")
    return notes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=150, help="number of pairs")
    parser.add_argument("--size", type=int, default=256, help="mask side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    parser.add_argument("--scipy-n", type=int, default=20, help="pairs for scipy (about 0.25 s per pair)")
    parser.add_argument("--threads", type=int, default=1, help="cv2.setNumThreads for ours (1 = a metric worker)")
    args = parser.parse_args(argv)
    cv2.setNumThreads(args.threads)
    warnings.filterwarnings("ignore")

    pairs = make_pairs(args.n, args.size, args.seed)
    fg = np.mean([r.mean() for r, _ in pairs]), np.mean([p.mean() for _, p in pairs])
    print(
        f"{args.n} pairs of {args.size}x{args.size} (seed {args.seed}); mean foreground ref {fg[0]:.2f}, "
        f"pred {fg[1]:.2f}; cv2 threads {args.threads}, best of {args.repeats}\n"
    )

    ms_ours, ours = _time(_ours, pairs, args.repeats)
    pooled = [metrics.hd95_pooled(r, p) for r, p in pairs]
    rows = [("ours image_metrics (all columns)", ms_ours, [])]
    ms_hd, ours_hd = _time(_ours_hd, pairs, args.repeats)
    rows.append(("ours hausdorff (hd only)", ms_hd, [f"hd: {_mismatches(ours, ours_hd, 'hd', 0.0)} mismatches"]))
    subset = pairs[: args.scipy_n]
    ms_scipy, scipy_hd = _time(_scipy_hd, subset, 1)
    ms_hd_subset = _time(_ours_hd, subset, args.repeats)[0]
    rows.append(
        (
            f"scipy directed_hausdorff (hd only, {len(subset)} pairs)",
            ms_scipy,
            [
                f"hd: {_mismatches(ours, scipy_hd, 'hd', 0.0)} mismatches (exact equality)",
                f"{ms_scipy / ms_hd_subset:.0f}x slower than ours hausdorff on the same pairs",
            ],
        )
    )
    others: list[tuple[str, str, Callable | None]] = [
        ("medpy", "medpy (dc, jc, hd, hd95)", _medpy()),
        ("MONAI", "MONAI (dice, iou, hd, hd95)", _monai()),
    ]
    for name, label, fn in others:
        if fn is None:
            print(f"{name} not installed: skipped (pip install {name.lower()})")
            continue
        ms, values = _time(fn, pairs, args.repeats)
        rows.append((label, ms, _check(name, ours, values, pooled)))

    print(f"{'implementation':48s} {'ms/pair':>9s} {'x image_metrics':>16s}")
    for label, ms, notes in rows:
        print(f"{label:48s} {ms:9.3f} {ms / ms_ours:16.1f}")
        for note in notes:
            print(f"    {note}")


if __name__ == "__main__":
    main()
