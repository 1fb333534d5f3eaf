"""The dataset contract (``datasets/base.py``), checked on every registered native dataset with nothing
named here: each dataset writes its own tiny fixture (``make_fixture`` in its file, plus the variants in
``fixture_variants``) and says in it what must be read (cases, groups, masks, a file name that duplicates
an id). So a new dataset gets these tests with nothing edited here, and one without a fixture maker fails
them. Each dataset's own quirks are tested in ``test_dataset_quirks.py``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from functools import partial
from itertools import groupby
from pathlib import Path

import numpy as np
import pytest
from native_layouts import H, Layout, W, make_non_binary, make_wrong_size, truncate

from bench.datasets import DATASETS, create_dataset, list_datasets, open_dataset
from bench.datasets.base import DataError, NativeDataset, SegDataset
from bench.datasets.check import CheckReport, check_dataset, format_report
from bench.datasets.folders import dataset_folders, identify_folder, native_classes
from bench.datasets.layout import Scan, group_by_id, index_by_id, pair_files
from bench.models.mask_io import find_images, write_masks

#: Every registered dataset with a native-layout reader (all of them: the stand-ins are not registered).
NATIVE = native_classes()
MAKERS: dict[str, Callable[[Path], Layout]] = {name: cls.make_fixture for name, cls in NATIVE.items()}
#: Each dataset's default fixture (id = its name), plus the other variants it declares (``name-variant``).
VARIANTS: dict[str, tuple[str, Callable[[Path], Layout]]] = {
    **{name: (name, make) for name, make in MAKERS.items()},
    **{
        f"{name}-{variant}": (name, partial(cls.make_fixture, **kwargs))
        for name, cls in NATIVE.items()
        for variant, kwargs in cls.fixture_variants.items()
    },
}


def strict_binary_masks(name: str) -> bool:
    """True when ``name`` decodes masks with the default strict {0, 255} rule."""
    cls = NATIVE[name]
    return cls.mask_kind == "binary" and cls.decode_mask is NativeDataset.decode_mask


def read_all(ds: SegDataset) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {case.case_id: ds.read(case) for case in ds.cases()}


def problem_naming(report: CheckReport, kind: str, paths: tuple[Path, ...]) -> Path | None:
    """The first of ``paths`` that a problem of ``kind`` names (by full path, or by file name in a
    duplicate's detail); None when no problem does."""
    for path in paths:
        if any(p.kind == kind and (p.path.startswith(str(path)) or path.name in p.detail) for p in report.problems):
            return path
    return None


# ---------------------------------------------------------------- registry
@pytest.mark.parametrize("name", list_datasets())
def test_every_registered_dataset_is_native_and_writes_a_fixture(name: str) -> None:
    cls = DATASETS.get(name).factory
    assert isinstance(cls, type) and issubclass(cls, NativeDataset), f"{name}: not a NativeDataset reader"
    assert cls.make_fixture.__func__ is not NativeDataset.make_fixture.__func__, (
        f"{name}: no make_fixture; every native dataset writes a tiny copy of its layout (datasets/base.py)"
    )
    assert cls.name == name and cls.display_name and cls.modality and cls.channels in (1, 3) and cls.layout


# ---------------------------------------------------------------- good layouts
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_reads_native_layout(tmp_path: Path, variant: str) -> None:
    name, make = VARIANTS[variant]
    layout = make(tmp_path / name)
    ds = open_dataset(name, layout.root)
    cases = ds.cases()
    ids = [c.case_id for c in cases]
    assert sorted(ids) == sorted(layout.files) and len(set(ids)) == len(ids)
    assert ids == [c.case_id for c in open_dataset(name, layout.root).cases()]  # stable
    assert {c.case_id: c.group for c in cases} == layout.groups
    assert {c.case_id: sorted(c.mask_paths) for c in cases} == {cid: sorted(m) for cid, (_, m) in layout.files.items()}
    for case in cases:
        image, mask = ds.read(case)
        assert image.dtype == np.uint8 and image.shape == (H, W, ds.channels)
        assert mask.dtype == bool and mask.shape == (H, W)
        np.testing.assert_array_equal(mask, layout.masks_expected[case.case_id])
    report = check_dataset(ds)
    assert report.ok, format_report(report)
    assert report.n_cases == len(layout.files) and report.n_groups == len(set(layout.groups.values()))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_fixture_folder_is_found_by_its_layout(tmp_path: Path, variant: str) -> None:
    """Under a name that is neither its registry name nor an alias, only this dataset recognises it."""
    name, make = VARIANTS[variant]
    folder = make(tmp_path / "data" / "unnamed_folder").root
    assert [n for n, cls in NATIVE.items() if cls.looks_like(folder)] == [name]
    assert identify_folder(folder) == name and dataset_folders(tmp_path / "data") == {name: [folder]}


def test_several_masks_per_case_are_paired_and_read_as_their_union(tmp_path: Path) -> None:
    """``group_by_id`` keeps every mask file of a case (``x_mask.png``, ``x_mask_1.png``); ``pair_files``
    pairs them with the image, and a reader ORs them."""
    files = [tmp_path / n for n in ("a.png", "a_mask.png", "a_mask_1.png", "b.png", "b_mask.png", "c_mask.png")]
    scan = Scan()
    images = index_by_id([p for p in files if "_mask" not in p.stem], lambda p: p.stem, scan, "image")
    masks = group_by_id([p for p in files if "_mask" in p.stem], lambda p: p.stem.split("_mask")[0], scan, "mask")
    assert pair_files(images, masks, scan) == [("a", files[0], (files[1], files[2])), ("b", files[3], (files[4],))]
    assert [(p.kind, p.case_id) for p in scan.problems] == [("missing_image", "c")]  # type: ignore[attr-defined]
    assert pair_files(images, {"a": files[1]}, Scan())[0] == ("a", files[0], (files[1],))  # one mask: a Path


# ---------------------------------------------------------------- bench predict: inputs and masks written
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_predict_inputs_are_the_images_never_the_masks(tmp_path: Path, variant: str) -> None:
    name, make = VARIANTS[variant]
    layout = make(tmp_path / name)
    items = find_images(layout.root, name)
    cases = open_dataset(name, layout.root).cases()
    assert sorted((i.path, i.page or 0) for i in items) == sorted((c.image_path, c.page or 0) for c in cases)
    masks = {p for _, files in layout.files.values() for p in files}
    assert all(NATIVE[name].is_mask_file(p.relative_to(layout.root)) for p in masks)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_predicted_masks_read_back_as_written(tmp_path: Path, variant: str) -> None:
    """``bench predict`` writes each image's mask in the dataset's format: its reader decodes it back."""
    name, make = VARIANTS[variant]
    layout = make(tmp_path / name)
    ds = open_dataset(name, layout.root)
    expected = {(c.image_path, c.page): layout.masks_expected[c.case_id] for c in ds.cases()}
    for _, group in groupby(find_images(layout.root, name), key=lambda item: item.path):
        items = list(group)
        (path,) = write_masks(tmp_path / "out", name, items, [expected[(i.path, i.page)] for i in items])
        assert path.is_relative_to(tmp_path / "out")
        for item in items:
            np.testing.assert_array_equal(ds.decode_mask(path, item.page), expected[(item.path, item.page)])


# ---------------------------------------------------------------- bad files
def _damage(defect: str, layout: Layout, cid: str) -> tuple[str, tuple[Path, ...]]:
    """Apply ``defect`` to case ``cid``; return (problem kind, the paths of which the report must name one)."""
    image, masks = layout.files[cid]
    if defect == "truncated_image":
        return "unreadable", (truncate(image),)
    if defect == "truncated_mask":
        return "unreadable", (truncate(masks[0]),)
    if defect == "size_mismatch":
        return "size_mismatch", (make_wrong_size(masks[0]),)
    if defect == "non_binary":
        return "non_binary_mask", (make_non_binary(masks[0]),)
    case_files = (image, *masks, *dict.fromkeys(m.parent for m in masks))  # a file of the case or its folder
    if defect == "missing_mask":
        for path in masks:
            path.unlink()
        return "missing_mask", case_files
    if defect == "missing_image":
        image.unlink()
        return "missing_image", case_files
    if cid not in layout.duplicates:
        pytest.skip("this layout cannot hold two images of one case id (the id is a folder name)")
    return "duplicate_id", (shutil.copy(image, layout.duplicates[cid]),)


DEFECTS = (
    "truncated_image",
    "truncated_mask",
    "size_mismatch",
    "non_binary",
    "missing_mask",
    "missing_image",
    "duplicate",
)
READ_TIME = {"truncated_image", "truncated_mask", "size_mismatch", "non_binary"}
BAD = [(n, d) for n in MAKERS for d in DEFECTS if not (d == "non_binary" and not strict_binary_masks(n))]


@pytest.mark.parametrize(("name", "defect"), BAD, ids=[f"{n}-{d}" for n, d in BAD])
def test_bad_file_is_named_and_never_silently_dropped(tmp_path: Path, name: str, defect: str) -> None:
    layout = MAKERS[name](tmp_path / name)
    cid = sorted(layout.files)[1]
    kind, paths = _damage(defect, layout, cid)
    ds = open_dataset(name, layout.root)
    report = check_dataset(ds)
    path = problem_naming(report, kind, tuple(Path(p) for p in paths))
    assert not report.ok and path is not None, format_report(report)
    assert all(p.case_id == cid for p in report.problems)  # type: ignore[attr-defined]
    assert report.n_cases >= len(layout.files) - 1  # the good cases are still all there
    text = format_report(report)
    assert (str(path) in text or path.name in text) and "verdict: FAIL" in text
    with pytest.raises(DataError) as err:
        read_all(ds)
    assert str(path) in str(err.value) or path.name in str(err.value)
    if defect in READ_TIME:
        assert cid in [c.case_id for c in ds.cases()]  # listing is fine, reading that case is not
    skipped = open_dataset(name, layout.root, skip=[cid])
    assert sorted(read_all(skipped)) == sorted(set(layout.files) - {cid})
    assert check_dataset(skipped).ok


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_empty_and_missing_folders(tmp_path: Path, name: str) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert problem_naming(check_dataset(open_dataset(name, empty)), "empty_folder", (empty,))
    missing = tmp_path / "missing"
    assert problem_naming(check_dataset(open_dataset(name, missing)), "missing_folder", (missing,))
    with pytest.raises(DataError, match="expected layout"):
        open_dataset(name, missing).cases()


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_unknown_skip_id_is_a_problem(tmp_path: Path, name: str) -> None:
    layout = MAKERS[name](tmp_path / name)
    known = sorted(layout.files)[1]
    ds = open_dataset(name, layout.root, skip=[known, "no_such_case_9999"])
    with pytest.raises(DataError, match="no_such_case_9999"):
        ds.cases()
    with pytest.raises(TypeError):
        open_dataset(name, layout.root, skip=known)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_root_none_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="synthetic"):
        create_dataset(name, root=None)
