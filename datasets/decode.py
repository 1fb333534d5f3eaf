"""Decoding files into arrays: images to H x W x C uint8, masks to H x W bool (and ``save_pixels``, the
way back: predicted masks and fixture files).

TIFF goes through tifffile, everything else through Pillow; any decoder error becomes a ``ReadFailure``
naming the file. The mask rules a dataset can use in its ``decode_mask``:

- ``as_mask(arr, binary=True)``: strict, the stored values must be {0, 255} (a lossless binary mask);
- ``as_mask(arr, binary=False)``: integer instance labels, foreground ``> 0``;
- ``grey_levels(arr)`` + a threshold: lossy masks (JPEG), where compression noise makes the strict check
  fail and ``> 0`` would count the noise as foreground.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.datasets.problems import ReadFailure

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp"})
TIFF_SUFFIXES = frozenset({".tif", ".tiff"})


def where(path: Path, page: int | None) -> str:
    return str(path) if page is None else f"{path} (page {page})"


def load_pixels(path: Path, page: int | None = None, role: str = "image") -> np.ndarray:
    """Decode one file (or one page of a multi-page TIFF) to a numpy array, as stored.

    TIFF goes through tifffile, everything else through Pillow. ``role="mask"`` keeps palette indices
    (instance labels); ``role="image"`` converts palette and non-RGB colour modes to RGB. Any decoder
    error becomes ``ReadFailure`` naming the file.
    """
    if not path.is_file():
        raise ReadFailure(str(path), "missing_file", "file not found")
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            return _load_tiff(path, page)
        return _load_pil(path, page, role)
    except ReadFailure:
        raise
    except Exception as exc:  # any decoder error (OSError, ValueError, SyntaxError, struct.error, ...)
        raise ReadFailure(where(path, page), "unreadable", f"cannot decode: {type(exc).__name__}: {exc}") from exc


def _load_tiff(path: Path, page: int | None) -> np.ndarray:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        n = len(tif.pages)
        if page is None and n != 1:
            raise ReadFailure(str(path), "multi_page", f"expected a single-page TIFF, found {n} pages")
        if page is not None and page >= n:
            raise ReadFailure(where(path, page), "missing_page", f"the stack has only {n} pages")
        return np.asarray(tif.pages[page or 0].asarray())


def _load_pil(path: Path, page: int | None, role: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        if page is not None:
            img.seek(page)
        img.load()
        if img.mode == "1":
            return np.array(img, dtype=np.uint8) * np.uint8(255)
        if img.mode in ("CMYK", "YCbCr", "LAB", "HSV") or (img.mode in ("P", "PA") and role == "image"):
            img = img.convert("RGBA" if "transparency" in img.info or img.mode == "PA" else "RGB")
        return np.array(img)


def save_pixels(path: Path, arr: np.ndarray, stack: bool = False, quality: int = 95) -> Path:
    """Save ``arr`` by suffix (creating folders): TIFF through tifffile (``stack``: one grey page per
    first-axis slice), everything else through Pillow (JPEG at ``quality``)."""
    import tifffile
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in TIFF_SUFFIXES:
        rgb_image = arr.ndim == 3 and arr.shape[-1] == 3 and not stack
        tifffile.imwrite(path, arr, photometric="rgb" if rgb_image else "minisblack")
    else:
        jpeg = path.suffix.lower() in (".jpg", ".jpeg")
        Image.fromarray(arr).save(path, **({"quality": quality} if jpeg else {}))
    return path


def tiff_page_count(path: Path) -> int:
    """Pages in a TIFF stack; raises ``ReadFailure`` when the file cannot be parsed."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            return len(tif.pages)
    except Exception as exc:
        raise ReadFailure(str(path), "unreadable", f"cannot parse TIFF: {type(exc).__name__}: {exc}") from exc


def _drop_alpha(arr: np.ndarray) -> np.ndarray:
    return arr[..., : arr.shape[2] - 1] if arr.ndim == 3 and arr.shape[2] in (2, 4) else arr


def _channels_equal(arr: np.ndarray) -> bool:
    return all(np.array_equal(arr[..., 0], arr[..., k]) for k in range(1, arr.shape[2]))


def as_image(arr: np.ndarray, channels: int, origin: str) -> np.ndarray:
    """H x W x ``channels`` uint8: alpha dropped, grey repeated to RGB, RGB with equal channels to grey."""
    if arr.dtype != np.uint8:
        raise ReadFailure(origin, "bad_dtype", f"expected 8-bit pixels, found {arr.dtype}")
    arr = _drop_alpha(arr[..., None] if arr.ndim == 2 else arr)
    if arr.ndim != 3:
        raise ReadFailure(origin, "bad_channels", f"expected a 2D image, found array shape {arr.shape}")
    k = arr.shape[2]
    if k == channels:
        return np.ascontiguousarray(arr)
    if k == 1 and channels == 3:
        return np.repeat(arr, 3, axis=2)
    if k == 3 and channels == 1 and _channels_equal(arr):
        return np.ascontiguousarray(arr[..., :1])
    raise ReadFailure(
        origin,
        "bad_channels",
        f"expected {channels} channel(s) (grey stored as RGB is fine), found {k} channels that differ",
    )


def as_mask(arr: np.ndarray, binary: bool, origin: str) -> np.ndarray:
    """H x W bool foreground from a stored mask: ``> 0``. A ``binary`` mask must hold only {0, 255}
    (a bool / 1-bit mask is fine); an instance-label mask may hold any non-negative integers."""
    if arr.ndim == 3:
        arr = _drop_alpha(arr)
        if not _channels_equal(arr):
            raise ReadFailure(
                origin,
                "bad_channels",
                f"mask has {arr.shape[2]} channels that differ; expected one channel (or equal R=G=B)",
            )
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise ReadFailure(origin, "bad_channels", f"expected a 2D mask, found array shape {arr.shape}")
    if arr.dtype == bool:
        return arr.copy()
    if not np.issubdtype(arr.dtype, np.integer):
        raise ReadFailure(origin, "bad_dtype", f"expected integer mask values, found {arr.dtype}")
    if binary:
        _require_binary(arr, origin)
    return arr > 0


def _require_binary(arr: np.ndarray, origin: str) -> None:
    if arr.dtype == np.uint8 and not np.any((arr - np.uint8(1)) < 254):  # fast path: 1..254 absent
        return
    uniq, cnt = np.unique(arr, return_counts=True)
    values = {int(v): int(c) for v, c in zip(uniq, cnt)}
    if set(values) - {0, 255}:
        shown = ", ".join(f"{v} ({n} px)" for v, n in list(values.items())[:8])
        more = f", ... ({len(values)} distinct values)" if len(values) > 8 else ""
        raise ReadFailure(origin, "non_binary_mask", f"expected values {{0, 255}}, found {shown}{more}")


def grey_levels(arr: np.ndarray, origin: str) -> np.ndarray:
    """H x W uint8 grey level of a stored 8-bit mask: alpha dropped, colour channels averaged (JPEG
    compression leaves R, G and B slightly different, so they are not required to be equal)."""
    if arr.dtype != np.uint8:
        raise ReadFailure(origin, "bad_dtype", f"expected 8-bit mask pixels, found {arr.dtype}")
    if arr.ndim == 3:
        arr = np.round(_drop_alpha(arr).mean(axis=2)).astype(np.uint8)
    if arr.ndim != 2:
        raise ReadFailure(origin, "bad_channels", f"expected a 2D mask, found array shape {arr.shape}")
    return arr
