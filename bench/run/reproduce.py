"""The ``bench run`` command(s) that reproduce a set of finished jobs, rebuilt from their sidecars.

A report states how its numbers were made: each job's sidecar records its dataset, architecture,
protocol, fold, seed, profile, training settings, data folder and data options, so the equivalent
command line can be written back: settings that differ from the named profile become ``--set``,
dataset options that differ from it ``--dataset-option``, excluded case ids become ``--skip``. Jobs that share everything but (dataset, arch, fold, seed) and
form a full grid make one command; otherwise there is one command per dataset (per dataset and
architecture if needed).
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping, Sequence
from itertools import product
from pathlib import Path
from typing import Any

from bench.config import load_profile


def _overrides(profile: str, train: Mapping[str, Any]) -> list[str]:
    """``--set key=value`` for every setting that differs from the profile (every setting if the profile
    cannot be loaded by name, e.g. a YAML file elsewhere)."""
    try:
        base = load_profile(profile).train.to_dict()
    except KeyError:
        base = {}
    return [
        f"--set {k}={'null' if v is None else str(v).lower() if isinstance(v, bool) else v}"
        for k, v in sorted(train.items())
        if k not in base or base[k] != v
    ]


def _data_root(job: Mapping[str, Any]) -> str | None:
    """``--data-root``: the parent of the dataset's own folder, relative to the working directory."""
    root = job.get("data_root")
    return None if root is None else os.path.relpath(Path(root).parent)


def run_commands(sidecars: Sequence[Mapping[str, Any]]) -> list[str]:
    """One ``bench run`` line per group of finished jobs (see the module docstring), sorted."""
    groups: dict[tuple, set[tuple]] = {}
    for side in sidecars:
        if side.get("status") != "ok" or "job" not in side:
            continue
        job = side["job"]
        options = json.loads(job.get("data_options") or "{}")
        common = (
            job["profile"],
            job["protocol"],
            _data_root(job),
            tuple(_overrides(job["profile"], job["train"])),
            tuple(options.get("skip", ())),
            _dataset_options(job, options),
        )
        groups.setdefault(common, set()).add((job["dataset"], job["arch"], int(job["fold"]), int(job["seed"])))
    lines = []
    for common, cells in groups.items():
        for part in _grids(cells):
            lines.append(_command(common, part))
    return sorted(lines)


def _grids(cells: set[tuple]) -> list[set[tuple]]:
    """Split (dataset, arch, fold, seed) cells into full grids: all at once, per dataset, or per (dataset, arch)."""
    for key in (lambda c: (), lambda c: c[0], lambda c: c[:2]):
        parts: dict[Any, set[tuple]] = {}
        for c in cells:
            parts.setdefault(key(c), set()).add(c)
        if all(_is_grid(p) for p in parts.values()):
            return [parts[k] for k in sorted(parts)]
    return [{c} for c in sorted(cells)]


def _is_grid(cells: set[tuple]) -> bool:
    axes = [sorted({c[i] for c in cells}) for i in range(4)]
    return set(product(*axes)) == cells


def _dataset_options(job: Mapping[str, Any], options: Mapping[str, Any]) -> tuple[str, ...]:
    """``--dataset-option DATASET.OPTION=VALUE`` for every reader option that differs from the profile's."""
    if job.get("data_root") is None:
        return ()
    from bench.datasets.options import options_of

    try:
        base = options_of(job["dataset"], load_profile(job["profile"]).dataset_options)
    except KeyError:
        base = {}
    return tuple(
        f"--dataset-option {job['dataset']}.{k}={str(v).lower() if isinstance(v, bool) else v}"
        for k, v in sorted(options.items())
        if k != "skip" and (k not in base or base[k] != v)
    )


def _command(common: tuple, cells: set[tuple]) -> str:
    profile, protocol, data_root, sets, skip, dataset_options = common
    datasets, archs, folds, seeds = (sorted({c[i] for c in cells}) for i in range(4))
    words = [
        "bench",
        "run",
        "--dataset",
        ",".join(datasets),
        "--arch",
        ",".join(archs),
        "--protocol",
        protocol,
        "--folds",
        ",".join(map(str, folds)),
        "--seeds",
        ",".join(map(str, seeds)),
        "--profile",
        profile,
    ]
    if data_root is not None:
        words += ["--data-root", data_root]
    if skip:
        words += ["--skip", ",".join(skip)]
    line = shlex.join(words)
    return " ".join([line, *sets, *dataset_options])


def report_commands(sidecars: Sequence[Mapping[str, Any]], out: Path | str, results: Path | str) -> list[str]:
    """What a report's index states: the ``run_commands`` of its jobs, then the ``bench report`` that wrote it."""
    return [
        *run_commands(sidecars),
        shlex.join(["bench", "report", "--all", "--out", str(out), "--results", str(results)]),
    ]
