"""Did a fold model learn anything? The "did not learn" flag, decided when a job is scored.

A fold model did not learn when at least one of these holds (each gives a reason, as text):

- **trivial**: its prediction is empty on every image it scored, or full on every image;
- **floor**: its mean Dice is no better than the better of the two trivial floors (all foreground,
  all background; ``bench.analysis.floors.trivial_scores``) on the same images: the holdout test set, or the
  out-of-fold images for ``cv`` (what the run summary, Table 5 and Fig. 8 show);
- **selection**: over two or more epochs, its selection loss never went below its epoch-0 value, so
  the kept weights are those of the first epoch.

The flag is stored with the job's results: column ``did_not_learn`` on every row of the job (the same
value for all of them) and ``learning`` (``did_not_learn``, ``reasons``) in its sidecar. Results written
before the flag existed have neither; they are reported as "not recorded", never as learned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bench.analysis.floors import FLOORS, trivial_scores

COLUMN = "did_not_learn"
RULES = "trivial predictions, Dice no better than a trivial floor, or selection loss never below epoch 0"


@dataclass(frozen=True)
class Learning:
    """The verdict on one fold model: ``reasons`` is empty exactly when it learned."""

    reasons: tuple[str, ...] = ()

    @property
    def did_not_learn(self) -> bool:
        return bool(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        return {"did_not_learn": self.did_not_learn, "reasons": list(self.reasons)}


def scored_split(rows: pd.DataFrame) -> str:
    """The split a job is judged on: ``test`` when it scored a test set (holdout), else ``val`` (cv)."""
    return "test" if (rows["split"] == "test").any() else "val"


def assess(rows: pd.DataFrame, history: Sequence[Mapping[str, float]]) -> Learning:
    """Judge one job from its per-image rows (columns of ``results/README.md``) and its training history
    (one record per epoch with ``select_loss``)."""
    if rows.empty:
        raise ValueError("cannot judge a job without scored images")
    reasons = []
    total = (rows["tp"] + rows["fp"] + rows["fn"] + rows["tn"]).to_numpy(np.int64)
    n_pred = rows["n_pred"].to_numpy(np.int64)
    n = len(rows)
    if (n_pred == 0).all():
        reasons.append(f"predicted background on every scored image ({n})")
    elif (n_pred == total).all():
        reasons.append(f"predicted foreground on every scored image ({n})")
    reasons += _floor_reason(rows)
    losses = [float(h["select_loss"]) for h in history]
    if len(losses) >= 2 and min(losses[1:]) >= losses[0]:
        reasons.append(f"selection loss never went below its epoch-0 value {losses[0]:.4g} in {len(losses)} epochs")
    return Learning(tuple(reasons))


def assess_scores(rows: pd.DataFrame) -> Learning:
    """Judge a fold model from the rows of one scored set alone (no training history): trivial predictions,
    or a mean Dice no better than the better trivial floor of those images. What an external cohort's rows
    are judged by (against the cohort's own floors)."""
    if rows.empty:
        raise ValueError("cannot judge a fold model without scored images")
    total = (rows["tp"] + rows["fp"] + rows["fn"] + rows["tn"]).to_numpy(np.int64)
    n_pred = rows["n_pred"].to_numpy(np.int64)
    reasons = []
    if (n_pred == 0).all():
        reasons.append(f"predicted background on every scored image ({len(rows)})")
    elif (n_pred == total).all():
        reasons.append(f"predicted foreground on every scored image ({len(rows)})")
    return Learning(tuple(reasons + _floor_reason(rows, str(rows["split"].iloc[0]))))


def _floor_reason(rows: pd.DataFrame, split: str | None = None) -> list[str]:
    split = split or scored_split(rows)
    images = rows[rows["split"] == split]
    model = float(images["dice"].mean())
    floors = {f: float(np.mean(trivial_scores(images, f)["dice"])) for f in FLOORS}
    best = max(floors, key=lambda f: floors[f])
    if model > floors[best]:
        return []
    name = best.replace("_", " ")
    return [
        f"mean Dice {model:.4f} on the {len(images)} {split} images is no better than predicting {name} "
        + f"({floors[best]:.4f})"
    ]


# ----------------------------------------------------------------------------- reading the flag back


#: The scored split of ``bench evaluate --data-root`` rows: judged against the cohort's own floors.
EXTERNAL = "external"


def job_flags(df: pd.DataFrame) -> pd.DataFrame:
    """One row per fold model (dataset, arch, protocol, fold, seed, job_key) with ``did_not_learn``
    (True/False, or NA where the results predate the flag). External-cohort rows (``split ==
    "external"``) are judged here, on their own images and floors (``assess_scores``): the flag stored
    with the job says how it did on the internal data, not on the cohort."""
    keys = ["dataset", "arch", "protocol", "fold", "seed", "job_key"]
    if df.empty:
        return pd.DataFrame(columns=[*keys, COLUMN])
    external = df["split"] == EXTERNAL if "split" in df else pd.Series(False, index=df.index)
    col = df[COLUMN] if COLUMN in df else pd.Series(pd.NA, index=df.index)
    flags = df.loc[~external, keys].assign(**{COLUMN: col[~external].astype("boolean")})
    out = flags.groupby(keys, sort=True, dropna=False)[COLUMN].first().reset_index()
    if external.any():
        judged = [
            {**dict(zip(keys, key)), COLUMN: assess_scores(g).did_not_learn}
            for key, g in df[external].groupby(keys, sort=True, dropna=False)
        ]
        out = pd.concat([out, pd.DataFrame(judged, columns=[*keys, COLUMN])], ignore_index=True)
        out[COLUMN] = out[COLUMN].astype("boolean")
    return out


def model_flags(df: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, arch) of ``df`` (the rows a table or test shows): ``n_models`` fold models,
    ``n_not_learned`` of them flagged (NA when some predate the flag) and ``text``: "did not learn 2/2" or
    "" (none flagged, or not recorded: ``caption_note`` says how many were not assessed)."""
    cols = ["dataset", "arch", "n_models", "n_not_learned", "text"]
    flags = job_flags(df)
    if flags.empty:
        return pd.DataFrame(columns=cols)
    # one fold model may appear under several job keys only through external rows; count (fold, seed) once
    per_model = flags.groupby(["dataset", "arch", "fold", "seed"], dropna=False)[COLUMN].agg(
        lambda s: pd.NA if s.isna().all() else bool(s.fillna(False).any())
    )
    rows = []
    for (dataset, arch), s in per_model.groupby(level=["dataset", "arch"], sort=True):
        n, unknown = len(s), s.isna().any()
        bad = pd.NA if unknown else int(s.astype(bool).sum())
        text = "" if unknown else (f"did not learn {bad}/{n}" if bad else "")  # unknown: caption_note says so
        rows.append({"dataset": dataset, "arch": arch, "n_models": n, "n_not_learned": bad, "text": text})
    return pd.DataFrame(rows, columns=cols)


def flag_text(flags: pd.DataFrame, dataset: str, arch: str) -> str:
    """The ``model_flags`` text of one (dataset, arch); "" when it is not in ``flags``."""
    hit = flags[(flags["dataset"] == dataset) & (flags["arch"] == arch)]
    return str(hit["text"].iloc[0]) if len(hit) else ""


def not_learned(flags: pd.DataFrame, dataset: str, arch: str) -> bool:
    """Did any fold model of (dataset, arch) not learn (``model_flags``)?"""
    hit = flags[(flags["dataset"] == dataset) & (flags["arch"] == arch)]
    return bool(len(hit)) and not pd.isna(hit["n_not_learned"].iloc[0]) and int(hit["n_not_learned"].iloc[0]) > 0


def caption_note(df: pd.DataFrame) -> str:
    """A sentence for a table caption or figure title over ``df`` (already the rows it shows): which fold
    models did not learn, or "" when every one learned or none was assessed."""
    flags = job_flags(df)
    bad = flags[flags[COLUMN].fillna(False).astype(bool)]
    unknown = int(flags[COLUMN].isna().sum())
    missing = (
        f" Whether the fold models learned is not recorded for {unknown} of {len(flags)} (results written before "
        "the check existed)."
        if unknown
        else ""
    )
    if bad.empty:
        return missing.strip()
    names = []
    for (dataset, arch), g in bad.groupby(["dataset", "arch"], sort=True):
        folds = [str(r.fold) + (f" (seed {r.seed})" if r.seed else "") for r in g.itertuples()]
        names.append(f"{dataset}/{arch} fold{'s' if len(folds) > 1 else ''} {', '.join(folds)}")
    return f"Did not learn ({RULES}): {len(bad)} of {len(flags)} fold models: {'; '.join(names)}." + missing


def figure_note(df: pd.DataFrame, width: int = 140) -> str:
    """``caption_note`` wrapped for a figure title, on its own line(s); "" when there is nothing to say."""
    import textwrap

    note = caption_note(df)
    return "\n" + textwrap.fill(note, width) if note else ""


def report_lines(sidecars: Sequence[Mapping[str, Any]]) -> list[str]:
    """What ``bench report`` states: how many finished jobs did not learn, then one line per such job
    with its reasons (from the sidecars), and how many finished jobs predate the flag."""
    done = [s for s in sidecars if s.get("status") == "ok"]
    bad = [s for s in done if (s.get("learning") or {}).get("did_not_learn")]
    unknown = [s for s in done if "learning" not in s]
    lines = [f"{len(bad)} of {len(done)} finished jobs did not learn ({RULES})"]
    lines += [f"{label(s)}: {'; '.join(s['learning']['reasons'])}" for s in bad]
    if unknown:
        lines.append(f"not recorded for {len(unknown)} job(s) (results written before the check existed)")
    return lines


def label(sidecar: Mapping[str, Any]) -> str:
    """``dataset/arch/protocol/fold k/seed s`` of a sidecar's job."""
    job = sidecar.get("job") or {}
    return f"{job.get('dataset')}/{job.get('arch')}/{job.get('protocol')}/fold {job.get('fold')}/seed {job.get('seed')}"


def learning_table(sidecars: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """``bench report --table learning``: one row per finished fold model with ``did_not_learn``
    (True/False; NA when its results predate the flag) and every reason, flagged ones first."""
    cols = ["dataset", "arch", "protocol", "fold", "seed", "did_not_learn", "reasons"]
    rows = []
    for s in sidecars:
        if s.get("status") != "ok":
            continue
        job, flag = s.get("job") or {}, s.get("learning")
        rows.append(
            {
                **{k: job.get(k) for k in cols[:5]},
                "did_not_learn": pd.NA if flag is None else bool(flag.get("did_not_learn")),
                "reasons": "not recorded" if flag is None else "; ".join(flag.get("reasons") or []),
            }
        )
    out = pd.DataFrame(rows, columns=cols)
    if len(out):
        out["did_not_learn"] = out["did_not_learn"].astype("boolean")
        order = (~out["did_not_learn"].fillna(False)).astype(int)
        out = out.assign(_o=order).sort_values(["_o", *cols[:5]]).drop(columns="_o").reset_index(drop=True)
    bad = int(out["did_not_learn"].fillna(False).sum()) if len(out) else 0
    out.attrs["caption"] = (
        f"Did the fold models learn? {bad} of {len(out)} finished fold models did not ({RULES}); reasons per fold "
        "model, flagged ones first."
    )
    return out


def grouped_lines(sidecars: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per dataset x architecture with fold models that did not learn: how many, which, and the
    reason kinds (the full reasons: ``bench report --table learning``)."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for s in sidecars:
        if s.get("status") == "ok" and (s.get("learning") or {}).get("did_not_learn"):
            job = s.get("job") or {}
            groups.setdefault((str(job.get("dataset")), str(job.get("arch"))), []).append(s)
    lines = []
    for (dataset, arch), sides in sorted(groups.items()):
        folds = ", ".join(
            sorted({f"{(s.get('job') or {}).get('protocol')} fold {(s.get('job') or {}).get('fold')}" for s in sides})
        )
        kinds = sorted({_reason_kind(r) for s in sides for r in s["learning"]["reasons"]})
        lines.append(f"{dataset}/{arch}: {len(sides)} fold model(s) ({folds}): {', '.join(kinds)}")
    return lines


def _reason_kind(reason: str) -> str:
    if reason.startswith("predicted"):
        return "trivial predictions"
    if reason.startswith("mean Dice"):
        return "Dice no better than a trivial floor"
    if reason.startswith("selection loss"):
        return "selection loss never below epoch 0"
    return reason
