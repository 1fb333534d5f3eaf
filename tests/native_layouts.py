"""Write tiny fake datasets in the five native layouts (and damage them) for the reader tests.

Each ``make_*`` writes 3-6 small images (W x H = 40 x 32, so a transposed read is caught) into ``root``
and returns a ``Layout``: the folder plus, per case id, the files written and the mask it must read as.
The ``damage_*`` helpers turn one good file into a bad one and return the path a report must name.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

W, H = 40, 32
GRADE_HEADER = "name,patient ID, grade (GlaS), grade (Sirinukunwattana et al. 2015)"


@dataclass
class Layout:
    """A written layout: ``files[case_id] = (image, masks)``, ``masks_expected[case_id]`` = H x W bool."""

    root: Path
    files: dict[str, tuple[Path, tuple[Path, ...]]] = field(default_factory=dict)
    masks_expected: dict[str, np.ndarray] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)

    def image(self, case_id: str) -> Path:
        return self.files[case_id][0]

    def mask(self, case_id: str) -> Path:
        return self.files[case_id][1][0]


def grey(seed: int, h: int = H, w: int = W) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


def rgb(seed: int, h: int = H, w: int = W) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def blob(seed: int, h: int = H, w: int = W, empty: bool = False) -> np.ndarray:
    """A {0, 255} uint8 mask with one random rectangle (all 0 when ``empty``)."""
    mask = np.zeros((h, w), np.uint8)
    if not empty:
        r = np.random.default_rng(seed)
        top, left = int(r.integers(0, h // 2)), int(r.integers(0, w // 2))
        mask[top: top + int(r.integers(3, h // 2)), left: left + int(r.integers(3, w // 2))] = 255
    return mask


def write(path: Path, arr: np.ndarray, stack: bool = False) -> Path:
    """Save ``arr`` by suffix: TIFF through tifffile (``stack``: one grey page per first-axis slice),
    everything else through Pillow."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".tif", ".tiff"):
        rgb_image = arr.ndim == 3 and arr.shape[-1] == 3 and not stack
        tifffile.imwrite(path, arr, photometric="rgb" if rgb_image else "minisblack")
    else:
        Image.fromarray(arr).save(path, **({"quality": 95} if path.suffix == ".jpg" else {}))
    return path


# ---------------------------------------------------------------- the five layouts
def make_isic(root: Path, ids: tuple[str, ...] = ("ISIC_0000001", "ISIC_0000002", "ISIC_0000010")) -> Layout:
    out = Layout(root)
    for i, cid in enumerate(ids):
        image = write(root / "ISIC2018_Task1-2_Training_Input" / f"{cid}.jpg", rgb(i))
        mask = blob(i)
        path = write(root / "ISIC2018_Task1_Training_GroundTruth" / f"{cid}_segmentation.png", mask)
        out.files[cid], out.masks_expected[cid], out.groups[cid] = (image, (path,)), mask > 0, cid
    (root / "ISIC2018_Task1-2_Training_Input" / "ATTRIBUTION.txt").write_text("ISIC\n")
    return out


def isbi_slices(n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (image, label) pairs both ISBI variants write: label 255 = cell interior (the majority)."""
    return [(grey(i), 255 - blob(i)) for i in range(n)]


def make_isbi_png(root: Path, n: int = 4) -> Layout:
    out = Layout(root)
    for i, (image, label) in enumerate(isbi_slices(n)):
        cid = f"slice_{i:02d}"
        paths = write(root / "train" / "image" / f"{i}.png", image), write(root / "train" / "label" / f"{i}.png",
                                                                          label)
        out.files[cid], out.masks_expected[cid], out.groups[cid] = (paths[0], (paths[1],)), label > 0, cid
    return out


def make_isbi_tiff(root: Path, n: int = 4) -> Layout:
    out = Layout(root)
    pairs = isbi_slices(n)
    volume = write(root / "train-volume.tif", np.stack([p[0] for p in pairs]), stack=True)
    labels = write(root / "train-labels.tif", np.stack([p[1] for p in pairs]), stack=True)
    for i, (_, label) in enumerate(pairs):
        cid = f"slice_{i:02d}"
        out.files[cid], out.masks_expected[cid], out.groups[cid] = (volume, (labels,)), label > 0, cid
    return out


LGG_PATIENTS = ("TCGA_CS_4941_19960909", "TCGA_HT_7602_19951103")
LGG_SLICES = (1, 2, 10)  # not zero-padded: a lexical sort would put 10 before 2
LGG_TUMOUR = (2, 10)  # slices with a non-empty mask; slice 1 of each patient is empty


def make_lgg(root: Path) -> Layout:
    out = Layout(root)
    base = root / "kaggle_3m"
    for p, folder in enumerate(LGG_PATIENTS):
        for n in LGG_SLICES:
            cid = f"{folder}_{n}"
            mask = blob(10 * p + n, empty=n not in LGG_TUMOUR)
            image = write(base / folder / f"{cid}.tif", rgb(10 * p + n))
            path = write(base / folder / f"{cid}_mask.tif", mask)
            out.files[cid], out.masks_expected[cid], out.groups[cid] = (image, (path,)), mask > 0, folder
    rows = ["Patient,RNASeqCluster,MethylationCluster", "TCGA_CS_4941,2,4", "TCGA_HT_7602,1,5", "TCGA_XX_0000,,1"]
    (base / "data.csv").write_bytes(("\r\n".join(rows) + "\r\n").encode())
    return out


GLAS_NAMES = ("train_1", "train_2", "testA_1", "testB_1")


def glas_grade_rows() -> list[str]:
    """Grade.csv as released: CRLF, leading spaces in header and values, plus a row without an image."""
    grades = {"train_1": (" benign", " healthy"), "train_2": (" malignant", " adenocarcinoma"),
              "testA_1": (" benign", " adenomatous"), "testB_1": (" malignant", " adenocarcinoma"),
              "testB_20": (" benign", " healthy")}
    return [GRADE_HEADER] + [f"{name},{i + 1},{g},{s}" for i, (name, (g, s)) in enumerate(grades.items())]


def make_glas(root: Path, ext: str = "bmp", grades: bool = True, rgb_anno: bool = False) -> Layout:
    """GlaS as released (BMP, instance labels 0..3 in the annotation); ``ext="png"`` like the one real sample,
    whose annotation is R=G=B labels (``rgb_anno``)."""
    out = Layout(root)
    for i, cid in enumerate(GLAS_NAMES):
        labels = np.zeros((H, W), np.uint8)
        labels[2:10, 3:12], labels[15:25, 20:30] = 1, 3  # two glands with instance labels 1 and 3
        labels[0, 0] = 2 if i % 2 else 0
        stored = np.repeat(labels[..., None], 3, axis=2) if rgb_anno else labels
        paths = write(root / f"{cid}.{ext}", rgb(i)), write(root / f"{cid}_anno.{ext}", stored)
        out.files[cid], out.masks_expected[cid], out.groups[cid] = (paths[0], (paths[1],)), labels > 0, cid
    if grades:
        (root / "Grade.csv").write_bytes(("\r\n".join(glas_grade_rows()) + "\r\n").encode())
    return out


DSB_IDS = ("0a1b2c", "3d4e5f", "6a7b8c")


def make_dsb(root: Path, nuclei: int = 3) -> Layout:
    """Three image folders: RGBA PNG images (the first grey stored as RGBA, the others colour), one
    {0, 255} PNG per nucleus (hash-like names)."""
    out = Layout(root)
    for i, cid in enumerate(DSB_IDS):
        colour = rgb(i) if i else np.repeat(grey(i)[..., None], 3, axis=2)
        rgba = np.concatenate([colour, np.full((H, W, 1), 255, np.uint8)], axis=2)
        image = write(root / "stage1_train" / cid / "images" / f"{cid}.png", rgba)
        masks, union = [], np.zeros((H, W), bool)
        for k in range(nuclei):
            nucleus = np.zeros((H, W), np.uint8)
            nucleus[4 + 8 * k: 9 + 8 * k, 3 + 10 * i: 9 + 10 * i] = 255
            masks.append(write(root / "stage1_train" / cid / "masks" / f"{hashlib.sha1(f'{cid}{k}'.encode()).hexdigest()[:16]}.png", nucleus))
            union |= nucleus > 0
        out.files[cid], out.masks_expected[cid], out.groups[cid] = (image, tuple(masks)), union, cid
    return out


# ---------------------------------------------------------------- damage
def truncate(path: Path) -> Path:
    """Keep the first half of the file's bytes (a download cut short)."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def rewrite(path: Path, arr: np.ndarray) -> Path:
    """Replace a file's pixels (same name and format)."""
    path.unlink()
    return write(path, arr)


def make_wrong_size(mask_path: Path) -> Path:
    """Rewrite a mask one column wider than its image."""
    return rewrite(mask_path, blob(99, H, W + 1))


def make_non_binary(mask_path: Path) -> Path:
    """Rewrite a mask with a grey value 128 (a JPEG-style or resized mask)."""
    mask = blob(98)
    mask[0, :4] = 128
    return rewrite(mask_path, mask)
