"""Which reading of the MLDR block trains? The readings of MILDNet side by side with the residual baselines.

    python benchmarks/mildnet_readings.py --data-root DATA --results OUT [--sizes 64] [--seeds 0,1]
        [--epochs 40] [--width 16] [--archs mildnet_p2,mildnet_p1,...] [--jobs 2]
    python benchmarks/mildnet_readings.py --results OUT --summary-only

Every configuration is an ordinary ``bench run`` (quick profile, holdout protocol, fold 0, the paper's
recipe) with ``--set image_size=S --set width=W --set epochs=E``: the real DSB-2018 and ISIC-2018 samples
under DATA and the synthetic LGG stand-in. Per (dataset, image size, network) over the seeds, it prints:

- ``epoch-1 loss``: the selection loss after the first epoch (epoch 0 of the history);
- ``epochs to floor``: the first epoch whose selection loss (per-pixel BCE on the validation fold) is below
  the BCE of the best constant prediction there (the entropy of the fold's foreground fraction), the mean
  over the seeds that got there, and how many did;
- ``val Dice``: the mean over seeds of each fold model's mean validation Dice, with a t-based 95% CI over
  the seeds (wide at 2-3 seeds: it is the spread of training, not of images);
- ``did not learn``: fold models flagged by the runner (``docs/conventions.md``), of all.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from bench.results import store

REAL = ("dsb2018", "isic2018")
SYNTHETIC = ("lgg_mri",)
ARCHS = (
    "mildnet_p2",
    "mildnet_p1",
    "mildnet_pq",
    "mildnet_p2_preact",
    "mildnet_p1_preact",
    "mildnet_pq_preact",
    "residual_unet",
    "resdunet",
)


def run(args: argparse.Namespace, size: int) -> None:
    """One ``bench run`` per data source at image size ``size``; finished jobs are skipped on a rerun."""
    common = [
        "--arch", args.archs, "--protocol", "holdout", "--folds", "0", "--seeds", args.seeds,
        "--results", str(args.results), "--jobs", str(args.jobs),
        "--set", f"image_size={size}", "--set", f"width={args.width}", "--set", f"epochs={args.epochs}",
    ]  # fmt: skip
    calls = [["--dataset", ",".join(SYNTHETIC)]]
    if args.data_root:
        calls.insert(0, ["--dataset", ",".join(REAL), "--data-root", str(args.data_root)])
    for call in calls:
        subprocess.run([sys.executable, "-m", "bench.cli", "run", *call, *common], check=True)


def entropy(p: float) -> float:
    """BCE (nats per pixel) of predicting the constant ``p`` for pixels whose foreground fraction is ``p``."""
    return 0.0 if p <= 0 or p >= 1 else -(p * math.log(p) + (1 - p) * math.log(1 - p))


def per_model(results: Path) -> pd.DataFrame:
    """One row per finished fold model: dataset, source, size, arch, seed, epoch-1 loss, epochs to floor,
    validation Dice, did-not-learn."""
    rows = store.load_all(results)
    val = rows[rows["split"] == "val"]
    out = []
    for side in store.sidecars(results):
        if side.get("status") != "ok":
            continue
        job = side["job"]
        mine = val[val["job_key"] == side.get("key")]
        if mine.empty:
            continue
        total = (mine["tp"] + mine["fp"] + mine["fn"] + mine["tn"]).sum()
        floor = entropy(float(mine["n_ref"].sum() / total))
        losses = [h["select_loss"] for h in side["history"]]
        below = [h["epoch"] for h in side["history"] if h["select_loss"] < floor]
        out.append(
            {
                "dataset": job["dataset"],
                "source": "real" if job.get("data_root") else "synthetic",
                "size": job["train"]["image_size"],
                "arch": job["arch"],
                "seed": job["seed"],
                "epoch1_loss": losses[0],
                "floor_loss": floor,
                "epochs_to_floor": below[0] + 1 if below else np.nan,
                "val_dice": float(mine["dice"].mean()),
                "did_not_learn": bool((side.get("learning") or {}).get("did_not_learn", False)),
            }
        )
    return pd.DataFrame(out)


def ci95(values: pd.Series) -> str:
    v = values.dropna().to_numpy(float)
    if len(v) < 2:
        return f"{v.mean():.3f}" if len(v) else "–"
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return f"{v.mean():.3f} [{v.mean() - half:.3f}, {v.mean() + half:.3f}]"


def summary(models: pd.DataFrame) -> pd.DataFrame:
    def one(g: pd.DataFrame) -> pd.Series:
        reached = g["epochs_to_floor"].dropna()
        return pd.Series(
            {
                "epoch-1 loss": f"{g['epoch1_loss'].mean():.3f}",
                "floor": f"{g['floor_loss'].mean():.3f}",
                "epochs to floor": f"{reached.mean():.1f} ({len(reached)}/{len(g)})"
                if len(reached)
                else f"– (0/{len(g)})",
                "val Dice (95% CI over seeds)": ci95(g["val_dice"]),
                "did not learn": f"{int(g['did_not_learn'].sum())}/{len(g)}",
            }
        )

    order = {a: i for i, a in enumerate(ARCHS)}
    models = models.assign(_o=models["arch"].map(order).fillna(len(order)))
    grouped = models.sort_values(["dataset", "size", "_o"]).groupby(["dataset", "source", "size", "arch"], sort=False)
    return grouped.apply(one, include_groups=False).reset_index()


def markdown(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(df.columns) + " |\n|" + "---|" * len(df.columns) + "\n"
    return head + "".join("| " + " | ".join(map(str, r)) + " |\n" for r in df.itertuples(index=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--data-root", type=Path)
    parser.add_argument("--sizes", default="64")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--archs", default=",".join(ARCHS))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--summary-only", action="store_true")
    args = parser.parse_args()
    if not args.summary_only:
        for size in (int(s) for s in args.sizes.split(",")):
            run(args, size)
    print(markdown(summary(per_model(args.results))))


if __name__ == "__main__":
    main()
