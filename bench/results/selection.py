"""Which results belong together: a settings table per job, ``--where`` selection and the like-for-like rule.

A results folder can hold several configurations (another epoch count, learning rate, data option or
split). ``settings_table`` turns the job sidecars into one row per ``job_key`` with every recorded
setting: the job fields (``dataset, arch, protocol, fold, seed, profile, source, data_options,
split_hash, data_fingerprint, arch_kwargs``), the training recipe unprefixed (``epochs, lr,
image_size, ...``) and what the job's numerics resolved to where it ran (``RESOLVED_NUMERICS``).
``where`` keeps the jobs matching ``key=value`` conditions, and ``apply_selection`` cuts the results,
failures and sidecars down to those jobs.

Like for like: a comparison of architectures (Tables 4-5, the paired tests, Fig. 8, bars, rankings)
is only meaningful when their jobs differ in nothing but the architecture. ``check_like_for_like``
refuses rows whose settings differ in any other column, naming each differing setting and the
values per architecture, and tells the user to pick one configuration with ``--where``. One exception:
jobs of one tuning (``bench run --tuned NAME``: the same grid, folds and budget for every architecture)
may differ in the grid's settings, each job holding the value its tuning chose for it (``Job.tuning``);
the comparison is like for like in procedure, and ``tuning_note`` says so in the caption. A value not
chosen by that tuning (an untuned job beside tuned ones) still refuses.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from bench.errors import InvalidInput, MissingInput, NoResults, UnknownName

#: Job fields copied into the settings table (besides the training recipe).
JOB_FIELDS = (
    "dataset",
    "arch",
    "protocol",
    "fold",
    "seed",
    "profile",
    "source",
    "data_options",
    "split_hash",
    "data_fingerprint",
    "arch_kwargs",
    "arch_defaults",
    "tuning",
)
#: Settings that may differ between the rows of one comparison: the architecture itself, which fold model
#: and seed, where the data lay, and bookkeeping. Everything else must be equal.
MAY_DIFFER = frozenset(
    {
        "arch",
        "arch_kwargs",
        "arch_defaults",
        "fold",
        "seed",
        "job_key",
        "status",
        "data_root",
        "split_path",
        "split",
        "case_id",
        "group",
    }
)
#: What a job's numerics resolved to on the machine that ran it, read from its sidecar's ``compute``
#: record. The paper profile's ``device: auto`` and ``amp: auto`` are bf16 autocast on one GPU, fp16 on
#: an older one and plain fp32 on a CPU node, with the same settings and the same job key, so these are
#: compared too. Column -> ``compute`` field. Unknown (a failed job, an older sidecar) matches any value.
RESOLVED_NUMERICS = {"autocast_used": "precision", "channels_last_used": "channels_last"}
#: Columns of the per-image rows that are settings themselves (always checked, sidecars or not).
ROW_SETTINGS = ("source", "data_options", "split_hash", "eval_size", "profile", "cohort_fingerprint")


def settings_table(sidecars: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per job key: ``job_key``, ``status`` and every recorded setting (see the module docstring)."""
    rows = []
    for side in sidecars:
        job = side.get("job") or {}
        row: dict[str, Any] = {"job_key": side.get("key", job.get("key")), "status": side.get("status")}
        row.update({k: job.get(k) for k in JOB_FIELDS if k in job})
        row.update({k: _plain(v) for k, v in (job.get("train") or {}).items()})
        compute = side.get("compute") or {}
        row.update({col: compute.get(field) for col, field in RESOLVED_NUMERICS.items()})
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return pd.DataFrame(columns=["job_key", "status", *JOB_FIELDS])
    return table.drop_duplicates("job_key", keep="last").reset_index(drop=True)


def _plain(v: Any) -> Any:
    return json.dumps(v) if isinstance(v, (list, dict)) else v


def parse_where(pairs: Sequence[str]) -> dict[str, str]:
    """``["epochs=3", "lr=0.001"]`` -> ``{"epochs": "3", "lr": "0.001"}``; a pair without ``=`` is an error."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--where expects key=value (e.g. --where epochs=20), got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def matches(value: Any, wanted: str) -> bool:
    """Does the recorded ``value`` equal the command-line text ``wanted``? Numbers compare as numbers
    (``lr=1e-3`` matches 0.001), booleans as true/false/yes/no/1/0, None as none/null, the rest as text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return wanted.lower() in ("none", "null", "")
    if isinstance(value, bool):
        return wanted.lower() in (("true", "yes", "1") if value else ("false", "no", "0"))
    if isinstance(value, (int, float)):
        try:
            return math.isclose(float(value), float(wanted), rel_tol=1e-12, abs_tol=0.0)
        except ValueError:
            return False
    return str(value) == wanted


def where(settings: pd.DataFrame, conditions: Mapping[str, str]) -> pd.DataFrame:
    """Rows of ``settings`` matching every ``key=value``; an unknown key is a KeyError listing the keys,
    a selection matching no job a ValueError showing the values that exist."""
    keep = pd.Series(True, index=settings.index)
    for key, wanted in conditions.items():
        if key not in settings.columns:
            known = ", ".join(c for c in settings.columns if c != "status")
            raise UnknownName(f"--where {key}={wanted}: no recorded setting {key!r}; known settings: {known}")
        hit = settings[key].map(lambda v, w=wanted: matches(v, w))
        if not (keep & hit).any():
            values = ", ".join(sorted({_show(v) for v in settings.loc[keep, key]}))
            raise NoResults(f"--where {key}={wanted} matches no job; recorded values of {key}: {values}")
        keep &= hit
    return settings[keep]


def _show(v: Any) -> str:
    return "none" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)


def apply_selection(
    df: pd.DataFrame, failures: pd.DataFrame | None, sidecars: Sequence[dict[str, Any]], conditions: Mapping[str, str]
) -> tuple[pd.DataFrame, pd.DataFrame | None, list[dict[str, Any]], pd.DataFrame]:
    """(rows, failures, sidecars, settings) of the jobs matching ``conditions`` (all of them when empty).

    Failures are kept only where they come from the same configuration as the results they annotate
    (``same_configuration``): a failed job of another epoch count never becomes a note in a table.
    """
    settings = settings_table(sidecars)
    chosen = where(settings, conditions) if conditions else settings
    keys = set(chosen["job_key"])
    rows = df[df["job_key"].isin(keys)] if len(df) else df
    sides = [s for s in sidecars if s.get("key") in keys]
    fails = failures
    if failures is not None and len(failures):
        fails = failures[failures["key"].isin(keys)] if "key" in failures.columns else failures
        fails = same_configuration(fails, chosen, rows)
    return rows.reset_index(drop=True) if len(rows) else rows, fails, sides, chosen


def comparable_columns(settings: pd.DataFrame) -> list[str]:
    """Settings that must be equal across one comparison (everything but ``MAY_DIFFER``)."""
    return [c for c in settings.columns if c not in MAY_DIFFER]


def same_configuration(failures: pd.DataFrame, settings: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """Failed jobs whose settings equal those of the finished jobs of their dataset and protocol (all of
    them where nothing of that dataset/protocol finished, or the failure's settings are unknown)."""
    if failures.empty or "key" not in failures.columns or settings.empty:
        return failures
    by_key = settings.set_index("job_key")
    ok_keys = set(rows["job_key"]) if len(rows) else set()
    cols = [c for c in comparable_columns(settings) if c not in ("dataset", "protocol", "status")]
    keep = []
    for f in failures.itertuples():
        if f.key not in by_key.index:
            keep.append(True)
            continue
        mine = by_key.loc[f.key]
        peers = by_key[
            (by_key.index.isin(ok_keys))
            & (by_key["dataset"] == mine["dataset"])
            & (by_key["protocol"] == mine["protocol"])
        ]
        keep.append(peers.empty or any(all(_same(mine[c], p[c], c) for c in cols) for _, p in peers.iterrows()))
    return failures[keep]


def _same(a: Any, b: Any, column: str = "") -> bool:
    if column in RESOLVED_NUMERICS and "none" in (_show(a), _show(b)):
        return True  # not recorded (a failed job): it cannot differ
    return _show(a) == _show(b)


def attach(df: pd.DataFrame, settings: pd.DataFrame) -> pd.DataFrame:
    """``df`` with each row's recorded settings (from ``settings``, by ``job_key``) as extra columns, so
    that every comparison can check them (``check_like_for_like``). Columns ``df`` has are kept as they are."""
    if df.empty or settings.empty:
        return df
    extra = [c for c in settings.columns if c not in df.columns and c != "status"]
    return df.merge(settings[["job_key", *extra]], on="job_key", how="left", validate="many_to_one")


def check_like_for_like(rows: pd.DataFrame, what: str = "comparison") -> None:
    """Refuse ``rows`` (one dataset and protocol of a comparison, or several datasets) whose jobs differ
    in any setting but the architecture; the error names each setting with its values per architecture."""
    if rows.empty or "arch" not in rows.columns:
        return
    known = set(ROW_SETTINGS) | _attached_settings()
    cols = [c for c in rows.columns if c in known and c not in MAY_DIFFER]
    by = "dataset" if "dataset" in rows.columns else None
    groups = rows.groupby(by, sort=True) if by else [("", rows)]
    problems: list[tuple[str, str, str]] = []
    for ds, part in groups:
        jobs = part.drop_duplicates("job_key") if "job_key" in part.columns else part
        records = [tuning_of(v) for v in (jobs["tuning"] if "tuning" in jobs.columns else [None] * len(jobs))]
        procedures = pd.Series([_procedure(r) for r in records], index=jobs.index)
        if procedures.nunique() > 1:
            per_arch = procedures.groupby(jobs["arch"]).agg(lambda s: " / ".join(sorted(set(s))))
            problems.append((str(ds), "tuning", "; ".join(f"{a}: {v}" for a, v in per_arch.items())))
        for c in cols:
            shown = jobs[c].map(_show)
            if c in RESOLVED_NUMERICS:
                shown = shown[shown != "none"]
            if shown.nunique() > 1 and not _chosen_by_tuning(jobs[c], records, c):
                per_arch = shown.groupby(jobs["arch"].loc[shown.index]).agg(lambda s: "/".join(sorted(set(s))))
                problems.append((str(ds), c, "; ".join(f"{a}: {v}" for a, v in per_arch.items())))
        problems += _mixed_arch_kwargs(str(ds), jobs)
    if problems:
        listed = "; ".join(f"{ds + ': ' if ds else ''}{c} ({detail})" for ds, c, detail in problems)
        raise NoResults(
            f"{what}: the jobs compared differ in more than the architecture: {listed}. "
            f"Compare one configuration at a time: pick it with --where KEY=VALUE (e.g. --where "
            f"{problems[0][1]}=...; `bench report --table settings` lists the configurations)"
        )


def tuning_of(value: Any) -> dict[str, Any]:
    """A job's tuning record (``Job.tuning``, JSON) as a dict; {} for an untuned job or an older record."""
    if not isinstance(value, str) or not value.strip() or value == "{}":
        return {}
    record = json.loads(value)
    return record if isinstance(record, dict) else {}


def _procedure(record: Mapping[str, Any]) -> str:
    """A tuning record without its chosen point: what must be equal across a tuned comparison."""
    if not record:
        return "not tuned"
    rest = {k: v for k, v in record.items() if k != "chosen"}
    return f"tuning {record.get('name')} " + json.dumps(rest, sort_keys=True)


def _chosen_by_tuning(values: pd.Series, records: Sequence[Mapping[str, Any]], column: str) -> bool:
    """Do ``values`` (one setting, one per job) differ only because one tuning chose them? True when every
    job carries the same tuning procedure, the setting is one of its grid keys and each job's value is the
    value its tuning chose."""
    if not records or not all(records) or len({_procedure(r) for r in records}) != 1:
        return False
    if column not in (records[0].get("grid") or {}):
        return False
    return all(
        column in (r.get("chosen") or {}) and matches(v, str(r["chosen"][column])) for v, r in zip(values, records)
    )


def tuning_note(rows: pd.DataFrame) -> str | None:
    """The caption phrase of a comparison of tuned jobs (``bench run --tuned``): "each architecture at its own
    best of the same grid (tuning NAME: lr over 0.001, 0.0003; 2 folds; 20 epochs)", or the paper's way
    (one architecture tuned, its best given to all); None when no job of ``rows`` was tuned."""
    if rows.empty or "tuning" not in rows.columns:
        return None
    records = {json.dumps(r, sort_keys=True): r for r in map(tuning_of, rows["tuning"].dropna().unique()) if r}
    if not records:
        return None
    notes = []
    for name in sorted({r.get("name") for r in records.values()}, key=str):
        r = next(r for r in records.values() if r.get("name") == name)
        grid = "; ".join(f"{k} over {', '.join(map(str, v))}" for k, v in (r.get("grid") or {}).items())
        budget = [f"{len(r['folds'])} folds" if r.get("folds") else None]
        budget.append(f"{r['epochs']} epochs" if r.get("epochs") else None)
        detail = "; ".join([grid, *[b for b in budget if b]])
        mode = str(r.get("mode", "fair"))
        if mode.startswith("paper"):
            ref = mode.split("tuned on ")[-1].split(" ")[0]
            how = f"the paper's way: only {ref} tuned, its best point given to every architecture"
        else:
            how = "each architecture at its own best of the same grid"
        notes.append(f"{how} (tuning {name}: {detail}; chosen on validation folds, never the test set)")
    return "Tuned: " + "; ".join(notes) + "."


def _mixed_arch_kwargs(ds: str, jobs: pd.DataFrame) -> list[tuple[str, str, str]]:
    """Architectures may take different constructor arguments from each other, but one architecture
    compared under two sets of arguments (e.g. two tuned dilation rates, or results of the entry's old and
    new reading of the paper: ``arch_defaults``) is two configurations."""
    out = []
    for column in ("arch_kwargs", "arch_defaults"):
        if column not in jobs.columns:
            continue
        shown = jobs[column].map(_show).groupby(jobs["arch"]).agg(lambda s: sorted(set(s)))
        mixed = {a: v for a, v in shown.items() if len(v) > 1}
        if mixed:
            out.append((ds, column, "; ".join(f"{a}: {' / '.join(v)}" for a, v in mixed.items())))
    return out


def _attached_settings() -> set[str]:
    """Settings columns ``attach`` adds that the check compares: the training recipe, the data fingerprint
    and the resolved numerics."""
    from bench.config import TrainConfig

    return set(TrainConfig.__dataclass_fields__) | {"data_fingerprint", *RESOLVED_NUMERICS}


def settings_overview(settings: pd.DataFrame) -> pd.DataFrame:
    """The settings that vary across the jobs of a folder, one row per distinct configuration, with its
    job count: what ``--where`` can choose between."""
    if settings.empty:
        return pd.DataFrame(columns=["jobs"])
    shown = settings.map(_show)
    varying = [
        c for c in comparable_columns(settings) if c not in ("dataset", "protocol", "status") and shown[c].nunique() > 1
    ]
    if not varying:
        out = pd.DataFrame({"configuration": ["one configuration"], "jobs": [len(settings)]})
    else:
        out = shown.groupby(varying).size().rename("jobs").reset_index()
    out.attrs["caption"] = (
        f"Configurations in this results folder: {len(settings)} job(s); settings that vary: "
        f"{', '.join(varying) or 'none'}. Select one with --where KEY=VALUE."
    )
    return out


def export_selected(results: Any, out: Any, fmt: str, conditions: Mapping[str, str]) -> Any:
    """``bench export --where``: the tidy rows of the matching jobs only, as csv or parquet."""
    from pathlib import Path

    from bench.results import store

    if fmt not in ("csv", "parquet"):
        raise InvalidInput(f"format must be csv or parquet, got {fmt!r}")
    df = store.load_all(results)
    if df.empty:
        raise MissingInput(f"no finished jobs under {results}/runs: nothing to export")
    rows, _, _, _ = apply_selection(df, None, store.sidecars(results), conditions)
    if rows.empty:
        raise NoResults(f"no finished job matches --where {' '.join(f'{k}={v}' for k, v in conditions.items())}")
    out = Path(out)
    rows.to_csv(out, index=False) if fmt == "csv" else rows.to_parquet(out, index=False)
    return out
