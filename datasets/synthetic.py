"""Synthetic stand-ins for every registered dataset (no download needed).

The stand-in takes its name, display name, modality, channels and patching from the dataset's registry
entry (``bench.datasets.dataset_info``) and its image size from the dataset's ``native_shape()``. The
paper's five datasets have their own generator that mimics what makes the real modality hard
(docs/datasets.md):
ISBI-2012-like EM membranes (foreground = cell interior, about 78 % of pixels, faint membranes and
dark organelles inside cells); LGG-like 3-sequence MRI slices grouped by patient with about 60 %
empty masks and bright non-tumour spots; DSB-like small nuclei with bright (fluorescence) or dark
(bright-field) outlier particles that are *not* foreground; ISIC-like lesions with irregular, fuzzy
borders, uneven lighting, vignetting and hairs; GlaS-like gland rings (epithelium + lumen) on stained
stroma with lumen-like tears that are not glands. Any other dataset gets ``_generic``: one to four
irregular blobs on a smooth textured background, in the dataset's channels.

Images have the real majority size scaled by ``size / 256`` (``native_scale``): at ``size=256`` an
ISBI-like source is 512 x 512 like the real one, at the default 128 it is 256 x 256. Everything is
deterministic in (dataset id, seed, image index) through ``numpy.random.default_rng(zlib.crc32(...))``.
``SyntheticDataset`` is created by ``bench.datasets.open_dataset(name)`` (root None); it is not in the
registry.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from bench.datasets import dataset_info
from bench.datasets.base import Case, SegDataset
from bench.errors import InvalidInput

#: Bump when a generator changes its pixels (part of the data fingerprint).
SYNTH_VERSION = 2

Generated = tuple[np.ndarray, np.ndarray]  # (H x W x C float32 in [0, 1], H x W bool)


#: Images per stand-in by default (source images for the patch-based ones); a dataset not listed gets 32.
DEFAULT_N: dict[str, int] = {"isbi2012": 10, "isic2018": 32, "lgg_mri": 40, "glas2015": 8, "dsb2018": 32}


def _rng(*parts: object) -> np.random.Generator:
    """A generator seeded from the parts' text through crc32 (stable across processes; never ``hash()``)."""
    return np.random.default_rng(zlib.crc32("/".join(map(str, parts)).encode()))


def _field(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Smooth random field (about unit variance): a coarse normal grid, bicubic-upsampled to ``shape``."""
    h, w = shape
    grid = rng.standard_normal((cells, max(2, round(cells * w / h)))).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def _blob(
    rng: np.random.Generator,
    shape: tuple[int, int],
    center: tuple[float, float],
    radius: float,
    roughness: float,
    harmonics: int = 7,
) -> np.ndarray:
    """Star-shaped blob mask: r(theta) = radius * (1 + sum_k a_k cos(k theta + phi_k)), a_k ~ N(0, roughness/k)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dy, dx = yy - center[0], xx - center[1]
    theta = np.arctan2(dy, dx)
    k = np.arange(1, harmonics + 1, dtype=np.float32)
    amp = rng.normal(0.0, roughness, harmonics).astype(np.float32) / np.sqrt(k)
    phase = rng.uniform(0, 2 * np.pi, harmonics).astype(np.float32)
    boundary = radius * (1 + np.tensordot(amp, np.cos(k[:, None, None] * theta + phase[:, None, None]), axes=1))
    return np.hypot(dy, dx) <= np.maximum(boundary, 0.2 * radius)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0.05:
        return img
    out = cv2.GaussianBlur(img, (0, 0), sigma)
    return out.reshape(img.shape)


def _finish(rng: np.random.Generator, img: np.ndarray, noise: float, blur: float) -> np.ndarray:
    """Blur, add Gaussian noise (std ``noise`` on the 0..1 scale), clip; H x W x C float32."""
    img = _blur(img.astype(np.float32), blur)
    if img.ndim == 2:
        img = img[..., None]
    img = img + rng.normal(0.0, noise, img.shape).astype(np.float32)
    return np.clip(img, 0.0, 1.0)


def _dots(
    canvas: np.ndarray,
    rng: np.random.Generator,
    n: int,
    radius: tuple[float, float],
    value: Any,
    where: np.ndarray | None = None,
) -> None:
    """Draw ``n`` filled circles (in place), centres drawn uniformly or among True pixels of ``where``."""
    h, w = canvas.shape[:2]
    if where is not None:
        ys, xs = np.nonzero(where)
        if len(ys) == 0:
            return
        pick = rng.integers(0, len(ys), n)
        centres = np.stack([xs[pick], ys[pick]], axis=1)
    else:
        centres = np.stack([rng.integers(0, w, n), rng.integers(0, h, n)], axis=1)
    for (x, y), r in zip(centres, rng.uniform(*radius, n)):
        cv2.circle(canvas, (int(x), int(y)), max(1, round(r)), value, -1, lineType=cv2.LINE_AA)


# --------------------------------------------------------------------------------------------------
# Generators: (rng, shape, info) -> (image H x W x C float32 0..1, mask H x W bool)


def _isbi(rng: np.random.Generator, shape: tuple[int, int], info: dict[str, str]) -> Generated:
    """Voronoi cells with dark membranes of varying strength; foreground = cell interior (~78 %)."""
    h, w = shape
    s = h / 512
    n_cells = int(rng.integers(45, 75))
    pts = rng.uniform((0, 0), (h, w), (n_cells, 2))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    warp = 10 * s
    q = np.stack([(yy + warp * _field(rng, shape, 5)).ravel(), (xx + warp * _field(rng, shape, 5)).ravel()], 1)
    from scipy.spatial import cKDTree  # here: listing the datasets needs no scipy

    dist, idx = cKDTree(pts).query(q, k=2)
    gap = (dist[:, 1] - dist[:, 0]).reshape(shape).astype(np.float32)
    width = 5.5 * s * (1 + 0.25 * _field(rng, shape, 4))
    mask = gap >= width
    cell_tone = rng.normal(0.0, 0.06, n_cells).astype(np.float32)[idx[:, 0]].reshape(shape)
    img = 0.6 + cell_tone + 0.06 * _field(rng, shape, 24)
    strength = np.clip(0.32 + 0.16 * _field(rng, shape, 6), 0.06, 0.6)  # faint membranes where low
    img -= strength * np.exp(-0.5 * (gap / np.maximum(width * 0.6, 1.0)) ** 2)
    organelles = np.zeros(shape, np.float32)
    _dots(organelles, rng, int(rng.integers(25, 50)), (3 * s, 8 * s), 1.0, where=mask)
    img -= 0.28 * _blur(organelles, 1.5 * s)
    return _finish(rng, img, 0.07, 1.0 * s), mask


def _lgg(rng: np.random.Generator, shape: tuple[int, int], info: dict[str, str]) -> Generated:
    """Brain ellipse in 3 sequences; tumour (FLAIR-bright, diffuse border) only on slices marked so."""
    h, w = shape
    patient = _rng("lgg_mri-patient", info["seed"], info["patient"])
    t = float(info["position"])  # 0..1 through the patient's slices
    cy, cx = h * patient.uniform(0.46, 0.54), w * patient.uniform(0.46, 0.54)
    ry, rx = h * patient.uniform(0.34, 0.4) * (0.8 + 0.2 * np.sin(np.pi * (0.2 + 0.6 * t))), w * 0.3
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rr = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2) * (1 + 0.04 * _field(rng, shape, 5))
    brain = (rr < 1).astype(np.float32)
    skull = ((rr >= 1.04) & (rr < 1.14)).astype(np.float32)
    base = np.array([0.38, 0.34, 0.3], np.float32) * patient.uniform(0.85, 1.15, 3).astype(np.float32)
    tissue = 0.06 * _field(rng, shape, 12)[..., None] + 0.045 * np.stack([_field(rng, shape, 12) for _ in range(3)], -1)
    img = brain[..., None] * (base + tissue)
    img += skull[..., None] * np.array([0.55, 0.25, 0.5], np.float32)
    spots = np.zeros(shape, np.float32)  # hyperintense non-tumour spots (vessels, CSF) in FLAIR
    _dots(spots, rng, int(rng.integers(0, 3)), (2 * h / 256, 5 * h / 256), 1.0, where=rr < 0.85)
    img[..., 1] += 0.25 * _blur(spots, 2 * h / 256)
    mask = np.zeros(shape, bool)
    if info["tumour"] == "1":
        angle, dist = patient.uniform(0, 2 * np.pi), patient.uniform(0.1, 0.5)
        ty, tx = cy + dist * ry * np.sin(angle), cx + dist * rx * np.cos(angle)
        radius = h * patient.uniform(0.08, 0.16) * (0.6 + 0.4 * np.sin(np.pi * t))
        mask = _blob(patient, shape, (ty, tx), radius, 0.18) & (brain > 0)
        soft = _blur(mask.astype(np.float32), 3 * h / 256) * patient.uniform(0.75, 1.0)
        img += soft[..., None] * np.array([-0.08, 0.3, 0.12], np.float32)
    # Noise as it looks after resizing a 256 px slice to <= 128 px (halved below 128 px sources).
    return _finish(rng, img, 0.045 * min(1.0, h / 128), 0.6 * h / 256), mask


def _dsb(rng: np.random.Generator, shape: tuple[int, int], info: dict[str, str]) -> Generated:
    """Small nuclei of varying brightness; outlier particles (brighter / darker than nuclei) are background."""
    h, w = shape
    s = h / 256
    mask8 = np.zeros(shape, np.uint8)
    tone = np.zeros(shape, np.float32)
    for _ in range(int(rng.integers(10, 35))):
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (max(2, int(rng.uniform(5, 12) * s)), max(2, int(rng.uniform(4, 9) * s)))
        angle = float(rng.uniform(0, 180))
        cv2.ellipse(mask8, centre, axes, angle, 0, 360, 1, -1)
        cv2.ellipse(tone, centre, axes, angle, 0, 360, float(rng.uniform(0.22, 0.7)), -1)
    mask = mask8 > 0
    nuclei = _blur(np.clip(tone * (1 + 0.25 * _field(rng, shape, 30)), 0, 0.72), 1.2 * s)
    particles = np.zeros(shape, np.float32)
    _dots(particles, rng, int(rng.integers(3, 9)), (1.5 * s, 4 * s), 1.0, where=~mask)
    particles[mask] = 0
    background = 0.05 + 0.04 * _field(rng, shape, 4)
    if info["style"] == "fluorescence":
        grey = background + nuclei + 0.95 * particles
        img = np.repeat(grey[..., None], 3, axis=2)
    else:  # bright-field: light background, purple nuclei, dark debris
        light = np.array([0.86, 0.8, 0.88], np.float32) - background[..., None]
        img = light - nuclei[..., None] * np.array([0.6, 0.9, 0.5], np.float32) - 0.75 * particles[..., None]
    return _finish(rng, img, 0.035, 0.4 * s), mask


def _isic(rng: np.random.Generator, shape: tuple[int, int], info: dict[str, str]) -> Generated:
    """One brown lesion with irregular, partly fuzzy border on skin with uneven lighting, vignette, hairs."""
    h, w = shape
    s = h / 767
    skin = np.array([0.86, 0.66, 0.56], np.float32) * rng.uniform(0.85, 1.1, 3).astype(np.float32)
    img = skin * (1 + 0.05 * _field(rng, shape, 20))[..., None]
    centre = (h * rng.uniform(0.35, 0.65), w * rng.uniform(0.35, 0.65))
    mask = _blob(rng, shape, centre, min(h, w) * rng.uniform(0.14, 0.3), rng.uniform(0.12, 0.26))
    colour = np.array([0.45, 0.28, 0.2], np.float32) * rng.uniform(0.7, 1.2, 3).astype(np.float32)
    alpha = _blur(mask.astype(np.float32), rng.uniform(4, 16) * s) * np.clip(
        0.75 + 0.3 * _field(rng, shape, 10), 0.35, 1
    )
    lesion = colour * (1 + 0.25 * _field(rng, shape, 16))[..., None]
    img = img * (1 - alpha[..., None]) + lesion * alpha[..., None]
    hairs = np.zeros(shape, np.float32)
    for _ in range(int(rng.integers(0, 9))):
        p = rng.uniform((0, 0), (w, h), (4, 2))
        p = np.cumsum(np.vstack([p[:1], (p[1:] - p[:1]) * 0.4]), axis=0).astype(np.int32)
        cv2.polylines(hairs, [p], False, 1.0, max(1, round(2 * s)), lineType=cv2.LINE_AA)
    img *= (1 - 0.7 * hairs)[..., None]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    light = 1 + rng.uniform(0.1, 0.3) * ((yy / h - 0.5) * np.sin(ang) + (xx / w - 0.5) * np.cos(ang)) * 2
    light += 0.08 * _field(rng, shape, 3)
    if rng.random() < 0.5:
        r = np.hypot((yy - h / 2) / (h / 2), (xx - w / 2) / (w / 2))
        light *= np.clip(1 - 2.2 * np.maximum(r - 1.0, 0), 0.05, 1)
    return _finish(rng, img * light[..., None], 0.03, 1.0 * s), mask


def _glas(rng: np.random.Generator, shape: tuple[int, int], info: dict[str, str]) -> Generated:
    """Gland rings (purple epithelium with nuclei around a pale lumen) on pink stroma; mask = whole gland."""
    h, w = shape
    s = h / 522
    stain = rng.uniform(0.85, 1.1, 3).astype(np.float32)
    stroma = np.array([0.9, 0.62, 0.78], np.float32) * stain
    img = stroma * (1 + 0.07 * _field(rng, shape, 40))[..., None]
    mask = np.zeros(shape, bool)
    epithelium = np.zeros(shape, bool)
    lumen = np.zeros(shape, bool)
    for _ in range(int(rng.integers(7, 13))):
        centre = (rng.uniform(0, h), rng.uniform(0, w))
        radius = rng.uniform(45, 100) * s
        gland = _blob(rng, shape, centre, radius, rng.uniform(0.08, 0.25))
        inner = _blob(rng, shape, centre, radius * rng.uniform(0.35, 0.7), 0.15) & gland
        mask |= gland
        epithelium |= gland & ~inner
        lumen |= inner
    epithelium &= ~lumen
    tears = np.zeros(shape, np.float32)  # lumen-like white gaps in the stroma: not glands
    _dots(tears, rng, int(rng.integers(2, 7)), (4 * s, 16 * s), 1.0, where=~mask)
    tears[mask] = 0
    contrast = rng.uniform(0.4, 0.9)  # faint staining: epithelium close to the stroma's colour
    purple = (contrast * np.array([0.6, 0.32, 0.62], np.float32) + (1 - contrast) * stroma) * stain
    pale = np.array([0.96, 0.9, 0.94], np.float32)
    img[epithelium] = purple * (1 + 0.1 * rng.standard_normal((int(epithelium.sum()), 1)).astype(np.float32))
    img[lumen] = pale
    img = img * (1 - tears[..., None]) + pale * tears[..., None]
    nuclei = np.zeros(shape, np.float32)
    _dots(nuclei, rng, int(epithelium.sum() / (90 * s * s)) + 1, (2 * s, 4 * s), 1.0, where=epithelium)
    _dots(nuclei, rng, int(rng.integers(150, 400)), (1.5 * s, 3.5 * s), 1.0, where=~mask)
    img *= (1 - 0.45 * nuclei)[..., None]
    return _finish(rng, img, 0.05, 1.2 * s), mask


def _generic(rng: np.random.Generator, shape: tuple[int, int], info: dict[str, str]) -> Generated:
    """One to four irregular blobs, brighter or darker than a smooth textured background (any channels)."""
    h, w = shape
    channels = int(info["channels"])
    mask = np.zeros(shape, bool)
    for _ in range(int(rng.integers(1, 5))):
        centre = (h * rng.uniform(0.2, 0.8), w * rng.uniform(0.2, 0.8))
        mask |= _blob(rng, shape, centre, min(h, w) * rng.uniform(0.06, 0.2), rng.uniform(0.08, 0.25))
    base = rng.uniform(0.25, 0.6, channels).astype(np.float32)
    shift = rng.choice([-1.0, 1.0]) * rng.uniform(0.15, 0.3, channels).astype(np.float32)
    texture = 0.08 * np.stack([_field(rng, shape, 16) for _ in range(channels)], -1)
    soft = _blur(mask.astype(np.float32), 1.5 * h / 256)
    img = base + texture + soft[..., None] * shift
    return _finish(rng, img, 0.04, 0.8 * h / 256), mask


Generator = Callable[[np.random.Generator, tuple[int, int], dict[str, str]], Generated]
#: The paper's datasets' own generators; every other dataset uses ``_generic``.
GENERATORS: dict[str, Generator] = {
    "isbi2012": _isbi,
    "isic2018": _isic,
    "lgg_mri": _lgg,
    "glas2015": _glas,
    "dsb2018": _dsb,
}


class SyntheticDataset(SegDataset):
    """Deterministic synthetic stand-in for dataset ``name`` (``source = "synthetic"``).

    ``n`` images (sources for the patch-based ISBI/GlaS stand-ins; default per dataset, ``DEFAULT_N``),
    ``size`` sets the scale (majority size x size / 256), ``seed`` the content. Cases carry their
    generator inputs in ``meta``; ``read`` regenerates the pixels.
    """

    source = "synthetic"

    def __init__(self, name: str, n: int | None = None, size: int = 128, seed: int = 0) -> None:

        info = dataset_info(name)  # KeyError naming the known datasets
        if n is not None and n < 1:
            raise InvalidInput(f"synthetic {name}: n must be >= 1, got {n}")
        if size < 16:
            raise InvalidInput(f"synthetic {name}: size must be >= 16, got {size}")
        super().__init__(None)
        self.name, self.display_name, self.modality = info.name, info.display_name, info.modality
        self.channels, self.patch_based, self.paper_count = info.channels, info.patch_based, info.paper_count
        self._shape: tuple[int, int] = info.native_shape()
        self.n, self.size, self.seed = DEFAULT_N.get(self.name, 32) if n is None else int(n), int(size), int(seed)
        #: Source pixels per native pixel of the real dataset (prepare() scales patches by it).
        self.native_scale = self.size / 256
        self.layout = f"synthetic stand-in of {name} (n={self.n}, size={self.size}, seed={self.seed})"

    def options(self) -> dict[str, Any]:
        return {"n": self.n, "size": self.size, "seed": self.seed}

    def list_cases(self) -> list[Case]:
        if self.name == "lgg_mri":
            return self._lgg_cases()
        return [self._case(f"syn{i:03d}", f"syn{i:03d}", i, self._extra(i)) for i in range(self.n)]

    def _extra(self, i: int) -> dict[str, str]:
        if self.name != "dsb2018":
            return {}
        return {"style": "brightfield" if i % 5 == 3 else "fluorescence"}

    def _case(self, case_id: str, group: str, index: int, extra: dict[str, str]) -> Case:
        meta = {"index": str(index), "seed": str(self.seed), **extra}
        return Case(case_id, group, meta=tuple(sorted(meta.items())))

    def _lgg_cases(self) -> list[Case]:
        """Patients of 2-3 consecutive slices (n = 24 gives at least 8 patients, enough for a 70/30 + 5-fold
        split); exactly round(0.4 n) slices, chosen at random, have tumour."""
        plan = _rng("lgg_mri-plan", self.seed, self.n)
        tumour = set(plan.permutation(self.n)[: round(0.4 * self.n)].tolist())
        cases, index, patient = [], 0, 0
        while index < self.n:
            k = min(int(plan.integers(2, 4)), self.n - index)
            for j in range(k):
                extra = {
                    "patient": str(patient),
                    "position": f"{(j + 0.5) / k:.4f}",
                    "tumour": "1" if index in tumour else "0",
                }
                cases.append(self._case(f"p{patient:03d}_{j:02d}", f"p{patient:03d}", index, extra))
                index += 1
            patient += 1
        return cases

    def shape_of(self, index: int) -> tuple[int, int]:
        """(H, W) of image ``index``: the real majority size scaled; every 5th DSB image is square."""
        h, w = self._shape
        if self.name == "dsb2018" and index % 5 == 4:
            w = h
        return max(16, round(h * self.native_scale)), max(16, round(w * self.native_scale))

    def read(self, case: Case) -> tuple[np.ndarray, np.ndarray]:
        info = dict(case.meta)
        index = int(info["index"])
        rng = _rng(self.name, self.seed, index, SYNTH_VERSION)
        info["channels"] = str(self.channels)
        image, mask = GENERATORS.get(self.name, _generic)(rng, self.shape_of(index), info)
        return np.round(image * 255).astype(np.uint8), mask
