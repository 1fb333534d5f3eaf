"""Write ``RunContent`` (``bench.tracking.layout``) to an MLflow tracking server through ``MlflowClient``.

Runs are found again by their tags: a configuration's run by ``bench.config_key``, a job's run by
``bench.job_key``. A run whose ``bench.digest`` tag equals the content's digest (and, for a job, whose
parent is its configuration's run) is left alone (exporting twice writes nothing). A job run whose content changed (a failed job that has since finished, a job
recomputed with ``--force``) is deleted and logged again, so each job has one run holding exactly what its
sidecar says now; a configuration's run keeps its id and gets its newer numbers as the next step. The
digest tag is set last, so a run whose logging was interrupted is logged again by the next export.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.tracking.layout import CONFIG_KEY_TAG, DIGEST_TAG, JOB_KEY_TAG, KIND_TAG, RunContent
from bench.tracking.target import Tracking

#: The experiment tag that tells the MLflow UI what an experiment holds; without it MLflow 3 opens a new
#: experiment on its GenAI pages. Set when bench creates the experiment (or finds it without one).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"
#: MLflow's limits on one ``log_batch`` call.
PARAMS_PER_BATCH = 100
METRICS_PER_BATCH = 1000


def _chunks(items: Sequence[Any], n: int) -> list[Sequence[Any]]:
    return [items[i : i + n] for i in range(0, len(items), n)]


class Experiment:
    """The runs of one MLflow experiment (created when missing), read and written by their bench tags."""

    def __init__(self, tracking: Tracking) -> None:
        # bench prints the experiment's address once; MLflow would print one line per run it ends
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking.uri)
        found = self.client.get_experiment_by_name(tracking.experiment)
        self.id = found.experiment_id if found is not None else self.client.create_experiment(tracking.experiment)
        if found is None or EXPERIMENT_KIND_TAG not in found.tags:  # the UI opens on its training runs
            self.client.set_experiment_tag(self.id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)
        self.tracking = tracking

    def url(self) -> str:
        """Where the experiment opens in the MLflow UI (HTTP servers), else the tracking URI."""
        uri = self.tracking.uri.rstrip("/")
        return f"{uri}/#/experiments/{self.id}" if uri.startswith(("http://", "https://")) else uri

    def _search(self, tag: str, value: str) -> list[Any]:
        runs, token = [], None
        while True:
            page = self.client.search_runs(
                [self.id], filter_string=f"tags.`{tag}` = '{value}'", max_results=1000, page_token=token
            )
            runs += list(page)
            token = page.token
            if not token:
                return sorted(runs, key=lambda r: (r.info.start_time or 0, r.info.run_id))

    def runs_of(self, config: str, job_keys: Sequence[str]) -> tuple[Any | None, dict[str, Any]]:
        """(the configuration's run or None, {job key: job run}) of configuration ``config`` and its jobs
        ``job_keys``. A job's run is found by its key even where an older version of bench filed it under
        another configuration. Extra runs of one job or configuration (left by an interrupted export) are
        deleted."""
        parent, jobs = None, {}
        runs = self._search(CONFIG_KEY_TAG, config)
        for key in set(job_keys) - {r.data.tags.get(JOB_KEY_TAG) for r in runs}:
            runs += self._search(JOB_KEY_TAG, key)
        for run in runs:
            tags = run.data.tags
            if tags.get(KIND_TAG) == "configuration":
                if parent is None:
                    parent = run
                elif run.info.run_id != parent.info.run_id:
                    self.client.delete_run(run.info.run_id)
            elif tags.get(JOB_KEY_TAG):
                key = tags[JOB_KEY_TAG]
                if key not in jobs:
                    jobs[key] = run
                elif run.info.run_id != jobs[key].info.run_id:
                    self.client.delete_run(run.info.run_id)
        return parent, jobs

    def write(
        self,
        content: RunContent,
        existing: Any | None,
        parent_id: str | None = None,
        artifacts: Sequence[tuple[str, Any]] = (),
    ) -> tuple[str, str]:
        """Log ``content`` as a run (nested under ``parent_id``); returns (run id, what happened:
        ``created``, ``updated``, ``replaced`` or ``unchanged``). ``artifacts``: (name, pandas DataFrame)
        pairs logged as ``<name>.csv``."""
        if (
            existing is not None
            and existing.data.tags.get(DIGEST_TAG) == content.digest
            and existing.data.tags.get("mlflow.parentRunId") == parent_id
        ):
            return existing.info.run_id, "unchanged"
        if existing is not None and content.tags.get(KIND_TAG) == "configuration":
            run_id, outcome = existing.info.run_id, "updated"
        else:
            if existing is not None:
                self.client.delete_run(existing.info.run_id)
            tags = {**content.tags, **({"mlflow.parentRunId": parent_id} if parent_id else {})}
            run = self.client.create_run(self.id, start_time=content.start_ms, tags=tags, run_name=content.name)
            run_id, outcome = run.info.run_id, "created" if existing is None else "replaced"
        self._log(run_id, content)
        for name, frame in artifacts:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / f"{name}.csv"
                frame.to_csv(path, index=False)
                self.client.log_artifact(run_id, str(path))
        self.client.set_terminated(run_id, status=content.status, end_time=content.end_ms or content.start_ms)
        self.client.set_tag(run_id, DIGEST_TAG, content.digest)
        return run_id, outcome

    def _log(self, run_id: str, content: RunContent) -> None:
        from mlflow.entities import Metric, Param, RunTag

        when = content.start_ms if content.start_ms is not None else int(time.time() * 1000)
        params = [Param(k, v) for k, v in content.params.items()]
        tags = [RunTag(k, v) for k, v in content.tags.items()]
        metrics = [Metric(k, v, when, step) for k, v, step in content.metrics]
        for chunk in _chunks(params, PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=chunk)
        for chunk in _chunks(tags, PARAMS_PER_BATCH):
            self.client.log_batch(run_id, tags=chunk)
        for chunk in _chunks(metrics, METRICS_PER_BATCH):
            self.client.log_batch(run_id, metrics=chunk)

    def log_folder(self, run_id: str, folder: Path, artifact_path: str) -> None:
        self.client.log_artifacts(run_id, str(folder), artifact_path=artifact_path)
