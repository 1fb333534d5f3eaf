"""A job's artefacts, verified wherever they are read: the checkpoint (``<stem>.pt``), the stored
predictions (``<stem>.pred.npz``) and the rows (``<stem>.parquet``) beside its sidecar, and the rows of an
evaluation (``evaluations/<name>.parquet`` beside ``<name>.json``).

When a job (or an evaluation) is written, its sidecar records each artefact's size and sha256
(``artefacts``: name -> ``{"file", "size", "sha256"}``, ``describe``). ``artefact_problems`` compares the
files with that record: a missing file, another size or another content hash is damage, named with the
file's path. A sidecar written before hashes were recorded is checked as far as the files allow (an
existing checkpoint or prediction archive must be a readable zip archive whose members pass their CRC
check); it is never called damaged for lacking a hash. Hashes are memoised per process by (path, size,
modification time), so a command that verifies a file twice reads it once.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.errors import UserError


class DamagedArtefact(UserError, ValueError):
    """An artefact a command needs is missing or damaged; the message names its path and how to recompute it."""


#: The artefacts of a job, by name: the suffix of each file beside the job's sidecar.
JOB_ARTEFACTS = {"parquet": ".parquet", "checkpoint": ".pt", "predictions": ".pred.npz"}
#: The artefact of an evaluation (``evaluations/<name>.json``): its rows.
EVALUATION_ARTEFACTS = {"parquet": ".parquet"}
#: Artefacts that are zip archives (torch checkpoints and ``.npz`` files): checked for CRC when no hash is recorded.
ZIP_ARTEFACTS = ("checkpoint", "predictions")

_memo: dict[tuple[str, int, int], str] = {}


def sha256(path: Path) -> str:
    """Hex sha256 of the file at ``path`` (memoised by path, size and modification time)."""
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _memo:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        _memo[key] = digest.hexdigest()
    return _memo[key]


def artefact_path(sidecar: Path, suffix: str) -> Path:
    """The file with ``suffix`` beside ``sidecar`` (``x.json`` -> ``x.pt``, ``x.pred.npz``, ...)."""
    return Path(sidecar).with_suffix(suffix)


def describe(sidecar: Path, names: Mapping[str, str] = JOB_ARTEFACTS) -> dict[str, dict[str, Any]]:
    """The record of the artefacts beside ``sidecar`` that exist: name -> {file, size, sha256}."""
    out = {}
    for name, suffix in names.items():
        path = artefact_path(sidecar, suffix)
        if path.is_file():
            out[name] = {"file": path.name, "size": path.stat().st_size, "sha256": sha256(path)}
    return out


def _unreadable_zip(path: Path) -> str | None:
    """Why ``path`` is not a sound zip archive (unreadable directory, a member failing its CRC), or None."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        return f"not a readable archive ({type(exc).__name__}: {exc})"
    return None if bad is None else f"member {bad} fails its CRC check"


def file_problem(path: Path, recorded: Mapping[str, Any] | None, zipped: bool = False) -> str | None:
    """Why the artefact at ``path`` is damaged, compared with its ``recorded`` size and hash (None: not
    recorded, then only a ``zipped`` archive's readability is checked), or None when it is sound."""
    path = Path(path)
    if not path.is_file():
        return f"{path} is missing" if recorded else None
    if recorded:
        size = path.stat().st_size
        if size != recorded.get("size"):
            return f"{path} is damaged: {size} bytes, {recorded.get('size')} when it was written"
        if sha256(path) != recorded.get("sha256"):
            return f"{path} is damaged: its content differs from the sha256 recorded when it was written"
        return None
    why = _unreadable_zip(path) if zipped else None
    return None if why is None else f"{path} is damaged: {why}"


def artefact_problems(sidecar: Path, side: Mapping[str, Any], names: Mapping[str, str] = JOB_ARTEFACTS) -> list[str]:
    """Each damaged artefact of the sidecar ``side`` (at ``sidecar``), one line naming its path."""
    recorded = side.get("artefacts") if isinstance(side.get("artefacts"), Mapping) else {}
    out = []
    for name, suffix in names.items():
        problem = file_problem(artefact_path(sidecar, suffix), recorded.get(name), zipped=name in ZIP_ARTEFACTS)
        if problem is not None:
            out.append(problem)
    return out


def verify_file(sidecar: Path, side: Mapping[str, Any], name: str) -> str | None:
    """The problem of one artefact ``name`` of a job sidecar, or None (for a reader about to load it)."""
    recorded = side.get("artefacts") if isinstance(side.get("artefacts"), Mapping) else {}
    return file_problem(artefact_path(sidecar, JOB_ARTEFACTS[name]), recorded.get(name), name in ZIP_ARTEFACTS)
