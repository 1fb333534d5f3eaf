"""bench.metrics: hand-computed cases, exact agreement with scipy / brute force, empty rules, validation."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import cdist, directed_hausdorff

from bench import metrics
from bench.metrics import (
    counts,
    dice,
    dice_from_counts,
    hausdorff,
    hd95,
    hd95_pooled,
    image_metrics,
    iou,
    iou_from_counts,
)

# ----------------------------------------------------------------------------- independent references


def ref_hausdorff(a: np.ndarray, b: np.ndarray) -> float:
    """Paper HD with scipy over all foreground pixels (the contract)."""
    pa, pb = np.argwhere(a), np.argwhere(b)
    return max(directed_hausdorff(pa, pb)[0], directed_hausdorff(pb, pa)[0])


def ref_boundary(m: np.ndarray) -> np.ndarray:
    """Foreground pixels with a 4-neighbour in the background; outside the image is background."""
    p = np.pad(m, 1, constant_values=False)
    interior = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return m & ~interior


def ref_surface(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Brute force: distance from every boundary pixel of a to the nearest boundary pixel of b."""
    return cdist(np.argwhere(ref_boundary(a)), np.argwhere(ref_boundary(b))).min(axis=1)


def ref_hd95(a: np.ndarray, b: np.ndarray) -> float:
    return max(np.percentile(ref_surface(a, b), 95), np.percentile(ref_surface(b, a), 95))


def ref_boundary_hd(a: np.ndarray, b: np.ndarray) -> float:
    """medpy's / MONAI's hd: boundary to boundary (not the project's HD)."""
    return max(ref_surface(a, b).max(), ref_surface(b, a).max())


# ----------------------------------------------------------------------------- mask generators (small)


def blobs(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(rng.standard_normal((h, w)), rng.uniform(1.5, 4)) > rng.uniform(0.0, 0.4)


def speckle(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return rng.random((h, w)) < rng.uniform(0.01, 0.3)


def _polar(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    r, c = np.mgrid[:h, :w]
    cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
    return np.hypot(r - cy, c - cx), np.arctan2(r - cy, c - cx)


def rings(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    dist, _ = _polar(rng, h, w)
    inner = rng.uniform(2, min(h, w) / 4)
    return (dist >= inner) & (dist <= inner + rng.uniform(1, 6))


def c_shapes(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    dist, angle = _polar(rng, h, w)
    inner = rng.uniform(3, min(h, w) / 4)
    return (dist >= inner) & (dist <= inner + rng.uniform(2, 8)) & (np.abs(angle - rng.uniform(-3, 3)) > 0.8)


def border(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Foreground touching the image border (edges and corners)."""
    m = np.zeros((h, w), bool)
    m[: rng.integers(1, h // 2), :] = True
    m[:, w - rng.integers(1, w // 3) :] = True
    m[rng.integers(h // 2, h), rng.integers(0, w // 2)] = True
    return m ^ speckle(rng, h, w)


GENERATORS: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    "blobs": blobs,
    "speckle": speckle,
    "rings": rings,
    "c_shapes": c_shapes,
    "border": border,
}


def random_pairs(kind: str, n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Pairs of non-empty masks (32-64 px); the second is either independent or a perturbed copy."""
    rng = np.random.default_rng(seed)
    make = GENERATORS[kind]
    pairs = []
    while len(pairs) < n:
        h, w = (int(x) for x in rng.integers(32, 65, 2))
        a = make(rng, h, w)
        b = make(rng, h, w) if rng.random() < 0.5 else a ^ (rng.random((h, w)) < 0.05)
        if a.any() and b.any():
            pairs.append((a, b))
    return pairs


def mask4(*pixels: tuple[int, int]) -> np.ndarray:
    m = np.zeros((4, 4), bool)
    for rc in pixels:
        m[rc] = True
    return m


def disk(size: int, radius: float, center: tuple[float, float] | None = None) -> np.ndarray:
    cy, cx = center or ((size - 1) / 2, (size - 1) / 2)
    r, c = np.mgrid[:size, :size]
    return np.hypot(r - cy, c - cx) <= radius


# ----------------------------------------------------------------------------- hand-computed cases


def test_identical() -> None:
    a = mask4((1, 1), (1, 2), (2, 1))
    row = image_metrics(a, a.copy())
    assert row == {
        "tp": 3,
        "fp": 0,
        "fn": 0,
        "tn": 13,
        "n_ref": 3,
        "n_pred": 3,
        "empty_ref": False,
        "empty_pred": False,
        "dice": 1.0,
        "iou": 1.0,
        "hd": 0.0,
        "hd95": 0.0,
        "hd_worst_case": False,
    }


def test_disjoint_single_pixels() -> None:
    row = image_metrics(mask4((0, 0)), mask4((3, 3)))
    assert (row["tp"], row["fp"], row["fn"], row["tn"]) == (0, 1, 1, 14)
    assert row["dice"] == 0.0 and row["iou"] == 0.0  # no smoothing epsilon
    assert row["hd"] == row["hd95"] == math.sqrt(18)


def test_one_pixel_shift() -> None:
    ref = mask4((1, 0), (1, 1), (2, 0), (2, 1))
    pred = mask4((1, 1), (1, 2), (2, 1), (2, 2))
    row = image_metrics(ref, pred)
    assert (row["tp"], row["fp"], row["fn"], row["tn"]) == (2, 2, 2, 10)
    assert row["dice"] == 0.5 and row["iou"] == 2 / 6
    # all pixels are boundary; directed distances {1, 0, 1, 0}: 95th percentile (linear) of [0, 0, 1, 1] = 1
    assert row["hd"] == 1.0 and row["hd95"] == 1.0


def test_false_positive_on_empty_reference() -> None:
    ref, pred = mask4(), mask4((2, 3))
    row = image_metrics(ref, pred)
    assert (row["tp"], row["fp"], row["fn"], row["tn"], row["empty_ref"], row["empty_pred"]) == (
        0,
        1,
        0,
        15,
        True,
        False,
    )
    assert row["dice"] == 0.0 and row["iou"] == 0.0
    assert row["hd"] == row["hd95"] == math.sqrt(32) and row["hd_worst_case"] is True


def test_missed_structure_is_the_diagonal_not_nan() -> None:
    ref = np.zeros((6, 8), bool)
    ref[2, 3] = True
    pred = np.zeros_like(ref)
    assert hausdorff(ref, pred) == hd95(ref, pred) == 10.0
    assert image_metrics(ref, pred)["hd_worst_case"] is True
    assert hd95_pooled(ref, pred) == 10.0


def test_both_empty() -> None:
    z = mask4()
    row = image_metrics(z, z)
    assert row["dice"] == row["iou"] == 1.0
    assert row["hd"] == row["hd95"] == 0.0 and row["hd_worst_case"] is False
    assert row["empty_ref"] and row["empty_pred"] and row["tn"] == 16
    assert math.isnan(dice(z, z, empty=float("nan"))) and math.isnan(iou(z, z, empty=float("nan")))
    assert dice(z, mask4((0, 1)), empty=float("nan")) == 0.0


def test_disk_vs_disk_with_hole() -> None:
    """Paper HD (all pixels) is the hole's depth; the boundary HD of medpy/MONAI sees the hole's rim."""
    full = disk(64, 25)
    holed = full & ~disk(64, 3)
    hd = hausdorff(full, holed)
    assert hd == ref_hausdorff(full, holed)
    assert 2.5 < hd < 4  # "paper HD 3-ish"
    assert ref_boundary_hd(full, holed) > 20
    assert hd95(full, holed) == ref_hd95(full, holed) > hd  # HD95 can exceed HD: boundary vs full sets


def test_c_shape_vs_disk() -> None:
    ring = disk(48, 15) & ~disk(48, 9)
    c_shape = ring.copy()
    c_shape[20:28, 30:] = False
    assert hausdorff(ring, c_shape) == ref_hausdorff(ring, c_shape)
    assert hd95(ring, c_shape) == ref_hd95(ring, c_shape)


# ----------------------------------------------------------------------------- random masks, exact


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_hd_equals_scipy_exactly(kind: str) -> None:
    for a, b in random_pairs(kind, 12, seed=len(kind)):
        expected = ref_hausdorff(a, b)
        assert hausdorff(a, b) == expected
        assert image_metrics(a, b)["hd"] == expected


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_hd95_equals_brute_force_exactly(kind: str) -> None:
    for a, b in random_pairs(kind, 12, seed=100 + len(kind)):
        assert hd95(a, b) == ref_hd95(a, b)
        assert image_metrics(a, b)["hd95"] == hd95(b, a)  # symmetric
        pooled = np.percentile(np.concatenate([ref_surface(a, b), ref_surface(b, a)]), 95)
        assert hd95_pooled(a, b) == pooled


def test_far_speckle_in_corners() -> None:
    """The crop is the bounding box of both masks: specks in opposite corners must still be exact."""
    a = disk(40, 6, center=(20, 20))
    b = a.copy()
    b[0, 39] = b[39, 0] = True
    a[0, 0] = True
    assert hausdorff(a, b) == ref_hausdorff(a, b)
    assert image_metrics(a, b)["hd95"] == ref_hd95(a, b)


def test_non_contiguous_inputs() -> None:
    a, b = random_pairs("blobs", 1, seed=7)[0]
    at, bt = a.T, b.T  # Fortran-ordered views
    assert hausdorff(at, bt) == ref_hausdorff(at, bt)
    assert hd95(at, bt) == ref_hd95(at, bt)
    assert image_metrics(a[::2, 1::2], b[::2, 1::2])["hd"] == ref_hausdorff(a[::2, 1::2], b[::2, 1::2])


def test_counts_match_numpy() -> None:
    for a, b in random_pairs("speckle", 5, seed=3):
        c = counts(a, b)
        assert c["tp"] == np.sum(a & b) and c["fp"] == np.sum(~a & b)
        assert c["fn"] == np.sum(a & ~b) and c["tn"] == np.sum(~a & ~b)
        assert all(type(c[k]) is int for k in ("tp", "fp", "fn", "tn", "n_ref", "n_pred"))
        assert dice(a, b) == 2 * c["tp"] / (a.sum() + b.sum())
        assert iou(a, b) == c["tp"] / np.sum(a | b)


def test_image_metrics_agrees_with_single_functions() -> None:
    for a, b in random_pairs("c_shapes", 4, seed=11):
        row = image_metrics(a, b)
        assert row["hd"] == hausdorff(a, b) and row["hd95"] == hd95(a, b)
        assert row["dice"] == dice(a, b) and row["iou"] == iou(a, b)
        assert all(type(row[k]) is float for k in ("dice", "iou", "hd", "hd95"))


def test_percentile_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    for n in [*range(1, 60), 99, 100, 101, 1000, 4321]:
        values = np.sqrt(rng.integers(0, 9000, n)).astype(np.float32)
        exact = np.sqrt(np.rint(values.astype(np.float64) ** 2))
        assert metrics._percentile(values) == np.percentile(exact, 95)


# ----------------------------------------------------------------------------- from counts, vectorised


def test_from_counts_vectorised() -> None:
    tp, fp, fn = np.array([0, 0, 3, 1]), np.array([0, 2, 1, 0]), np.array([0, 0, 1, 1])
    np.testing.assert_array_equal(dice_from_counts(tp, fp, fn), [1.0, 0.0, 0.75, 2 / 3])
    np.testing.assert_array_equal(iou_from_counts(tp, fp, fn), [1.0, 0.0, 0.6, 0.5])
    excluded = dice_from_counts(tp, fp, fn, empty=np.nan)
    assert np.isnan(excluded[0]) and excluded[1] == 0.0


def test_from_counts_pandas_keeps_index() -> None:
    df = pd.DataFrame({"tp": [0, 5], "fp": [0, 1], "fn": [0, 4]}, index=["a", "b"])
    out = iou_from_counts(df["tp"], df["fp"], df["fn"], empty=np.nan)
    assert isinstance(out, pd.Series) and list(out.index) == ["a", "b"]
    assert np.isnan(out["a"]) and out["b"] == 0.5
    assert dice_from_counts(df["tp"], df["fp"], df["fn"])["a"] == 1.0


def test_from_counts_scalars() -> None:
    assert dice_from_counts(1, 0, 0) == 1.0 and iou_from_counts(0, 0, 0) == 1.0
    assert isinstance(dice_from_counts(np.int64(2), 1, 1), float)


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize("fn", [counts, dice, iou, hausdorff, hd95, hd95_pooled, image_metrics])
def test_rejects_shape_mismatch(fn: Callable) -> None:
    with pytest.raises(ValueError, match=r"ref \(4, 4\) and pred \(4, 5\)"):
        fn(np.zeros((4, 4), bool), np.zeros((4, 5), bool))


def test_rejects_non_2d_and_non_bool() -> None:
    with pytest.raises(ValueError, match=r"ref \(2, 4, 4\) and pred \(2, 4, 4\)"):
        image_metrics(np.zeros((2, 4, 4), bool), np.zeros((2, 4, 4), bool))
    with pytest.raises(ValueError, match="pred must have dtype bool.*uint8"):
        image_metrics(np.zeros((4, 4), bool), np.zeros((4, 4), np.uint8))
    with pytest.raises(TypeError, match="ref must be a numpy bool array, got list"):
        hausdorff([[True]], np.zeros((1, 1), bool))


# ----------------------------------------------------------------------------- optional libraries


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_hd95_equals_monai() -> None:
    torch = pytest.importorskip("torch")
    monai_metrics = pytest.importorskip("monai.metrics")
    for kind in ("border", "rings", "speckle"):
        for a, b in random_pairs(kind, 4, seed=21):
            y, yp = (torch.from_numpy(m[None, None].astype(np.float32)) for m in (a, b))
            theirs = float(monai_metrics.compute_hausdorff_distance(yp, y, include_background=True, percentile=95))
            assert hd95(a, b) == pytest.approx(theirs, rel=1e-5)  # MONAI interpolates in float32


def test_hd95_pooled_equals_medpy() -> None:
    binary = pytest.importorskip("medpy.metric.binary")
    for a, b in random_pairs("blobs", 4, seed=5):
        assert hd95_pooled(a, b) == binary.hd95(b, a)


def test_every_part_reads_the_metric_list_and_direction_from_one_entry() -> None:
    """Adding a metric is one entry in ``METRIC_LABELS``: the CLI choices, the stored-row check and
    the drift check read ``METRICS``; the direction comes from the entry, not from the name."""
    from bench import check
    from bench.cli import build_parser
    from bench.metrics import METRIC_LABELS, METRICS, MetricLabel, higher_is_better
    from bench.results import store

    assert METRICS == tuple(METRIC_LABELS) == ("dice", "iou", "hd", "hd95")
    assert check.METRICS is METRICS and store.METRICS is METRICS
    for command in ("ttest", "figure"):
        args = build_parser().parse_args([command, "--dataset", "x", "--metric", "hd95"])
        assert args.metric == "hd95"
    assert [higher_is_better(m) for m in METRICS] == [True, True, False, False]
    assert not higher_is_better("hd95_pooled") and higher_is_better("dice_excl")
    METRIC_LABELS["hausdorff_like"] = MetricLabel("X", "X", "X (pixels)", 2, higher_is_better=False)
    try:
        assert not higher_is_better("hausdorff_like")
    finally:
        del METRIC_LABELS["hausdorff_like"]
