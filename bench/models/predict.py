"""Predict with stored fold models at each image's native size (``bench predict``, native-resolution scoring).

One image goes through the preprocessing its checkpoint records (``bench.results.checkpoint.Preprocessing``),
the same functions training used (``bench.datasets.prepare``):

- whole-image datasets: resize to S x S (bilinear), min-max normalise, predict;
- patch-based datasets: resize the source by ``S / (patch_size * native_scale)``, min-max normalise
  over the whole resized source, cut S x S tiles with training's step (``S - padding``) plus one last
  tile flush with the bottom / right edge so every pixel is covered, predict each tile and average the
  probabilities where tiles overlap (the reassembly).

The foreground probability is then resized back to the native H x W (bilinear) and thresholded at
the checkpoint's threshold (0.5). An ensemble averages the native-size probabilities of its models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from bench.datasets.prepare import normalize, patch_geometry, patch_offsets, resize_image
from bench.errors import InvalidInput
from bench.models.mask_io import find_images, read_input, write_masks
from bench.results.checkpoint import CheckpointError, CheckpointMeta, Preprocessing, load_model
from bench.run.evaluate import predict as predict_batches


@dataclass(frozen=True)
class Tiling:
    """Where the network input comes from: the resized source ``shape`` (H, W) and tile origins."""

    shape: tuple[int, int]
    ys: tuple[int, ...]
    xs: tuple[int, ...]
    size: int

    @property
    def origins(self) -> list[tuple[int, int]]:
        """Tile (y, x) origins, row-major (the order of ``prepare``'s patch ids)."""
        return [(y, x) for y in self.ys for x in self.xs]


def covering_offsets(length: int, size: int, step: int) -> list[int]:
    """Training's patch offsets along one axis plus a last one at ``length - size`` if pixels remain."""
    offsets = patch_offsets(length, size, step)
    if offsets and offsets[-1] + size < length:
        offsets.append(length - size)
    return offsets


def tiling(native_shape: tuple[int, int], prep: Preprocessing) -> Tiling:
    """The resized shape and tiles for an image of ``native_shape`` (H, W); one tile when not patched."""
    size = prep.image_size
    if not prep.patched:
        return Tiling((size, size), (0,), (0,), size)
    shape, step = patch_geometry(
        native_shape, size, int(prep.patch_size), int(prep.patch_padding or 0), prep.native_scale
    )
    ys, xs = covering_offsets(shape[0], size, step), covering_offsets(shape[1], size, step)
    if not ys or not xs:
        raise InvalidInput(
            f"an image of {native_shape[1]}x{native_shape[0]} (W x H) resized to {shape[1]}x{shape[0]} "
            f"is smaller than one {size} px tile"
        )
    return Tiling(shape, tuple(ys), tuple(xs), size)


def network_input(image: np.ndarray, prep: Preprocessing) -> tuple[np.ndarray, Tiling]:
    """(tiles N x C x S x S float32 in [0, 1], tiling) of one H x W x C uint8 image."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != prep.channels:
        raise InvalidInput(f"expected an H x W x {prep.channels} uint8 image, got {image.dtype} {image.shape}")
    if prep.normalization != "minmax_per_source":
        raise CheckpointError(f"unknown normalisation {prep.normalization!r} in the checkpoint")
    tiles = tiling(image.shape[:2], prep)
    resized = resize_image(image, tiles.shape).transpose(2, 0, 1)
    s = tiles.size
    crops = np.stack([resized[:, y : y + s, x : x + s] for y, x in tiles.origins])
    lo = np.full(len(crops), resized.min(), np.float32)
    hi = np.full(len(crops), resized.max(), np.float32)
    return normalize(crops, lo, hi), tiles


def reassemble(probs: np.ndarray, tiles: Tiling) -> np.ndarray:
    """Mean of the tile probabilities (N x S x S) over the resized source (H x W); every pixel covered."""
    total = np.zeros(tiles.shape, np.float64)
    count = np.zeros(tiles.shape, np.float64)
    s = tiles.size
    for prob, (y, x) in zip(probs, tiles.origins):
        total[y : y + s, x : x + s] += prob
        count[y : y + s, x : x + s] += 1
    if (count == 0).any():
        raise RuntimeError("tiling leaves pixels uncovered (a bug in covering_offsets)")
    return (total / count).astype(np.float32)


def to_native(prob: np.ndarray, native_shape: tuple[int, int]) -> np.ndarray:
    """Probability map resized (bilinear) to ``native_shape`` (H, W); unchanged when it already fits."""
    h, w = native_shape
    if prob.shape == (h, w):
        return prob
    return cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)


def native_probability(
    models: Sequence[nn.Module], image: np.ndarray, prep: Preprocessing, batch_size: int = 4, device: str = "cpu"
) -> np.ndarray:
    """Foreground probability H x W float32 of one native image: mean over ``models`` (an ensemble)."""
    x, tiles = network_input(image, prep)
    xt = torch.from_numpy(x)
    probs = [to_native(reassemble(predict_batches(m, xt, batch_size, device), tiles), image.shape[:2]) for m in models]
    return np.mean(probs, axis=0).astype(np.float32) if len(probs) > 1 else probs[0]


def load_models(paths: Sequence[Path], arch: str | None = None) -> tuple[list[nn.Module], list[CheckpointMeta]]:
    """The fold models of ``paths``; refuses models whose preprocessing differs (they cannot be ensembled)."""
    loaded = [load_model(p, arch) for p in paths]
    models, metas = [m for m, _ in loaded], [meta for _, meta in loaded]
    for path, meta in zip(paths[1:], metas[1:]):
        if meta.preprocessing != metas[0].preprocessing or meta.threshold != metas[0].threshold:
            raise CheckpointError(
                f"{path}: preprocessing {meta.preprocessing} differs from {paths[0]}'s "
                f"{metas[0].preprocessing}; these models cannot share one prediction"
            )
    return models, metas


@dataclass(frozen=True)
class PredictRequest:
    """What ``bench predict`` does: models of (dataset, arch[, folds]) from ``results`` on ``images``."""

    results: Path
    dataset: str
    arch: str
    images: Path
    out: Path
    folds: tuple[int, ...] | None = None
    protocol: str | None = None
    profile: str | None = None
    ensemble: bool = False
    batch_size: int = 4
    device: str = "cpu"
    include_untrained: bool = False  # ensemble fold models flagged "did not learn" too


def predict_folder(req: PredictRequest) -> dict[str, list[Path]]:
    """Write one mask per input image and model under ``out/<fold<k>>/`` (and ``out/ensemble/``: the mean
    probability of the fold models, with ``ensemble``). Returns the files written per output folder.
    Masks are written file by file (all pages of a TIFF stack together), so memory holds one input file.
    Fold models flagged "did not learn" (their sidecar's ``learning``) are left out of the ensemble with a
    warning naming them, unless ``include_untrained``; their own masks are still written under their name."""
    from itertools import groupby

    from bench.results.stored import stored_models

    chosen = stored_models(
        req.results, req.dataset, req.arch, protocol=req.protocol, folds=req.folds, profile=req.profile
    )
    models, metas = load_models([m.checkpoint for m in chosen], req.arch)
    prep, threshold = metas[0].preprocessing, metas[0].threshold
    names = [m.name for m in chosen] + (["ensemble"] if req.ensemble else [])
    members = ensemble_members(chosen, req.include_untrained) if req.ensemble else []
    written: dict[str, list[Path]] = {name: [] for name in names}
    for _, group in groupby(find_images(req.images, req.dataset), key=lambda item: item.path):
        items = list(group)
        masks: dict[str, list[np.ndarray]] = {name: [] for name in names}
        for item in items:
            image = read_input(item, prep.channels)
            probs = [native_probability([m], image, prep, req.batch_size, req.device) for m in models]
            for name, prob in zip(names, probs):
                masks[name].append(prob > threshold)
            if req.ensemble:
                masks["ensemble"].append(np.mean([probs[i] for i in members], axis=0) > threshold)
        for name in names:
            written[name] += write_masks(Path(req.out) / name, req.dataset, items, masks[name])
    return written


def ensemble_members(chosen: Sequence[Any], include_untrained: bool = False) -> list[int]:
    """Positions in ``chosen`` (stored models) of the fold models the ensemble averages: those that learned
    (or every one with ``include_untrained``); a warning names the ones left out, and an ensemble of
    nothing is refused."""
    import warnings

    from bench.analysis.stats import AnalysisWarning
    from bench.results.store import read_sidecar

    flagged = [
        i for i, m in enumerate(chosen) if ((read_sidecar(m.sidecar) or {}).get("learning") or {}).get("did_not_learn")
    ]
    if include_untrained or not flagged:
        return list(range(len(chosen)))
    names = ", ".join(chosen[i].name for i in flagged)
    if len(flagged) == len(chosen):
        raise InvalidInput(
            f"every fold model ({names}) did not learn (`bench report --table learning` says why): no ensemble; "
            "pass --include-untrained to average them anyway"
        )
    warnings.warn(
        f"{names} did not learn (`bench report --table learning`): left out of the ensemble "
        "(--include-untrained keeps them)",
        AnalysisWarning,
        stacklevel=2,
    )
    return [i for i in range(len(chosen)) if i not in flagged]
