"""A job's stored predictions (``<stem>.pred.npz``): probabilities quantised to uint8 and the exact
thresholded masks bit-packed, written atomically and read back for figures and re-scoring."""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO

import numpy as np

from bench.metrics import THRESHOLD


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
