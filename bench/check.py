"""``bench check``: fail when the numbers drift from the committed baseline, on any machine.

The baseline in ``results/baseline/`` comes from the ``check`` profile (every paper network on every
synthetic stand-in, fold 0, trained in float64). It holds the per-image rows, what is derived from
them (per-arch means, the paired tests and their verdicts), the check run's stored predictions
(``predictions/``), the reference masks they were scored against (``references/``) and metadata: why
and at which git sha it was blessed, the environment, the measured noise floor and the tolerances.

Two layers, each reported by name:

1. **scoring**, exact and machine-independent: the stored predictions are re-scored with today's
   threshold, metrics, empty-mask rules, aggregation and statistics, and must reproduce the stored
   rows and derived numbers exactly (floats to 1e-12). No training, so no kernel noise: any change
   to how a prediction becomes a number fails here, on every machine.
2. **training**, end to end: the check profile is re-trained and compared with the stored rows within
   tolerances derived from a measured noise floor (``benchmarks/bench_check_noise.py``: other thread
   counts and other CPU kernels, as another processor would pick). Changes to the data, the
   architectures, their init, the recipe or the training loop fail here.
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.errors import InvalidInput, NoResults
from bench.metrics import METRICS
from bench.results.predictions import load_predictions
from bench.results.provenance import git_sha
from bench.results.store import atomic_write_bytes, atomic_write_json, atomic_write_parquet, load_all, sidecars

KEY = ["dataset", "arch", "protocol", "fold", "seed", "split", "case_id"]
COUNTS = ["tp", "fp", "fn", "tn", "n_ref", "n_pred"]
FLAGS = ["empty_ref", "empty_pred"]
DEFAULT_BASELINE = Path("results/baseline")
PROFILE = "check"
#: The scoring layer's bar: re-scoring identical predictions must give identical numbers.
EXACT = 1e-12


@dataclass(frozen=True)
class Tolerance:
    """Allowed drift of one column: ``|new - old| <= max(abs, rel * |old|)`` (NaN only matches NaN)."""

    abs: float
    rel: float = 0.0

    def allows(self, old: np.ndarray, new: np.ndarray) -> np.ndarray:
        old, new = np.asarray(old, float), np.asarray(new, float)
        both_nan = np.isnan(old) & np.isnan(new)
        both_inf = np.isinf(old) & (old == new)
        with np.errstate(invalid="ignore"):
            close = np.abs(new - old) <= np.maximum(self.abs, self.rel * np.abs(old))
        return both_nan | both_inf | close


#: Training-layer tolerances, chosen from the noise floor measured by ``benchmarks/bench_check_noise.py``
#: (see benchmarks/README.md): with float64 training every variation there moved no pixel, so these
#: allow a few pixels of a 32x32 image (about 0.5%) and the metric change that follows from them, far
#: below what a changed init, recipe default or architecture does (tests/test_check.py).
TRAINING_TOLERANCES: dict[str, Tolerance] = {
    **{c: Tolerance(4) for c in COUNTS},
    **{c: Tolerance(0) for c in FLAGS},
    "dice": Tolerance(0.02),
    "iou": Tolerance(0.02),
    "hd": Tolerance(0.5, 0.05),
    "hd95": Tolerance(0.5, 0.05),
}
SCORING_TOLERANCES: dict[str, Tolerance] = {
    **{c: Tolerance(0) for c in COUNTS + FLAGS},
    **{m: Tolerance(EXACT, EXACT) for m in METRICS},
}


def parse_tolerances(text: str | None, base: dict[str, Tolerance] | None = None) -> dict[str, Tolerance]:
    """``"dice=0.01,hd=0.5:0.05"`` -> abs (and optional :rel) per column; others keep ``base``'s."""
    out = dict(base or TRAINING_TOLERANCES)
    for part in filter(None, (text or "").split(",")):
        name, _, value = part.partition("=")
        if name not in out:
            raise InvalidInput(f"--tolerance: unknown column {name!r}; choose from {', '.join(out)}")
        abs_, _, rel = value.partition(":")
        out[name] = Tolerance(float(abs_), float(rel or 0.0))
    return out


@dataclass
class LayerResult:
    """One layer's comparison with the baseline."""

    name: str
    drifted: pd.DataFrame
    missing: pd.DataFrame
    new: pd.DataFrame
    flips: pd.DataFrame
    errors: list[str] = field(default_factory=list)
    n_rows: int = 0

    @property
    def ok(self) -> bool:
        return self.drifted.empty and self.missing.empty and self.new.empty and self.flips.empty and not self.errors


@dataclass
class CheckResult:
    layers: list[LayerResult]
    environment: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(layer.ok for layer in self.layers)

    def layer(self, name: str) -> LayerResult:
        return next(layer for layer in self.layers if layer.name == name)


# ------------------------------------------------------------------------------------------ derive
def derive(df: pd.DataFrame) -> dict[str, Any]:
    """Everything the baseline derives from its rows: per (dataset, arch) test means and the paired
    tests of MILDNet against every other network per dataset (IoU, Holm)."""
    from bench.analysis.stats import REFERENCE, paired_test

    means = df[df["split"] == "test"].groupby(["dataset", "arch"])[list(METRICS)].mean().reset_index()
    tests = []
    for dataset in sorted(df["dataset"].unique()):
        with warnings.catch_warnings():  # the check compares numbers; "too few units" is for readers of a report
            warnings.simplefilter("ignore", UserWarning)
            res = paired_test(df, dataset=dataset, metric="iou", reference=REFERENCE, protocol="holdout")
        tests += res[["dataset", "reference", "other", "p_raw", "p_adj", "significant"]].to_dict("records")
    return {"means": means.to_dict("records"), "tests": tests}


# ----------------------------------------------------------------------------------------- compare
def compare_rows(
    old: pd.DataFrame, new: pd.DataFrame, tol: dict[str, Tolerance]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(drifted values in long form, largest relative to its tolerance first; missing keys; new keys)."""
    merged = old.merge(new, on=KEY, how="outer", suffixes=("_old", "_new"), indicator=True)
    missing = merged.loc[merged["_merge"] == "left_only", KEY]
    added = merged.loc[merged["_merge"] == "right_only", KEY]
    both = merged[merged["_merge"] == "both"]
    drift = []
    for col in [*COUNTS, *FLAGS, *METRICS]:
        a, b = both[f"{col}_old"].to_numpy(float), both[f"{col}_new"].to_numpy(float)
        for i in np.flatnonzero(~tol[col].allows(a, b)):
            row = both.iloc[i]
            allowed = max(tol[col].abs, tol[col].rel * abs(a[i]), 1e-300)
            drift.append(
                {
                    **{k: row[k] for k in KEY},
                    "column": col,
                    "old": a[i],
                    "new": b[i],
                    "x_tolerance": abs(b[i] - a[i]) / allowed if np.isfinite(b[i] - a[i]) else np.inf,
                }
            )
    out = pd.DataFrame(drift, columns=[*KEY, "column", "old", "new", "x_tolerance"])
    return out.sort_values("x_tolerance", ascending=False, kind="stable").reset_index(drop=True), missing, added


def compare_derived(old: dict[str, Any], new: dict[str, Any]) -> pd.DataFrame:
    """Verdict flips between two derived dicts (same dataset, reference and other)."""
    cols = ["dataset", "reference", "other", "p_adj_old", "p_adj_new", "significant_old", "significant_new"]
    o, n = pd.DataFrame(old.get("tests", [])), pd.DataFrame(new.get("tests", []))
    if o.empty or n.empty:
        return pd.DataFrame(columns=cols)
    m = o.merge(n, on=["dataset", "reference", "other"], suffixes=("_old", "_new"))
    return m.loc[m["significant_old"] != m["significant_new"], cols]


def derived_differences(stored: dict[str, Any], fresh: dict[str, Any], rtol: float) -> list[str]:
    """Where ``fresh`` (derived today) differs from ``stored``: floats beyond ``rtol``, anything else at all."""
    errors = []
    for part, keys in (("means", ["dataset", "arch"]), ("tests", ["dataset", "reference", "other"])):
        a, b = pd.DataFrame(stored.get(part, [])), pd.DataFrame(fresh.get(part, []))
        if set(a.columns) != set(b.columns) or len(a) != len(b):
            errors.append(f"{part}: stored shape {a.shape} differs from re-derived {b.shape}")
            continue
        if a.empty:
            continue
        a, b = a.sort_values(keys).reset_index(drop=True), b.sort_values(keys).reset_index(drop=True)
        for col in sorted(a.columns):
            if a[col].dtype.kind == "f":
                same = np.isclose(a[col].to_numpy(float), b[col].to_numpy(float), rtol=rtol, atol=rtol, equal_nan=True)
            else:
                same = a[col].to_numpy() == b[col].to_numpy()
            for i in np.flatnonzero(~same):
                label = "/".join(str(a.loc[i, k]) for k in keys)
                errors.append(f"{part}.{col} [{label}]: stored {a.loc[i, col]!r}, today {b.loc[i, col]!r}")
    return errors


def rederive_errors(rows: pd.DataFrame, stored: dict[str, Any]) -> list[str]:
    """The baseline's stored derived numbers must equal what its own rows give today."""
    try:
        return derived_differences(stored, derive(rows), rtol=EXACT)
    except ValueError as exc:
        return [f"the baseline rows no longer support its derived numbers: {exc}"]


# ----------------------------------------------------------------------------------- scoring layer
def write_references(folder: Path, dataset: str, case_ids: list[str], groups: list[str], masks: np.ndarray) -> None:
    """The reference masks (N x H x W bool) the check run scored against, bit-packed."""
    import io

    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        case_ids=np.array(case_ids),
        groups=np.array(groups),
        mask_bits=np.packbits(masks.astype(bool), axis=-1),
        shape=np.array(masks.shape),
    )
    atomic_write_bytes(folder / f"{dataset}.npz", buf.getvalue())


def read_references(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """(case ids, groups, masks N x H x W bool) written by ``write_references``."""
    with np.load(path) as z:
        shape = tuple(z["shape"])
        masks = np.unpackbits(z["mask_bits"], axis=-1, count=shape[-1]).astype(bool).reshape(shape)
        return list(z["case_ids"]), list(z["groups"]), masks


def rescore(baseline: Path, rows: pd.DataFrame) -> pd.DataFrame:
    """Today's rows for the baseline's stored predictions (``predictions/<dataset>/<arch>/<stem>.npz``,
    stem ``<protocol>_f<fold>_s<seed>``), scored against ``references/<dataset>.npz``. The split of
    each case comes from the stored rows (``unknown`` for a case they lack)."""
    from bench.run.evaluate import score

    split_of = rows.set_index(["dataset", "arch", "protocol", "fold", "seed", "case_id"])["split"].to_dict()
    frames, refs = [], {}
    for path in sorted((baseline / "predictions").glob("*/*/*.npz")):
        dataset, arch = path.parent.parent.name, path.parent.name.replace("__", ":")
        protocol, fold, seed = _parse_stem(path)
        if dataset not in refs:
            ref_ids, groups, masks = read_references(baseline / "references" / f"{dataset}.npz")
            refs[dataset] = ({c: i for i, c in enumerate(ref_ids)}, groups, masks)
        pos, groups, masks = refs[dataset]
        ids, probs, _ = load_predictions(path)
        missing = [c for c in ids if c not in pos]
        if missing:
            raise NoResults(f"{path}: case ids {missing[:5]} have no reference mask in references/{dataset}.npz")
        idx = [pos[c] for c in ids]
        scored = score(probs, masks[idx], ids, [groups[i] for i in idx])
        scored = scored.assign(dataset=dataset, arch=arch, protocol=protocol, fold=fold, seed=seed)
        scored["split"] = [split_of.get((dataset, arch, protocol, fold, seed, c), "unknown") for c in ids]
        frames.append(scored)
    if not frames:
        return pd.DataFrame(columns=KEY)
    return pd.concat(frames, ignore_index=True).sort_values(KEY).reset_index(drop=True)


def _parse_stem(path: Path) -> tuple[str, int, int]:
    protocol, f, s = path.stem.rsplit("_", 2)
    if not (f.startswith("f") and s.startswith("s")):
        raise NoResults(f"{path}: expected a name <protocol>_f<fold>_s<seed>.npz")
    return protocol, int(f[1:]), int(s[1:])


def scoring_layer(baseline: Path, rows: pd.DataFrame, stored: dict[str, Any]) -> LayerResult:
    """Re-score the stored predictions; rows and derived numbers must match exactly."""
    if not (baseline / "predictions").is_dir():
        return LayerResult(
            "scoring",
            *_empty(),
            errors=[f"{baseline} holds no predictions/ folder: re-bless with `bench check --update --reason ...`"],
        )
    fresh = rescore(baseline, rows)
    drifted, missing, added = compare_rows(rows, fresh, SCORING_TOLERANCES)
    errors = []
    if not fresh.empty:
        try:
            today = derive(fresh[fresh["split"] != "unknown"])
        except ValueError as exc:
            today, errors = {}, [f"derived numbers: {exc}"]
        if today:
            errors += derived_differences(stored, today, rtol=EXACT)
        flips = compare_derived(stored, today) if today else pd.DataFrame()
    else:
        flips = pd.DataFrame()
    return LayerResult("scoring", drifted, missing, added, flips, errors, len(fresh))


# ---------------------------------------------------------------------------------- training layer
def planned_jobs(
    results: Path, archs: str | None = None, datasets: str | None = None, overrides: dict[str, Any] | None = None
) -> list:
    """The check profile's jobs (every paper network and dataset unless narrowed, comma-separated)."""
    from bench.config import load_profile
    from bench.run.plan import plan, select

    return plan(select(archs, datasets, True, "holdout"), load_profile(PROFILE, overrides), results)


def run_benchmark(
    results: Path,
    jobs: int = 1,
    archs: str | None = None,
    datasets: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Run the check profile into ``results`` (always recomputed) and return its tidy table.
    ``overrides`` change profile values (the noise-floor benchmark varies ``threads``)."""
    from bench.run.runner import run_jobs

    planned = planned_jobs(results, archs, datasets, overrides)
    statuses = list(run_jobs(planned, results, n_jobs=jobs, force=True, progress=False))
    failed = [s for s in statuses if s.status == "failed"]
    if failed:
        print("\n".join(f"FAILED {s.label}: {s.error}" for s in failed))
    df = load_all(results)
    keys = {j.key for j in planned}
    df = df[df["job_key"].isin(keys)] if not df.empty else df
    return df.sort_values(KEY).reset_index(drop=True) if not df.empty else df


def training_layer(
    rows: pd.DataFrame, stored: dict[str, Any], new_rows: pd.DataFrame, tol: dict[str, Tolerance]
) -> LayerResult:
    if new_rows.empty:
        return LayerResult("training", *_empty(), errors=["the re-run produced no rows (every job failed?)"])
    drifted, missing, added = compare_rows(rows, new_rows, tol)
    try:
        flips = compare_derived(stored, derive(new_rows))
        errors = []
    except ValueError as exc:
        flips, errors = pd.DataFrame(), [f"derived numbers: {exc}"]
    return LayerResult("training", drifted, missing, added, flips, errors, len(new_rows))


def _empty() -> tuple[pd.DataFrame, ...]:
    return pd.DataFrame(columns=KEY), pd.DataFrame(columns=KEY), pd.DataFrame(columns=KEY), pd.DataFrame()


# ---------------------------------------------------------------------------------------- check/update
def environment() -> dict[str, Any]:
    """What changes the last bits of training: versions, threads, CPU and the kernel-selection variables."""
    import os

    import torch

    return {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu": _cpu_model(),
        "machine": platform.machine(),
        "threads": _profile_threads(),
        **{
            k: os.environ[k]
            for k in (
                "ATEN_CPU_CAPABILITY",
                "ONEDNN_MAX_CPU_ISA",
                "MKL_ENABLE_INSTRUCTIONS",
                "MKL_CBWR",
                "OMP_NUM_THREADS",
            )
            if k in os.environ
        },
    }


def _profile_threads() -> int:
    from bench.config import load_profile

    return load_profile(PROFILE).train.threads


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def check(
    baseline: Path = DEFAULT_BASELINE,
    tolerance: str | None = None,
    results: Path | None = None,
    jobs: int = 1,
    layers: tuple[str, ...] = ("scoring", "training"),
) -> CheckResult:
    """Compare today's code with the baseline, layer by layer (scoring first: it is cheap and exact)."""
    rows = pd.read_parquet(baseline / "rows.parquet")
    stored = json.loads((baseline / "derived.json").read_text())
    meta = json.loads((baseline / "meta.json").read_text())
    out: list[LayerResult] = []
    integrity = rederive_errors(rows, stored)
    if "scoring" in layers:
        layer = scoring_layer(baseline, rows, stored)
        layer.errors[:0] = [f"baseline integrity: {e}" for e in integrity]
        out.append(layer)
    if "training" in layers:
        selection = meta.get("selection", {})
        tol = parse_tolerances(tolerance, _tolerances_from(meta))
        with tempfile.TemporaryDirectory() as tmp:
            new_rows = run_benchmark(results or Path(tmp), jobs, selection.get("archs"), selection.get("datasets"))
        out.append(training_layer(rows, stored, new_rows, tol))
    return CheckResult(out, {"baseline": meta.get("environment", {}), "now": environment()})


def _tolerances_from(meta: dict[str, Any]) -> dict[str, Tolerance]:
    saved = meta.get("tolerances", {})
    return {**TRAINING_TOLERANCES, **{k: Tolerance(**v) for k, v in saved.items() if k in TRAINING_TOLERANCES}}


def update(
    baseline: Path,
    reason: str,
    results: Path | None = None,
    jobs: int = 1,
    archs: str | None = None,
    datasets: str | None = None,
    noise_floor: dict[str, Any] | None = None,
) -> Path:
    """Re-run the benchmark and re-bless the baseline (rows, derived numbers, predictions, references),
    recording ``reason``, the git sha, the environment, the tolerances and the measured noise floor."""
    from bench.results.job_data import load_job_data
    from bench.run.execute import paths

    if not reason.strip():
        raise InvalidInput('--update needs --reason "...": say why the numbers are allowed to change')
    with tempfile.TemporaryDirectory() as tmp:
        res = results or Path(tmp)
        rows = run_benchmark(res, jobs, archs, datasets)
        if rows.empty:
            raise RuntimeError("the check benchmark produced no rows; nothing to bless")
        staging = Path(tempfile.mkdtemp(prefix=".bless-", dir=baseline.parent if baseline.parent.exists() else None))
        try:
            for job in planned_jobs(res, archs, datasets):
                src = paths(job, res)["predictions"]
                dst = (
                    staging
                    / "predictions"
                    / job.dataset
                    / src.parent.name
                    / f"{job.protocol}_f{job.fold}_s{job.seed}.npz"
                )
                atomic_write_bytes(dst, src.read_bytes())
                if not (staging / "references" / f"{job.dataset}.npz").exists():
                    data, _ = load_job_data(job, res / "cache")
                    write_references(
                        staging / "references", job.dataset, list(data.case_ids), list(data.groups), data.masks
                    )
            keep = ("job", "key", "status", "best_epoch", "n_written")
            sides = [{k: s[k] for k in keep if k in s} for s in sidecars(res)]
            derived = derive(rows)
            drift, missing, added = compare_rows(rows, rescore(staging, rows), SCORING_TOLERANCES)
            if not (drift.empty and missing.empty and added.empty):
                raise RuntimeError(
                    f"re-scoring the stored predictions does not reproduce the rows "
                    f"({len(drift)} values, {len(missing)} missing, {len(added)} new): not blessed"
                )
            _install(baseline, staging, rows, sides, derived, reason, archs, datasets, noise_floor)
        finally:
            import shutil

            shutil.rmtree(staging, ignore_errors=True)
    return baseline


def _install(
    baseline: Path,
    staging: Path,
    rows: pd.DataFrame,
    sides: list[dict],
    derived: dict[str, Any],
    reason: str,
    archs: str | None,
    datasets: str | None,
    noise_floor: dict[str, Any] | None,
) -> None:
    import shutil

    baseline.mkdir(parents=True, exist_ok=True)
    for name in ("predictions", "references"):
        shutil.rmtree(baseline / name, ignore_errors=True)
        shutil.move(str(staging / name), str(baseline / name))
    atomic_write_parquet(baseline / "rows.parquet", rows)
    atomic_write_json(baseline / "sidecars.json", sides)
    atomic_write_json(baseline / "derived.json", derived)
    old = json.loads((baseline / "meta.json").read_text()) if (baseline / "meta.json").exists() else {}
    sha, date = git_sha(), time.strftime("%Y-%m-%d")
    atomic_write_json(
        baseline / "meta.json",
        {
            "profile": PROFILE,
            "reason": reason,
            "git_sha": sha,
            "date": date,
            "rows": len(rows),
            "history": old.get("history", []) + [{"reason": reason, "git_sha": sha, "date": date}],
            "selection": {"archs": archs, "datasets": datasets},
            "tolerances": {k: vars(v) for k, v in TRAINING_TOLERANCES.items()},
            "noise_floor": noise_floor if noise_floor is not None else old.get("noise_floor", {}),
            "environment": environment(),
        },
    )


# ---------------------------------------------------------------------------------------------- output
def format_result(res: CheckResult, seconds: float, limit: int = 20) -> str:
    lines = ["environment:"]
    keys = sorted(set(res.environment.get("baseline", {})) | set(res.environment.get("now", {})))
    for k in keys:
        then, now = res.environment.get("baseline", {}).get(k), res.environment.get("now", {}).get(k)
        lines.append(f"  {k:<24} baseline {then!s:<28} now {now!s}" + ("" if then == now else "   (differs)"))
    for layer in res.layers:
        lines += _format_layer(layer, limit)
    failed = [layer.name for layer in res.layers if not layer.ok]
    verdict = (
        "OK: no drift in the "
        + " and ".join(f"{layer.name}" for layer in res.layers)
        + " layer"
        + ("s" if len(res.layers) > 1 else "")
        if not failed
        else "DRIFT in the " + " and ".join(failed) + " layer" + ("s" if len(failed) > 1 else "")
    )
    lines.append(f"bench check: {verdict} ({seconds:.0f} s)")
    return "\n".join(lines)


def _format_layer(layer: LayerResult, limit: int) -> list[str]:
    how = (
        "re-scored from stored predictions, exact"
        if layer.name == "scoring"
        else "re-trained, within the noise-floor tolerances"
    )
    if layer.ok:
        return [f"{layer.name} layer: OK ({layer.n_rows} rows {how})"]
    lines = [
        (
            f"{layer.name} layer: DRIFT ({layer.n_rows} rows {how}): {len(layer.drifted)} values, "
            f"{len(layer.missing)} missing rows, {len(layer.new)} new rows, {len(layer.flips)} verdict flips, "
            f"{len(layer.errors)} other differences"
        )
    ]
    if not layer.drifted.empty:
        lines.append(f"  {len(layer.drifted)} drifted value(s), largest first (x_tolerance: drift / allowed):")
        lines += ["  " + t for t in layer.drifted.head(limit).to_string(index=False).splitlines()]
        if len(layer.drifted) > limit:
            lines.append(f"  ... and {len(layer.drifted) - limit} more")
    for name, frame in (("missing", layer.missing), ("new", layer.new)):
        if not frame.empty:
            lines.append(f"  {len(frame)} {name} row(s):")
            lines += ["  " + t for t in frame.head(limit).to_string(index=False).splitlines()]
    if not layer.flips.empty:
        lines.append(f"  {len(layer.flips)} significance verdict(s) flipped:")
        lines += ["  " + t for t in layer.flips.to_string(index=False).splitlines()]
    lines += [f"  {e}" for e in layer.errors[:limit]]
    return lines
