"""Group-aware, seeded splits (docs/protocols.md, "Splits"; paper Table 2 and Fig. 8).

``holdout``: about ``test_fraction`` of the cases (whole groups) form the test set; the rest is
divided into ``n_folds`` folds; fold model k trains on the other folds and chooses its epoch on fold k.
``cv`` (standard k-fold cross-validation): every case is in exactly one of ``n_folds`` folds, no test
set; fold model k is scored on fold k and trains on the other ``n_folds - 1`` folds except an *inner
validation part*: whole groups making up about ``inner_fraction`` of those training folds' cases
(``select``), on which it chooses its epoch. With the defaults (5 folds, inner fraction 0.1) a cv fold
model trains on 80% x 0.9 = 72% of the cases, chooses its epoch on 8% and is scored on the other 20%.

Groups (an LGG patient, the patches of one ISBI/GlaS image) never cross a boundary, and folds
are balanced by number of *cases*, not groups. Split files use nnU-Net's shape plus the test list,
the inner validation parts and every parameter that decides the split:
``{"seed": .., "protocol": .., "n_folds": .., "test_fraction": .., "inner_fraction": ..,
"cases_sha256": .., "test": [...], "folds": [{"train": [...], "val": [...], "select": [...]}]}``
(``select`` only under cv). ``cases_sha256`` hashes the sorted (case id, group) pairs the split was
made from. The shuffle is numpy's ``default_rng(seed)`` over the sorted group names: the same ids,
groups and parameters give the same split on every machine.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.atomic import atomic_write_text
from bench.errors import UserError

PROTOCOLS = ("holdout", "cv")


class SplitError(UserError, ValueError):
    """A split that breaks a rule (group crossing, missing/duplicate ids, overlap, test leakage)."""


#: Default size of a cv fold model's inner validation part, as a fraction of its training folds' cases.
DEFAULT_INNER_FRACTION = 0.1


def cases_hash(case_ids: Sequence[str], groups: Sequence[str]) -> str:
    """sha256 (16 hex digits) of the sorted (case id, group) pairs: the data identity of a split."""
    pairs = sorted(zip(map(str, case_ids), map(str, groups)))
    return hashlib.sha256(json.dumps(pairs).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SplitParams:
    """Every parameter that decides a split, besides the cases themselves."""

    protocol: str
    seed: int
    n_folds: int = 5
    test_fraction: float = 0.3
    inner_fraction: float = DEFAULT_INNER_FRACTION

    def to_dict(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "seed": int(self.seed),
            "n_folds": int(self.n_folds),
            "test_fraction": float(self.test_fraction),
            "inner_fraction": float(self.inner_fraction),
        }


@dataclass(frozen=True)
class Split:
    """``test``: held-out ids (empty for cv); ``folds[k] = (train ids, val ids)``; ids sorted.

    ``select[k]`` (cv only; empty under holdout): the inner validation ids of fold model k, a
    group-aware part of ``folds[k][0]`` on which it chooses its epoch; it trains on the rest.
    ``test_fraction``, ``inner_fraction`` and ``cases_sha256`` record how the split was made (None in
    split files written before they were recorded).
    """

    seed: int
    protocol: str
    test: tuple[str, ...]
    folds: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]
    select: tuple[tuple[str, ...], ...] = ()
    test_fraction: float | None = None
    inner_fraction: float | None = None
    cases_sha256: str | None = None

    @property
    def params(self) -> dict[str, Any]:
        """The recorded split parameters (``SplitParams.to_dict`` shape; None where not recorded)."""
        return {
            "protocol": self.protocol,
            "seed": self.seed,
            "n_folds": len(self.folds),
            "test_fraction": self.test_fraction,
            "inner_fraction": self.inner_fraction,
        }

    def to_dict(self) -> dict[str, Any]:
        folds = [{"train": list(tr), "val": list(va)} for tr, va in self.folds]
        for f, sel in zip(folds, self.select):
            f["select"] = list(sel)
        out: dict[str, Any] = {"seed": self.seed, "protocol": self.protocol, "test": list(self.test), "folds": folds}
        if self.test_fraction is not None:  # files written before these were recorded keep their shape (and hash)
            out.update(
                n_folds=len(self.folds),
                test_fraction=self.test_fraction,
                inner_fraction=self.inner_fraction,
                cases_sha256=self.cases_sha256,
            )
        return out

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
        select = tuple(tuple(f["select"]) for f in d["folds"]) if any("select" in f for f in d["folds"]) else ()
        if "n_folds" in d and int(d["n_folds"]) != len(folds):
            raise SplitError(f"{where}: n_folds is {d['n_folds']} but {len(folds)} folds are listed")
        fractions = {k: None if d.get(k) is None else float(d[k]) for k in ("test_fraction", "inner_fraction")}
        return cls(
            int(d["seed"]),
            str(d["protocol"]),
            tuple(d["test"]),
            folds,
            select,
            cases_sha256=d.get("cases_sha256"),
            **fractions,
        )

    @classmethod
    def load(cls, path: Path) -> Split:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()), str(path))
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise SplitError(f"{path}: not a split file ({err})") from err

    def save(self, path: Path) -> None:
        """Write atomically (``bench.atomic``)."""
        atomic_write_text(path, self.to_json(indent=1) + "\n")

    def fold_ids(self, k: int) -> dict[str, list[str]]:
        """Ids of fold model ``k``: ``train`` (fitted on), ``select`` (chooses the epoch), ``val`` (fold k,
        scored) and ``test`` (the held-out set, scored; empty under cv).

        holdout (the paper's Tables 4-5): train on the other folds, choose the epoch on fold k.
        cv (standard k-fold): train on the other folds minus the inner validation part ``select[k]``,
        choose the epoch there; fold k is scored out of fold and never chooses anything.
        """
        train, val = self.fold(k)
        if self.protocol == "holdout":
            return {"train": list(train), "select": list(val), "val": list(val), "test": list(self.test)}
        if len(self.select) != len(self.folds):
            raise SplitError(
                f"this cv split (seed {self.seed}, hash {self.hash}) has no inner validation parts; "
                "it was written by an older version: delete it so `bench run` makes a new one"
            )
        inner = set(self.select[k])
        return {
            "train": [i for i in train if i not in inner],
            "select": list(self.select[k]),
            "val": list(val),
            "test": [],
        }

    def fold(self, k: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(train, val) of fold ``k``; a missing fold is an error (never a fallback split)."""
        if not isinstance(k, (int, np.integer)) or not 0 <= k < len(self.folds):
            raise IndexError(
                f"fold {k!r} does not exist: this {self.protocol} split (seed {self.seed}) has folds "
                f"0..{len(self.folds) - 1}"
            )
        return self.folds[int(k)]

    def validate(self, case_ids: Sequence[str], groups: Sequence[str]) -> None:
        """Raise ``SplitError`` listing the offending ids if the split does not fit these cases."""
        problems = _problems(self, list(case_ids), list(groups))
        if problems:
            raise SplitError(
                f"{self.protocol} split (seed {self.seed}, hash {self.hash}) is invalid:\n  - "
                + "\n  - ".join(problems)
            )


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
            out.append(
                f"fold {k}: train + val differ from the other folds' ids: {_few(pool ^ (set(train) | set(val)))}"
            )
    for k, sel in enumerate(split.select):
        train = set(split.folds[k][0]) if k < len(split.folds) else set()
        if not sel or set(sel) - train:
            out.append(
                f"fold {k}: inner validation part is empty or not within the training folds: "
                f"{_few(set(sel) - train) or 'empty'}"
            )
        elif not train - set(sel):
            out.append(f"fold {k}: the inner validation part leaves nothing to train on")
    if split.select and len(split.select) != len(split.folds):
        out.append(f"{len(split.select)} inner validation parts for {len(split.folds)} folds")
    if split.protocol == "holdout" and split.select:
        out.append("a holdout split has inner validation parts (holdout chooses the epoch on fold k)")
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
    out = [
        f"group {g!r} crosses a boundary ({', '.join(sorted(p))}): "
        f"{_few([c for c, gg in zip(case_ids, groups) if gg == g])}"
        for g, p in sorted(crossing.items())
    ]
    group_of = dict(zip(case_ids, groups))
    for k, sel in enumerate(split.select):
        inner = {group_of.get(i) for i in sel}
        rest = {group_of.get(i) for i in split.folds[k][0] if i not in set(sel)} if k < len(split.folds) else set()
        for g in sorted(map(str, inner & rest)):
            out.append(f"group {g!r} crosses the inner validation boundary of fold {k}")
    return out


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


def _inner_parts(
    folds: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...],
    members: dict[str, list[str]],
    group_of: dict[str, str],
    fraction: float,
    seed: int,
) -> tuple[tuple[str, ...], ...]:
    """Per fold: whole groups of its training folds (shuffled with ``default_rng([seed, k])``) making up
    about ``fraction`` of their cases; at least one group, never all of them."""
    parts = []
    for k, (train, _) in enumerate(folds):
        pool = sorted({group_of[i] for i in train})
        if len(pool) < 2:
            raise SplitError(
                f"cv fold {k}: {len(pool)} group(s) in the training folds; need 2 or more to hold an "
                "inner validation part out"
            )
        np.random.default_rng([seed, k]).shuffle(pool)
        chosen = _take_test(pool, {g: members[g] for g in pool}, fraction) or {pool[0]}
        if len(chosen) == len(pool):
            chosen.discard(pool[-1])
        parts.append(tuple(sorted(i for g in chosen for i in members[g])))
    return tuple(parts)


def make_splits(
    case_ids: Sequence[str],
    groups: Sequence[str],
    protocol: str,
    seed: int,
    n_folds: int = 5,
    test_fraction: float = 0.3,
    inner_fraction: float = DEFAULT_INNER_FRACTION,
) -> Split:
    """A seeded group-aware split of ``case_ids`` (see the module docstring)."""
    if protocol not in PROTOCOLS:
        raise SplitError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    if n_folds < 2:
        raise SplitError(f"n_folds must be >= 2, got {n_folds}")
    if not 0 < test_fraction < 1:
        raise SplitError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if not 0 < inner_fraction < 1:
        raise SplitError(f"inner_fraction must be in (0, 1), got {inner_fraction}")
    members = _group_sizes(case_ids, groups)
    order = sorted(members)
    np.random.default_rng(seed).shuffle(order)
    test = _take_test(order, members, test_fraction) if protocol == "holdout" else set()
    pool = [g for g in order if g not in test]
    if len(pool) < n_folds:
        raise SplitError(
            f"{protocol}: {len(pool)} group(s) left for {n_folds} folds ({len(members)} groups, "
            f"{len(case_ids)} cases); need at least {n_folds} groups outside the test set"
        )
    vals = _assign_folds(pool, members, n_folds)
    every = sorted(i for v in vals for i in v)
    folds = tuple((tuple(i for i in every if i not in held), tuple(sorted(held))) for held in map(set, vals))
    group_of = dict(zip(case_ids, groups))
    select = _inner_parts(folds, members, group_of, inner_fraction, seed) if protocol == "cv" else ()
    split = Split(
        int(seed),
        protocol,
        tuple(sorted(i for g in test for i in members[g])),
        folds,
        select,
        float(test_fraction),
        float(inner_fraction),
        cases_hash(case_ids, groups),
    )
    split.validate(case_ids, groups)
    return split


def split_file_name(
    dataset: str, source: str, params: SplitParams, case_ids: Sequence[str], groups: Sequence[str]
) -> str:
    """``<dataset>-<source>-<protocol>-seed<seed>-<identity>.json``; the identity hashes every split
    parameter and the (case id, group) pairs, so any change makes a new file."""
    identity = json.dumps({**params.to_dict(), "cases_sha256": cases_hash(case_ids, groups)}, sort_keys=True)
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    return f"{dataset}-{source}-{params.protocol}-seed{params.seed}-{digest}.json"


def load_or_create_split(
    path: Path,
    case_ids: Sequence[str],
    groups: Sequence[str],
    protocol: str,
    seed: int,
    n_folds: int = 5,
    test_fraction: float = 0.3,
    inner_fraction: float = DEFAULT_INNER_FRACTION,
) -> Split:
    """Reuse the split file at ``path`` (validated against these ids, refused if any recorded split
    parameter or the cases differ), or make one and write it there once."""
    path = Path(path)
    if not path.exists():
        split = make_splits(case_ids, groups, protocol, seed, n_folds, test_fraction, inner_fraction)
        split.save(path)
        return split
    split = Split.load(path)
    wanted = SplitParams(protocol, int(seed), n_folds, float(test_fraction), float(inner_fraction)).to_dict()
    differ = [f"{k} {split.params[k]!r} (asked for {v!r})" for k, v in wanted.items() if split.params[k] != v]
    if differ:
        raise SplitError(
            f"{path} was made with other split parameters: {'; '.join(differ)}. Use another path or delete the file"
        )
    if split.cases_sha256 is not None and split.cases_sha256 != cases_hash(case_ids, groups):
        raise SplitError(
            f"{path} does not match the current data (delete it to make a new split): made from "
            f"cases {split.cases_sha256}, these cases hash to {cases_hash(case_ids, groups)}"
        )
    try:
        split.validate(case_ids, groups)
    except SplitError as err:
        raise SplitError(f"{path} does not match the current data (delete it to make a new split):\n{err}") from err
    if split.test_fraction is not None:  # every parameter recorded: the file must be what they make
        made = make_splits(case_ids, groups, protocol, seed, n_folds, test_fraction, inner_fraction)
        differ = first_difference(split, made)
        if differ is not None:
            raise SplitError(
                f"{path} is not the split its recorded parameters make ({split.protocol}, seed {split.seed}, "
                f"{len(split.folds)} folds): {differ}. It was edited or made by other code; delete it to make "
                "the split again"
            )
    return split


def _parts(split: Split) -> dict[str, str]:
    """Where each case of ``split`` is: ``test``, ``val fold k`` (and ``, inner validation of fold j``)."""
    where = {i: "test" for i in split.test}
    for k, (_, val) in enumerate(split.folds):
        where.update({i: f"val fold {k}" for i in val})
    for k, sel in enumerate(split.select):
        for i in sel:
            where[i] = f"{where.get(i, '?')}, inner validation of fold {k}"
    return where


def first_difference(stored: Split, made: Split) -> str | None:
    """The first case (in sorted order) whose place differs between two splits, said in words, or None
    when they are the same split."""
    if stored.to_dict() == made.to_dict():
        return None
    a, b = _parts(stored), _parts(made)
    for case in sorted(set(a) | set(b)):
        if a.get(case) != b.get(case):
            return f"case {case} is in {a.get(case, 'no part')} there, in {b.get(case, 'no part')} when made again"
    return "the folds' training lists differ from the ones the parameters make"
