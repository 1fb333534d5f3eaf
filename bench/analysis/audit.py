"""The validation audit (``bench audit``, and the first section of ``bench report``): which known pitfalls
of segmentation benchmarks a results folder avoids and which it commits, computed from the folder itself.

Each item is PASS, WARN or FAIL with its evidence (numbers from the folder) and the fix. The items and
their sources are explained in docs/validation.md: baselines tuned like the proposed architecture,
datasets that can separate the architectures, seeds, independent units, like-for-like configurations,
compute, metrics and empty-mask rules, trivial floors, external validation, models that did not learn,
and test data never used for selection or tuning.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bench.analysis import learning, seeds, suitability
from bench.analysis.stats import MIN_UNITS, default_split, select
from bench.errors import UserError

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
#: Fewer independent units than this on a dataset's scored split: WARN (at most ``MIN_UNITS``: FAIL).
FEW_UNITS = 20
#: Seeds per fold model that count as measuring training variability.
ENOUGH_SEEDS = 3
#: Datasets that must separate the architectures for a claim across datasets.
ENOUGH_DATASETS = 3


@dataclass(frozen=True)
class Item:
    """One line of the audit: ``key`` (stable id), ``title``, ``status``, ``evidence`` and ``fix`` ("" on PASS)."""

    key: str
    title: str
    status: str
    evidence: str
    fix: str = ""


@dataclass(frozen=True)
class Folder:
    """What the audit reads: the rows (settings attached), the sidecars, the failures, the folder's path."""

    df: pd.DataFrame
    sidecars: Sequence[dict[str, Any]]
    results: Path
    failures: pd.DataFrame | None = None

    @property
    def protocol(self) -> str:
        return suitability.report_protocol(self.df)

    @property
    def scored(self) -> pd.DataFrame:
        """The rows the results tables report: holdout test, else cv out of fold."""
        p = self.protocol
        return self.df[(self.df["protocol"] == p) & (self.df["split"] == default_split(p))]


def audit(folder: Folder) -> list[Item]:
    """Every item, in the order of docs/validation.md. An item that cannot be computed is a FAIL naming why."""
    checks: list[tuple[str, str, Callable[[Folder], tuple[str, str, str]]]] = [
        ("tuning", "Baselines tuned with the same grid and budget", check_tuning),
        ("datasets", "Datasets that can separate the architectures", check_datasets),
        ("seeds", "Training seeds", check_seeds),
        ("units", "Independent units and their counts", check_units),
        ("like_for_like", "Like-for-like configurations", check_like_for_like),
        ("compute", "Compute reported beside accuracy", check_compute),
        ("metrics", "Metrics and empty-mask rules stated", check_metrics),
        ("floors", "Trivial floors beside the results", check_floors),
        ("external", "External validation", check_external),
        ("learning", "Models that did not learn", check_learning),
        ("test_data", "Test data never used for selection or tuning", check_test_data),
    ]
    items = []
    for key, title, check in checks:
        try:
            status, evidence, fix = check(folder)
        except UserError as exc:
            status, evidence, fix = FAIL, f"could not be checked: {exc}", "make the results comparable first"
        items.append(Item(key, title, status, evidence, fix if status != PASS else ""))
    return items


# ----------------------------------------------------------------------------- the items


def check_tuning(folder: Folder) -> tuple[str, str, str]:
    import yaml

    docs = {p.stem: yaml.safe_load(p.read_text()) or {} for p in sorted((folder.results / "tuned").glob("*.yaml"))}
    profiles = sorted(map(str, folder.df["profile"].unique())) if "profile" in folder.df else []
    fix = (
        "tune every architecture on the same grid, folds and budget: `bench tune --name NAME --grid lr=... "
        "--arch A,B --dataset D`, then `bench run --tuned NAME`"
    )
    used = {p.removeprefix("tuned-") for p in profiles if p.startswith("tuned-")}
    if not docs:
        return WARN, f"no tuning records (tuned/): every architecture ran profile {', '.join(profiles)} untuned", fix
    unfair = {n: d.get("mode", "?") for n, d in docs.items() if not str(d.get("mode", "")).startswith("fair")}
    if unfair_used := sorted(set(unfair) & used):
        modes = "; ".join(f"{n}: {unfair[n]}" for n in unfair_used)
        return FAIL, f"results ran with a tuning of one architecture only ({modes})", fix
    if not used:
        return WARN, f"tuning records {', '.join(docs)} exist, but the results ran profile {', '.join(profiles)}", fix
    if lost := sorted(used - set(docs)):
        return WARN, f"the results ran tuned profile(s) {', '.join(lost)} whose record is not in tuned/", fix
    missing = []
    for name in sorted(used & set(docs)):
        chosen = docs[name].get("chosen") or {}
        for (ds, arch), _ in folder.df.groupby(["dataset", "arch"]):
            if arch not in (chosen.get(ds) or {}):
                missing.append(f"{ds}/{arch}")
    if missing:
        return WARN, f"tuned {', '.join(sorted(used))}, but no tuned choice for {', '.join(missing)}", fix
    grids = "; ".join(f"{n}: grid {docs[n].get('grid')}, budget {docs[n].get('budget', 'not recorded')}" for n in used)
    return PASS, f"every architecture tuned on the same grid and budget ({grids})", ""


def check_datasets(folder: Folder) -> tuple[str, str, str]:
    names = sorted(folder.scored["dataset"].unique())
    rows = [suitability.assess(folder.df, ds, "dice", folder.protocol) for ds in names]
    good = [r["dataset"] for r in rows if r["verdict"] == suitability.SEPARATES]
    detail = "; ".join(f"{r['dataset']}: {r['verdict']} ({r['reason']})" for r in rows)
    evidence = f"{len(names)} dataset(s), {len(good)} separate the architectures on Dice: {detail}"
    fix = (
        f"more datasets, or a larger budget (epochs, image size, folds, seeds), until at least {ENOUGH_DATASETS} "
        "separate the architectures (`bench report --table suitability`)"
    )
    status = PASS if len(good) >= ENOUGH_DATASETS else WARN if good else FAIL
    return status, evidence, fix


def check_seeds(folder: Folder) -> tuple[str, str, str]:
    per_model = folder.df.groupby(["dataset", "arch", "protocol", "fold"])["seed"].nunique()
    fewest, found = int(per_model.min()), seeds.seeds_of(folder.df)
    fix = f"run every fold model under {ENOUGH_SEEDS} or more seeds: `bench run ... --seeds 0,1,2`"
    if len(found) <= 1:
        return WARN, f"{seeds.ONE_SEED} (seed {found[0] if found else '?'} only)", fix
    most = int(per_model.max())
    evidence = (
        f"{fewest if fewest == most else f'{fewest}-{most}'} seeds per fold model (seeds {', '.join(map(str, found))})"
    )
    return (PASS if fewest >= ENOUGH_SEEDS else WARN), evidence, fix


def check_units(folder: Folder) -> tuple[str, str, str]:
    from bench.analysis.stats import unit_nouns

    parts, worst = [], PASS
    for ds, g in folder.scored.groupby("dataset", sort=True):
        n_images = g["case_id"].nunique()
        n_units = g["group"].nunique() if "group" in g else n_images
        group, image = unit_nouns(str(ds), n_units < n_images)
        parts.append(
            f"{ds}: {n_units} {_noun(group, n_units)}" + (f" ({n_images} {image})" if n_units < n_images else "")
        )
        status = FAIL if n_units <= MIN_UNITS else WARN if n_units < FEW_UNITS else PASS
        worst = max(worst, status, key=[PASS, WARN, FAIL].index)
    evidence = (
        f"paired tests and ranks are over independent units ({folder.protocol}, {default_split(folder.protocol)}): "
        + "; ".join(parts)
    )
    fix = f"more independent units (patients, source images): at most {MIN_UNITS} gives a test almost no power"
    return worst, evidence, fix


def _noun(plural: str, n: int) -> str:
    """ "patients" -> "patient" for one of them ("source images" -> "source image", "patches" -> "patch")."""
    if n != 1:
        return plural
    return plural[:-2] if plural.endswith("ches") else plural.removesuffix("s")


def check_like_for_like(folder: Folder) -> tuple[str, str, str]:
    checked, problems = [], []
    for (protocol, split), _ in folder.df.groupby(["protocol", "split"]):
        try:
            select(folder.df, protocol=str(protocol), split=str(split))
            checked.append(f"{protocol}/{split}")
        except UserError as exc:
            problems.append(f"{protocol}/{split}: {exc}")
    if problems:
        return FAIL, "; ".join(problems), "pick one configuration with --where KEY=VALUE, or rerun the odd jobs"
    return PASS, f"jobs differ only in architecture, fold and seed ({', '.join(checked)})", ""


def check_compute(folder: Folder) -> tuple[str, str, str]:
    keys = set(folder.df["job_key"].astype(str)) if "job_key" in folder.df else set()
    done = [s for s in folder.sidecars if s.get("status") == "ok" and str(s.get("key")) in keys]
    have = [s for s in done if {"gmacs", "parameters", "train_seconds_per_epoch"} <= set(s.get("compute") or {})]
    evidence = (
        f"parameters, GMACs and training seconds per epoch recorded for {len(have)} of {len(done)} jobs "
        "(`bench report --table compute`, `--figure pareto`)"
    )
    fix = "rerun the jobs without a compute record (results written before it existed): `bench run --force`"
    return (PASS if have and len(have) == len(done) else WARN if have else FAIL), evidence, fix


def check_metrics(folder: Folder) -> tuple[str, str, str]:
    from bench.analysis.tables import sensitivity

    metrics = [m for m in ("dice", "iou", "hd", "hd95") if m in folder.df.columns]
    sel = folder.scored
    both = int((sel["empty_ref"] & sel["empty_pred"]).sum())
    table, line = sensitivity(folder.df, protocol=folder.protocol)
    changed = list(table.loc[table["changed_by_empty_rule"], "dataset"]) if len(table) else []
    evidence = (
        f"per-image {', '.join(metrics)} on the masks' evaluation size; both masks empty: Dice = IoU = 1, HD = 0 "
        f"({both} image scores); exactly one empty: Dice = IoU = 0, HD = the image diagonal (docs/conventions.md, "
        f"stated in every report). {line}"
    )
    if changed:
        fix = f"report both rankings for {', '.join(changed)}: the conclusion depends on the empty-mask rule"
        return WARN, evidence, fix
    return PASS, evidence, ""


def check_floors(folder: Folder) -> tuple[str, str, str]:
    near = []
    parts = []
    for ds in sorted(folder.scored["dataset"].unique()):
        sel = select(folder.df, dataset=ds, protocol=folder.protocol)
        floor, value = suitability.better_floor(sel, "dice")
        best = sel.groupby(["arch", "fold", "seed"])["dice"].mean().groupby("arch").mean()
        margin = float(best.max() - value)
        parts.append(f"{ds}: best {best.idxmax()} {best.max():.3f} vs {floor.replace('_', ' ')} {value:.3f}")
        if margin <= suitability.MIN_FLOOR_MARGIN:
            near.append(ds)
    evidence = "Table 5 and the floors table show both trivial floors on the same images; " + "; ".join(parts)
    if near:
        fix = (
            f"on {', '.join(near)} the best model is within {suitability.MIN_FLOOR_MARGIN:g} Dice of a trivial "
            "prediction: say so beside the results, or train longer / larger"
        )
        return WARN, evidence, fix
    return PASS, evidence, ""


def check_external(folder: Folder) -> tuple[str, str, str]:
    ext = folder.df[folder.df["split"] == "external"]
    if ext.empty:
        return (
            WARN,
            "no external cohort: every score comes from the benchmark's own split",
            "score the stored models on data from another source: "
            + "`bench evaluate --from RESULTS --data-root OTHER --dataset D`",
        )
    return PASS, f"external cohort rows for {', '.join(sorted(ext['dataset'].unique()))} ({len(ext)} image scores)", ""


def check_learning(folder: Folder) -> tuple[str, str, str]:
    flags = learning.job_flags(folder.df)
    col = flags[learning.COLUMN]
    bad, unknown = flags[col.fillna(False).astype(bool)], int(col.isna().sum())
    fix = (
        "train longer or larger (`--profile paper`); read no comparison off a model that did not learn "
        "(their cells and tests are flagged)"
    )
    if len(bad):
        names = [f"{r.dataset}/{r.arch}/{r.protocol}/fold {r.fold}/seed {r.seed}" for r in bad.head(6).itertuples()]
        more = f", ... {len(bad) - 6} more" if len(bad) > 6 else ""
        return (
            FAIL,
            f"{len(bad)} of {len(flags)} fold models did not learn ({learning.RULES}): {', '.join(names)}{more}",
            fix,
        )
    if unknown:
        return WARN, f"not recorded for {unknown} of {len(flags)} fold models (results older than the check)", fix
    return PASS, f"all {len(flags)} fold models learned ({learning.RULES}: none)", ""


def check_test_data(folder: Folder) -> tuple[str, str, str]:
    """From the split files the jobs used and the tuning folders: no test image in a training, selection or
    validation part, no benchmark row of a test image outside the test split, no tuning row on a test image."""
    from bench.datasets.splits import Split

    problems, tests, n_splits = [], set(), 0
    paths = sorted({str((s.get("job") or {}).get("split_path")) for s in folder.sidecars} - {"None", ""})
    for path in paths:
        p = _local(Path(path), folder.results)
        if p is None:
            problems.append(f"split file {Path(path).name} not found")
            continue
        split, n_splits = Split.load(p), n_splits + 1
        test = set(split.test)
        tests |= test
        for k in range(len(split.folds)):
            ids = split.fold_ids(k)
            leak = test & set(ids["train"] + ids["select"] + ids["val"])
            if leak:
                problems.append(f"{p.name} fold {k}: {len(leak)} test id(s) in train/selection/validation")
    rows = folder.df[folder.df["protocol"] == "holdout"]
    leaked_rows = rows[(rows["split"] != "test") & rows["case_id"].isin(tests)]
    if len(leaked_rows):
        problems.append(f"{len(leaked_rows)} non-test rows score a test image")
    tuning = _tuning_rows(folder.results)
    if len(tuning):
        if (tuning["split"] != "val").any():
            problems.append(f"tuning rows outside the validation folds ({sorted(tuning['split'].unique())})")
        if tuning["case_id"].isin(tests).any():
            problems.append("a tuning job scored a test image")
    if problems:
        return FAIL, "; ".join(problems), "rebuild the split (delete the split file) and rerun; never tune on test rows"
    return (
        PASS,
        (
            f"{n_splits} split file(s): test sets ({len(tests)} ids) disjoint from every fold's training, selection and "
            f"validation parts; epochs chosen on validation folds (holdout) or inner validation parts (cv); "
            f"{len(tuning)} tuning row(s), all on validation folds, none on a test image"
        ),
        "",
    )


def _local(path: Path, results: Path) -> Path | None:
    """The split file as recorded, or under this results folder's ``splits/`` (a moved folder)."""
    for candidate in (path, results / "splits" / path.name):
        if candidate.is_file():
            return candidate
    return None


def _tuning_rows(results: Path) -> pd.DataFrame:
    from bench.results.store import load_all

    frames = [load_all(d) for d in sorted((results / "tuning").glob("*")) if (d / "runs").is_dir()]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["split", "case_id"])


# ----------------------------------------------------------------------------- rendering


def format_items(items: Sequence[Item], fmt: str = "text") -> str:
    """Aligned text (``bench audit``) or Markdown (the report's first section)."""
    counts = {s: sum(i.status == s for i in items) for s in (PASS, WARN, FAIL)}
    head = f"Validation audit: {counts[PASS]} pass, {counts[WARN]} warn, {counts[FAIL]} fail (docs/validation.md)"
    if fmt == "md":
        lines = [f"*{head}*", "", "| status | check | evidence | fix |", "|---|---|---|---|"]
        lines += [f"| {i.status} | {i.title} | {_md(i.evidence)} | {_md(i.fix) or '–'} |" for i in items]
        return "\n".join(lines) + "\n"
    lines = [head]
    for i in items:
        lines.append(f"{i.status}  {i.title}: {i.evidence}")
        if i.fix:
            lines.append(f"      fix: {i.fix}")
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def failed(items: Sequence[Item]) -> bool:
    return any(i.status == FAIL for i in items)
