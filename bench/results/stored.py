"""The fold models a sweep stored: finished jobs' sidecars and their checkpoints, selected by name."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.config import Job
from bench.errors import MissingInput, NoResults
from bench.results.artefacts import DamagedArtefact, artefact_problems, verify_file
from bench.results.store import ResultWarning, sidecars


@dataclass(frozen=True)
class StoredModel:
    """One finished job with its checkpoint (``<stem>.pt`` beside its sidecar)."""

    job: Job
    checkpoint: Path
    sidecar: Path

    @property
    def name(self) -> str:
        """Folder name of this model's outputs: ``fold<k>`` (``fold<k>_seed<s>`` for seeds other than 0)."""
        return f"fold{self.job.fold}" + (f"_seed{self.job.seed}" if self.job.seed else "")


def stored_models(
    results: Path | str,
    dataset: str,
    arch: str | None = None,
    *,
    protocol: str | None = None,
    folds: Sequence[int] | None = None,
    profile: str | None = None,
) -> list[StoredModel]:
    """Finished jobs of ``dataset`` (and ``arch``, ``protocol``, ``folds``, ``profile`` when given), sorted by
    (arch, protocol, fold, seed). Raises FileNotFoundError when none match, naming what exists,
    ValueError when two jobs share (arch, protocol, fold, seed): results of two configurations, and
    ``DamagedArtefact`` naming a checkpoint that differs from what its sidecar recorded."""
    found, sides = [], {}
    for side in sidecars(results):
        if side.get("status") != "ok" or "job" not in side:
            continue
        job = Job.from_dict(side["job"])
        if job.dataset != dataset or (arch is not None and job.arch != arch):
            continue
        if (protocol is not None and job.protocol != protocol) or (folds is not None and job.fold not in folds):
            continue
        if profile is not None and job.profile != profile:
            continue
        path = Path(side["_path"])
        found.append(StoredModel(job, path.with_suffix(".pt"), path))
        sides[path] = side
    if not found:
        have = sorted(
            {
                f"{s['job']['dataset']}/{s['job']['arch']}"
                for s in sidecars(results)
                if s.get("status") == "ok" and "job" in s
            }
        )
        want = "/".join(v for v in (dataset, arch, protocol, profile) if v) + (f" folds {list(folds)}" if folds else "")
        raise MissingInput(f"no finished job for {want} under {results}/runs; finished: {', '.join(have) or 'none'}")
    _refuse_duplicates(found)
    missing = [str(m.checkpoint) for m in found if not m.checkpoint.is_file()]
    if missing:
        raise MissingInput(f"{len(missing)} finished job(s) lack their checkpoint: {missing[:5]}")
    for m in found:
        problem = verify_file(m.sidecar, sides[m.sidecar], "checkpoint")
        if problem is not None:
            raise DamagedArtefact(f"{problem}; `bench run` with the same options recomputes that job")
        for other in artefact_problems(m.sidecar, sides[m.sidecar]):  # not needed here, but the job is damaged
            warnings.warn(
                f"{other}: the checkpoint is sound; `bench run` recomputes the job", ResultWarning, stacklevel=2
            )
    return sorted(found, key=lambda m: (m.job.arch, m.job.protocol, m.job.fold, m.job.seed))


def _refuse_duplicates(found: list[StoredModel]) -> None:
    seen: dict[tuple, StoredModel] = {}
    for m in found:
        cell = (m.job.arch, m.job.protocol, m.job.fold, m.job.seed)
        if cell in seen:
            raise NoResults(
                f"two finished jobs for {'/'.join(map(str, cell))}: {seen[cell].sidecar} and {m.sidecar} "
                "(different settings); choose one with --profile or a separate --from folder"
            )
        seen[cell] = m
