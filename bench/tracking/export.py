"""A results folder in MLflow: ``bench export --to mlflow`` and the ``bench run --track mlflow`` hook.

``export_to_mlflow`` logs the finished and failed jobs of a results folder (those ``--where`` selects),
one configuration at a time: the configuration's run, then one nested run per job with its per-image rows
as an artefact (``bench.tracking.layout`` says what each holds). Runs are found again by their tags, so
exporting twice, or after a resumed sweep, logs only what is new or changed (``bench.tracking.mlflow_runs``).
A file lock in the results folder (``runs/.tracking.lock``) lets one process at a time log, so parallel
workers never create the same run twice.

``track_job`` is what ``bench run --track mlflow`` calls when a job ends, in the process that ran it: it
exports that job's configuration (the job, and any job of it not logged yet). A tracking server that
cannot be reached, or fails, is one ``bench: warning:`` line per process and the sweep goes on; a later
``bench export --to mlflow`` catches up.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bench.errors import InvalidInput, MissingInput
from bench.results import store
from bench.results.record import JobRecord, Status
from bench.results.selection import settings_table, where
from bench.tracking.layout import config_key, job_run, parent_run
from bench.tracking.target import Tracking, unreachable

LOCK_NAME = ".tracking.lock"


@dataclass
class ExportSummary:
    """What an export did: runs per outcome (``created``, ``replaced``, ``updated``, ``unchanged``), the
    number of configurations, and the experiment's address."""

    url: str = ""
    configurations: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    left_out: list[str] = field(default_factory=list)

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def line(self) -> str:
        done = ", ".join(f"{n} {what}" for what, n in sorted(self.outcomes.items()))
        skipped = f"; {len(self.left_out)} unreadable result(s) left out (warnings above)" if self.left_out else ""
        return f"MLflow: {self.configurations} configuration(s), runs {done or 'none'}{skipped}; {self.url}"


def export_to_mlflow(
    results: Path | str,
    tracking: Tracking,
    conditions: Mapping[str, str] | None = None,
    report: Path | str | None = None,
    job_keys: Iterable[str] | None = None,
) -> ExportSummary:
    """Log the finished and failed jobs of ``results`` matching ``conditions`` (``--where``) to ``tracking``.
    ``report``: a report folder logged as ``report/`` on the configuration's run (one configuration only).
    ``job_keys``: log only the configurations of these jobs (what ``track_job`` does)."""
    results = Path(results)
    sides = [s for s in store.sidecars(results) if s.get("status") in ("ok", "failed")]
    if not sides:
        raise MissingInput(
            f"nothing to export: no finished or failed jobs under {results / 'runs'} (run `bench run` first, "
            "or point --results at the folder it wrote)"
        )
    if conditions:
        keys = set(where(settings_table(sides), conditions)["job_key"])
        sides = [s for s in sides if s.get("key") in keys]
    groups: dict[str, list[dict[str, Any]]] = {}
    for side in sides:
        groups.setdefault(config_key(side), []).append(side)
    if job_keys is not None:
        wanted = {config_key(s) for s in sides if s.get("key") in set(job_keys)}
        groups = {k: v for k, v in groups.items() if k in wanted}
    if report is not None:
        _check_report(Path(report), len(groups))
    from filelock import FileLock

    from bench.tracking.mlflow_runs import Experiment

    summary = ExportSummary(configurations=len(groups))
    with FileLock(str(lock_path(results))):
        experiment = Experiment(tracking)
        summary.url = experiment.url()
        for key, group in sorted(groups.items()):
            _export_configuration(experiment, key, group, summary, report, tracking.engine)
    return summary


def lock_path(results: Path) -> Path:
    """``<results>/runs/.tracking.lock``; for a results folder this process may not write in (an export of
    someone else's results), a lock named after the folder in the temporary folder."""
    if os.access(results / "runs", os.W_OK):
        return results / "runs" / LOCK_NAME
    name = hashlib.sha256(str(results.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"bench-tracking-{name}.lock"


def _check_report(report: Path, n_configurations: int) -> None:
    if not report.is_dir():
        raise MissingInput(f"--report {report}: no such folder (write it with `bench report --out {report}`)")
    if n_configurations > 1:
        raise InvalidInput(
            f"--report {report}: the jobs exported form {n_configurations} configurations and a report belongs "
            "to one; choose it with --where KEY=VALUE (`bench report --table settings` lists them)"
        )


def _export_configuration(
    experiment: Any,
    key: str,
    sides: list[dict[str, Any]],
    summary: ExportSummary,
    report: Path | str | None,
    engine: str,
) -> None:
    rows: dict[str, pd.DataFrame] = {}
    usable = []
    for side in sides:
        if side.get("status") == "ok":
            df, problem = store.verify_result(Path(side["_path"]), side)
            if problem is not None:
                warnings.warn(f"{problem}: not exported to MLflow", store.ResultWarning, stacklevel=3)
                summary.left_out.append(str(side["_path"]))
                continue
            rows[side["key"]] = df
        usable.append(side)
    if not usable:
        return
    frame = pd.concat(rows.values(), ignore_index=True) if rows else pd.DataFrame(columns=["arch", "split"])
    parent, jobs = experiment.runs_of(key, [str(s.get("key")) for s in usable])
    parent_id, outcome = experiment.write(parent_run(usable, frame), parent)
    summary.count(outcome)
    if report is not None:
        experiment.log_folder(parent_id, Path(report), "report")
    for side in usable:
        df = rows.get(side["key"])
        content = job_run(side, df, engine)
        artifacts = [("per_image", df)] if df is not None else []
        _, outcome = experiment.write(content, jobs.get(str(side.get("key"))), parent_id, artifacts)
        summary.count(outcome)


# ---------------------------------------------------------------------------------------------- the run hook

_warned = False


def track_job(record: JobRecord, results: Path | str, tracking: Tracking | None) -> JobRecord:
    """Log the configuration of the job ``record`` ended (``ok`` or ``failed``) to ``tracking`` (nothing when
    None); returns ``record``. A server that cannot be reached or fails is one warning line (the first time
    in this process); the sweep goes on."""
    if tracking is None or record.status not in (Status.OK, Status.FAILED):
        return record
    from mlflow.exceptions import MlflowException

    problem = unreachable(tracking.uri)
    if problem is None:
        try:
            export_to_mlflow(results, tracking, job_keys=[record.key])
            return record
        except (OSError, MlflowException) as exc:
            problem = f"{tracking.uri} failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
    warn_untracked(problem, results)
    return record


def warn_untracked(problem: str, results: Path | str) -> None:
    """One line on stderr, once per process: tracking stopped working, and how to catch up later."""
    global _warned
    if _warned:
        return
    _warned = True
    print(
        f"bench: warning: MLflow tracking: {problem}; the sweep goes on without logging to it "
        f"(`bench export --to mlflow --results {results}` logs its jobs later)",
        file=sys.stderr,
        flush=True,
    )


def start_tracking(
    kind: str | None, results: Path | str, uri: str | None, experiment: str | None, engine: str
) -> Tracking | None:
    """The target of ``bench run --track KIND`` (None without ``--track``). MLflow missing or no URI is an
    error before any job runs; a server that does not answer now is one warning line, and the sweep runs
    untracked (None)."""
    if not kind:
        return None
    from bench.tracking.target import require_mlflow, tracking_target

    require_mlflow(f"bench run --track {kind}")
    target = tracking_target(results, uri, experiment, engine)
    problem = unreachable(target.uri)
    if problem is not None:
        warn_untracked(problem, results)
        return None
    return target
