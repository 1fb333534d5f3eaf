"""Preprocessing shared by every dataset (paper Methods), with an on-disk cache.

Whole-image datasets: each image is resized to ``size x size`` (cv2 INTER_LINEAR on uint8 images,
INTER_NEAREST on masks), channels kept. Patch-based datasets (ISBI-2012, GlaS-2015): the paper cuts
256 x 256 patches "with padding 16" out of the native images. Here the source is first resized by
``size / patch_size`` (``patch_size`` in native pixels, default 256) so a patch has the paper's
field of view at any ``size``, then cut into ``size x size`` patches with ``patch_padding`` (scaled
the same way) read as the *overlap* of neighbouring patches: patchify's ``step = patch - padding``,
only whole patches, remainder dropped. That gives the paper's 4 patches per 512 x 512 ISBI image;
a 775 x 522 GlaS image gives 3 x 2 = 6, not the paper's 11 (11 is prime, so no grid with one step
on a 775 x 522 image gives it; nor does reflect-padding by 16 then tiling, which also gives 4 and 6).

Intensities: min-max to [0, 1] per source image, jointly over channels (a patch keeps its source's
scale). Patch ``k`` of case ``c`` is ``f"{c}_p{k:02d}"`` (row-major), group = the source's group.

Cache: one set of files per (dataset, options, size, patch settings, code version, source files),
keyed by ``fingerprint``: ``<stem>.meta.json`` plus one uncompressed ``<stem>.<array>.npy`` per array
(uint8 images, bool masks, per-row source min/max), each written atomically. The build streams: each
source image's rows go straight into the ``.npy`` files before the next image is decoded, so building
holds one source image, not the dataset (``_build_cache``). Jobs open the ``.npy``
files memory-mapped and gather a batch's rows with positional reads (``take_rows``), so every worker on
a machine shares the operating system's page cache instead of holding its own copy, no read page stays
in a worker's resident memory, and images are normalised only for the rows a batch gathers.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np

from bench.atomic import atomic_write, atomic_write_text
from bench.datasets.base import Case, SegDataset
from bench.datasets.synthetic import SYNTH_VERSION
from bench.errors import InvalidInput, MissingInput

#: Bump when preprocessing changes its output (part of every fingerprint).
CODE_VERSION = 1
#: The paper's patch side in native pixels (ISBI-2012, GlaS-2015).
PAPER_PATCH = 256


class NormalizedImages:
    """Read-only float32 view of stored uint8 rows: ``view[rows]`` normalises only those rows.

    Shape N x C x S x S like the array it stands for; ``np.asarray(view)`` materialises every row
    (tools and tests only: a training job gathers its batches by index and never holds the whole set).
    """

    dtype = np.dtype(np.float32)

    def __init__(self, pixels: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        self._pixels, self._lo, self._hi = pixels, lo, hi

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._pixels.shape)

    @property
    def ndim(self) -> int:
        return self._pixels.ndim

    def __len__(self) -> int:
        return len(self._pixels)

    def __getitem__(self, key: Any) -> np.ndarray:
        """Rows ``key`` (an int, a slice or an index array) as float32 in [0, 1]."""
        if isinstance(key, (int, np.integer)):
            return self[np.array([key])][0]
        rows = np.arange(len(self))[key]
        return normalize(take_rows(self._pixels, rows), self._lo[rows], self._hi[rows])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype, copy=False)


def take_rows(array: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``array[rows]`` (``rows``: 1-D integer positions) as a new array. A whole ``.npy`` file opened
    memory-mapped (the cache) is read with positional reads (``os.preadv``, one per row) instead of
    through the mapping: the bytes come from the operating system's page cache, shared by every
    worker, but are not mapped into this process, so a job's resident memory does not grow with the
    pages of the cache it has read (pages touched through a mapping stay in its RSS until it exits)."""
    rows = np.asarray(rows, np.int64)
    if not _whole_file(array):
        return np.asarray(array[rows])
    out = np.empty((len(rows), *array.shape[1:]), array.dtype)
    if not out.size:
        return out
    row_bytes = out[:1].nbytes
    fd = os.open(array.filename, os.O_RDONLY)
    try:
        for k, r in enumerate(rows.tolist()):
            if not -len(array) <= r < len(array):
                raise IndexError(f"row {r} is out of bounds for {len(array)} rows of {array.filename}")
            offset = array.offset + (r % len(array)) * row_bytes
            if os.preadv(fd, [memoryview(out[k : k + 1]).cast("B")], offset) != row_bytes:
                raise DamagedCache(f"cache file {array.filename} is shorter than its header says (row {r})")
    finally:
        os.close(fd)
    return out


def _whole_file(array: np.ndarray) -> bool:
    """Whether ``array`` is a C-contiguous memory map of the rest of its file from ``array.offset`` on
    (what ``np.load(mmap_mode="r")`` of a cache ``.npy`` returns; not a slice or view of one)."""
    if (
        not hasattr(os, "preadv")
        or not isinstance(array, np.memmap)
        or not array.filename
        or not array.flags.c_contiguous
        or not array.ndim
    ):
        return False
    try:
        return array.offset + array.nbytes == os.path.getsize(array.filename)
    except OSError:
        return False


@dataclass(frozen=True, eq=False)
class PreparedData:
    """A dataset after preprocessing; row ``i`` of every array/tuple is one image (or patch).

    ``pixels``: the stored uint8 N x C x S x S (memory-mapped when read from the cache) with ``lo`` /
    ``hi`` (float32 N, the source image's min/max); ``images`` is the float32 view in [0, 1] of the
    same rows, normalised on access (``images[rows]``). ``masks``: bool N x S x S (memory-mapped from
    the cache). ``source_ids`` and ``native_shapes`` ((H, W) before resizing) describe the source image
    of each row (Table 1).
    """

    dataset: str
    source: str
    pixels: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    masks: np.ndarray
    case_ids: tuple[str, ...]
    groups: tuple[str, ...]
    fingerprint: str
    options: dict[str, Any] = field(default_factory=dict)
    source_ids: tuple[str, ...] = ()
    native_shapes: tuple[tuple[int, int], ...] = ()

    @cached_property
    def _rows(self) -> dict[str, int]:
        return {cid: i for i, cid in enumerate(self.case_ids)}

    @property
    def images(self) -> NormalizedImages:
        """float32 N x C x S x S in [0, 1], normalised per row on access (``images[rows]``)."""
        return NormalizedImages(self.pixels, self.lo, self.hi)

    @property
    def channels(self) -> int:
        return int(self.pixels.shape[1])

    def index(self, ids: Iterable[str]) -> np.ndarray:
        """Row numbers of ``ids`` (in the given order); raises KeyError listing unknown ids."""
        ids = list(ids)
        missing = [i for i in ids if i not in self._rows]
        if missing:
            raise KeyError(f"{self.dataset} ({self.source}): {len(missing)} unknown case id(s): {missing[:20]}")
        return np.fromiter((self._rows[i] for i in ids), dtype=np.int64, count=len(ids))

    @property
    def unit(self) -> str:
        """``patch`` or ``image``: what one row (and one split entry) is."""
        return "patch" if self.options.get("patch_size") else "image"

    def __len__(self) -> int:
        return len(self.case_ids)


def prepare(
    ds: SegDataset, size: int, *, patch_size: int | None = None, patch_padding: int = 16, cache_dir: Path | None = None
) -> PreparedData:
    """Resize (and for patch-based datasets, patch) every case of ``ds``; reuse the cache when valid.

    ``patch_size`` is the patch side in native pixels; None means 256 for patch-based datasets and no
    patching otherwise. ``patch_padding`` (native pixels) is the overlap of neighbouring patches.
    """
    if size < 8:
        raise InvalidInput(f"prepare: size must be >= 8, got {size}")
    cases = ds.cases()
    if not cases:
        raise InvalidInput(f"{ds.name}: no cases found under {ds.root}; see its layout:\n{ds.layout}")
    patch = patch_size if patch_size is not None else (PAPER_PATCH if ds.patch_based else None)
    options = {
        "dataset_options": ds.options(),
        "size": int(size),
        "patch_size": patch,
        "patch_padding": int(patch_padding) if patch else None,
        "normalization": "minmax_per_source",
    }
    fp = fingerprint(ds, cases, options, cache_dir)
    if cache_dir is None:
        return _assemble(*_build(ds, cases, options, fp))
    path = Path(cache_dir) / f"{ds.name}-{ds.source}-{size}px-{fp[:16]}{META_SUFFIX}"
    if path.exists():
        try:
            return load_cache(path, fp)
        except DamagedCache as err:
            warnings.warn(f"{err}; rebuilding the cache", stacklevel=2)
    _build_cache(path, ds, cases, options, fp)
    return load_cache(path, fp)


# ---------------------------------------------------------------------------------------------- fingerprint


#: Name of the file-hash cache inside a cache folder: {absolute path: [size, mtime_ns, sha256]}.
HASH_CACHE = "file-hashes.json"


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """sha256 of the bytes of ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


class FileHashes:
    """Content hashes of files, remembered by (path, size, mtime_ns) in ``<cache_dir>/file-hashes.json``
    so an unchanged file is not read again; a touched file is re-hashed (same bytes: same hash).
    ``save`` writes the cache atomically (``bench.atomic``)."""

    def __init__(self, cache_dir: Path | None) -> None:
        self.path = None if cache_dir is None else Path(cache_dir) / HASH_CACHE
        self.known: dict[str, list[Any]] = {}
        self.changed = False
        if self.path is not None and self.path.exists():
            try:
                loaded = json.loads(self.path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                loaded = {}  # a damaged cache only costs re-hashing; it is rewritten below
                self.changed = True
            self.known = loaded if isinstance(loaded, dict) else {}

    def sha256(self, path: Path, st: os.stat_result) -> str:
        key = os.path.abspath(path)
        entry = self.known.get(key)
        if isinstance(entry, list) and len(entry) == 3 and entry[:2] == [st.st_size, st.st_mtime_ns]:
            return str(entry[2])
        digest = file_sha256(path)
        self.known[key] = [st.st_size, st.st_mtime_ns, digest]
        self.changed = True
        return digest

    def save(self) -> None:
        if self.path is None or not self.changed:
            return
        atomic_write_text(self.path, json.dumps(self.known, sort_keys=True))
        self.changed = False


def _source_files(ds: SegDataset, cases: list[Case], hashes: FileHashes) -> list[list[Any]]:
    """[path relative to root, size, sha256 of the bytes] of every file the cases read, sorted, deduplicated."""
    paths = sorted({p for c in cases for p in (c.image_path, *c.mask_paths) if p is not None})
    rows = []
    for p in paths:
        try:
            st = os.stat(p)
        except FileNotFoundError as err:
            raise MissingInput(f"{ds.name}: a case refers to {p}, which does not exist") from err
        rel = os.path.relpath(p, ds.root) if ds.root is not None else str(p)
        rows.append([rel.replace(os.sep, "/"), st.st_size, hashes.sha256(Path(p), st)])
    hashes.save()
    return rows


def fingerprint(ds: SegDataset, cases: list[Case], options: dict[str, Any], cache_dir: Path | None = None) -> str:
    """sha256 over dataset name, source, options, code version, the case list and (real data) every
    source file's relative path, size and content hash (not its modification time: ``touch`` or a copy
    without ``-p`` keeps the fingerprint); (synthetic) the generator version. File hashes are cached in
    ``cache_dir`` (``FileHashes``) so unchanged files are read once."""
    payload: dict[str, Any] = {
        "dataset": ds.name,
        "source": ds.source,
        "options": options,
        "code": CODE_VERSION,
        "reader": f"{type(ds).__module__}.{type(ds).__qualname__}",
        "cases": [[c.case_id, c.group, c.page, list(map(list, c.meta))] for c in cases],
    }
    if ds.source == "synthetic":
        payload["synthetic_version"] = SYNTH_VERSION
    else:
        payload["files"] = _source_files(ds, cases, FileHashes(cache_dir))
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------- build


def _resize(image: np.ndarray, mask: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Resize to ``shape`` (H, W): bilinear image (channels kept), nearest mask."""
    h, w = shape
    if image.shape[:2] == (h, w):
        return image, mask
    out = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, image.shape[2])
    return out, cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0


def resize_image(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """An H x W x C uint8 image resized to ``shape`` (H, W) exactly as training resizes it (bilinear)."""
    return _resize(image, np.zeros(image.shape[:2], bool), shape)[0]


def patch_offsets(length: int, patch: int, step: int) -> list[int]:
    """Start offsets of whole patches along one axis (patchify's semantics: the remainder is dropped)."""
    if step < 1:
        raise ValueError(f"patch step must be >= 1 (patch {patch}, step {step}): padding too large")
    return list(range(0, length - patch + 1, step)) if length >= patch else []


def patch_geometry(
    native_shape: tuple[int, int], size: int, patch_size: int, patch_padding: int, native_scale: float = 1.0
) -> tuple[tuple[int, int], int]:
    """(resized source (H, W), step) for cutting ``size`` patches; ``native_scale`` = source px per native px."""
    factor = size / (patch_size * native_scale)
    shape = (max(1, round(native_shape[0] * factor)), max(1, round(native_shape[1] * factor)))
    return shape, size - round(patch_padding * size / patch_size)


def _check(ds: SegDataset, case: Case, image: np.ndarray, mask: np.ndarray) -> None:
    where = case.image_path or case.case_id
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != ds.channels:
        raise ValueError(
            f"{ds.name} {case.case_id}: read() gave image {image.dtype} {image.shape}, expected "
            f"uint8 H x W x {ds.channels}; see {where}"
        )
    if mask.dtype != bool or mask.shape != image.shape[:2]:
        raise ValueError(
            f"{ds.name} {case.case_id}: mask {mask.dtype} {mask.shape} != bool {image.shape[:2]}; see {where}"
        )


#: One row of the cache: (row id, C x S x S uint8 image, S x S bool mask).
_Row = tuple[str, np.ndarray, np.ndarray]


@dataclass
class _Source:
    """One source case after resizing: its rows (id, C x S x S uint8, S x S bool), native (H, W), min/max."""

    rows: list[_Row]
    native: tuple[int, int]
    lo: int
    hi: int


def _source(ds: SegDataset, case: Case, options: dict[str, Any]) -> _Source:
    image, mask = ds.read(case)
    _check(ds, case, image, mask)
    native = (int(image.shape[0]), int(image.shape[1]))
    size, patch = options["size"], options["patch_size"]
    if not patch:
        image, mask = _resize(image, mask, (size, size))
        return _Source([(case.case_id, image.transpose(2, 0, 1), mask)], native, int(image.min()), int(image.max()))
    shape, step = patch_geometry(native, size, patch, options["patch_padding"], getattr(ds, "native_scale", 1.0))
    image, mask = _resize(image, mask, shape)
    ys, xs = patch_offsets(shape[0], size, step), patch_offsets(shape[1], size, step)
    if not ys or not xs:
        raise InvalidInput(
            f"{ds.name} {case.case_id}: image {native} resized to {shape} is smaller than one "
            f"{size} px patch; see {case.image_path or case.case_id}"
        )
    rows = [
        (
            f"{case.case_id}_p{k:02d}",
            image[y : y + size, x : x + size].transpose(2, 0, 1),
            mask[y : y + size, x : x + size],
        )
        for k, (y, x) in enumerate((y, x) for y in ys for x in xs)
    ]
    return _Source(rows, native, int(image.min()), int(image.max()))


def _rows(ds: SegDataset, cases: list[Case], options: dict[str, Any]) -> Iterator[tuple[Case, _Source, _Row]]:
    """Every row of the dataset in cache order, one source image decoded at a time."""
    for case in cases:
        src = _source(ds, case, options)
        for row in src.rows:
            yield case, src, row


def _meta(ds: SegDataset, fp: str, options: dict[str, Any], described: list[tuple[Case, tuple[int, int], str]]) -> dict:
    """The cache entry's metadata from (case, native (H, W) of its source, row id) of every row."""
    return {
        "dataset": ds.name,
        "source": ds.source,
        "fingerprint": fp,
        "options": options,
        "case_ids": [rid for _, _, rid in described],
        "groups": [case.group for case, _, _ in described],
        "source_ids": [case.case_id for case, _, _ in described],
        "native_shapes": [list(native) for _, native, _ in described],
        "channels": int(ds.channels),
    }


def _build(
    ds: SegDataset, cases: list[Case], options: dict[str, Any], fp: str
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays (uint8 images, bool masks, per-row source min/max) and metadata, held in memory (no cache
    folder: tools and tests). ``_build_cache`` writes the same arrays to disk row by row instead."""
    rows = list(_rows(ds, cases, options))
    arrays = {
        "images": np.stack([row[1] for _, _, row in rows]),
        "masks": np.stack([row[2] for _, _, row in rows]),
        "lo": np.array([src.lo for _, src, _ in rows], np.float32),
        "hi": np.array([src.hi for _, src, _ in rows], np.float32),
    }
    return arrays, _meta(ds, fp, options, [(case, src.native, row[0]) for case, src, row in rows])


class _RowWriter:
    """One cache array written row by row straight into its ``.npy`` file (``fh``, opened by
    ``atomic_write``), never held in memory: the header first, for ``expected`` rows, then each row as it
    comes. ``finish`` rewrites the header for the rows actually written (a patch-based dataset learns its
    row count only while cutting): numpy pads every header so that the first axis can grow in place, so
    the header keeps its length and the rows their offsets."""

    def __init__(self, fh: IO[bytes], name: str, dtype: Any, row_shape: tuple[int, ...], expected: int) -> None:
        self.fh, self.name, self.dtype, self.row_shape, self.n = fh, name, np.dtype(dtype), tuple(row_shape), 0
        self.offset = self._header(expected)

    def _header(self, n: int) -> int:
        self.fh.seek(0)
        header = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": (n, *self.row_shape),
        }
        np.lib.format.write_array_header_1_0(self.fh, header)
        return self.fh.tell()

    def append(self, row: np.ndarray) -> None:
        row = np.ascontiguousarray(row, self.dtype)
        if row.shape != self.row_shape:
            raise ValueError(f"{self.name}: row {self.n} has shape {row.shape}, expected {self.row_shape}")
        self.fh.write(memoryview(row).cast("B"))
        self.n += 1

    def finish(self) -> None:
        end = self.fh.tell()
        if self._header(self.n) != self.offset:  # cannot happen below 10**21 rows (numpy's growth padding)
            raise RuntimeError(f"{self.name}: the .npy header changed length when rewritten")
        self.fh.seek(end)


def _build_cache(path: Path, ds: SegDataset, cases: list[Case], options: dict[str, Any], fp: str) -> None:
    """Build the cache entry ``path`` (``<stem>.meta.json``) streaming: each source image is decoded,
    resized and its rows written straight into the ``.npy`` files before the next is read, so the build
    holds one source image at a time, whatever the dataset's size (the bytes go to the page cache, not
    into this process). Each file is written atomically (``bench.atomic``) and the metadata last, so a
    reader never sees a half-written entry (concurrent builders write the same bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    size, channels = int(options["size"]), int(ds.channels)
    described, lo, hi = [], [], []

    def write_both(images_fh: IO[bytes]) -> None:
        images = _RowWriter(images_fh, "images", np.uint8, (channels, size, size), len(cases))

        def write_masks(masks_fh: IO[bytes]) -> None:
            masks = _RowWriter(masks_fh, "masks", np.bool_, (size, size), len(cases))
            for case, src, (rid, image, mask) in _rows(ds, cases, options):
                images.append(image)
                masks.append(mask)
                described.append((case, src.native, rid))  # not ``src``: it holds the source's pixels
                lo.append(src.lo)
                hi.append(src.hi)
            masks.finish()
            images.finish()

        atomic_write(array_path(path, "masks"), write_masks)

    atomic_write(array_path(path, "images"), write_both)
    for name, values in (("lo", lo), ("hi", hi)):
        array = np.array(values, np.float32)
        atomic_write(array_path(path, name), lambda f, a=array: np.save(f, a, allow_pickle=False))
    atomic_write(path, lambda f: f.write(json.dumps(_meta(ds, fp, options, described)).encode()))


def normalize(images: np.ndarray, lo: np.ndarray, hi: np.ndarray, chunk: int = 256) -> np.ndarray:
    """uint8 N x C x S x S -> float32 ``(x - lo) / (hi - lo)`` per row (0 where hi == lo)."""
    out = np.empty(images.shape, np.float32)
    span = np.where(hi > lo, hi - lo, 1.0).astype(np.float32)
    for i in range(0, len(images), chunk):
        j = slice(i, i + chunk)
        out[j] = (images[j].astype(np.float32) - lo[j, None, None, None]) / span[j, None, None, None]
    return out


def _assemble(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> PreparedData:
    return PreparedData(
        dataset=meta["dataset"],
        source=meta["source"],
        pixels=arrays["images"],
        lo=arrays["lo"],
        hi=arrays["hi"],
        masks=arrays["masks"],
        case_ids=tuple(meta["case_ids"]),
        groups=tuple(meta["groups"]),
        fingerprint=meta["fingerprint"],
        options=meta["options"],
        source_ids=tuple(meta["source_ids"]),
        native_shapes=tuple((int(h), int(w)) for h, w in meta["native_shapes"]),
    )


# ---------------------------------------------------------------------------------------------- cache


#: The cache's metadata file; each array lies beside it as ``<stem>.<name>.npy``.
META_SUFFIX = ".meta.json"
#: The dtypes of a cache entry's arrays (images N x C x S x S, masks N x S x S, lo/hi N).
_DTYPES = {"images": np.uint8, "masks": np.bool_, "lo": np.float32, "hi": np.float32}


class DamagedCache(ValueError):
    """A cache file is unreadable or does not match its metadata; ``prepare`` rebuilds it."""


def array_path(meta_path: Path, name: str) -> Path:
    """Where array ``name`` of the cache entry ``meta_path`` (``<stem>.meta.json``) lies."""
    meta_path = Path(meta_path)
    return meta_path.with_name(f"{meta_path.name[: -len(META_SUFFIX)]}.{name}.npy")


def _open_array(path: Path, name: str, expected: tuple[int, ...]) -> np.ndarray:
    file = array_path(path, name)
    try:
        array = np.load(file, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:  # missing, truncated or a damaged header
        raise DamagedCache(f"cache file {file} is damaged or missing ({err})") from err
    if array.dtype != _DTYPES[name] or array.shape != expected:
        raise DamagedCache(
            f"cache file {file} holds {array.dtype} {array.shape}, expected {np.dtype(_DTYPES[name])} {expected}"
        )
    return array


def load_cache(path: Path, fingerprint: str | None = None) -> PreparedData:
    """Open the cache entry ``path`` (``<stem>.meta.json``) written by ``prepare``, its arrays
    memory-mapped read-only. With ``fingerprint``, refuse an entry made for other data (ValueError);
    a damaged or missing file raises ``DamagedCache`` naming it."""
    path = Path(path)
    try:
        meta = json.loads(path.read_text())
        n, size, channels = len(meta["case_ids"]), int(meta["options"]["size"]), int(meta["channels"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DamagedCache(f"cache file {path} is damaged ({err!r})") from err
    if fingerprint is not None and meta.get("fingerprint") != fingerprint:
        raise ValueError(
            f"cache file {path} holds fingerprint {meta.get('fingerprint')}, expected {fingerprint}; "
            f"delete it to rebuild"
        )
    arrays = {
        "images": _open_array(path, "images", (n, channels, size, size)),
        "masks": _open_array(path, "masks", (n, size, size)),
        "lo": _open_array(path, "lo", (n,)),
        "hi": _open_array(path, "hi", (n,)),
    }
    return _assemble(arrays, meta)
