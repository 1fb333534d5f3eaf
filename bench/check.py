"""``bench check``: re-run the small deterministic benchmark and fail when results drift.

The baseline in ``results/baseline/`` holds the per-image table of the ``check`` profile (every paper
network on every synthetic stand-in, fold 0), the job sidecars, and what is derived from the rows
(per-arch means and the paired-test p-values with their verdicts), plus metadata: why and at which
git sha it was last blessed, and the environment that produced it.

Comparison, per (dataset, arch, fold, split, case_id): counts exact by default; dice/iou/hd/hd95
within ``max(abs, rel * |baseline|)``; rows missing or new are drift; a significance verdict that
flips is drift; and the baseline's derived numbers must re-derive from its own stored rows.

Which environment differences are tolerated: none silently. On one machine with the same torch
version, thread count and CPU instruction set the run is bit-identical (execution.md section 6), so
the default tolerances are tight. Another thread count, torch version or ISA (see the printed
environment lines) changes the last bits of training and can move a few pixels: re-bless with
``--update --reason`` after checking the change is only that, or widen ``--tolerance``.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.store import atomic_write_json, atomic_write_parquet, load_all, sidecars

KEY = ["dataset", "arch", "protocol", "fold", "seed", "split", "case_id"]
COUNTS = ["tp", "fp", "fn", "tn", "n_ref", "n_pred"]
FLAGS = ["empty_ref", "empty_pred"]
METRICS = ["dice", "iou", "hd", "hd95"]
DEFAULT_BASELINE = Path("results/baseline")
PROFILE = "check"


@dataclass(frozen=True)
class Tolerance:
    """Allowed drift of one metric: ``|new - old| <= max(abs, rel * |old|)``."""

    abs: float
    rel: float

    def allows(self, old: np.ndarray, new: np.ndarray) -> np.ndarray:
        both_nan = np.isnan(old) & np.isnan(new)
        return both_nan | (np.abs(new - old) <= np.maximum(self.abs, self.rel * np.abs(old)))


DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "dice": Tolerance(1e-6, 0.0), "iou": Tolerance(1e-6, 0.0), "hd": Tolerance(1e-3, 0.0), "hd95": Tolerance(1e-3, 0.0),
}


def parse_tolerances(text: str | None) -> dict[str, Tolerance]:
    """``"dice=0.01,hd=0.5:0.05"`` -> abs (and optional :rel) per metric, others at their defaults."""
    out = dict(DEFAULT_TOLERANCES)
    for part in filter(None, (text or "").split(",")):
        name, _, value = part.partition("=")
        if name not in METRICS:
            raise ValueError(f"--tolerance: unknown metric {name!r}; choose from {', '.join(METRICS)}")
        abs_, _, rel = value.partition(":")
        out[name] = Tolerance(float(abs_), float(rel or 0.0))
    return out


@dataclass
class CheckResult:
    drifted: pd.DataFrame
    missing: pd.DataFrame
    new: pd.DataFrame
    flips: pd.DataFrame
    derived_errors: list[str] = field(default_factory=list)
    environment_notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.drifted.empty and self.missing.empty and self.new.empty and self.flips.empty \
            and not self.derived_errors


def derive(df: pd.DataFrame) -> dict[str, Any]:
    """Everything the baseline derives from its rows: per (dataset, arch) means and the paired tests
    of MILDNet against every other network per dataset (IoU, paired t-test, Holm)."""
    from bench.stats import paired_test

    means = df[df["split"] == "test"].groupby(["dataset", "arch"])[METRICS].mean().reset_index()
    tests = []
    for dataset in sorted(df["dataset"].unique()):
        res = paired_test(df, dataset=dataset, metric="iou", reference="mildnet", protocol="holdout")
        tests += res[["dataset", "reference", "other", "p_raw", "p_adj", "significant"]].to_dict("records")
    return {"means": means.to_dict("records"), "tests": tests}


def compare_rows(old: pd.DataFrame, new: pd.DataFrame, tol: dict[str, Tolerance]) -> tuple[pd.DataFrame, ...]:
    """(drifted rows in long form, missing keys, new keys)."""
    merged = old.merge(new, on=KEY, how="outer", suffixes=("_old", "_new"), indicator=True)
    missing = merged.loc[merged["_merge"] == "left_only", KEY]
    added = merged.loc[merged["_merge"] == "right_only", KEY]
    both = merged[merged["_merge"] == "both"]
    drift = []
    for col in COUNTS + FLAGS + METRICS:
        a, b = both[f"{col}_old"].to_numpy(), both[f"{col}_new"].to_numpy()
        ok = tol[col].allows(a.astype(float), b.astype(float)) if col in METRICS else (a == b)
        for i in np.flatnonzero(~ok):
            row = both.iloc[i]
            drift.append({**{k: row[k] for k in KEY}, "metric": col, "old": a[i], "new": b[i]})
    return pd.DataFrame(drift, columns=[*KEY, "metric", "old", "new"]), missing, added


def compare_derived(old: dict[str, Any], new: dict[str, Any]) -> pd.DataFrame:
    """Verdict flips between two derived dicts (same dataset, reference and other)."""
    o = pd.DataFrame(old["tests"])
    n = pd.DataFrame(new["tests"])
    if o.empty or n.empty:
        return pd.DataFrame(columns=["dataset", "reference", "other", "p_adj_old", "p_adj_new"])
    m = o.merge(n, on=["dataset", "reference", "other"], suffixes=("_old", "_new"))
    flips = m[m["significant_old"] != m["significant_new"]]
    return flips[["dataset", "reference", "other", "p_adj_old", "p_adj_new", "significant_old", "significant_new"]]


def rederive_errors(rows: pd.DataFrame, stored: dict[str, Any]) -> list[str]:
    """The baseline's stored derived numbers must equal what its own rows give today."""
    try:
        fresh, errors = derive(rows), []
    except ValueError as exc:
        return [f"the baseline rows no longer support its derived numbers: {exc}"]
    for part, keys in (("means", ["dataset", "arch"]), ("tests", ["dataset", "reference", "other"])):
        a = pd.DataFrame(stored[part]).sort_values(keys).reset_index(drop=True)
        b = pd.DataFrame(fresh[part]).sort_values(keys).reset_index(drop=True)
        if set(a.columns) != set(b.columns) or len(a) != len(b):
            errors.append(f"{part}: stored shape {a.shape} differs from re-derived {b.shape}")
            continue
        for col in sorted(a.columns):
            if a[col].dtype.kind == "f" and not np.allclose(a[col], b[col], rtol=1e-9, atol=1e-12, equal_nan=True):
                errors.append(f"{part}.{col}: stored values no longer re-derive from the baseline rows")
            elif a[col].dtype.kind != "f" and not a[col].equals(b[col]):
                errors.append(f"{part}.{col}: stored values no longer re-derive from the baseline rows")
    return errors


def run_benchmark(results: Path, jobs: int = 1, archs: str | None = None, datasets: str | None = None) -> pd.DataFrame:
    """Run the check profile into ``results`` (always recomputed) and return its tidy table. ``archs`` and
    ``datasets`` (comma-separated) narrow the default selection: every paper network and dataset."""
    from bench.config import load_profile
    from bench.plan import plan, select
    from bench.runner import run_jobs

    profile = load_profile(PROFILE)
    planned = plan(select(archs, datasets, True, "holdout"), profile, results)
    statuses = list(run_jobs(planned, results, n_jobs=jobs, force=True, progress=False))
    failed = [s for s in statuses if s["status"] == "failed"]
    df = load_all(results)
    keys = {j.key for j in planned}
    df = df[df["job_key"].isin(keys)] if not df.empty else df
    if failed:
        print("\n".join(f"FAILED {s['label']}: {s['error']}" for s in failed))
    return df.sort_values(KEY).reset_index(drop=True)


def environment_notes(meta: dict[str, Any]) -> list[str]:
    import torch

    now = {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    then = meta.get("environment", {})
    return [f"{k}: baseline {then.get(k)!r}, now {v!r} (bit-level drift is expected across this)"
            for k, v in now.items() if then.get(k) not in (None, v)]


def check(baseline: Path = DEFAULT_BASELINE, tolerance: str | None = None, results: Path | None = None,
          jobs: int = 1) -> CheckResult:
    base_rows = pd.read_parquet(baseline / "rows.parquet")
    stored = json.loads((baseline / "derived.json").read_text())
    meta = json.loads((baseline / "meta.json").read_text())
    selection = meta.get("selection", {})
    with tempfile.TemporaryDirectory() as tmp:
        new_rows = run_benchmark(results or Path(tmp), jobs, selection.get("archs"), selection.get("datasets"))
    drifted, missing, added = compare_rows(base_rows, new_rows, parse_tolerances(tolerance))
    flips = compare_derived(stored, derive(new_rows)) if not new_rows.empty else pd.DataFrame()
    return CheckResult(drifted, missing, added, flips, rederive_errors(base_rows, stored), environment_notes(meta))


def git_sha() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def update(baseline: Path, reason: str, results: Path | None = None, jobs: int = 1, archs: str | None = None,
           datasets: str | None = None) -> Path:
    """Re-run the benchmark and re-bless the baseline, recording ``reason`` and the git sha."""
    import torch

    if not reason.strip():
        raise ValueError("--update needs --reason \"...\": say why the numbers are allowed to change")
    with tempfile.TemporaryDirectory() as tmp:
        res = results or Path(tmp)
        rows = run_benchmark(res, jobs, archs, datasets)
        keep = ("job", "key", "status", "best_epoch", "n_written")
        sides = [{k: s[k] for k in keep if k in s} for s in sidecars(res)]
    if rows.empty:
        raise RuntimeError("the check benchmark produced no rows; nothing to bless")
    baseline.mkdir(parents=True, exist_ok=True)
    atomic_write_parquet(baseline / "rows.parquet", rows)
    atomic_write_json(baseline / "sidecars.json", sides)
    atomic_write_json(baseline / "derived.json", derive(rows))
    old = json.loads((baseline / "meta.json").read_text()) if (baseline / "meta.json").exists() else {}
    history = old.get("history", []) + [{"reason": reason, "git_sha": git_sha(), "date": time.strftime("%Y-%m-%d")}]
    atomic_write_json(baseline / "meta.json", {
        "profile": PROFILE, "reason": reason, "git_sha": git_sha(), "date": time.strftime("%Y-%m-%d"),
        "rows": len(rows), "history": history, "selection": {"archs": archs, "datasets": datasets},
        "tolerances": {k: vars(v) for k, v in DEFAULT_TOLERANCES.items()},
        "environment": {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                        "threads": 1}})
    return baseline


def format_result(res: CheckResult, seconds: float) -> str:
    lines = [*(f"environment: {n}" for n in res.environment_notes)]
    if not res.drifted.empty:
        lines.append(f"{len(res.drifted)} drifted value(s):")
        lines.append(res.drifted.to_string(index=False))
    for name, frame in (("missing", res.missing), ("new", res.new)):
        if not frame.empty:
            lines.append(f"{len(frame)} {name} row(s):")
            lines.append(frame.to_string(index=False))
    if not res.flips.empty:
        lines.append(f"{len(res.flips)} significance verdict(s) flipped:")
        lines.append(res.flips.to_string(index=False))
    lines += [f"baseline integrity: {e}" for e in res.derived_errors]
    verdict = "OK: no drift" if res.ok else (
        f"DRIFT: {len(res.drifted)} values, {len(res.missing)} missing rows, {len(res.new)} new rows, "
        f"{len(res.flips)} verdict flips, {len(res.derived_errors)} baseline integrity errors")
    lines.append(f"bench check: {verdict} ({seconds:.0f} s)")
    return "\n".join(lines)
