"""The results store: one Parquet file of per-image rows plus one JSON sidecar per job.

Layout: ``<results>/runs/<dataset>/<arch>/<stem>.parquet`` and ``.json`` (schema:
``results/README.md``), with ``<stem>.lock`` beside them (the job's lock, see ``job_lock``). Every
write goes to a uniquely named temporary file ``.tmp-<target name>.<random>.tmp`` in the target
folder and is renamed into place (atomic on POSIX), Parquet first and the sidecar last. A job is
finished exactly when its sidecar says ``status: ok``, names the key found in its Parquet file, and
the Parquet file passes ``verify_result`` (readable, ``n_written`` rows, the expected columns,
finite metrics). A result that fails verification is never read as a result: ``load_all`` skips it
with a ``ResultWarning`` naming the file, ``is_done`` says it is not done (so the next run recomputes
it), and ``unreadable`` lists it so reports can say "unreadable: PATH" instead of "not run".
Every write is confined to the results folder (``confine``).
"""

from __future__ import annotations

import json
import os
import re
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

# the store writes through the project's one atomic writer; its functions are importable from here too
from bench.atomic import TMP_PREFIX, TMP_SUFFIX, atomic_write, atomic_write_bytes, atomic_write_json  # noqa: F401
from bench.errors import InvalidInput, MissingInput, ResultWarning
from bench.metrics import METRICS
from bench.results.artefacts import EVALUATION_ARTEFACTS, artefact_problems
from bench.results.record import JobRecord

DEFAULT_RESULTS = Path("results")

#: A temporary file of no known job (no lock beside it) is stale once it is this old (seconds).
STALE_AFTER = 3600.0

#: Columns every result Parquet file has (results/README.md); more are allowed.
REQUIRED_COLUMNS = (
    "dataset",
    "source",
    "arch",
    "protocol",
    "fold",
    "seed",
    "profile",
    "split",
    "case_id",
    "group",
    "eval_size",
    "tp",
    "fp",
    "fn",
    "tn",
    "n_ref",
    "n_pred",
    "empty_ref",
    "empty_pred",
    "dice",
    "iou",
    "hd",
    "hd95",
    "split_hash",
    "job_key",
)
#: Metrics that are finite in every stored row (both-empty and one-empty masks have defined values).
#: Counts: integer columns.
COUNT_COLUMNS = ("fold", "seed", "eval_size", "tp", "fp", "fn", "tn", "n_ref", "n_pred")

_STEM = re.compile(r"^(?P<protocol>[A-Za-z0-9]+)_f(?P<fold>\d+)_s(?P<seed>\d+)_(?P<key>[0-9a-f]+)$")


# ---------------------------------------------------------------------------------------------- paths


def confine(results: Path | str, path: Path | str) -> Path:
    """``path``, after checking that it lies inside the ``results`` folder (lexically, after ``..``)."""
    root, target = os.path.abspath(results), os.path.abspath(path)
    if os.path.commonpath([root, target]) != root:
        raise ValueError(f"refusing to write {path}: it lies outside the results folder {results}")
    return Path(path)


def _component(value: str, what: str) -> str:
    if not value or value in (".", "..") or any(ch in value for ch in ("/", "\\", "\0")):
        raise ValueError(f"{what} {value!r} cannot name a results folder: no path separators, '.' or '..'")
    return value


def job_dir(results: Path, dataset: str, arch: str) -> Path:
    """``<results>/runs/<dataset>/<arch>`` (``:`` in smp names becomes ``__``), inside ``results``."""
    folder = Path(results) / "runs" / _component(dataset, "dataset") / _component(arch.replace(":", "__"), "arch")
    return confine(results, folder)


def job_lock(sidecar: Path) -> Any:
    """The lock that claims the job of ``sidecar`` (a ``filelock.FileLock`` on ``<stem>.lock``).

    Whoever computes or rewrites a job's files holds it; ``acquire(timeout=0)`` raises
    ``filelock.Timeout`` while another process (or worker) holds it. The operating system releases it
    when the holder dies, so a free lock beside a ``running`` sidecar means that run was killed.
    """
    from filelock import FileLock

    return FileLock(str(Path(sidecar).with_suffix(".lock")))


# ---------------------------------------------------------------------------------------------- writers


def atomic_write_parquet(path: Path, df: pd.DataFrame) -> None:
    atomic_write(path, lambda fh: df.to_parquet(fh, index=False))


# ---------------------------------------------------------------------------------------------- leftovers


def _tmp_stem(name: str) -> str:
    """The job stem a temporary file belongs to (``.tmp-<stem>.<ext>.<random>.tmp`` -> ``<stem>``)."""
    return name[len(TMP_PREFIX) :].split(".", 1)[0]


def clean_job_temporaries(folder: Path, stem: str) -> list[Path]:
    """Remove the temporary files of job ``stem`` in ``folder``; the caller holds the job's lock."""
    removed = []
    for path in Path(folder).glob(f"{TMP_PREFIX}{stem}.*{TMP_SUFFIX}"):
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def clean_stale(results: Path | str = DEFAULT_RESULTS) -> list[Path]:
    """Remove temporary files left under ``results/runs`` by killed writers; returns what was removed.

    A temporary file of a job whose lock is free is stale (no one is writing that job). One that names
    no job with a lock file (e.g. from an older version) is stale once older than ``STALE_AFTER``.
    """
    from filelock import Timeout

    removed: list[Path] = []
    for path in sorted((Path(results) / "runs").glob(f"*/*/{TMP_PREFIX}*")):
        stem = _tmp_stem(path.name)
        lock_path = path.with_name(f"{stem}.lock")
        if lock_path.exists():
            lock = job_lock(lock_path)
            try:
                lock.acquire(timeout=0)
            except Timeout:
                continue  # a live writer owns it
            try:
                removed += clean_job_temporaries(path.parent, stem)
            finally:
                lock.release()
        else:
            try:
                old = time.time() - path.stat().st_mtime > STALE_AFTER
            except FileNotFoundError:
                continue
            if old:
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


# ---------------------------------------------------------------------------------------------- reading


def read_sidecar(path: Path) -> dict[str, Any] | None:
    """The sidecar at ``path``, or None if absent or unreadable (``sidecar_problem`` says why)."""
    try:
        side = json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return side if isinstance(side, dict) else None


def read_record(path: Path) -> JobRecord | None:
    """The job record in the sidecar at ``path``, or None if absent, unreadable or not a job sidecar."""
    side = read_sidecar(path)
    try:
        return None if side is None else JobRecord.from_json(side)
    except (TypeError, ValueError):
        return None


def write_record(path: Path, record: JobRecord) -> None:
    """Write ``record`` as the sidecar at ``path`` (atomically)."""
    atomic_write_json(path, record.to_json())


def sidecar_problem(path: Path) -> str | None:
    """Why the sidecar at ``path`` cannot be used (unreadable JSON, not a job sidecar), or None."""
    try:
        side = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return "missing"
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return f"unreadable JSON ({exc})"
    if not isinstance(side, dict) or not isinstance(side.get("job"), dict) or "status" not in side:
        return "not a job sidecar (expected a JSON object with 'job' and 'status')"
    return None


def sidecar_paths(results: Path | str) -> list[Path]:
    """Every sidecar file under ``results/runs`` (temporary and hidden files excluded), sorted."""
    return sorted(p for p in (Path(results) / "runs").glob("*/*/*.json") if not p.name.startswith("."))


def sidecars(results: Path | str = DEFAULT_RESULTS) -> list[dict[str, Any]]:
    """Every job sidecar under ``results/runs`` (finished, failed or running), sorted by path.

    An unreadable sidecar is left out with a ``ResultWarning`` naming it (``unreadable`` lists them).
    """
    out = []
    for path in sidecar_paths(results):
        problem = sidecar_problem(path)
        if problem is not None:
            if problem != "missing":
                warnings.warn(f"{path}: {problem}; this job is treated as not done", ResultWarning, stacklevel=2)
            continue
        side = read_sidecar(path)
        assert side is not None
        side["_path"] = str(path)
        out.append(side)
    return out


def verify_result(sidecar_path: Path, side: dict[str, Any]) -> tuple[pd.DataFrame | None, str | None]:
    """(rows, None) if the Parquet file beside an ``ok`` sidecar is a complete result, else (None, why).

    Complete: readable, ``n_written`` rows, the columns of ``REQUIRED_COLUMNS`` (counts integer),
    every row's ``job_key`` equal to the sidecar's key, finite ``METRICS``.
    """
    parquet = Path(sidecar_path).with_suffix(".parquet")
    if not parquet.exists():
        return None, f"{parquet} is missing"
    try:
        df = pd.read_parquet(parquet)
    except (OSError, ValueError, pa.ArrowException) as exc:
        return None, f"{parquet} is unreadable ({type(exc).__name__}: {exc})"
    expected = side.get("n_written")
    if not isinstance(expected, int) or len(df) != expected:
        return None, f"{parquet} holds {len(df)} rows, its sidecar says n_written={expected}"
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        return None, f"{parquet} lacks columns {missing}"
    wrong = [c for c in COUNT_COLUMNS if not pd.api.types.is_integer_dtype(df[c])]
    wrong += [c for c in METRICS if not pd.api.types.is_float_dtype(df[c])]
    if wrong:
        return None, f"{parquet} has columns of the wrong type: {wrong}"
    if (df["job_key"] != side.get("key")).any():
        return None, f"{parquet} holds rows of another job (job_key != {side.get('key')})"
    bad = {m: int((~np.isfinite(df[m].to_numpy(dtype=float))).sum()) for m in METRICS}
    bad = {m: n for m, n in bad.items() if n}
    if bad:
        return None, f"{parquet} has non-finite metrics ({', '.join(f'{m}: {n} rows' for m, n in bad.items())})"
    return df, None


def check_done(sidecar_path: Path, key: str) -> tuple[bool, str | None]:
    """(done, problem): done when the sidecar is ``ok`` for ``key`` and its result verifies; ``problem``
    says why an ``ok`` result for ``key`` is not usable (None otherwise)."""
    side = read_sidecar(sidecar_path)
    if not (side and side.get("status") == "ok" and side.get("key") == key):
        return False, None
    problem = result_problem(sidecar_path, side)
    return problem is None, problem


def result_problem(sidecar_path: Path, side: dict[str, Any]) -> str | None:
    """Why the stored result of an ``ok`` sidecar cannot be used: its rows fail ``verify_result`` or an
    artefact (rows, checkpoint, predictions) is missing or damaged (``bench.results.artefacts``); else None."""
    damaged = artefact_problems(Path(sidecar_path), side)
    parquet = str(Path(sidecar_path).with_suffix(".parquet"))
    if not any(d.startswith(parquet) for d in damaged):  # rows not already named as damaged: verify them
        _, problem = verify_result(sidecar_path, side)
        damaged = ([problem] if problem else []) + damaged
    return "; ".join(damaged) or None


def is_done(sidecar_path: Path, key: str) -> bool:
    """True when the job ``key`` finished and its result verifies; a bad result warns (it will be recomputed)."""
    done, problem = check_done(sidecar_path, key)
    if problem is not None:
        warnings.warn(
            f"{problem}: not a usable result, treated as not done (the next run recomputes it)",
            ResultWarning,
            stacklevel=2,
        )
    return done


def lock_held(sidecar_path: Path) -> bool:
    """Whether a live process holds the job lock beside ``sidecar_path`` (``job_lock``). Read-only: an
    absent lock file is free, and the probe is a non-blocking shared ``flock`` that is released at once
    (where ``fcntl`` is missing, a ``job_lock`` acquired and released with timeout 0)."""
    lock_path = Path(sidecar_path).with_suffix(".lock")
    if not lock_path.exists():
        return False
    try:
        import fcntl
    except ImportError:  # Windows: filelock's own lock
        from filelock import Timeout

        lock = job_lock(sidecar_path)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return True
        lock.release()
        return False
    try:
        with open(lock_path, "rb") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fh, fcntl.LOCK_UN)
    except FileNotFoundError:
        return False
    return False


#: The states of a job from its files alone (``stored_state``); ``queued`` comes from SLURM (``bench.run.status``).
STORED_STATES = ("done", "damaged", "running", "crashed", "failed", "missing")


def stored_state(sidecar_path: Path, key: str | None = None) -> tuple[str, str, dict[str, Any] | None]:
    """(state, one-line reason, sidecar) of the job whose sidecar is at ``sidecar_path`` (of job ``key``
    when given: a sidecar of another key is ``missing`` for it), from its files and its lock alone:

    - ``done``: ``ok``, rows and every artefact verify; ``damaged``: the sidecar is unreadable, or it is
      ``ok`` and its rows or an artefact are missing or damaged (the reason names each path);
    - ``running``: a ``running`` sidecar whose lock a live process holds; ``crashed``: a ``running``
      sidecar whose lock is free (the process that ran it died: the next run redoes it);
    - ``failed``: a ``failed`` sidecar (its error's first line); ``missing``: no sidecar of this job.
    """
    sidecar_path = Path(sidecar_path)
    problem = sidecar_problem(sidecar_path)
    if problem == "missing":
        return "missing", "", None
    if problem is not None:
        return "damaged", f"unreadable: {sidecar_path} ({problem})", None
    side = read_sidecar(sidecar_path)
    assert side is not None
    if key is not None and side.get("key") != key:
        return "missing", "", None
    status = side.get("status")
    if status == "ok":
        why = result_problem(sidecar_path, side)
        return ("done", "", side) if why is None else ("damaged", why, side)
    if status == "running":
        started = side.get("started")
        when = time.strftime("started %Y-%m-%d %H:%M:%S", time.localtime(started)) if started else "started"
        who = f" by pid {side.get('pid')}" + (f" on {side['host']}" if side.get("host") else "")
        if lock_held(sidecar_path):
            return "running", f"{when}{who if side.get('pid') else ''}", side
        return "crashed", f"{when}{who if side.get('pid') else ''}; its lock is free: that process died", side
    if status == "failed":
        lines = [ln.strip() for ln in str(side.get("error", "")).splitlines() if ln.strip()]
        return "failed", (lines[0] if lines else "failed (no reason recorded)"), side
    return "damaged", f"{sidecar_path}: unknown status {status!r}", side


def load_all(results: Path | str = DEFAULT_RESULTS) -> pd.DataFrame:
    """One tidy DataFrame of every finished job: one row per (job, image). Empty if nothing ran.

    Rows that fail ``verify_result`` or their recorded hash are left out with a ``ResultWarning`` naming
    the file; a job whose rows verify but whose checkpoint or predictions are damaged keeps its rows, with
    a ``ResultWarning`` naming the damaged file (the next ``bench run`` recomputes that job).
    """
    frames = []
    for side in sidecars(results):
        if side.get("status") != "ok":
            continue
        path = Path(side["_path"])
        damaged = artefact_problems(path, side)
        rows_bad = next((d for d in damaged if d.startswith(str(path.with_suffix(".parquet")))), None)
        df, problem = verify_result(path, side) if rows_bad is None else (None, None)
        rows_bad = rows_bad or problem
        if rows_bad is not None:
            warnings.warn(
                f"{rows_bad}: its rows are left out (`bench run` recomputes the job)", ResultWarning, stacklevel=2
            )
            continue
        for d in (d for d in damaged if d != rows_bad):  # the rows verify; another artefact of the job does not
            warnings.warn(f"{d}: the job's rows are kept; `bench run` recomputes the job", ResultWarning, stacklevel=2)
        frames.append(df)
    frames += evaluation_frames(results)
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def evaluation_frames(results: Path | str = DEFAULT_RESULTS) -> list[pd.DataFrame]:
    """Rows of finished ``bench evaluate`` runs (``runs/*/*/evaluations/``): external cohorts and
    native-resolution scores. Same rule as jobs: sidecar ``status: ok`` naming the Parquet's ``eval_key``;
    an unreadable Parquet file (or one with fewer rows than its sidecar's ``n_written``) is left out
    with a ``ResultWarning`` naming it."""
    frames = []
    for path in sorted((Path(results) / "runs").glob("*/*/evaluations/*.json")):
        if path.name.startswith("."):
            continue
        df, problem = read_evaluation(path)
        if problem is not None:
            warnings.warn(f"{problem}: left out (`bench evaluate` recomputes it)", ResultWarning, stacklevel=2)
        elif df is not None:
            frames.append(df)
    return frames


def damaged_evaluations(results: Path | str = DEFAULT_RESULTS) -> list[str]:
    """One line per evaluation record (``runs/*/*/evaluations/*.json``) whose sidecar or rows are damaged."""
    out = []
    for path in sorted((Path(results) / "runs").glob("*/*/evaluations/*.json")):
        if not path.name.startswith("."):
            problem = read_evaluation(path)[1]
            if problem is not None:
                out.append(problem)
    return out


def read_evaluation(sidecar: Path) -> tuple[pd.DataFrame | None, str | None]:
    """(rows, None) of a finished evaluation (``evaluations/<name>.json`` and ``.parquet``); (None, None)
    for one that is not finished (not ``ok``); (None, why) when its sidecar or rows are damaged."""
    sidecar = Path(sidecar)
    side = read_sidecar(sidecar)
    parquet = sidecar.with_suffix(".parquet")
    if side is None:
        if not sidecar.exists():
            return None, None
        return None, f"{sidecar} is unreadable (not a JSON evaluation record)"
    if side.get("status") != "ok":
        return None, None
    damaged = artefact_problems(sidecar, side, EVALUATION_ARTEFACTS)
    if damaged:
        return None, "; ".join(damaged)
    if not parquet.exists():
        return None, f"{parquet} is missing"
    try:
        df = pd.read_parquet(parquet)
    except (OSError, ValueError, pa.ArrowException) as exc:
        return None, f"{parquet} is unreadable ({type(exc).__name__}: {exc})"
    if isinstance(side.get("n_written"), int) and len(df) != side["n_written"]:
        return None, f"{parquet} holds {len(df)} rows, its sidecar says n_written={side['n_written']}"
    if len(df) and ("eval_key" not in df.columns or (df["eval_key"] != side.get("key")).any()):
        return None, f"{parquet} holds rows of another evaluation (eval_key != {side.get('key')})"
    return df, None


_JOB_COLUMNS = ("dataset", "arch", "protocol", "fold", "seed")


def identity_from_path(path: Path) -> dict[str, Any]:
    """dataset, arch, protocol, fold, seed as far as a sidecar's path tells them."""
    out: dict[str, Any] = {"dataset": path.parent.parent.name, "arch": path.parent.name.replace("__", ":")}
    match = _STEM.match(path.stem)
    if match:
        out.update(protocol=match["protocol"], fold=int(match["fold"]), seed=int(match["seed"]))
    return out


def unreadable(results: Path | str = DEFAULT_RESULTS) -> pd.DataFrame:
    """Stored results that cannot be read: an unreadable sidecar, an ``ok`` sidecar whose Parquet file
    fails ``verify_result`` (``error`` = ``"unreadable: PATH (why)"``), or one whose checkpoint or
    predictions are damaged (``error`` = ``"damaged: PATH is damaged: why"``; its rows still load). One
    row each: dataset, arch, protocol, fold, seed, key, path and error."""
    rows = []
    for path in sidecar_paths(results):
        problem = sidecar_problem(path)
        if problem == "missing":
            continue
        side = read_sidecar(path) if problem is None else None
        if side is not None:
            if side.get("status") != "ok":
                continue
            _, problem = verify_result(path, side)
            if problem is None:
                damaged = artefact_problems(path, side)
                if not damaged:
                    continue
                info = {
                    **identity_from_path(path),
                    **{k: side["job"].get(k) for k in _JOB_COLUMNS},
                    "key": side.get("key"),
                }
                bad = Path(damaged[0].split(" is ", 1)[0])
                rows.append(
                    {
                        **{k: info.get(k) for k in _JOB_COLUMNS},
                        "error": "damaged: " + "; ".join(damaged),
                        "key": info["key"],
                        "path": str(bad),
                    }
                )
                continue
            bad = path.with_suffix(".parquet")
            info = {**identity_from_path(path), **{k: side["job"].get(k) for k in _JOB_COLUMNS}, "key": side.get("key")}
        else:
            bad, info = path, {**identity_from_path(path), "key": None}
        rows.append(
            {
                **{k: info.get(k) for k in _JOB_COLUMNS},
                "error": f"unreadable: {bad} ({problem})",
                "key": info["key"],
                "path": str(bad),
            }
        )
    return pd.DataFrame(rows, columns=[*_JOB_COLUMNS, "error", "key", "path"])


def failures(results: Path | str = DEFAULT_RESULTS, include_unreadable: bool = True) -> pd.DataFrame:
    """Failed jobs (dataset, arch, protocol, fold, seed, error, key, status), one row each.

    ``status`` is ``failed``; with ``include_unreadable`` the rows of ``unreadable`` follow with status
    ``unreadable`` and ``error`` = ``"unreadable: PATH (why)"``.
    """
    rows = [
        {
            **{k: s["job"].get(k) for k in _JOB_COLUMNS},
            "error": s.get("error", ""),
            "key": s.get("key"),
            "status": "failed",
        }
        for s in sidecars(results)
        if s.get("status") == "failed"
    ]
    if include_unreadable:
        rows += [{**r, "status": "unreadable"} for r in unreadable(results).drop(columns="path").to_dict("records")]
    return pd.DataFrame(rows, columns=[*_JOB_COLUMNS, "error", "key", "status"])


def export(results: Path | str, out: Path | str, fmt: str = "csv") -> Path:
    """Write the tidy table for other tools (csv or parquet); an error if there is nothing to export."""
    if fmt not in ("csv", "parquet"):
        raise InvalidInput(f"format must be csv or parquet, got {fmt!r}")
    df, out = load_all(results), Path(out)
    if df.empty:
        raise MissingInput(
            f"nothing to export: no finished jobs under {Path(results) / 'runs'} "
            f"(run `bench run` first, or point --results at the folder it wrote)"
        )
    if fmt == "csv":
        df.to_csv(out, index=False)
    else:
        df.to_parquet(out, index=False)
    return out
