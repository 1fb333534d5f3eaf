"""Predict with a trained fold model and score every image (docs/conventions.md, "Per-image metrics").

Prediction = sigmoid(logits) > 0.5 (equivalently logits > 0), at the evaluation resolution (the
profile's image size; the paper's 256). One row per image with the raw counts, the empty flags and
``dice, iou, hd, hd95``; provenance columns are added by the runner.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from bench.results.predictions import NonFinitePrediction, require_finite, write_predictions
from bench.results.store import atomic_write
from bench.run.scoring import score_rows


def predict_batches(
    model: nn.Module,
    images: Any,
    batch_size: int,
    device: str = "cpu",
    autocast: Callable[[], AbstractContextManager] | None = None,
) -> Iterator[np.ndarray]:
    """Foreground probabilities of ``images[i:i + batch_size]`` for i = 0, batch_size, ...: one
    B x H x W float32 array per batch (first output channel). ``images`` is a tensor N x C x H x W or
    anything sliced like one (``bench.run.execute.Rows``: rows gathered from the cache per batch).
    ``autocast``: the job's autocast context (``Precision.autocast``), entered around each forward pass;
    the sigmoid is taken in fp32 (or the model's fp64). Not checked for finiteness (callers do)."""
    model.eval().to(device)
    dtype = next(model.parameters()).dtype
    for i in range(0, len(images), batch_size):
        with torch.no_grad(), (autocast or nullcontext)():  # not around the yield: the caller's modes meanwhile
            logits = model(images[i : i + batch_size].to(device, dtype))
        if logits.dtype in (torch.float16, torch.bfloat16):  # autocast's output: the sigmoid in fp32
            logits = logits.float()
        yield torch.sigmoid(logits)[:, 0].float().cpu().numpy()


def predict(model: nn.Module, images: Tensor, batch_size: int, device: str = "cpu") -> np.ndarray:
    """Foreground probabilities, N x H x W float32 (first output channel)."""
    probs = list(predict_batches(model, images, batch_size, device))
    out = np.concatenate(probs) if probs else np.zeros((0, *images.shape[-2:]), np.float32)
    require_finite(out, "model output")
    return out


@dataclass(frozen=True)
class Part:
    """One scored split of a job (``val`` or ``test``): its images (N x C x S x S) and reference
    masks (N x S x S or N x 1 x S x S, any numeric type: foreground where > 0.5), each a tensor or
    anything sliced like one (``bench.run.execute.Rows``), and the case ids and groups of the N rows."""

    split: str
    images: Any
    masks: Any
    case_ids: list[str]
    groups: list[str]


def _as_bool(masks: Any) -> np.ndarray:
    array = masks.numpy() if isinstance(masks, Tensor) else np.asarray(masks)
    array = array[:, 0] if array.ndim == 4 else array
    return array if array.dtype == bool else array > 0.5


def predict_and_score(
    model: nn.Module,
    parts: Sequence[Part],
    batch_size: int,
    device: str = "cpu",
    predictions: Path | None = None,
    autocast: Callable[[], AbstractContextManager] | None = None,
) -> tuple[pd.DataFrame, float]:
    """Per-image rows (``score`` plus a ``split`` column) of every part, in order, and the seconds the
    model's forward passes took (wall). Batch by batch: each batch is predicted, scored and appended to
    the ``predictions`` file (``write_predictions``, written atomically; every part in one file) before
    the next is gathered, so no whole split of probabilities is held. The rows are exactly those of
    ``score(predict(...))`` on each whole split. A part with non-finite probabilities raises
    ``NonFinitePrediction`` (counts over that part) and no predictions file is written."""

    if not parts:
        raise ValueError("predict_and_score: no images to score (every part is empty)")
    frames: list[pd.DataFrame] = []
    seconds = [0.0]

    def batches() -> Iterator[np.ndarray]:
        for part in parts:
            rows, bad, bad_images, start = [], 0, 0, 0
            forward = predict_batches(model, part.images, batch_size, device, autocast)
            while True:
                t0 = time.perf_counter()
                probs = next(forward, None)
                seconds[0] += time.perf_counter() - t0
                if probs is None:
                    break
                stop = start + len(probs)
                finite = np.isfinite(probs)
                if not finite.all():
                    bad += int((~finite).sum())
                    bad_images += int((~finite).reshape(len(probs), -1).any(axis=1).sum())
                elif not bad:
                    rows += score_rows(
                        probs, _as_bool(part.masks[start:stop]), part.case_ids[start:stop], part.groups[start:stop]
                    )
                    yield probs
                start = stop
            if bad:
                raise NonFinitePrediction(
                    f"model output: {bad} non-finite probabilities (NaN/inf) in {bad_images} of "
                    f"{len(part.case_ids)} images; the network's output is not a valid prediction"
                )
            if start != len(part.case_ids):
                raise ValueError(f"{part.split}: {start} predictions for {len(part.case_ids)} case ids")
            if rows:
                frames.append(pd.DataFrame(rows).assign(split=part.split))

    ids = [case for part in parts for case in part.case_ids]
    shape = (len(ids), *parts[0].images.shape[-2:])
    if predictions is None:
        for _ in batches():
            pass
    else:
        atomic_write(predictions, lambda fh: write_predictions(fh, ids, shape, batches()))
    return pd.concat(frames, ignore_index=True), seconds[0]
