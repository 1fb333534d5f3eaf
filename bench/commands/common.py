"""Helpers shared by several commands: ``--set``, ``--dataset-option``, ``--where`` and comma-separated
lists, names of architectures and devices, and the results table the reports start from.
"""

from __future__ import annotations

import argparse

from bench.errors import InvalidInput, MissingInput, NoResults


def csv_ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v != "")


def parse_settings(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise InvalidInput(f"--set expects key=value, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def parse_dataset_option_pairs(pairs: list[str]) -> dict[str, str]:
    """``--dataset-option DATASET.OPTION=VALUE`` (repeatable) as ``{"DATASET.OPTION": "VALUE"}``."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise InvalidInput(
                f"--dataset-option expects DATASET.OPTION=VALUE (e.g. lgg_mri.subset=tumour), got {pair!r}"
            )
        out[key.strip()] = value.strip()
    return out


DATASET_OPTION_HELP = (
    "an option of a dataset's reader, e.g. lgg_mri.subset=tumour (repeatable; `bench list` shows "
    "each dataset's options); recorded with the results"
)


def add_where_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only the jobs whose recorded setting KEY equals VALUE (repeatable), e.g. --where epochs=20 "
        "--where protocol=cv; `bench report --table settings` lists what varies",
    )


def where_pairs(pairs: list[str]) -> dict[str, str]:
    from bench.results.selection import parse_where

    return parse_where(pairs)


def results_table(results: str, where: list[str] | None = None) -> tuple:
    """(rows with their jobs' settings attached, failures, sidecars) of the jobs matching ``--where``."""
    from bench.results import selection, store

    df = store.load_all(results)
    if df.empty:
        raise MissingInput(
            f"no finished jobs under {results}/runs: run `bench run` first (or point --results at the folder it wrote)"
        )
    df, fails, sides, settings = selection.apply_selection(
        df, store.failures(results), store.sidecars(results), where_pairs(where or [])
    )
    if df.empty:
        raise NoResults(f"no finished job matches --where {' '.join(where or [])}")
    from bench.report.data import attach_patients

    return attach_patients(selection.attach(df, settings), sides), fails, sides


def at_resolution(df, resolution: str):
    """Rows of one evaluation resolution (reports never mix input-size and native-resolution scores)."""
    if "eval_resolution" not in df.columns:
        return df if resolution == "input" else df.iloc[0:0]
    return df[df["eval_resolution"].fillna("input") == resolution]


def metric_names() -> tuple[str, ...]:
    from bench.metrics import METRICS

    return METRICS


def canonical_arch(name: str | None) -> str | None:
    from bench.architectures import ARCHITECTURES

    return None if name is None else ARCHITECTURES.canonical(name)


def resolved_device(name: str) -> str:
    from bench.run.devices import resolve_device

    return resolve_device(name)
