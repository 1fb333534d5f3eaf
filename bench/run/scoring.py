"""Per-image metric rows of thresholded predictions: what a job stores for each scored image.

numpy, pandas and ``bench.metrics`` only (no torch): ``bench check --layer scoring`` and ``bench evaluate``
re-score stored predictions with it, and ``bench.run.evaluate`` scores a model's batches as it predicts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bench.metrics import THRESHOLD, image_metrics


def score(probs: np.ndarray, masks: np.ndarray, case_ids: list[str], groups: list[str]) -> pd.DataFrame:
    """Per-image metric rows for predictions ``probs > THRESHOLD`` against boolean ``masks`` (N x H x W)."""
    return pd.DataFrame(score_rows(probs, masks, case_ids, groups))


def score_rows(probs: np.ndarray, masks: np.ndarray, case_ids: Sequence[str], groups: Sequence[str]) -> list[dict]:
    """The rows of ``score`` as dicts (one per image), to be gathered over batches and framed once."""
    return [
        {
            "case_id": case_id,
            "group": group,
            "eval_size": int(ref.shape[0]),
            **image_metrics(ref.astype(bool), prob > THRESHOLD),
        }
        for prob, ref, case_id, group in zip(probs, masks, case_ids, groups)
    ]
