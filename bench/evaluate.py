"""Predict with a trained fold model and score every image (docs/conventions.md, "Per-image metrics").

Prediction = sigmoid(logits) > 0.5 (equivalently logits > 0), at the evaluation resolution (the
profile's image size; the paper's 256). One row per image with the raw counts, the empty flags and
``dice, iou, hd, hd95``; provenance columns are added by the runner.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from bench.metrics import image_metrics


@torch.no_grad()
def predict(model: nn.Module, images: Tensor, batch_size: int, device: str = "cpu") -> np.ndarray:
    """Foreground probabilities, N x H x W float32 (first output channel)."""
    model.eval().to(device)
    dtype = next(model.parameters()).dtype
    probs = [torch.sigmoid(model(images[i:i + batch_size].to(device, dtype)))[:, 0].float().cpu()
             for i in range(0, len(images), batch_size)]
    out = torch.cat(probs).numpy() if probs else np.zeros((0, *images.shape[-2:]), np.float32)
    require_finite(out, "model output")
    return out


#: Foreground where the probability is above this (sigmoid(logit) > 0.5, i.e. logit > 0).
THRESHOLD = 0.5


def score(probs: np.ndarray, masks: np.ndarray, case_ids: list[str], groups: list[str]) -> pd.DataFrame:
    """Per-image metric rows for predictions ``probs > THRESHOLD`` against boolean ``masks`` (N x H x W)."""
    rows = []
    for prob, ref, case_id, group in zip(probs, masks, case_ids, groups):
        rows.append({"case_id": case_id, "group": group, "eval_size": int(ref.shape[0]),
                     **image_metrics(ref.astype(bool), prob > THRESHOLD)})
    return pd.DataFrame(rows)


def save_predictions(path: Path, probs: np.ndarray, case_ids: list[str]) -> None:
    """Compressed predictions: probabilities quantised to uint8 (1/255 steps) plus the exact
    thresholded masks bit-packed, so figures and re-evaluation need no retraining. Written atomically
    (a uniquely named temporary file, then renamed); non-finite probabilities are refused."""
    from bench.store import atomic_write

    require_finite(probs, f"predictions for {path.name}")
    masks = probs > THRESHOLD
    atomic_write(path, lambda fh: np.savez_compressed(
        fh, case_ids=np.array(case_ids), prob_u8=np.rint(probs * 255).astype(np.uint8),
        mask_bits=np.packbits(masks, axis=-1), shape=np.array(masks.shape)))


class NonFinitePrediction(ValueError):
    """A model produced NaN or infinite probabilities (a diverged or overflowing network)."""


def require_finite(probs: np.ndarray, what: str) -> None:
    """Raise ``NonFinitePrediction`` if any probability in ``probs`` (N x H x W) is NaN or infinite."""
    bad = ~np.isfinite(probs)
    if bad.any():
        images = int(bad.reshape(len(bad), -1).any(axis=1).sum()) if bad.ndim > 1 else int(bad.any())
        raise NonFinitePrediction(f"{what}: {int(bad.sum())} non-finite probabilities (NaN/inf) in {images} of "
                                  f"{len(probs)} images; the network's output is not a valid prediction")


def load_predictions(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(case_ids, probabilities N x H x W float32, masks N x H x W bool) saved by ``save_predictions``."""
    with np.load(path) as z:
        shape = tuple(z["shape"])
        masks = np.unpackbits(z["mask_bits"], axis=-1, count=shape[-1]).astype(bool)
        return list(z["case_ids"]), z["prob_u8"].astype(np.float32) / 255, masks
