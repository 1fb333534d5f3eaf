"""The report: every table (md, tex, csv, html) and figure of a results table, with an index that says
where the numbers come from (real or synthetic data, profile, jobs, conventions, package versions).

Entry points for the CLI: ``build_report`` (``bench report``), ``report_table`` (``bench report --table N``)
and ``report_figure`` (``bench report --figure 8``).
"""

from __future__ import annotations

import importlib.metadata
import platform
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from bench.analysis import learning, ranking, stats, tables
from bench.analysis.names import arch_label, dataset_label, ordered_archs, ordered_datasets
from bench.errors import InvalidInput, NoResults, UserError
from bench.report import figures
from bench.report.curves import learning_curves
from bench.report.html import index_html
from bench.report.qualitative import qualitative
from bench.report.table_render import render
from bench.results import selection

FORMATS = ("md", "tex", "csv", "html")
_RENDER_FMT = {"md": "md", "tex": "latex", "latex": "latex", "csv": "csv", "html": "html"}
CONVENTIONS = [
    "Prediction mask: sigmoid(logits) > 0.5; metrics on the evaluation-size masks (column eval_size; paper: 256x256).",
    (
        "Dice and IoU from integer counts in float64, no smoothing. Both masks empty: Dice = IoU = 1 (counted; the "
        "sensitivity table shows the ranking when such images are excluded). Reference empty, prediction not: 0."
    ),
    (
        "HD (paper Eq. 6-8): symmetric Hausdorff distance over all foreground pixels, Euclidean, in pixels. Both empty: 0; "
        "exactly one empty: the image diagonal (flagged hd_worst_case, never NaN)."
    ),
    "HD95: max of the two directed 95th percentiles of boundary-to-boundary distances (MONAI convention), pixels.",
    (
        "Tables 4/5: mean ± std (ddof=1) over fold models of each fold model's mean over its images "
        "(Table 4: validation folds of the holdout protocol; Table 5: the holdout test set)."
    ),
    (
        "Protocols: holdout (Tables 4-5) = a seeded group-aware 70/30 split, the 70% in 5 folds; fold model k trains "
        "on the 4 other folds, chooses its epoch on fold k (its Table 4 score) and is scored on the 30% test set (Table 5). cv (Fig. 8) = standard "
        "5-fold cross-validation: fold model k trains on the 4 other folds (80%) minus an inner validation part of "
        "whole groups (inner_fraction of those folds, 0.1 by default: 72% of the data), chooses its epoch there and "
        "is scored on fold k, so every image is scored once, out of fold."
    ),
    (
        "Statistics: paired on case_id (unmatched sets refused), at the level of the independent unit by default "
        "(each image's value averaged over fold models, then over its group: an LGG patient, an ISBI/GlaS source "
        "image; every output names the unit); paired t-test, Holm correction across the comparisons of one dataset, "
        "Cohen's d_z and the mean difference with its t-based 95% CI. Under cv also the corrected resampled t-test "
        "over fold models (Nadeau & Bengio 2003)."
    ),
    (
        "Like for like: every comparison refuses architectures whose jobs differ in any setting but the architecture "
        "(training recipe, data options, split, data source, evaluation size)."
    ),
]
REPORT_PACKAGES = ("numpy", "pandas", "scipy", "statsmodels", "matplotlib", "seaborn", "mildnet-bench")


# ----------------------------------------------------------------------------- single entry points


def report_table(
    df: pd.DataFrame,
    n: int | str,
    fmt: str = "md",
    vs_paper: bool = False,
    *,
    failures: pd.DataFrame | None = None,
    sidecars: Sequence[dict[str, Any]] | None = None,
    inputs: Sequence[Any] = (),
    **kwargs: Any,
) -> str:
    """Table ``n`` rendered as ``fmt`` (md, tex/latex, csv, html).

    ``n``: 3 (hyper-parameters, needs ``sidecars``), 4, 5, ``"floors"``, ``"sensitivity"``, ``"tests"``
    (paired tests, ``kwargs`` go to ``stats.paired_tests``), ``"folds"`` (corrected resampled t-test over
    cv fold models), ``"ranks"`` (bootstrap rank uncertainty, ``bench.analysis.ranking.rank_table``),
    ``"settings"`` (the configurations of the folder, needs ``sidecars``), or 1/2 (built by
    ``bench.datasets.summary`` ``table1(*inputs)`` / ``table2(*inputs)``: prepared datasets, or (prepared,
    split) pairs).
    """
    table = build_table(df, n, vs_paper, failures=failures, sidecars=sidecars, inputs=inputs, **kwargs)
    return render(table, _render_fmt(fmt))


def build_table(
    df: pd.DataFrame,
    n: int | str,
    vs_paper: bool = False,
    *,
    failures: pd.DataFrame | None = None,
    sidecars: Sequence[dict[str, Any]] | None = None,
    inputs: Sequence[Any] = (),
    **kwargs: Any,
) -> pd.DataFrame:
    """The DataFrame behind ``report_table`` (raw floats; caption and bold cells in ``attrs``)."""
    key = str(n)
    if key in ("1", "2"):
        try:
            from bench.datasets import summary
        except ImportError as exc:
            raise ValueError(f"Table {n} is built by bench.datasets.summary, which is not importable: {exc}") from exc
        return getattr(summary, f"table{n}")(*inputs, **kwargs)
    if key in ("3", "settings"):
        if not sidecars:
            raise ValueError(f"Table {n} needs the job sidecars (bench.results.store.sidecars(results))")
        if key == "settings":
            return selection.settings_overview(selection.settings_table(sidecars))
        return tables.table3(sidecars)
    if key == "compute":  # parameters, GMACs, time and memory per job beside Dice (bench.analysis.compute)
        from bench.analysis.compute import compute_table

        return compute_table(df, sidecars or [])
    builders: dict[str, Callable[[], pd.DataFrame]] = {
        "4": lambda: tables.table4(df, failures=failures, vs_paper=vs_paper, **kwargs),
        "5": lambda: tables.table5(df, failures=failures, vs_paper=vs_paper, **kwargs),
        "floors": lambda: tables.floor_rows(df, **kwargs),
        "sensitivity": lambda: tables.sensitivity(df, **kwargs)[0],
        "tests": lambda: _tests_table(df, **kwargs),
        "folds": lambda: _fold_tests_table(df, **kwargs),
        "ranks": lambda: ranking.rank_table(df, **{"protocol": _ranking_protocol(df), **kwargs}),
    }
    if key not in builders:
        raise InvalidInput(
            f"unknown table {n!r}; expected 1, 2, 3, 4, 5, floors, sensitivity, tests, folds, ranks or settings"
        )
    return builders[key]()


def _ranking_protocol(df: pd.DataFrame) -> str:
    return "holdout" if ((df["protocol"] == "holdout") & (df["split"] == "test")).any() else "cv"


def _tests_table(df: pd.DataFrame, **kwargs: Any) -> pd.DataFrame:
    """Paired tests, compact: one row per comparison; test, correction and unit go in the caption."""
    if kwargs.get("protocol") is None:
        kwargs["protocol"] = stats.resolve_protocol(df, None, None)[0]
    full = stats.paired_tests(df, **kwargs)
    if full.empty:
        raise NoResults(f"no {kwargs.get('protocol', 'cv')} results to test")
    out = full[
        [
            "dataset",
            "other",
            "n",
            "n_images",
            "mean_ref",
            "mean_other",
            "mean_diff",
            "ci_low",
            "ci_high",
            "d_z",
            "p_raw",
            "p_adj",
            "significant",
        ]
    ].rename(columns={"other": "arch", "n": "n_units"})
    settings = sorted(
        {
            f"{r.test} test of {r.metric}, {r.reference} vs each model, {r.correction} correction per "
            f"dataset, alpha {r.alpha:g}"
            for r in full.itertuples()
        }
    )
    units = sorted({f"{dataset_label(r.dataset)}: {r.unit}" for r in full.itertuples()})
    out.attrs["caption"] = tables.tests_caption("; ".join(settings), units, df)
    return out


def _fold_tests_table(df: pd.DataFrame, **kwargs: Any) -> pd.DataFrame:
    """Corrected resampled t-tests over the cv fold models, one row per (dataset, comparison)."""
    kwargs.pop("protocol", None)
    kwargs.pop("unit", None)
    names = sorted(df.loc[(df["protocol"] == "cv") & (df["split"] == "val"), "dataset"].unique())
    if not names:
        raise NoResults(f"no cv results: {stats.run_command(None, 'cv')} makes them")
    full = pd.concat([stats.fold_level_test(df, dataset=d, **kwargs) for d in names], ignore_index=True)
    out = full[
        ["dataset", "other", "n_folds", "mean_diff", "ci_low", "ci_high", "statistic", "p_raw", "p_adj", "significant"]
    ].rename(columns={"other": "arch"})
    out.attrs["caption"] = (
        f"Fold-level tests of {full['metric'].iloc[0]}, {full['reference'].iloc[0]} vs each "
        f"model: {stats.NADEAU_BENGIO}; variance corrected by 1/J + n_test/n_train; Holm per "
        f"dataset. Unit: {full['unit'].iloc[0]}. mean_diff = reference - model with its 95% CI. "
        + tables.source_note(df)
    )
    return out


def _render_fmt(fmt: str) -> str:
    if fmt not in _RENDER_FMT:
        raise InvalidInput(f"fmt must be one of {', '.join(_RENDER_FMT)}; got {fmt!r}")
    return _RENDER_FMT[fmt]


def report_figure(df: pd.DataFrame, n: int | str, out_dir: Path | str, **kwargs: Any) -> list[Path]:
    """Figure ``n`` saved under ``out_dir``: 8 (Fig. 8 panels + combined), ``"bars"``, ``"ranking"``,
    ``"ranks"`` (bootstrap rank distributions), ``"curves"`` (learning curves; needs ``sidecars=``)."""
    makers: dict[str, Callable[..., list[Path]]] = {
        "8": figures.fig8,
        "bars": figures.bar_chart,
        "ranking": figures.ranking,
        "ranks": figures.rank_uncertainty,
    }
    if str(n) == "curves":  # learning curves come from the sidecars' histories, not the rows
        return learning_curves(kwargs["sidecars"], Path(out_dir))
    if str(n) not in makers:
        raise InvalidInput(f"unknown figure {n!r}; expected 8, bars, ranking, ranks or curves")
    return makers[str(n)](df, Path(out_dir), **kwargs)


# ----------------------------------------------------------------------------- the whole report


def build_report(
    df: pd.DataFrame,
    out_dir: Path | str,
    *,
    sidecars: Sequence[dict[str, Any]],
    failures: pd.DataFrame | None = None,
    fmt: Sequence[str] = FORMATS,
    vs_paper: bool = True,
    reference: str = stats.REFERENCE,
    metric: str = "iou",
    data_inputs: dict[int, Sequence[Any]] | None = None,
    commands: Sequence[str] = (),
    results: Path | str | None = None,
) -> Path:
    """Write every table and figure under ``out_dir`` plus ``index.md`` and ``index.html``; returns index.md.

    A part without data (e.g. no ``cv`` results, so no Fig. 8) is listed in the index with the reason.
    ``data_inputs`` maps 1 and 2 to the inputs of Tables 1 and 2 (``bench.report.data.loaded_data``).
    ``commands``: the command lines that made the results and this report, stated in the index.
    ``results``: the results folder; when given, the pictures from its stored predictions and checkpoints
    (qualitative grids, failure galleries, saliency maps; ``picture_items``) are added.
    """
    if df.empty:
        raise NoResults("no results to report (the results table is empty)")
    out_dir = Path(out_dir)
    (out_dir / "tables").mkdir(parents=True, exist_ok=True)
    items: list[tuple[str, list[Path] | str]] = []
    for name, n in (("Table 1: datasets as loaded", 1), ("Table 2: split counts", 2)):
        if data_inputs and n in data_inputs:
            items.append((name, _write_table(df, n, out_dir, fmt, vs_paper, failures, sidecars, inputs=data_inputs[n])))
        else:
            items.append((name, "not built: no data inputs given"))
    for name, n in (
        ("Table 3: hyper-parameters", 3),
        ("Table 4: MLR ablation (holdout validation folds)", 4),
        ("Table 5: all models (holdout test set)", 5),
        ("Floors: trivial predictions", "floors"),
        ("Convention sensitivity", "sensitivity"),
    ):
        items.append((name, _write_table(df, n, out_dir, fmt, vs_paper, failures, sidecars)))
    for protocol in ("cv", "holdout"):
        for unit in ("group", "image", *(["patient"] if "patient" in df.columns else [])):
            items.append(
                (
                    f"Paired tests ({protocol}, {metric}, vs {reference}, unit: {unit})",
                    _write_table(
                        df,
                        "tests",
                        out_dir,
                        fmt,
                        False,
                        failures,
                        sidecars,
                        protocol=protocol,
                        metric=metric,
                        reference=reference,
                        unit=unit,
                    ),
                )
            )
    items.append(
        (
            f"Fold-level tests (cv, {metric}, vs {reference}; Nadeau & Bengio 2003)",
            _write_table(df, "folds", out_dir, fmt, False, failures, sidecars, metric=metric, reference=reference),
        )
    )
    items.append(
        (
            "Rank uncertainty (bootstrap over independent units)",
            _write_table(df, "ranks", out_dir, fmt, False, failures, sidecars),
        )
    )
    items.append(
        ("Configurations in the results", _write_table(df, "settings", out_dir, fmt, False, failures, sidecars))
    )
    for name, n, kw in (
        (
            "Fig. 8: box plots per independent unit (cv if run, else holdout)",
            8,
            {"reference": reference, "metric": metric, "protocol": None},
        ),
        ("Bars: Dice and IoU with 95% CIs", "bars", {}),
        ("Mean rank across datasets", "ranking", {}),
        ("Rank uncertainty: bootstrap rank distributions", "ranks", {}),
    ):
        items.append((name, _try(lambda n=n, kw=kw: report_figure(df, n, out_dir / "figures", **kw))))
    items.append(
        (
            "Learning curves: loss per epoch, chosen epoch marked",
            _try(lambda: report_figure(df, "curves", out_dir / "figures", sidecars=sidecars)),
        )
    )
    if results is not None:
        items += picture_items(df, Path(results), out_dir / "figures")
        items += tuning_items(Path(results), out_dir / "tables")
    line = _try(lambda: tables.sensitivity(df)[1])
    facts = provenance(df, sidecars, failures)
    facts["commands"] = list(commands)
    index = out_dir / "index.md"
    index.write_text(_index_md(facts, items, line, out_dir))
    (out_dir / "index.html").write_text(_index_html(facts, items, line, out_dir))
    return index


def picture_items(df: pd.DataFrame, results: Path, out_dir: Path, n: int = 3) -> list[tuple[str, list[Path] | str]]:
    """Per dataset: the qualitative grid (where the architectures disagree most), each architecture's
    failure gallery (its ``n`` worst images) and the saliency maps of every architecture (``n`` images)."""
    from bench.report.saliency import saliency

    items: list[tuple[str, list[Path] | str]] = []
    for ds in ordered_datasets(df["dataset"].unique()):
        label = dataset_label(ds)
        made = _try_pictures(lambda ds=ds: qualitative(df, results, ds, out_dir, worst=n, n=n))
        if isinstance(made, str):
            items.append((f"Qualitative: {label}", made))
        else:
            stems = list(dict.fromkeys(p.stem for p in made))  # the grid, then the galleries in paper order
            for stem in stems:
                arch = stem.removeprefix(f"failures_{ds}_")
                name = (
                    f"Qualitative: {label}, where the architectures disagree most"
                    if stem.startswith("qualitative")
                    else f"Failure gallery: {label}, {arch_label(arch)}'s {n} worst images"
                )
                items.append((name, [p for p in made if p.stem == stem]))
        archs = ordered_archs(df.loc[df["dataset"] == ds, "arch"].unique())
        protocol = "holdout" if (df.loc[df["dataset"] == ds, "protocol"] == "holdout").any() else "cv"
        items.append(
            (
                f"Saliency: {label} (gradient per decoder stage, averaged)",
                _try_pictures(
                    lambda ds=ds, archs=archs, protocol=protocol: saliency(
                        results, ds, archs, out_dir, n=n, protocol=protocol, raw=False
                    )
                ),
            )
        )
    return items


def tuning_items(results: Path, out_dir: Path) -> list[tuple[str, list[Path] | str]]:
    """Each ``bench tune`` outcome of the results folder (``results/tuned/NAME``: the tuned profile and its
    tables), copied into the report as ``tables/tuned_NAME.*``."""
    import shutil

    items: list[tuple[str, list[Path] | str]] = []
    for profile in sorted((results / "tuned").glob("*.yaml")):
        copies = []
        for ext in (".html", ".md", ".csv", ".yaml"):
            if profile.with_suffix(ext).is_file():
                copies.append(out_dir / f"tuned_{profile.stem}{ext}")
                shutil.copyfile(profile.with_suffix(ext), copies[-1])
        items.append((f"Table 3 (tuning): {profile.stem}, best configuration per architecture", copies))
    return items


def _try_pictures(make: Callable[[], Any]) -> Any:
    """``_try`` for the pictures from stored files: a missing prediction, checkpoint or case (an older or
    partial results folder) also becomes the reason shown in the index."""
    try:
        return make()
    except UserError as exc:  # bad input or results that cannot answer; a bug keeps its traceback
        return f"not built: {exc}"


def _try(make: Callable[[], Any]) -> Any:
    """Run ``make``; a ``UserError`` (no data for this part, results that may not be compared) becomes the
    reason shown in the index. Anything else is a bug and keeps its traceback."""
    try:
        return make()
    except UserError as exc:
        return f"not built: {exc}"


def _write_table(
    df: pd.DataFrame,
    n: int | str,
    out_dir: Path,
    fmts: Sequence[str],
    vs_paper: bool,
    failures: pd.DataFrame | None,
    sidecars: Sequence[dict[str, Any]],
    **kwargs: Any,
) -> list[Path] | str:
    table = _try(lambda: build_table(df, n, vs_paper, failures=failures, sidecars=sidecars, **kwargs))
    if isinstance(table, str):
        return table
    stem = f"table{n}" if str(n).isdigit() else f"{n}_{kwargs['protocol']}" if "protocol" in kwargs else str(n)
    stem += "_image" if kwargs.get("unit") == "image" else ""
    paths = []
    for f in fmts:
        path = out_dir / "tables" / f"{stem}.{f}"
        path.write_text(render(table, _render_fmt(f)))
        paths.append(path)
    return paths


def provenance(df: pd.DataFrame, sidecars: Sequence[dict[str, Any]], failures: pd.DataFrame | None) -> dict[str, Any]:
    """What the index states: source, profiles, datasets, archs, jobs, rows, versions."""
    statuses = pd.Series([s.get("status", "?") for s in sidecars], dtype=object).value_counts().to_dict()
    run_versions: dict[str, set[str]] = {}
    for s in sidecars:
        for k, v in ((s.get("environment") or {}).get("versions") or {}).items():
            run_versions.setdefault(k, set()).add(str(v))
    return {
        "source": tables.source_note(df),
        "profiles": sorted(map(str, df["profile"].unique())) if "profile" in df else [],
        "datasets": [dataset_label(d) for d in ordered_datasets(df["dataset"].unique())],
        "archs": [arch_label(a) for a in ordered_archs(df["arch"].unique())],
        "eval_sizes": sorted(int(s) for s in df["eval_size"].unique()) if "eval_size" in df else [],
        "jobs": {
            "results in table": int(df["job_key"].nunique()) if "job_key" in df else 0,
            "sidecars": len(sidecars),
            **{f"status {k}": int(v) for k, v in statuses.items()},
            "failed (failures table)": 0 if failures is None else len(failures),
        },
        "rows": len(df),
        "not_learned": learning.report_lines(sidecars),
        "numerics": numerics_lines(sidecars),
        "run_versions": {k: ", ".join(sorted(v)) for k, v in sorted(run_versions.items())},
        "report_versions": {"python": platform.python_version(), **{p: _version(p) for p in REPORT_PACKAGES}},
        "failures": []
        if failures is None
        else [
            f"{r.dataset}/{r.arch}/{getattr(r, 'protocol', '?')}/fold"
            f"{getattr(r, 'fold', '?')}: {str(r.error).splitlines()[0][:200]}"
            for r in failures.itertuples()
        ],
    }


def numerics_lines(sidecars: Sequence[dict[str, Any]]) -> list[str]:
    """How the jobs computed, one line per combination with its job count: device, parameter dtype
    (``precision``), autocast (the precision the job ran in), channels-last and ``torch.compile``."""
    combos: dict[str, int] = {}
    for s in sidecars:
        train, compute = (s.get("job") or {}).get("train") or {}, s.get("compute") or {}
        if not train:
            continue
        autocast = compute.get("precision", f"amp {train.get('amp', '?')}")
        layout = compute.get("channels_last", f"channels_last {train.get('channels_last', '?')}")
        line = (
            f"device {compute.get('device', train.get('device', '?'))}, parameters {train.get('precision', 'fp32')}, "
            f"autocast {'off' if autocast == 'fp32' else autocast}, "
            f"channels-last {'on' if layout is True else 'off' if layout is False else layout}, "
            f"torch.compile {'on' if train.get('compile') else 'off'}"
        )
        combos[line] = combos.get(line, 0) + 1
    return [f"{line}: {n} job(s)" for line, n in sorted(combos.items())]


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _facts_lines(facts: dict[str, Any]) -> list[tuple[str, list[str]]]:
    return [
        (
            "Data",
            [
                facts["source"],
                f"Datasets: {', '.join(facts['datasets'])}",
                f"Models: {', '.join(facts['archs'])}",
                f"Profile(s): {', '.join(facts['profiles']) or 'not recorded'}",
                f"Evaluation size(s): {', '.join(f'{s}x{s}' for s in facts['eval_sizes'])}",
                f"Rows (job x image): {facts['rows']}",
            ],
        ),
        ("Jobs", [f"{k}: {v}" for k, v in facts["jobs"].items()] + [f"failed: {f}" for f in facts["failures"]]),
        ("Did not learn", facts.get("not_learned", [])),
        ("Numerics (precision, layout, compile)", facts.get("numerics", []) or ["not recorded"]),
        ("Commands", [f"`{c}`" for c in facts.get("commands", [])] or ["not recorded"]),
        ("Conventions", CONVENTIONS),
        ("Package versions (runs)", [f"{k}: {v}" for k, v in facts["run_versions"].items()] or ["not recorded"]),
        ("Package versions (this report)", [f"{k}: {v}" for k, v in facts["report_versions"].items()]),
    ]


def _index_md(facts: dict[str, Any], items: list[tuple[str, Any]], line: str, root: Path) -> str:
    out = ["# Benchmark report", "", f"**{facts['source']}**", ""]
    for head, lines in _facts_lines(facts):
        out += [f"## {head}", "", *[f"- {x}" for x in lines], ""]
    out += ["## Tables and figures", ""]
    for name, what in items:
        links = (
            what
            if isinstance(what, str)
            else ", ".join(f"[{p.suffix[1:]}: {p.name}]({p.relative_to(root)})" for p in what)
        )
        out.append(f"- {name}: {links}")
    out += ["", f"Convention sensitivity: {line}", ""]
    return "\n".join(out)


def _index_html(facts: dict[str, Any], items: list[tuple[str, Any]], line: str, root: Path) -> str:

    return index_html(_facts_lines(facts), facts["source"], items, line, root)
