"""``bench check``: fail when the numbers drift from the committed baseline, on any machine.

The baseline in ``results/baseline/`` comes from the ``check`` profile (every paper network on every
synthetic stand-in, fold 0, trained in float64). It holds the per-image rows, what is derived from
them (per-arch means, the paired tests and their verdicts), the check run's stored predictions
(``predictions/``), the reference masks they were scored against (``references/``) and metadata: why
and at which git sha it was blessed, the environment, the measured noise floor and the tolerances.

Three layers, each reported by name:

1. **augmentation**, exact and cheap: every transform of the paper's augmentation pipeline is applied alone
   (and the whole pipeline once) with a fixed seed to fixed inputs; its recorded parameters and its
   outputs (every mask bit; per-image moments of the images, to 1e-6, since OpenCV's optimised and
   plain code paths differ in the last float bits) must equal the stored ones. A changed transform,
   probability or parameter fails here, naming the transform.
2. **scoring**, exact and machine-independent: the stored predictions are re-scored with today's
   threshold, metrics, empty-mask rules, aggregation and statistics, and must reproduce the stored
   rows and derived numbers exactly (floats to 1e-12). No training, so no kernel noise: any change
   to how a prediction becomes a number fails here, on every machine.
3. **training**, end to end: the check profile is re-trained and compared with the stored rows within
   tolerances derived from a measured noise floor (``benchmarks/bench_check_noise.py``: other thread
   counts and other CPU kernels, as another processor would pick). Changes to the data, the
   architectures, their init, the recipe or the training loop fail here.

A change of the derived numbers (means, paired tests) by today's statistics code is a changed result of
the scoring layer; "baseline integrity" means only that a baseline file no longer has the content hash
recorded when it was blessed. Environment differences that the recorded noise floor varied (threads,
CPU kernels) are shown once, as information.
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
from bench.results.provenance import cpu_model, git_sha
from bench.results.store import atomic_write_bytes, atomic_write_json, atomic_write_parquet, load_all, sidecars

KEY = ["dataset", "arch", "protocol", "fold", "seed", "split", "case_id"]
COUNTS = ["tp", "fp", "fn", "tn", "n_ref", "n_pred"]
FLAGS = ["empty_ref", "empty_pred"]
DEFAULT_BASELINE = Path("results/baseline")
PROFILE = "check"
#: The gate's layers, cheapest first.
LAYERS = ("augmentation", "scoring", "training")
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
    #: environment keys the noise floor showed not to matter -> the variations that showed it
    harmless: dict[str, list[str]] = field(default_factory=dict)

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
            exact = tol[col].abs <= EXACT and tol[col].rel <= EXACT
            allowed = max(tol[col].abs, tol[col].rel * abs(a[i]))
            size = abs(b[i] - a[i]) if np.isfinite(b[i] - a[i]) else np.inf
            drift.append(
                {
                    **{k: row[k] for k in KEY},
                    "column": col,
                    "old": a[i],
                    "new": b[i],
                    "allowed": "exact" if exact else f"{allowed:.3g}",
                    # drift / allowed; for an exact column the drift itself (it allows none)
                    "x_tolerance": size if exact else size / allowed,
                }
            )
    out = pd.DataFrame(drift, columns=[*KEY, "column", "old", "new", "allowed", "x_tolerance"])
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
                errors.append(
                    f"changed result ({'statistics' if part == 'tests' else 'aggregation'}): {part}.{col} "
                    f"[{label}]: stored {a.loc[i, col]!r}, today {b.loc[i, col]!r}"
                )
    return errors


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
    from bench.run.scoring import score

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
        try:
            scored = score(probs, masks[idx], ids, [groups[i] for i in idx])
        except Exception as exc:  # today's scoring code failed on a stored prediction: say where
            raise RescoreError(f"scoring {path.relative_to(baseline)} raised {_where(exc)}") from exc
        scored = scored.assign(dataset=dataset, arch=arch, protocol=protocol, fold=fold, seed=seed)
        scored["split"] = [split_of.get((dataset, arch, protocol, fold, seed, c), "unknown") for c in ids]
        frames.append(scored)
    if not frames:
        return pd.DataFrame(columns=KEY)
    fresh = pd.concat(frames, ignore_index=True)
    return _with_job_columns(fresh, rows).sort_values(KEY).reset_index(drop=True)


def _with_job_columns(fresh: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """``fresh`` with the per-job columns of the stored ``rows`` that scoring does not make (the job key and
    the stored "did not learn" flag, which the statistics read)."""
    from bench.analysis.learning import COLUMN

    job = ["dataset", "arch", "protocol", "fold", "seed"]
    extra = [c for c in ("job_key", COLUMN) if c in rows.columns]
    if not extra:
        return fresh
    per_job = rows.groupby(job, sort=False)[extra].first().reset_index()
    return fresh.merge(per_job, on=job, how="left")


class RescoreError(Exception):
    """Today's scoring code raised on a stored prediction; the message names the file and the frame."""


def _where(exc: BaseException) -> str:
    """``Type: message (at file:line in function)``: the innermost frame of bench that raised ``exc``."""
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "bench" in Path(f.filename).parts]
    at = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}{at}"


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
    try:
        fresh = rescore(baseline, rows)
    except RescoreError as exc:  # today's metrics code fails on a stored prediction: a drift, named
        return LayerResult("scoring", *_empty(), errors=[f"changed result (metrics): {exc}"])
    drifted, missing, added = compare_rows(rows, fresh, SCORING_TOLERANCES)
    errors = []
    if not fresh.empty:
        try:
            today = derive(fresh[fresh["split"] != "unknown"])
        except (ValueError, ArithmeticError, IndexError, KeyError, TypeError) as exc:
            today, errors = {}, [f"changed result (statistics): deriving the means and tests failed: {_where(exc)}"]
        if today:
            errors += derived_differences(stored, today, rtol=EXACT)
        flips = compare_derived(stored, today) if today else pd.DataFrame()
    else:
        flips = pd.DataFrame()
    return LayerResult("scoring", drifted, missing, added, flips, errors, len(fresh))


# ------------------------------------------------------------------------------ augmentation layer
#: The augmentation layer's fixed inputs: images, channels, side, and the seeds of inputs and transforms.
AUG_IMAGES, AUG_CHANNELS, AUG_SIZE, AUG_INPUT_SEED, AUG_SEED = 48, 3, 16, 0, 7
#: Image moments may differ by this much (OpenCV's optimised and plain code paths differ by about 1e-7).
AUG_IMAGE_TOLERANCE = 1e-6


def augmentation_inputs() -> tuple[np.ndarray, np.ndarray]:
    """Fixed images (N x C x S x S float32 in [0, 1]: a gradient plus noise) and off-centre, asymmetric
    masks (N x S x S bool), so every flip, rotation and warp moves some mask pixels."""
    rng = np.random.default_rng(AUG_INPUT_SEED)
    yy, xx = np.mgrid[:AUG_SIZE, :AUG_SIZE] / (AUG_SIZE - 1)
    images = (0.5 * rng.random((AUG_IMAGES, AUG_CHANNELS, AUG_SIZE, AUG_SIZE)) + 0.25 * (xx + yy)).astype(np.float32)
    cy, cx, ry, rx = (
        rng.uniform(lo, hi, (AUG_IMAGES, 1, 1)) for lo, hi in ((0.3, 0.5), (0.2, 0.4), (0.1, 0.3), (0.2, 0.35))
    )
    masks = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
    masks[:, : AUG_SIZE // 2, : AUG_SIZE // 4] = True  # a corner block: no symmetry survives a flip
    return images, masks


def augmentation_transforms() -> list[tuple[str, Any]]:
    """(name, transform) for each transform of the paper's pipeline (``<index> <class>``), then the
    whole pipeline (``pipeline``)."""
    from bench.datasets.augment import paper_augmentation

    pipeline = paper_augmentation(AUG_SEED)
    return [(f"{i} {type(t).__name__}", t) for i, t in enumerate(pipeline.transforms)] + [("pipeline", pipeline)]


def _augmentation_outputs(name: str, transform: Any, index: int) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """(parameters, image moments N x C x 4, packed masks N x bytes) of one transform on the fixed inputs,
    applied alone with the seed ``AUG_SEED + index`` (the whole pipeline with its own seed)."""
    import albumentations as A

    from bench.datasets.augment import augment_batch

    params = json.loads(json.dumps(transform.to_dict()["transform"], default=str))
    if name != "pipeline":
        transform = A.Compose([transform], strict=True, seed=AUG_SEED + index)
    images, masks = augmentation_inputs()
    out_images, out_masks = augment_batch(images, masks, transform)
    yy, xx = np.mgrid[:AUG_SIZE, :AUG_SIZE] / (AUG_SIZE - 1)
    x = out_images.astype(np.float64)
    moments = np.stack([x.mean((2, 3)), (x**2).mean((2, 3)), (x * xx).mean((2, 3)), (x * yy).mean((2, 3))], -1)
    return params, moments, np.packbits(out_masks.reshape(len(out_masks), -1), axis=-1)


def augmentation_record() -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """What the augmentation layer stores: per transform its name and parameters, and its outputs."""
    names, arrays = [], {}
    for i, (name, transform) in enumerate(augmentation_transforms()):
        params, moments, bits = _augmentation_outputs(name, transform, i)
        names.append({"name": name, "params": params})
        arrays[f"{i}_moments"], arrays[f"{i}_masks"] = moments, bits
    return names, arrays


def write_augmentation(folder: Path) -> None:
    """``augmentation.json`` (transforms and parameters) and ``augmentation.npz`` (their outputs)."""
    import io

    names, arrays = augmentation_record()
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(folder / "augmentation.npz", buf.getvalue())
    atomic_write_json(
        folder / "augmentation.json", {"seed": AUG_SEED, "inputs_seed": AUG_INPUT_SEED, "transforms": names}
    )


def _flat(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        return {k: v for key, val in obj.items() for k, v in _flat(val, f"{prefix}{key}.").items()}
    if isinstance(obj, list) and any(isinstance(v, dict) for v in obj):
        return {k: v for i, val in enumerate(obj) for k, v in _flat(val, f"{prefix}{i}.").items()}
    return {prefix.rstrip("."): obj}


def _param_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    a, b = _flat(old), _flat(new)
    return [
        f"{k} {a.get(k, '(none)')!r} -> {b.get(k, '(none)')!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)
    ]


def augmentation_layer(baseline: Path) -> LayerResult:
    """Re-apply each transform to the fixed inputs; parameters and outputs must equal the stored ones."""
    if not (baseline / "augmentation.json").is_file():
        bless = "`bench check --update --layer augmentation --reason ...`"
        return LayerResult(
            "augmentation", *_empty(), errors=[f"{baseline} holds no augmentation.json: bless it with {bless}"]
        )
    stored = json.loads((baseline / "augmentation.json").read_text())["transforms"]
    errors = []
    with np.load(baseline / "augmentation.npz") as z:
        arrays = {k: z[k] for k in z.files}
    today = augmentation_transforms()
    if [t["name"] for t in stored] != [name for name, _ in today]:
        errors.append(f"transforms changed: stored {[t['name'] for t in stored]}, today {[name for name, _ in today]}")
    by_name = {t["name"]: (i, t) for i, t in enumerate(stored)}
    for i, (name, transform) in enumerate(today):
        if name not in by_name:
            continue
        j, old = by_name[name]
        params, moments, bits = _augmentation_outputs(name, transform, i)
        what = (
            "the whole pipeline"
            if name == "pipeline"
            else f"transform {name.split(' ', 1)[1]} (position {name.split()[0]})"
        )
        changes = _param_changes(old["params"], params)
        if changes:
            errors.append(f"{what}: parameters changed: {'; '.join(changes[:6])}")
        old_m, old_b = arrays[f"{j}_moments"], arrays[f"{j}_masks"]
        if old_m.shape != moments.shape or old_b.shape != bits.shape:
            errors.append(f"{what}: outputs of another shape ({old_m.shape} stored, {moments.shape} today)")
            continue
        img = ~np.isclose(old_m, moments, rtol=0, atol=AUG_IMAGE_TOLERANCE).reshape(len(moments), -1).all(1)
        msk = (old_b != bits).any(1)
        if img.any() or msk.any():
            errors.append(
                f"{what}: outputs differ on {int((img | msk).sum())} of {len(img)} fixed images "
                f"({int(msk.sum())} masks, {int(img.sum())} images)"
            )
    return LayerResult("augmentation", *_empty(), errors=errors, n_rows=len(today))


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


#: The training layer's job with the paper's augmentation on (arch, dataset); its rows are compared under
#: the arch name ``<arch>+augment`` and stored in ``augmented_rows.parquet``, apart from the derived numbers.
AUGMENTED_JOB = ("residual_unet", "dsb2018")  # one that learns something in the check profile
AUGMENTED_ROWS = "augmented_rows.parquet"


def run_augmented(results: Path) -> pd.DataFrame:
    """Train ``AUGMENTED_JOB`` with the check profile and ``augment: true`` into ``results`` and return its
    rows (arch ``<arch>+augment``). One small job: it is run whatever a baseline's selection."""
    arch, dataset = AUGMENTED_JOB
    rows = run_benchmark(results, 1, arch, dataset, overrides={"augment": True})
    return rows.assign(arch=f"{arch}+augment") if not rows.empty else rows


def training_layer(
    rows: pd.DataFrame,
    stored: dict[str, Any],
    new_rows: pd.DataFrame,
    tol: dict[str, Tolerance],
    augmented: tuple[pd.DataFrame, pd.DataFrame] | None = None,
) -> LayerResult:
    """Re-trained rows against the stored ones within ``tol``; ``augmented``: (stored, today's) rows of the
    job with augmentation on, compared the same way (its drift names the arch ``<arch>+augment``)."""
    if new_rows.empty:
        return LayerResult("training", *_empty(), errors=["the re-run produced no rows (every job failed?)"])
    old_all, new_all = rows, new_rows
    if augmented is not None:
        old_all = pd.concat([rows, augmented[0]], ignore_index=True)
        new_all = pd.concat([new_rows, augmented[1]], ignore_index=True)
    drifted, missing, added = compare_rows(old_all, new_all, tol)
    try:
        flips = compare_derived(stored, derive(new_rows))
        errors = []
    except ValueError as exc:
        flips, errors = pd.DataFrame(), [f"derived numbers: {exc}"]
    return LayerResult("training", drifted, missing, added, flips, errors, len(new_all))


def _empty() -> tuple[pd.DataFrame, ...]:
    return pd.DataFrame(columns=KEY), pd.DataFrame(columns=KEY), pd.DataFrame(columns=KEY), pd.DataFrame()


# ---------------------------------------------------------------------------------------- check/update
#: Environment facts only torch can tell (read only when the training layer runs: the others need no torch).
TORCH_FACTS = ("cpu_capability",)


def environment(with_torch: bool = True) -> dict[str, Any]:
    """What changes the last bits of training: versions, threads, CPU and the kernel-selection variables.
    Without ``with_torch`` torch is not imported: its version is read from the installed package's metadata
    and ``TORCH_FACTS`` are left out."""
    import os
    from importlib.metadata import PackageNotFoundError, version

    if with_torch:
        import torch

        torch_facts = {"torch": str(torch.__version__), "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    else:
        try:
            torch_facts = {"torch": version("torch")}
        except PackageNotFoundError:
            torch_facts = {}
    return {
        **torch_facts,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "cpu": cpu_model(),
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


def check(
    baseline: Path = DEFAULT_BASELINE,
    tolerance: str | None = None,
    results: Path | None = None,
    jobs: int = 1,
    layers: tuple[str, ...] = LAYERS,
) -> CheckResult:
    """Compare today's code with the baseline, layer by layer (the cheap exact layers first)."""
    rows = pd.read_parquet(baseline / "rows.parquet")
    stored = json.loads((baseline / "derived.json").read_text())
    meta = json.loads((baseline / "meta.json").read_text())
    out: list[LayerResult] = []
    if "augmentation" in layers:
        out.append(augmentation_layer(baseline))
    if "scoring" in layers:
        layer = scoring_layer(baseline, rows, stored)
        layer.errors[:0] = [f"baseline integrity: {e}" for e in integrity_errors(baseline, meta)]
        out.append(layer)
    if "training" in layers:
        selection = meta.get("selection", {})
        tol = parse_tolerances(tolerance, _tolerances_from(meta))
        with tempfile.TemporaryDirectory() as tmp:
            new_rows = run_benchmark(results or Path(tmp), jobs, selection.get("archs"), selection.get("datasets"))
            augmented = None
            if (baseline / AUGMENTED_ROWS).is_file():
                augmented = (pd.read_parquet(baseline / AUGMENTED_ROWS), run_augmented(results or Path(tmp)))
        layer = training_layer(rows, stored, new_rows, tol, augmented)
        if augmented is None:
            layer.errors.append(
                f"{baseline} holds no {AUGMENTED_ROWS} (the job trained with augmentation on): bless it with "
                "`bench check --update --layer augmentation --reason ...`"
            )
        out.append(layer)
    now = environment(with_torch="training" in layers)
    then = {k: v for k, v in meta.get("environment", {}).items() if k in now or k not in TORCH_FACTS}
    if "training" not in layers and "torch" in then:  # the package metadata's version has no build tag (+cu130)
        then["torch"] = str(then["torch"]).split("+")[0]
    env = {"baseline": then, "now": now}
    return CheckResult(out, env, harmless_environment(meta.get("noise_floor", {})))


#: The files whose content hashes ``meta.json`` records when a baseline is blessed.
BASELINE_FILES = ("rows.parquet", "derived.json", "augmentation.json", "augmentation.npz", "augmented_rows.parquet")


def file_hashes(baseline: Path) -> dict[str, str]:
    """sha256 of each of ``BASELINE_FILES`` that exists."""
    import hashlib

    return {
        name: hashlib.sha256((baseline / name).read_bytes()).hexdigest()
        for name in BASELINE_FILES
        if (baseline / name).is_file()
    }


def integrity_errors(baseline: Path, meta: dict[str, Any]) -> list[str]:
    """Baseline files whose content is not what was blessed (``meta.json`` ``files``; none recorded: none)."""
    recorded, today = meta.get("files", {}), file_hashes(baseline)
    return [
        f"{baseline / name} was changed after it was blessed (sha256 {today.get(name, 'missing')[:12]}, "
        f"blessed {digest[:12]})"
        for name, digest in sorted(recorded.items())
        if today.get(name) != digest
    ]


#: Environment keys and the noise-floor variations (``benchmarks/bench_check_noise.py``) that varied them.
VARIED_BY = {
    "threads": ("threads2",),
    "OMP_NUM_THREADS": ("threads2",),
    "ATEN_CPU_CAPABILITY": ("aten_avx2", "all_sse"),
    "ONEDNN_MAX_CPU_ISA": ("onednn_avx2", "all_sse"),
    "MKL_ENABLE_INSTRUCTIONS": ("mkl_avx2", "all_sse"),
    "cpu_capability": ("aten_avx2", "all_sse"),
    "cpu": ("aten_avx2", "onednn_avx2", "mkl_avx2", "all_sse"),
}


def harmless_environment(noise_floor: dict[str, Any]) -> dict[str, list[str]]:
    """Environment keys whose change the recorded noise floor measured within the training tolerances:
    key -> the variations that showed it."""
    measured = noise_floor.get("variations", {})
    ok = {
        name
        for name, v in measured.items()
        if isinstance(v, dict)
        and all(TRAINING_TOLERANCES[c].allows([0.0], [v[c]])[0] for c in TRAINING_TOLERANCES if c in v)
    }
    return {key: [n for n in names if n in ok] for key, names in VARIED_BY.items() if any(n in ok for n in names)}


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
    from bench.results.job_files import paths

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
            write_augmentation(staging)
            atomic_write_parquet(staging / AUGMENTED_ROWS, run_augmented(res))
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
    for name in ("augmentation.json", "augmentation.npz", AUGMENTED_ROWS):
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
            "files": file_hashes(baseline),
        },
    )


def update_augmentation(baseline: Path, reason: str) -> Path:
    """Re-bless only what guards the augmentation (``augmentation.json`` / ``.npz`` and the rows of the
    training layer's job with augmentation on, ``augmented_rows.parquet``): the other files stay,
    ``meta.json`` gains a history entry and the new content hashes."""
    if not reason.strip():
        raise InvalidInput('--update needs --reason "...": say why the numbers are allowed to change')
    meta_path = baseline / "meta.json"
    if not meta_path.is_file():
        raise NoResults(f"no baseline at {baseline}: bless all layers first with `bench check --update --reason ...`")
    write_augmentation(baseline)
    meta = json.loads(meta_path.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        atomic_write_parquet(baseline / AUGMENTED_ROWS, run_augmented(Path(tmp)))
    sha, date = git_sha(), time.strftime("%Y-%m-%d")
    meta["history"] = meta.get("history", []) + [
        {"reason": reason, "git_sha": sha, "date": date, "layers": ["augmentation"]}
    ]
    meta["files"] = file_hashes(baseline)
    atomic_write_json(meta_path, meta)
    return baseline


# ---------------------------------------------------------------------------------------------- output
def format_result(res: CheckResult, seconds: float, limit: int = 20) -> str:
    lines = format_environment(res)
    for layer in res.layers:
        lines += _format_layer(layer, limit)
    failed = [layer.name for layer in res.layers if not layer.ok]
    names = [layer.name for layer in res.layers]
    verdict = (
        f"OK: no drift in the {_and(names)} layer{'s' * (len(names) > 1)}"
        if not failed
        else f"DRIFT in the {_and(failed)} layer{'s' * (len(failed) > 1)}"
    )
    lines.append(f"bench check: {verdict} ({seconds:.0f} s)")
    return "\n".join(lines)


def _and(names: list[str]) -> str:
    return ", ".join(names[:-1]) + (" and " if len(names) > 1 else "") + names[-1] if names else ""


def format_environment(res: CheckResult) -> list[str]:
    """One line when the environment is the baseline's; otherwise one information line for the differences
    the noise floor showed not to matter, and one line for those it did not cover."""
    then, now = res.environment.get("baseline", {}), res.environment.get("now", {})
    differ = [k for k in sorted(set(then) | set(now)) if then.get(k) != now.get(k)]
    same = ", ".join(
        f"{k} {now[k]}" for k in ("torch", "numpy", "python", "cpu", "cpu_capability", "threads") if k in now
    )
    lines = [f"environment: as the baseline's ({same})" if not differ else f"environment: {same}"]
    shown = [k for k in differ if k in res.harmless]
    other = [k for k in differ if k not in res.harmless]

    def change(k: str) -> str:
        return f"{k} {then.get(k, 'unset')} -> {now.get(k, 'unset')}"

    if shown:
        varied = sorted({v for k in shown for v in res.harmless[k]})
        lines.append(
            f"  information: differs in {', '.join(change(k) for k in shown)}; the recorded noise floor "
            f"({', '.join(varied)}) showed such changes move no result beyond the tolerances"
        )
    if other:
        lines.append(
            f"  differs in {', '.join(change(k) for k in other)}: not covered by the noise floor, "
            "a training-layer drift may come from it"
        )
    return lines


LAYER_HOW = {
    "augmentation": "transforms re-applied to fixed inputs, parameters and outputs exact",
    "scoring": "rows re-scored from stored predictions, exact",
    "training": "rows re-trained, within the noise-floor tolerances",
}


def _format_layer(layer: LayerResult, limit: int) -> list[str]:
    how = LAYER_HOW.get(layer.name, "")
    if layer.ok:
        return [f"{layer.name} layer: OK ({layer.n_rows} {how})"]
    head = f"{layer.name} layer: DRIFT ({layer.n_rows} {how}): "
    if layer.name == "augmentation":
        lines = [head + f"{len(layer.errors)} difference(s)"]
    else:
        lines = [
            head + f"{len(layer.drifted)} values, {len(layer.missing)} missing rows, {len(layer.new)} new rows, "
            f"{len(layer.flips)} verdict flips, {len(layer.errors)} other differences"
        ]
    if not layer.drifted.empty:
        lines.append(f"  {len(layer.drifted)} drifted value(s), largest first (x_tolerance: drift / allowed):")
        shown = layer.drifted.head(limit).copy()
        shown["x_tolerance"] = [
            "exact" if allowed == "exact" else f"{x:.3g}" for allowed, x in zip(shown["allowed"], shown["x_tolerance"])
        ]
        lines += ["  " + t for t in shown.to_string(index=False).splitlines()]
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
    if len(layer.errors) > limit:
        lines.append(f"  ... and {len(layer.errors) - limit} more")
    return lines
