"""Do a report's own commands reproduce its Table 5? Re-run the ``bench run`` / ``bench tune`` lines that a
report's ``index.md`` lists (its "Commands" section) into a fresh results folder, rebuild Table 5 there, and
compare it with the report's ``tables/table5.csv``, every number exactly.

    python benchmarks/reproduce_example.py reports/example-quick-real --data-root DATA
    python benchmarks/reproduce_example.py reports/example-quick-real --data-root DATA --dataset dsb2018 --arch unet

``--data-root`` replaces the data root the commands name (``DATA`` in the example's index); ``--dataset``
and ``--arch`` re-run only those datasets and architectures (each listed command is narrowed to them, and
only their rows of Table 5 are compared, the trivial floors of those datasets included): a check of part of
a report in minutes instead of the whole sweep. Exit status 0 when every compared number is identical,
1 otherwise (the differing rows are printed), 2 for bad input.
"""

from __future__ import annotations

import argparse
import io
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

FLOORS = ("all_foreground", "all_background")


def listed_commands(index: Path) -> list[list[str]]:
    """The ``bench run`` and ``bench tune`` command lines of a report's index.md, as argument lists."""
    lines, inside = [], False
    for line in index.read_text().splitlines():
        if line.startswith("## "):
            inside = line.strip() == "## Commands"
            continue
        if inside and line.startswith("- `bench "):
            words = shlex.split(line.removeprefix("- `").removesuffix("`"))
            if words[1] in ("run", "tune"):
                lines.append(words)
    if not lines:
        raise SystemExit(f"{index}: no `bench run` command under '## Commands'")
    return lines


def _option(words: list[str], name: str) -> str | None:
    return words[words.index(name) + 1] if name in words else None


def _with(words: list[str], name: str, value: str) -> list[str]:
    if name in words:
        i = words.index(name)
        return [*words[: i + 1], value, *words[i + 2 :]]
    return [*words, name, value]


def narrowed(words: list[str], datasets: set[str] | None, archs: set[str] | None) -> list[str] | None:
    """``words`` restricted to ``datasets`` and ``archs`` (None: all); None when nothing of it is left."""
    for name, keep in (("--dataset", datasets), ("--arch", archs)):
        have = (_option(words, name) or "").split(",")
        if keep is not None:
            left = [v for v in have if v in keep]
            if not left:
                return None
            words = _with(words, name, ",".join(left))
    return words


def rerun(commands: list[list[str]], results: Path, data_root: str | None) -> None:
    """Run each command (``bench`` from this environment) into ``results``; tunings first."""
    bench = str(Path(sys.executable).with_name("bench"))
    for words in sorted(commands, key=lambda w: w[1] != "tune"):
        words = _with(words, "--results", str(results))
        if data_root is not None and "--data-root" in words:
            words = _with(words, "--data-root", data_root)
        print("+", shlex.join(words), flush=True)
        subprocess.run([bench, *words[1:], "--quiet"], check=True)


def table5(csv_text: str) -> pd.DataFrame:
    """A Table 5 CSV (first line ``# caption``) as a frame sorted by dataset and row."""
    body = "\n".join(line for line in csv_text.splitlines() if not line.startswith("# "))
    df = pd.read_csv(io.StringIO(body))
    return df.sort_values(["dataset", "arch"]).reset_index(drop=True)


def compare(report: Path, results: Path, datasets: set[str] | None, archs: set[str] | None) -> bool:
    """Is Table 5 rebuilt from ``results`` identical to the report's on the compared rows?"""
    bench = str(Path(sys.executable).with_name("bench"))
    rebuilt = subprocess.run(
        [bench, "report", "--table", "5", "--format", "csv", "--vs-paper", "--results", str(results)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    mine, theirs = table5(rebuilt), table5((report / "tables" / "table5.csv").read_text())
    keep = pd.Series(True, index=theirs.index)
    if datasets is not None:
        keep &= theirs["dataset"].isin(datasets)
    if archs is not None:
        keep &= theirs["arch"].isin(archs) | theirs["arch"].isin(FLOORS)
    theirs = theirs[keep].reset_index(drop=True)
    mine = mine[mine["arch"].isin(set(theirs["arch"]))].reset_index(drop=True)
    try:
        pd.testing.assert_frame_equal(mine, theirs, check_exact=True, check_dtype=False)
    except AssertionError as exc:
        print(f"Table 5 differs:\n{exc}\nrebuilt:\n{mine.to_string()}\nreport:\n{theirs.to_string()}")
        return False
    numbers = theirs.select_dtypes("number").size
    print(
        f"Table 5 reproduced exactly: {len(theirs)} rows, {numbers} numbers ({', '.join(theirs['dataset'].unique())})"
    )
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="a report folder (index.md, tables/table5.csv)")
    parser.add_argument("--data-root", help="the data root to use for the commands' --data-root")
    parser.add_argument("--dataset", help="only these datasets, comma-separated")
    parser.add_argument("--arch", help="only these architectures, comma-separated")
    parser.add_argument("--results", type=Path, help="results folder for the re-run (default: a temporary one)")
    args = parser.parse_args()
    datasets = set(args.dataset.split(",")) if args.dataset else None
    archs = set(args.arch.split(",")) if args.arch else None
    commands = [w for w in (narrowed(c, datasets, archs) for c in listed_commands(args.report / "index.md")) if w]
    runs = [w for w in commands if w[1] == "run" and _option(w, "--protocol") != "cv"]  # Table 5: holdout
    if not runs:
        print(f"no listed `bench run` command covers --dataset {args.dataset} --arch {args.arch}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        results = args.results or Path(tmp) / "results"
        rerun(runs, results, args.data_root)  # the tuning's rows live apart; Table 5 is the run commands'
        return 0 if compare(args.report, results, datasets, archs) else 1


if __name__ == "__main__":
    sys.exit(main())
