"""What a job and a configuration become in a tracking server, as plain data (no MLflow here).

One run per job (a fold model: one fold and seed of one architecture), nested under one parent run per
configuration: the jobs that may be compared with each other, which differ in nothing but the
architecture, fold and seed (``bench.results.selection.MAY_DIFFER``), so a parent holds a like-for-like
comparison of architectures, as one ``bench report`` does.

A job's run:

- params: every recorded setting (the names ``--where`` and ``bench report --table settings`` use: the
  job's fields, the training recipe, the numerics it resolved to), ``job_key``, ``bench_version`` and
  ``git_sha``;
- metrics: ``loss/train`` and ``loss/select`` (and ``lr``) with the epoch as step, the chosen epoch
  (``best_epoch``, 0-based as in the sidecar's history) and its ``best_select_loss``, the mean of each
  per-image metric per split (``test_dice``, ``val_hd95``, ...; ``test_images`` counts the images), the
  wall ``seconds`` and the compute record (``compute/gmacs``, ``compute/train_seconds_per_epoch``,
  ``compute/peak_memory_mb``, ...);
- tags: ``bench.job_key`` (how a later export finds the run again), ``bench.config_key``,
  ``bench.status``, ``bench.did_not_learn`` (``true``/``false``/``not recorded``) with
  ``bench.did_not_learn.reasons``, ``bench.error`` of a failed job, and where it ran (``bench.engine``,
  ``bench.host``, ``bench.device``, ``bench.precision``, ``bench.dask_worker``, ``bench.slurm_task``).

A configuration's run: its settings as params, and per architecture the mean of each per-image metric
over the images its fold models scored (``test_dice/unet``: the holdout test set over fold models;
``val_dice/unet``: out of fold for cv, as the run summary), with the number of finished, failed and
did-not-learn fold models beside them (``jobs_finished/unet``, ``jobs_failed/unet``,
``did_not_learn/unet``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bench.metrics import METRICS
from bench.results.selection import JOB_FIELDS, MAY_DIFFER, RESOLVED_NUMERICS

#: Changes whenever what a run holds changes, so that runs logged by an older layout are logged again.
LAYOUT_VERSION = "1"
KIND_TAG = "bench.kind"
JOB_KEY_TAG = "bench.job_key"
CONFIG_KEY_TAG = "bench.config_key"
DIGEST_TAG = "bench.digest"
#: Settings of a job that are not settings of its configuration (they may differ within one comparison,
#: are only known once a job ran, or are bookkeeping).
NOT_CONFIGURATION = frozenset(MAY_DIFFER | set(RESOLVED_NUMERICS) | {"status", "bench_version", "git_sha"})
#: The compute record's numbers logged as ``compute/<name>`` metrics.
COMPUTE_METRICS = ("gmacs", "parameters", "train_seconds_per_epoch", "infer_ms_per_image", "peak_memory_mb")
#: The longest tag value logged (MLflow takes 8000 characters); longer reasons or errors are cut there.
MAX_TAG = 5000
#: What MLflow accepts in a metric or param name; anything else becomes ``_``.
_NAME = re.compile(r"[^\w./ -]")


@dataclass(frozen=True)
class RunContent:
    """One run as it is logged: ``metrics`` are (name, value, step); ``status`` is MLflow's ``FINISHED`` or
    ``FAILED``; times in milliseconds since the epoch (None: unknown); ``digest`` identifies what was
    logged, so an unchanged run is left alone."""

    name: str
    params: dict[str, str]
    metrics: list[tuple[str, float, int]]
    tags: dict[str, str]
    status: str = "FINISHED"
    start_ms: int | None = None
    end_ms: int | None = None
    digest: str = ""


def metric_name(text: str) -> str:
    """``text`` as a valid MLflow metric name (``smp:Unet:resnet34`` -> ``smp_Unet_resnet34``)."""
    return _NAME.sub("_", text)


def _plain(value: Any) -> Any:
    """A list or mapping of the recipe as the JSON text the settings table shows."""
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def job_settings(side: Mapping[str, Any]) -> dict[str, Any]:
    """Every recorded setting of the job of sidecar ``side``, named as in
    ``bench.results.selection.settings_table`` (job fields, the recipe unprefixed, the resolved numerics),
    plus ``job_key``, ``bench_version`` and ``git_sha``."""
    job = side.get("job") or {}
    out: dict[str, Any] = {k: job.get(k) for k in JOB_FIELDS if k in job}
    out.update({k: _plain(v) for k, v in (job.get("train") or {}).items()})
    compute = side.get("compute") or {}
    out.update({col: compute.get(name) for col, name in RESOLVED_NUMERICS.items() if compute.get(name) is not None})
    env = side.get("environment") or {}
    out["job_key"] = side.get("key", job.get("key"))
    out["bench_version"] = (env.get("versions") or {}).get("bench")
    out["git_sha"] = env.get("git_sha")
    return out


def configuration(side: Mapping[str, Any]) -> dict[str, Any]:
    """The settings the job of ``side`` shares with every job it may be compared with."""
    return {k: v for k, v in job_settings(side).items() if k not in NOT_CONFIGURATION}


def config_key(side: Mapping[str, Any]) -> str:
    """A short hash of ``configuration(side)``: the parent run's identity."""
    return _hash(configuration(side))


def digest(obj: Any) -> str:
    """A hash of ``obj`` (JSON) and the layout version."""
    return _hash({"layout": LAYOUT_VERSION, "content": obj})


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _params(settings: Mapping[str, Any]) -> dict[str, str]:
    return {metric_name(k): str(v) for k, v in settings.items()}


def _split_means(rows: pd.DataFrame, suffix: str = "", step: int = 0) -> list[tuple[str, float, int]]:
    """``<split>_<metric><suffix>`` = the mean over the rows of each split, and ``<split>_images<suffix>``."""
    out: list[tuple[str, float, int]] = []
    for split, part in rows.groupby("split", sort=True):
        out += [(f"{split}_{m}{suffix}", float(part[m].mean()), step) for m in METRICS if m in part.columns]
        out.append((f"{split}_images{suffix}", float(len(part)), step))
    return out


def learning_tags(side: Mapping[str, Any]) -> dict[str, str]:
    """``bench.did_not_learn`` (``true``, ``false`` or ``not recorded``) and its reasons."""
    learning = side.get("learning")
    if not isinstance(learning, Mapping):
        return {"bench.did_not_learn": "not recorded"} if side.get("status") == "ok" else {}
    tags = {"bench.did_not_learn": "true" if learning.get("did_not_learn") else "false"}
    if learning.get("reasons"):
        tags["bench.did_not_learn.reasons"] = "; ".join(learning["reasons"])
    return tags


def job_run(side: Mapping[str, Any], rows: pd.DataFrame | None, engine: str = "") -> RunContent:
    """The run of the job of sidecar ``side`` (status ``ok`` with its per-image ``rows``, or ``failed``).
    Where it ran comes from the sidecar's ``where`` record; ``engine`` (``local``, ``dask``,
    ``submitit``: what the driver dispatched it to, '' when not known) stands in for sidecars without one."""
    job = side.get("job") or {}
    env = side.get("environment") or {}
    compute = side.get("compute") or {}
    ok = side.get("status") == "ok"
    metrics: list[tuple[str, float, int]] = []
    for h in side.get("history") or []:
        step = int(h.get("epoch", 0))
        metrics += [
            (f"loss/{part}", float(h[f"{part}_loss"]), step) for part in ("train", "select") if f"{part}_loss" in h
        ]
        if "lr" in h:
            metrics.append(("lr", float(h["lr"]), step))
    for name in ("best_epoch", "best_select_loss", "seconds", "train_seconds"):
        if isinstance(side.get(name), (int, float)):
            metrics.append((name, float(side[name]), 0))
    metrics += [
        (f"compute/{n}", float(compute[n]), 0) for n in COMPUTE_METRICS if isinstance(compute.get(n), (int, float))
    ]
    if ok and rows is not None:
        metrics += _split_means(rows)
    tags = {
        KIND_TAG: "job",
        JOB_KEY_TAG: str(side.get("key")),
        CONFIG_KEY_TAG: config_key(side),
        "bench.status": str(side.get("status")),
        **learning_tags(side),
    }
    ran = side.get("where") or {}
    tags["bench.engine"] = str(ran.get("engine") or engine or "not recorded")
    where = {
        "bench.host": ran.get("host") or env.get("host") or side.get("host"),
        "bench.device": side.get("device") or compute.get("device"),
        "bench.precision": compute.get("precision"),
        "bench.dask_worker": ran.get("dask_worker"),
        "bench.slurm_task": ran.get("slurm_task"),
    }
    tags.update({k: str(v) for k, v in where.items() if v})
    if not ok and side.get("error"):
        tags["bench.error"] = str(side["error"]).splitlines()[0]
    tags = {k: v[:MAX_TAG] for k, v in tags.items()}
    started = side.get("started")
    seconds = side.get("seconds")
    start_ms = int(started * 1000) if isinstance(started, (int, float)) else None
    end_ms = start_ms + int(seconds * 1000) if start_ms is not None and isinstance(seconds, (int, float)) else None
    content = {k: v for k, v in side.items() if not k.startswith("_")}
    return RunContent(
        name=f"{metric_name(str(job.get('arch')))} fold {job.get('fold')} seed {job.get('seed')}",
        params=_params(job_settings(side)),
        metrics=metrics,
        tags=tags,
        status="FINISHED" if ok else "FAILED",
        start_ms=start_ms,
        end_ms=end_ms,
        digest=digest(content),
    )


def parent_run(sides: Sequence[Mapping[str, Any]], rows: pd.DataFrame) -> RunContent:
    """The run of one configuration: ``sides`` are the sidecars of its jobs (finished and failed, all of
    one ``config_key``), ``rows`` the per-image rows of its finished jobs."""
    if not sides:
        raise ValueError("a configuration run needs at least one job")
    settings = configuration(sides[0])
    metrics: list[tuple[str, float, int]] = []
    step = sum(s.get("status") == "ok" for s in sides)  # the numbers as of this many finished fold models
    archs = sorted({str((s.get("job") or {}).get("arch")) for s in sides})
    for arch in archs:
        mine = [s for s in sides if str((s.get("job") or {}).get("arch")) == arch]
        name = metric_name(arch)
        done = [s for s in mine if s.get("status") == "ok"]
        bad = [s for s in done if (s.get("learning") or {}).get("did_not_learn")]
        metrics += [
            (f"jobs_finished/{name}", float(len(done)), step),
            (f"jobs_failed/{name}", float(len(mine) - len(done)), step),
            (f"did_not_learn/{name}", float(len(bad)), step),
        ]
        if len(rows):
            metrics += _split_means(rows[rows["arch"] == arch], suffix=f"/{name}", step=step)
    done = [s for s in sides if s.get("status") == "ok"]
    bad = [s for s in done if (s.get("learning") or {}).get("did_not_learn")]
    tags = {
        KIND_TAG: "configuration",
        CONFIG_KEY_TAG: config_key(sides[0]),
        "bench.architectures": ", ".join(archs),
        "bench.did_not_learn": f"{len(bad)} of {len(done)} finished fold models",
    }
    job = sides[0].get("job") or {}
    name = f"{job.get('dataset')} {job.get('protocol')} {job.get('profile')} ({tags[CONFIG_KEY_TAG][:8]})"
    return RunContent(
        name=name,
        params=_params(settings),
        metrics=metrics,
        tags=tags,
        digest=digest(sorted(digest({k: v for k, v in s.items() if not k.startswith("_")}) for s in sides)),
    )
