"""A tiny trained sweep for the picture tests (qualitative grids, saliency, report): U-Net and MILDNet on
the synthetic DSB stand-in, holdout fold 0, 2 epochs, 32 px, width 4, depth 3 (a few seconds on CPU)."""

from __future__ import annotations

from pathlib import Path

from bench.config import load_profile
from bench.run.plan import plan, select
from bench.run.runner import run_jobs

SETTINGS = {"epochs": "2", "image_size": "32", "width": "4", "depth": "3"}


def train_tiny(results: Path, archs: str = "unet,mildnet", folds: tuple[int, ...] = (0,)) -> Path:
    jobs = plan(select(archs, "dsb2018", False, "holdout", folds), load_profile("quick", SETTINGS), results)
    statuses = list(run_jobs(jobs, results, n_jobs=1, progress=False))
    assert all(s.status == "ok" for s in statuses), statuses
    return results
