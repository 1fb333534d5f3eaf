"""How much do two runs of the same sweep differ, image by image? For judging a numerics change.

    python benchmarks/compare_numerics.py REFERENCE OTHER [OTHER ...] [--split test]

REFERENCE and each OTHER are results folders of the same ``bench run`` (the same datasets, networks and
folds, one seed each) made with different numerics (another precision, thread count or machine) or
another seed. The test images of every (dataset, network, fold) are paired by case, and for each OTHER
the script prints:

- how many images changed at all (any pixel count differs), and the median and 95th percentile of the
  absolute per-image change in Dice, IoU and HD95;
- the largest change of a (dataset, network) mean Dice, the figure a Table 5 reader sees;
- a Wilcoxon signed-rank test of the per-image Dice over all pairs (``scipy.stats.wilcoxon``): does
  the change shift the results in one direction, or only scatter them?

A numerics change "keeps the meaning" of the numbers when it moves them no more than a change known to
be harmless does: run the reference again with the change, with ``--set threads=2`` (the same fp32
arithmetic on another thread count, as another machine would run it) and with ``--seeds 1`` (another
initialisation and batch order: the spread any single run has), and compare the lines.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from bench.results import store

KEYS = ["dataset", "arch", "fold", "split", "case_id"]
COUNTS = ["tp", "fp", "fn"]


def paired(reference: pd.DataFrame, other: pd.DataFrame) -> pd.DataFrame:
    """Rows of both folders joined on the image (``KEYS``); an error when they do not cover the same images."""
    merged = reference.merge(other, on=KEYS, suffixes=("_ref", "_new"), validate="one_to_one")
    if len(merged) != len(reference) or len(merged) != len(other):
        raise SystemExit(
            f"the folders do not hold the same images: {len(reference)} / {len(other)} rows, {len(merged)} paired"
        )
    return merged


def summary(pairs: pd.DataFrame) -> dict[str, object]:
    changed = np.zeros(len(pairs), dtype=bool)
    for c in COUNTS:
        changed |= pairs[f"{c}_ref"].to_numpy() != pairs[f"{c}_new"].to_numpy()
    out: dict[str, object] = {"images": len(pairs), "changed": int(changed.sum())}
    for m in ("dice", "iou", "hd95"):
        d = (pairs[f"{m}_new"] - pairs[f"{m}_ref"]).abs().dropna()
        out[f"{m} median |d|"] = float(d.median())
        out[f"{m} p95 |d|"] = float(d.quantile(0.95))
    means = pairs.groupby(["dataset", "arch"])[["dice_ref", "dice_new"]].mean()
    out["largest table-5 mean Dice change"] = float((means["dice_new"] - means["dice_ref"]).abs().max())
    out["mean Dice change"] = float((pairs["dice_new"] - pairs["dice_ref"]).mean())
    diff = (pairs["dice_new"] - pairs["dice_ref"]).dropna()
    out["Wilcoxon p"] = float(stats.wilcoxon(diff[diff != 0]).pvalue) if (diff != 0).sum() > 0 else 1.0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reference", type=Path)
    parser.add_argument("others", type=Path, nargs="+")
    parser.add_argument("--split", default="test", help="which scored split to compare (default: test)")
    args = parser.parse_args()
    ref = store.load_all(args.reference)
    ref = ref[ref["split"] == args.split]
    lines = []
    for other in args.others:
        new = store.load_all(other)
        lines.append({"folder": str(other), **summary(paired(ref, new[new["split"] == args.split]))})
    print(f"# reference: {args.reference}; split: {args.split}")
    print("| | " + " | ".join(line["folder"] for line in lines) + " |")
    print("|---|" + "---:|" * len(lines))
    for field in lines[0]:
        if field != "folder":
            print(f"| {field} | " + " | ".join(f"{line[field]:.4g}" for line in lines) + " |")


if __name__ == "__main__":
    main()
