"""The trivial floors: what a prediction of all foreground or all background scores on the same images
(the rows every table shows beside the networks, and the line a fold model must beat to have learned)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.errors import InvalidInput
from bench.metrics import dice_from_counts, iou_from_counts

FLOORS = ("all_foreground", "all_background")


def trivial_scores(g: pd.DataFrame, floor: str) -> dict[str, np.ndarray]:
    """Per-image dice/iou/hd/hd95 of a trivial prediction (``all_foreground`` / ``all_background``)."""
    n_ref = g["n_ref"].to_numpy(np.int64)
    total = (g["tp"] + g["fp"] + g["fn"] + g["tn"]).to_numpy(np.int64)
    diag = np.hypot(g["eval_size"].to_numpy(float), g["eval_size"].to_numpy(float))
    if "height" in g.columns and g["height"].notna().all():  # native-resolution rows: each image's own size
        diag = np.hypot(g["height"].to_numpy(float), g["width"].to_numpy(float))
    empty = n_ref == 0
    if floor == "all_foreground":
        tp, fp, fn = n_ref, total - n_ref, np.zeros_like(n_ref)
        hd = np.where(empty, diag, np.nan)
    elif floor == "all_background":
        tp, fp, fn = np.zeros_like(n_ref), np.zeros_like(n_ref), n_ref
        hd = np.where(empty, 0.0, diag)
    else:
        raise InvalidInput(f"floor must be one of {FLOORS}, got {floor!r}")
    return {"dice": dice_from_counts(tp, fp, fn), "iou": iou_from_counts(tp, fp, fn), "hd": hd, "hd95": hd}
