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


def _floor_reason(rows: pd.DataFrame) -> list[str]:

    split = scored_split(rows)
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


def job_flags(df: pd.DataFrame) -> pd.DataFrame:
    """One row per fold model (dataset, arch, protocol, fold, seed, job_key) with ``did_not_learn``
    (True/False, or NA where the results predate the flag)."""
    keys = ["dataset", "arch", "protocol", "fold", "seed", "job_key"]
    if df.empty:
        return pd.DataFrame(columns=[*keys, COLUMN])
    col = df[COLUMN] if COLUMN in df else pd.Series(pd.NA, index=df.index)
    flags = df[keys].assign(**{COLUMN: col.astype("boolean")})
    return flags.groupby(keys, sort=True, dropna=False)[COLUMN].first().reset_index()


def caption_note(df: pd.DataFrame) -> str:
    """A sentence for a table caption or figure title over ``df`` (already the rows it shows): which fold
    models did not learn, or "" when every one learned or none was assessed."""
    flags = job_flags(df)
    bad = flags[flags[COLUMN].fillna(False).astype(bool)]
    if bad.empty:
        return ""
    names = []
    for (dataset, arch), g in bad.groupby(["dataset", "arch"], sort=True):
        folds = [str(r.fold) + (f" (seed {r.seed})" if r.seed else "") for r in g.itertuples()]
        names.append(f"{dataset}/{arch} fold{'s' if len(folds) > 1 else ''} {', '.join(folds)}")
    return f"Did not learn ({RULES}): {len(bad)} of {len(flags)} fold models: {'; '.join(names)}."


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
