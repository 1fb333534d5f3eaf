"""A tiny two-job sweep (U-Net on the synthetic DSB stand-in, folds 0 and 1, 1 epoch, 32 px, width 4,
depth 3) and its per-image table, shared by the engine, SLURM and status tests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.config import Job, load_profile
from bench.results import store
from bench.run.plan import plan, select

TINY_SETTINGS = {"epochs": "1", "image_size": "32", "width": "4", "depth": "3"}


def tiny_jobs(results: Path, archs: str = "unet", folds: tuple[int, ...] = (0, 1)) -> list[Job]:
    return plan(select(archs, "dsb2018", False, "holdout", folds), load_profile("quick", TINY_SETTINGS), results)


def per_image(results: Path) -> pd.DataFrame:
    """The per-image table, in a fixed order (what every engine must reproduce exactly)."""
    df = store.load_all(results)
    assert not df.empty, f"no finished jobs under {results}"
    return df.sort_values(["dataset", "arch", "fold", "split", "case_id"]).reset_index(drop=True)
