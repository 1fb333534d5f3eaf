"""``bench data check``: read every case of a dataset folder and report every problem by path.

``check_dataset`` collects every layout and file problem of one dataset instead of stopping at the
first; ``check_data_root`` checks every dataset folder of a data root (found by
``bench.datasets.folders``); ``format_report`` prints one report.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.datasets import DATASETS, create_dataset
from bench.datasets.base import NativeDataset, SegDataset, wxh
from bench.datasets.folders import dataset_folders
from bench.datasets.layout import Case, natural_key
from bench.datasets.problems import CaseProblem, DataError, Problem


@dataclass
class CheckReport:
    """What ``bench data check`` prints: counts found and every problem, by path."""

    dataset: str
    root: Path | None
    layout: str
    n_cases: int = 0
    n_groups: int = 0
    counts: dict[str, Any] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class _Stats:
    sizes: Counter[str] = field(default_factory=Counter)
    empty: int = 0
    fg_sum: float = 0.0
    n: int = 0

    def add(self, image: np.ndarray | None, mask: np.ndarray | None) -> None:
        if image is not None:
            self.sizes[wxh(image.shape)] += 1
        if mask is not None:
            self.n += 1
            share = float(mask.mean())
            self.fg_sum += share
            self.empty += share == 0.0

    def counts(self) -> dict[str, Any]:
        return {
            "image_sizes (W x H)": dict(self.sizes.most_common()),
            "empty_masks": self.empty,
            "foreground_share_mean": round(self.fg_sum / self.n, 4) if self.n else None,
        }


def _listed_cases(ds: SegDataset, report: CheckReport) -> list[Case]:
    if isinstance(ds, NativeDataset):
        scan = ds.scan()
        report.problems.extend(scan.problems)
        report.counts.update(scan.counts)
        return sorted(scan.cases, key=lambda c: natural_key(c.case_id))
    try:
        return ds.cases()
    except DataError as err:
        report.problems.extend(err.problems)
        return []


def _inspect(ds: SegDataset, case: Case) -> tuple[np.ndarray | None, np.ndarray | None, list[Problem]]:
    if isinstance(ds, NativeDataset):
        return ds.inspect(case)
    try:
        image, mask = ds.read(case)
        return image, mask, []
    except DataError as err:
        return None, None, list(err.problems)
    except Exception as exc:  # noqa: BLE001 - a reader without NativeDataset's wrapping: still name the case
        path = str(case.image_path or case.case_id)
        return None, None, [CaseProblem(path, "unreadable", f"{type(exc).__name__}: {exc}", case.case_id)]


def check_dataset(ds: SegDataset) -> CheckReport:
    """List the cases and read every one, collecting every problem (by file path) and summary counts."""
    report = CheckReport(ds.name, ds.root, ds.layout)
    cases = _listed_cases(ds, report)
    stats = _Stats()
    for case in cases:
        image, mask, problems = _inspect(ds, case)
        report.problems.extend(problems)
        stats.add(image, mask)
    report.n_cases = len(cases)
    report.n_groups = len({c.group for c in cases})
    report.counts.update(stats.counts())
    if ds.options():
        report.counts["options"] = ds.options()
    return report


def check_data_root(path: Path | str, options: dict[str, dict[str, Any]] | None = None) -> list[CheckReport]:
    """Check every dataset folder directly under a data root (one native-layout folder per dataset,
    found by ``bench.datasets.folders``), each with its ``options`` (dataset name -> option values).

    Returns one report per recognised folder, in folder-name order; an empty list when none is
    recognised. A missing data root gives one failing report.
    """

    root = Path(path)
    if not root.is_dir():
        report = CheckReport("data_root", root, "a folder with one native-layout folder per dataset")
        report.problems.append(Problem(str(root), "missing_folder", "the data root does not exist"))
        return [report]
    found = [(folder, name) for name, folders in dataset_folders(root).items() for folder in folders]
    return [
        check_dataset(create_dataset(name, root=folder, **(options or {}).get(name, {})))
        for folder, name in sorted(found, key=lambda item: natural_key(item[0].name))
    ]


def _format_count(key: str, value: Any) -> str:
    if key == "options" and isinstance(value, dict):
        value = ", ".join(f"{k}={v!r}" for k, v in value.items())
    elif isinstance(value, dict):
        value = ", ".join(f"{k} ({v})" if isinstance(v, int) else f"{k}: {v}" for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        shown = [str(v) for v in value[:10]]
        value = f"{len(value)}: " + ", ".join(shown) + (", ..." if len(value) > 10 else "")
    return f"  {key}: {value}"


def _paper_count(name: str) -> int | None:

    return getattr(DATASETS.get(name).factory, "paper_count", None) if name in DATASETS else None


def format_report(report: CheckReport) -> str:
    """Expected layout, counts found, every problem by path, and a verdict line."""
    lines = [f"== {report.dataset} at {report.root}", "expected layout:"]
    lines += [f"  {line}" for line in report.layout.strip().splitlines()]
    lines.append(f"found: {report.n_cases} cases in {report.n_groups} groups")
    lines += [_format_count(k, v) for k, v in report.counts.items()]
    if report.problems:
        lines.append(f"problems ({len(report.problems)}):")
        lines += [f"  - {p}" for p in report.problems]
    paper = _paper_count(report.dataset)
    versus = f" (paper Table 1: {paper})" if paper else ""
    if report.ok:
        lines.append(f"verdict: OK, {report.n_cases} cases readable{versus}")
    else:
        files = len({p.path for p in report.problems})
        lines.append(
            f"verdict: FAIL, {len(report.problems)} problem(s) in {files} file(s)/folder(s); fix or "
            "remove them, or exclude their case ids explicitly with skip=[...]"
        )
    return "\n".join(lines)
