"""GlaS-2015 colon histology (gland segmentation challenge, Warwick QU dataset), native BMP layout."""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from bench.datasets import register_dataset
from bench.datasets.base import Case, Fixture, NativeDataset, PaperFacts, Scan
from bench.datasets.decode import IMAGE_SUFFIXES, save_pixels
from bench.datasets.fixtures import H, W, rgb, write
from bench.datasets.layout import index_by_id, natural_key, pair_files, visible_entries
from bench.errors import InvalidInput

GRADES = "Grade.csv"
_NAME_RE = re.compile(r"^(train|testA|testB)_(\d+)(_anno)?\.(?i:bmp|png)$")
#: Grade.csv column names (stripped) -> meta keys.
_COLUMNS = {
    "name": "name",
    "patient ID": "patient_id",
    "grade (GlaS)": "grade_glas",
    "grade (Sirinukunwattana et al. 2015)": "grade_sirinukunwattana",
}


def _key(anno: bool) -> Callable[[Path], str | None]:
    """Case id ``<split>_<N>`` of an image file (``anno=False``) or an annotation file."""

    def key(path: Path) -> str | None:
        match = _NAME_RE.match(path.name)
        return f"{match.group(1)}_{int(match.group(2))}" if match and bool(match.group(3)) == anno else None

    return key


#: The fixture's images (``make_fixture``) and its Grade.csv as released: CRLF, leading spaces in the
#: header and values, plus a row without an image.
FIXTURE_NAMES = ("train_1", "train_2", "testA_1", "testB_1")
FIXTURE_GRADES = {
    "train_1": (" benign", " healthy"),
    "train_2": (" malignant", " adenocarcinoma"),
    "testA_1": (" benign", " adenomatous"),
    "testB_1": (" malignant", " adenocarcinoma"),
    "testB_20": (" benign", " healthy"),
}
GRADE_HEADER = "name,patient ID, grade (GlaS), grade (Sirinukunwattana et al. 2015)"


def _slug(column: str) -> str:
    return _COLUMNS.get(column, re.sub(r"[^a-z0-9]+", "_", column.lower()).strip("_"))


def read_grades(path: Path) -> dict[str, tuple[tuple[str, str], ...]]:
    """Grade.csv as {image name: ((key, value), ...)}; CRLF endings and leading spaces in the header and
    values (`` grade (GlaS)``, `` benign``) are stripped. Raises ValueError when there is no name column."""
    with path.open(newline="", encoding="utf-8-sig") as fh:
        rows = [[cell.strip() for cell in row] for row in csv.reader(fh) if any(cell.strip() for cell in row)]
    if not rows or _slug(rows[0][0]) != "name":
        raise InvalidInput(f"expected a header starting with 'name', found {rows[0] if rows else 'an empty file'}")
    keys = [_slug(col) for col in rows[0]]
    return {row[0]: tuple(zip(keys[1:], row[1:])) for row in rows[1:]}


@register_dataset("glas2015")
class GlaS2015(NativeDataset):
    """H&E colon histology (RGB, mostly 775x522, some 567x430) with gland annotations.

    Annotations are instance labels (0 = background, 1..N = glands, any integer): **foreground = anno > 0**
    (every gland). The official split (train / testA / testB) and the grades from ``Grade.csv`` go into
    ``Case.meta`` (``official_split``, ``patient_id``, ``grade_glas``, ``grade_sirinukunwattana``); the
    benchmark's own splits ignore them. A missing ``Grade.csv`` is not an error (recorded in the counts),
    and so are Grade.csv rows without images. Files are BMP as released; PNG copies with the same names are
    read too. Images are found in the dataset folder and in its immediate sub-folders (the release unzips
    into ``Warwick QU Dataset (Released 2016_07_08)/``). Each image is its own group; the paper trains on
    256x256 patches (``patch_based``).
    """

    name = "glas2015"
    display_name = "GlaS-2015"
    modality = "histopathology"
    unit_nouns = ("source images", "patches")
    patient_record = GRADES
    channels = 3
    paper = PaperFacts(
        "GlaS-2015", "Histopathology", 165, (775, 522), "patch", (253, 253, 253, 253, 253), 550, patches_per_image=11
    )
    patch_based = True
    mask_kind = "instance"
    layout = (
        "train_N.bmp + train_N_anno.bmp, testA_N.bmp + testA_N_anno.bmp, testB_N.bmp + testB_N_anno.bmp\n"
        "  (annotation = instance labels, 0 = background; .png copies accepted; directly in the folder "
        "or one sub-folder down)\n"
        f"{GRADES}   (optional: name, patient ID, grade (GlaS), grade (Sirinukunwattana et al. 2015))"
    )

    mask_stem = r".+_anno"
    mask_folders = ()
    fixture_variants: ClassVar[dict[str, dict[str, Any]]] = {"png": {"ext": "png", "rgb_anno": True}}

    @classmethod
    def looks_like(cls, folder: Path) -> bool:
        return (folder / GRADES).is_file() or bool(cls._image_folders(folder))

    @classmethod
    def prediction_path(cls, image: Path, stack: bool = False) -> Path:
        """``<stem>_anno.bmp`` beside the image (``write_prediction`` makes it a 16-bit ``.png`` when the
        labels do not fit 8 bits)."""
        return image.with_name(f"{image.stem}_anno.bmp")

    @classmethod
    def write_prediction(cls, path: Path, mask: np.ndarray) -> Path:
        """An annotation like the release's: connected components (8-connected) labelled 1..n, 0 =
        background; 8-bit BMP, or a 16-bit PNG of the same name when n > 255."""
        if mask.ndim != 2:
            return super().write_prediction(path, mask)
        from scipy import ndimage

        labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
        if n > 255:
            return save_pixels(path.with_suffix(".png"), labels.astype(np.uint16))
        return save_pixels(path, labels.astype(np.uint8))

    @classmethod
    def group_patients(cls, root: Path) -> dict[str, str]:
        """Source image -> ``"patient <patient ID>"`` from ``Grade.csv`` in ``root`` or one folder down (as
        the reader looks); {} without it."""
        found = [root / GRADES] + sorted(root.glob(f"*/{GRADES}"))
        path = next((p for p in found if p.is_file()), None)
        if path is None:
            return {}
        patients = {name: dict(meta).get("patient_id") for name, meta in read_grades(path).items()}
        return {name: f"patient {patient}" for name, patient in patients.items() if patient}

    @staticmethod
    def _image_folders(root: Path) -> list[Path]:
        candidates = [root] + [p for p in visible_entries(root) if p.is_dir()]
        return [f for f in candidates if any(_NAME_RE.match(p.name) for p in f.iterdir() if p.is_file())]

    def _scan(self) -> Scan:
        scan = Scan()
        folders = self._image_folders(self.root)
        if not folders:
            scan.add(
                self.root,
                "missing_image",
                "no train_N / testA_N / testB_N images (.bmp or .png) here or one folder down",
            )
        files = [p for f in folders for p in self._files(f, scan)]
        images = index_by_id([p for p in files if "_anno" not in p.stem], _key(False), scan, "image")
        annos = index_by_id([p for p in files if "_anno" in p.stem], _key(True), scan, "annotation (<name>_anno)")
        grades = self._grades(folders, scan)
        for cid, image, mask_files in pair_files(images, annos, scan):
            meta = (("official_split", cid.split("_")[0]),) + grades.get(cid, ())
            scan.cases.append(Case(cid, cid, image, mask_files, meta=meta))
        scan.counts.update(
            images=len(images),
            annotations=len(annos),
            official_split=dict(Counter(c.case_id.split("_")[0] for c in scan.cases)),
        )
        if grades:
            self._count_grades(grades, set(images), scan)
        return scan

    @staticmethod
    def _files(folder: Path, scan: Scan) -> list[Path]:
        found = []
        for path in visible_entries(folder):
            if path.is_file() and _NAME_RE.match(path.name):
                found.append(path)
            elif path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                scan.add(path, "unexpected_file", "GlaS images are named train_N / testA_N / testB_N[_anno].bmp")
            elif path.is_file():
                scan.ignore(path)
        return found

    def _grades(self, folders: list[Path], scan: Scan) -> dict[str, tuple[tuple[str, str], ...]]:
        for folder in [self.root, *folders]:
            path = folder / GRADES
            if path.is_file():
                try:
                    grades = read_grades(path)
                except (OSError, UnicodeDecodeError, csv.Error, ValueError) as exc:
                    scan.add(path, "bad_csv", f"cannot parse: {type(exc).__name__}: {exc}")
                    return {}
                scan.counts["grade_csv"] = str(path)
                return grades
        scan.counts["grade_csv"] = f"missing (no {GRADES}); grades not in Case.meta"
        return {}

    @staticmethod
    def _count_grades(grades: dict[str, tuple[tuple[str, str], ...]], images: set[str], scan: Scan) -> None:
        scan.counts["grade_rows"] = len(grades)
        scan.counts["grade_rows_without_images"] = len(set(grades) - images)
        unknown = sorted(images - set(grades), key=natural_key)
        if unknown:
            scan.counts["images_without_grade_row"] = unknown

    @classmethod
    def make_fixture(cls, root: Path, ext: str = "bmp", grades: bool = True, rgb_anno: bool = False) -> Fixture:
        """Four images as released (BMP, instance labels 0..3 in the annotation) and Grade.csv; ``ext="png"``
        like the one real sample, whose annotation is R=G=B labels (``rgb_anno``)."""
        out = Fixture(root)
        for i, cid in enumerate(FIXTURE_NAMES):
            labels = np.zeros((H, W), np.uint8)
            labels[2:10, 3:12], labels[15:25, 20:30] = 1, 3  # two glands with instance labels 1 and 3
            labels[0, 0] = 2 if i % 2 else 0
            stored = np.repeat(labels[..., None], 3, axis=2) if rgb_anno else labels
            image, anno = write(root / f"{cid}.{ext}", rgb(i)), write(root / f"{cid}_anno.{ext}", stored)
            twin = image.with_suffix(".png" if ext == "bmp" else ".bmp")  # a copy in the other format: same id
            out.add(cid, image, (anno,), labels, duplicate=twin)
        if grades:
            grades_ = enumerate(FIXTURE_GRADES.items())
            rows = [GRADE_HEADER] + [f"{name},{i + 1},{g},{s}" for i, (name, (g, s)) in grades_]
            (root / GRADES).write_bytes(("\r\n".join(rows) + "\r\n").encode())
        return out
