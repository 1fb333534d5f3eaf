"""Like for like across datasets: outputs that put several datasets side by side (the consensus rank, a
Table 4 or 5 over several datasets, the tests table over several datasets, a family-wide correction) are
only read as one comparison when every dataset's jobs followed one training recipe.

``bench.results.selection.check_like_for_like`` checks each dataset on its own (its architectures differ
in nothing but the architecture). ``check_across_datasets`` checks the datasets against each other, per
architecture: a recipe setting (epochs, learning rate, width, image size, ...) that differs between two
datasets is refused, naming the setting and the value of each dataset, with ``--where`` as the way out.
Settings that belong to a dataset's split (``SPLIT_SETTINGS``: folds, fractions, split seed, the synthetic
stand-in's size) may differ: each dataset has its own split.
"""

from __future__ import annotations

import math

import pandas as pd

from bench.errors import NoResults

#: Recipe settings that are a dataset's own (its split), not the training recipe.
SPLIT_SETTINGS = frozenset({"n_folds", "test_fraction", "inner_fraction", "split_seed", "synthetic_n"})
#: Where a job ran, not how it was trained.
MACHINE_SETTINGS = frozenset({"device", "threads"})


def recipe_columns(rows: pd.DataFrame) -> list[str]:
    """The training-recipe columns of ``rows`` (attached by ``bench.results.selection.attach``) that must be
    equal across datasets, plus the profile."""
    from bench.config import TrainConfig

    recipe = set(TrainConfig.__dataclass_fields__) - SPLIT_SETTINGS - MACHINE_SETTINGS
    return [c for c in rows.columns if c in recipe or c == "profile"]


def differences(rows: pd.DataFrame) -> list[tuple[str, str]]:
    """(setting, "dataset: value; dataset: value") for each recipe setting whose value differs between the
    datasets of ``rows`` for one architecture (every architecture's values compared)."""
    if rows.empty or rows["dataset"].nunique() < 2:
        return []
    jobs = rows.drop_duplicates("job_key") if "job_key" in rows.columns else rows
    found = []
    for col in recipe_columns(jobs):
        shown = jobs[col].map(_show)
        per = shown.groupby([jobs["arch"], jobs["dataset"]]).agg(lambda s: "/".join(sorted(set(s))))
        for arch, values in per.groupby(level="arch"):
            values = values.droplevel("arch")
            if values.nunique() > 1:
                detail = "; ".join(f"{ds}: {v}" for ds, v in values.items())
                found.append((col, f"{detail}, for {arch}"))
                break
    return found


def check_across_datasets(rows: pd.DataFrame, what: str) -> None:
    """Refuse (``NoResults``, exit 2) ``rows`` whose datasets were trained with different recipes."""
    found = differences(rows)
    if found:
        listed = "; ".join(f"{col} ({detail})" for col, detail in found)
        raise NoResults(
            f"{what} across datasets: the datasets were trained with different settings: {listed}. A "
            "cross-dataset summary compares one recipe: pick it with --where KEY=VALUE (e.g. --where "
            f"{found[0][0]}=...), or report one dataset at a time"
        )


def _show(v: object) -> str:
    return "none" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
