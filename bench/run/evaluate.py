"""Predict with a trained fold model and score every image (docs/conventions.md, "Per-image metrics").

Prediction = sigmoid(logits) > 0.5 (equivalently logits > 0), at the evaluation resolution (the
profile's image size; the paper's 256). One row per image with the raw counts, the empty flags and
``dice, iou, hd, hd95``; provenance columns are added by the runner.
"""

from __future__ import annotations

import time
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from bench.metrics import image_metrics


def predict_batches(model: nn.Module, images: Any, batch_size: int, device: str = "cpu") -> Iterator[np.ndarray]:
    """Foreground probabilities of ``images[i:i + batch_size]`` for i = 0, batch_size, ...: one
    B x H x W float32 array per batch (first output channel). ``images`` is a tensor N x C x H x W or
    anything sliced like one (``bench.run.execute.Rows``: rows gathered from the cache per batch). Not
    checked for finiteness (callers do)."""
    model.eval().to(device)
    dtype = next(model.parameters()).dtype
    for i in range(0, len(images), batch_size):
        with torch.no_grad():  # not around the yield: the caller runs with its own grad mode meanwhile
            probs = torch.sigmoid(model(images[i : i + batch_size].to(device, dtype)))[:, 0].float().cpu().numpy()
        yield probs


def predict(model: nn.Module, images: Tensor, batch_size: int, device: str = "cpu") -> np.ndarray:
    """Foreground probabilities, N x H x W float32 (first output channel)."""
    probs = list(predict_batches(model, images, batch_size, device))
    out = np.concatenate(probs) if probs else np.zeros((0, *images.shape[-2:]), np.float32)
    require_finite(out, "model output")
    return out


#: Foreground where the probability is above this (sigmoid(logit) > 0.5, i.e. logit > 0).
THRESHOLD = 0.5


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


def save_predictions(path: Path, probs: np.ndarray, case_ids: list[str]) -> None:
    """Compressed predictions: probabilities quantised to uint8 (1/255 steps) plus the exact
    thresholded masks bit-packed, so figures and re-evaluation need no retraining. Written atomically
    (a uniquely named temporary file, then renamed); non-finite probabilities are refused."""
    from bench.results.store import atomic_write

    require_finite(probs, f"predictions for {path.name}")
    atomic_write(path, lambda fh: write_predictions(fh, case_ids, probs.shape, [probs]))


def quantise(probs: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Probabilities as uint8 in 1/255 steps (``rint(p * 255)``), kept on the masks' side of the
    threshold so that ``u8 / 255 > THRESHOLD`` exactly where ``masks`` (``probs > THRESHOLD``) is
    foreground: re-scoring the stored probabilities gives the stored rows. (Only a probability of
    exactly 0.5, an untrained network's sigmoid of a logit near 0, would round up to 128 > 127.5.)"""
    u8 = np.rint(probs * 255).astype(np.uint8)
    cap = int(np.floor(THRESHOLD * 255))
    u8[~masks & (u8 > cap)] = cap
    return u8


def _put(archive: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
    with archive.open(f"{name}.npy", "w") as member:
        np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def write_predictions(
    fh: IO[bytes], case_ids: Sequence[str], shape: tuple[int, ...], batches: Iterable[np.ndarray]
) -> None:
    """The ``.pred.npz`` of ``save_predictions`` (the same arrays: ``case_ids``, ``shape``,
    ``prob_u8``, ``mask_bits``; read by ``load_predictions`` / ``np.load``), written into ``fh`` from
    ``batches`` of probabilities (B x H x W float32, in ``case_ids`` order, N = ``shape[0]`` rows in
    all) as they come: the quantised probabilities stream into the archive, and only the bit-packed
    masks (1/32 of the float32 size) are held until the end. Values are not checked for finiteness."""
    n, h, w = (int(v) for v in shape)
    if len(case_ids) != n:
        raise ValueError(f"{len(case_ids)} case ids for {n} predictions")
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False, "shape": (n, h, w)}
    bits, done = [], 0
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        _put(archive, "case_ids", np.array(list(case_ids)))
        _put(archive, "shape", np.array((n, h, w)))
        with archive.open("prob_u8.npy", "w", force_zip64=n * h * w > (1 << 31) - (1 << 20)) as member:
            np.lib.format.write_array_header_1_0(member, header)
            for probs in batches:
                if probs.shape[1:] != (h, w) or done + len(probs) > n:
                    raise ValueError(f"predictions batch {probs.shape} does not fit {n} x {h} x {w} after {done} rows")
                masks = probs > THRESHOLD
                member.write(quantise(probs, masks).tobytes())
                bits.append(np.packbits(masks, axis=-1))
                done += len(probs)
        if done != n:
            raise ValueError(f"{done} predictions written, expected {n}")
        _put(archive, "mask_bits", np.concatenate(bits) if bits else np.zeros((0, h, (w + 7) // 8), np.uint8))


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
    model: nn.Module, parts: Sequence[Part], batch_size: int, device: str = "cpu", predictions: Path | None = None
) -> tuple[pd.DataFrame, float]:
    """Per-image rows (``score`` plus a ``split`` column) of every part, in order, and the seconds the
    model's forward passes took (wall). Batch by batch: each batch is predicted, scored and appended to
    the ``predictions`` file (``write_predictions``, written atomically; every part in one file) before
    the next is gathered, so no whole split of probabilities is held. The rows are exactly those of
    ``score(predict(...))`` on each whole split. A part with non-finite probabilities raises
    ``NonFinitePrediction`` (counts over that part) and no predictions file is written."""
    from bench.results.store import atomic_write

    if not parts:
        raise ValueError("predict_and_score: no images to score (every part is empty)")
    frames: list[pd.DataFrame] = []
    seconds = [0.0]

    def batches() -> Iterator[np.ndarray]:
        for part in parts:
            rows, bad, bad_images, start = [], 0, 0, 0
            forward = predict_batches(model, part.images, batch_size, device)
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


class NonFinitePrediction(ValueError):
    """A model produced NaN or infinite probabilities (a diverged or overflowing network)."""


def require_finite(probs: np.ndarray, what: str) -> None:
    """Raise ``NonFinitePrediction`` if any probability in ``probs`` (N x H x W) is NaN or infinite."""
    bad = ~np.isfinite(probs)
    if bad.any():
        images = int(bad.reshape(len(bad), -1).any(axis=1).sum()) if bad.ndim > 1 else int(bad.any())
        raise NonFinitePrediction(
            f"{what}: {int(bad.sum())} non-finite probabilities (NaN/inf) in {images} of "
            f"{len(probs)} images; the network's output is not a valid prediction"
        )


def load_predictions(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(case_ids, probabilities N x H x W float32, masks N x H x W bool) saved by ``save_predictions``."""
    with np.load(path) as z:
        shape = tuple(z["shape"])
        masks = np.unpackbits(z["mask_bits"], axis=-1, count=shape[-1]).astype(bool)
        return list(z["case_ids"]), z["prob_u8"].astype(np.float32) / 255, masks
