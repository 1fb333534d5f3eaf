"""The job record: what one job's sidecar says, and what running (or dispatching) a job returns.

One frozen ``JobRecord`` is the only shape of a job's status. Running a job writes it to the
sidecar ``<stem>.json`` with ``to_json`` (``running`` when it starts, then ``ok`` or ``failed``) and
returns it; a driver that skips, waits for or submits a job returns one too. ``from_json`` reads a
stored sidecar back, whatever version of the project wrote it. On disk a sidecar is a flat JSON
object (``results/README.md``): ``job`` (the job's fields), ``key``, ``status`` and, as they apply,
``started``, ``pid``, ``host``, ``seconds``, ``n_written``, ``error``, ``traceback``,
``crashed_pid``, ``environment``, ``last_failure``, ``where``, ``attempts``, ``died``, plus what the job reported about itself
(``best_epoch``, ``history``, ``compute`` with the plan's ``estimated_train_seconds`` and its
``estimate_error``, ...), kept here in ``details``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.config import Job


class Status(str, Enum):
    """``running``, ``ok`` and ``failed`` are written to sidecars; ``skipped`` (already finished),
    ``busy`` (another process holds the job) and ``submitted`` (queued in SLURM) are only returned."""

    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"
    BUSY = "busy"
    SUBMITTED = "submitted"

    def __str__(self) -> str:
        return self.value


#: The error of a job whose process died under it (its status is ``failed``, ``crashed`` is true).
CRASHED = "worker process died while running this job (out of memory or a crash in native code)"

#: Fields that live only in memory, never in a sidecar.
_MEMORY_ONLY = ("note", "task", "details")


@dataclass(frozen=True, slots=True)
class JobRecord:
    """The status of one job. ``seconds``: wall time of the run (None when nothing ran); ``error``:
    ``Type: message`` of a failure, ``traceback`` its full traceback; ``note``: why a job was skipped
    or whose outcome this is; ``task``: the SLURM array task of a submitted job; ``where``: where the
    job ran (``bench.run.where``: engine, host, pid, Dask worker, SLURM task); ``attempts``: how many
    times it was started since its last result (set when a worker died under an earlier try) and
    ``died``: each dead try (its pid, host, start); ``details``: the job's own report of a finished run
    (best epoch, history, compute, learning flags, ...)."""

    job: Mapping[str, Any]
    key: str
    status: Status
    seconds: float | None = None
    error: str = ""
    traceback: str = ""
    started: float | None = None
    pid: int | None = None
    host: str | None = None
    n_written: int | None = None
    crashed_pid: int | None = None
    environment: Mapping[str, Any] | None = None
    last_failure: Mapping[str, Any] | None = None
    where: Mapping[str, Any] | None = None
    attempts: int | None = None
    died: tuple[Mapping[str, Any], ...] | list[Mapping[str, Any]] | None = None
    artefacts: Mapping[str, Any] | None = None  # name -> {file, size, sha256} when written (results.artefacts)
    note: str = ""
    task: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status(self.status))
        clash = sorted(set(self.details) & _FIELDS)
        if clash:
            raise ValueError(f"job details may not use the record's own keys: {', '.join(clash)}")

    @classmethod
    def of(cls, job: Job, status: Status | str, **values: Any) -> JobRecord:
        """The record of ``job`` with ``status`` (and any other field)."""
        return cls(job=job.to_dict(), key=job.key, status=Status(status), **values)

    @property
    def label(self) -> str:
        """``dataset/arch/protocol/fold<k>/seed<s>`` (``Job.label``), from the recorded job."""
        j = self.job
        return f"{j.get('dataset')}/{j.get('arch')}/{j.get('protocol')}/fold{j.get('fold')}/seed{j.get('seed')}"

    @property
    def crashed(self) -> bool:
        """A failure because the process running the job died (not an exception in the job)."""
        return self.status is Status.FAILED and (self.crashed_pid is not None or self.error == CRASHED)

    def replace(self, **changes: Any) -> JobRecord:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """The sidecar's JSON object: set fields only (None and '' left out), ``details`` at the top level."""
        out: dict[str, Any] = dict(self.details)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in _MEMORY_ONLY or value is None or value == "":
                continue
            out[f.name] = (
                value.value if isinstance(value, Status) else dict(value) if isinstance(value, Mapping) else value
            )
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> JobRecord:
        """A record from a sidecar's JSON object; keys it does not know become ``details``.
        Raises ``ValueError`` when ``obj`` is not a job sidecar (no ``job`` object, ``key`` or known ``status``)."""
        if not isinstance(obj.get("job"), Mapping) or "key" not in obj or "status" not in obj:
            raise ValueError("not a job sidecar (expected a JSON object with 'job', 'key' and 'status')")
        try:
            Status(obj["status"])
        except ValueError:
            raise ValueError(
                f"unknown job status {obj['status']!r} (expected one of {', '.join(s.value for s in Status)})"
            ) from None
        known = {k: v for k, v in obj.items() if k in _FIELDS and k not in _MEMORY_ONLY}
        details = {k: v for k, v in obj.items() if k not in _FIELDS and not k.startswith("_")}
        return cls(**known, details=details)


_FIELDS = frozenset(f.name for f in dataclasses.fields(JobRecord))
