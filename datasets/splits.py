"""Group-aware, seeded splits (conventions.md "Splits"; paper Table 2 and Fig. 8).

``holdout``: about ``test_fraction`` of the cases (whole groups) form the test set; the rest is
divided into ``n_folds`` folds. ``cv``: every case is in exactly one of ``n_folds`` folds, no test
set. Groups (an LGG patient, the patches of one ISBI/GlaS image) never cross a boundary, and folds
are balanced by number of *cases*, not groups. Split files use nnU-Net's shape plus the test list
and seed: ``{"seed": .., "protocol": .., "test": [...], "folds": [{"train": [...], "val": [...]}]}``.
The shuffle is numpy's ``default_rng(seed)`` over the sorted group names: the same ids, groups and
seed give the same split on every machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PROTOCOLS = ("holdout", "cv")


class SplitError(ValueError):
    """A split that breaks a rule (group crossing, missing/duplicate ids, overlap, test leakage)."""


@dataclass(frozen=True)
class Split:
    """``test``: held-out ids (empty for cv); ``folds[k] = (train ids, val ids)``; ids sorted."""

    seed: int
    protocol: str
    test: tuple[str, ...]
    folds: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "protocol": self.protocol, "test": list(self.test),
                "folds": [{"train": list(tr), "val": list(va)} for tr, va in self.folds]}

    def to_json(self, indent: int | None = None) -> str:
        """The split file's text (canonical: sorted keys; compact unless ``indent``)."""
        seps = (",", ":") if indent is None else (",", ": ")
        return json.dumps(self.to_dict(), sort_keys=True, indent=indent, separators=seps)

    @property
    def hash(self) -> str:
        """First 16 hex digits of the sha256 of the canonical JSON (stored with every result row)."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "split") -> Split:
        missing = {"seed", "protocol", "test", "folds"} - set(d)
        if missing:
            raise SplitError(f"{where}: missing key(s) {sorted(missing)}; expected seed, protocol, test, folds")
        folds = tuple((tuple(f["train"]), tuple(f["val"])) for f in d["folds"])
        return cls(int(d["seed"]), str(d["protocol"]), tuple(d["test"]), folds)

    @classmethod
    def load(cls, path: Path) -> Split:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()), str(path))
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise SplitError(f"{path}: not a split file ({err})") from err

    def save(self, path: Path) -> None:
        """Write atomically (temporary file in the same folder, then ``os.replace``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            tmp.write_text(self.to_json(indent=1) + "\n")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def fold(self, k: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(train, val) of fold ``k``; a missing fold is an error (never a fallback split)."""
        if not isinstance(k, (int, np.integer)) or not 0 <= k < len(self.folds):
            raise IndexError(f"fold {k!r} does not exist: this {self.protocol} split (seed {self.seed}) has folds "
                             f"0..{len(self.folds) - 1}")
        return self.folds[int(k)]

    def validate(self, case_ids: Sequence[str], groups: Sequence[str]) -> None:
        """Raise ``SplitError`` listing the offending ids if the split does not fit these cases."""
        problems = _problems(self, list(case_ids), list(groups))
        if problems:
            raise SplitError(f"{self.protocol} split (seed {self.seed}, hash {self.hash}) is invalid:\n  - "
                             + "\n  - ".join(problems))


def _few(ids: Any, n: int = 10) -> str:
    ids = sorted(ids)
    return ", ".join(ids[:n]) + (f" ... ({len(ids)} in all)" if len(ids) > n else "")


def _dupes(ids: Sequence[str]) -> list[str]:
    return [i for i, c in Counter(ids).items() if c > 1]


def _problems(split: Split, case_ids: list[str], groups: list[str]) -> list[str]:
    out: list[str] = []
    if len(case_ids) != len(groups):
        return [f"{len(case_ids)} case ids but {len(groups)} groups"]
    if _dupes(case_ids):
        out.append(f"duplicate case ids in the data: {_few(_dupes(case_ids))}")
    if split.protocol not in PROTOCOLS:
        out.append(f"unknown protocol {split.protocol!r}; expected one of {PROTOCOLS}")
    if split.protocol == "cv" and split.test:
        out.append(f"cv split has a test set: {_few(split.test)}")
    vals = [i for _, va in split.folds for i in va]
    for name, ids in (("test", split.test), ("val folds", vals)):
        if _dupes(ids):
            out.append(f"ids repeated in {name}: {_few(_dupes(ids))}")
    listed, known = set(split.test) | set(vals), set(case_ids)
    if known - listed:
        out.append(f"ids missing from the split: {_few(known - listed)}")
    if listed - known:
        out.append(f"ids in the split but not in the data: {_few(listed - known)}")
    if set(split.test) & set(vals):
        out.append(f"test ids also in a val fold: {_few(set(split.test) & set(vals))}")
    pool = set(vals)
    for k, (train, val) in enumerate(split.folds):
        if set(train) & set(val):
            out.append(f"fold {k}: ids in both train and val: {_few(set(train) & set(val))}")
        if set(train) & set(split.test):
            out.append(f"fold {k}: test ids leak into train: {_few(set(train) & set(split.test))}")
        if _dupes(train):
            out.append(f"fold {k}: ids repeated in train: {_few(_dupes(train))}")
        if set(train) | set(val) != pool:
            out.append(f"fold {k}: train + val differ from the other folds' ids: {_few(pool ^ (set(train) | set(val)))}")
    out += _group_problems(split, case_ids, groups)
    return out


def _group_problems(split: Split, case_ids: list[str], groups: list[str]) -> list[str]:
    """A group whose cases land in more than one part (test, or different val folds)."""
    part = {i: "test" for i in split.test}
    part.update({i: f"val fold {k}" for k, (_, va) in enumerate(split.folds) for i in va})
    seen: dict[str, set[str]] = {}
    for cid, g in zip(case_ids, groups):
        if cid in part:
            seen.setdefault(g, set()).add(part[cid])
    crossing = {g: parts for g, parts in seen.items() if len(parts) > 1}
    return [f"group {g!r} crosses a boundary ({', '.join(sorted(p))}): "
            f"{_few([c for c, gg in zip(case_ids, groups) if gg == g])}" for g, p in sorted(crossing.items())]


# ---------------------------------------------------------------------------------------------- making splits


def _group_sizes(case_ids: Sequence[str], groups: Sequence[str]) -> dict[str, list[str]]:
    if len(case_ids) != len(groups):
        raise SplitError(f"{len(case_ids)} case ids but {len(groups)} groups")
    if _dupes(case_ids):
        raise SplitError(f"duplicate case ids: {_few(_dupes(case_ids))}")
    members: dict[str, list[str]] = {}
    for cid, g in zip(case_ids, groups):
        members.setdefault(g, []).append(cid)
    return members


def _take_test(order: list[str], members: dict[str, list[str]], fraction: float) -> set[str]:
    """Groups (in shuffled order) added while they bring the test size at least as close to the target."""
    target, count, test = fraction * sum(len(v) for v in members.values()), 0, set()
    for g in order:
        n = len(members[g])
        if abs(count + n - target) <= abs(count - target) and count < target:
            test.add(g)
            count += n
    return test


def _assign_folds(order: list[str], members: dict[str, list[str]], n_folds: int) -> list[list[str]]:
    """Largest groups first (stable over the shuffled order), each to the fold with fewest cases so far."""
    folds: list[list[str]] = [[] for _ in range(n_folds)]
    for g in sorted(order, key=lambda g: -len(members[g])):
        k = min(range(n_folds), key=lambda i: (len(folds[i]), i))
        folds[k] += members[g]
    return folds


def make_splits(case_ids: Sequence[str], groups: Sequence[str], protocol: str, seed: int, n_folds: int = 5,
                test_fraction: float = 0.3) -> Split:
    """A seeded group-aware split of ``case_ids`` (see the module docstring)."""
    if protocol not in PROTOCOLS:
        raise SplitError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    if n_folds < 2:
        raise SplitError(f"n_folds must be >= 2, got {n_folds}")
    if protocol == "holdout" and not 0 < test_fraction < 1:
        raise SplitError(f"test_fraction must be in (0, 1), got {test_fraction}")
    members = _group_sizes(case_ids, groups)
    order = sorted(members)
    np.random.default_rng(seed).shuffle(order)
    test = _take_test(order, members, test_fraction) if protocol == "holdout" else set()
    pool = [g for g in order if g not in test]
    if len(pool) < n_folds:
        raise SplitError(f"{protocol}: {len(pool)} group(s) left for {n_folds} folds ({len(members)} groups, "
                         f"{len(case_ids)} cases); need at least {n_folds} groups outside the test set")
    vals = _assign_folds(pool, members, n_folds)
    every = sorted(i for v in vals for i in v)
    folds = tuple((tuple(i for i in every if i not in held), tuple(sorted(held))) for held in map(set, vals))
    split = Split(int(seed), protocol, tuple(sorted(i for g in test for i in members[g])), folds)
    split.validate(case_ids, groups)
    return split


def load_or_create_split(path: Path, case_ids: Sequence[str], groups: Sequence[str], protocol: str, seed: int,
                         n_folds: int = 5, test_fraction: float = 0.3) -> Split:
    """Reuse the split file at ``path`` (validated against these ids, refused if its settings or ids
    differ), or make one and write it there once."""
    path = Path(path)
    if not path.exists():
        split = make_splits(case_ids, groups, protocol, seed, n_folds, test_fraction)
        split.save(path)
        return split
    split = Split.load(path)
    if (split.protocol, split.seed, len(split.folds)) != (protocol, int(seed), n_folds):
        raise SplitError(f"{path} is a {split.protocol} split with seed {split.seed} and {len(split.folds)} folds; "
                         f"asked for {protocol}, seed {seed}, {n_folds} folds. Use another path or delete the file")
    try:
        split.validate(case_ids, groups)
    except SplitError as err:
        raise SplitError(f"{path} does not match the current data (delete it to make a new split):\n{err}") from err
    return split
