"""The results store: one Parquet file of per-image rows plus one JSON sidecar per job.

Layout: ``<results>/runs/<dataset>/<arch>/<stem>.parquet`` and ``.json`` (schema:
``results/README.md``). Every write goes to a temporary file in the target folder and is renamed
into place (atomic on POSIX), Parquet first and the sidecar last: a job is finished exactly when its
sidecar says ``status: ok`` and names the key found in its Parquet file. ``load_all`` reads only
finished jobs, so a half-written or interrupted job is never read as a result.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

DEFAULT_RESULTS = Path("results")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Permissions of written files: what a plain ``open()`` would give (mkstemp's are owner-only).
FILE_MODE = 0o666 & ~_umask()


def job_dir(results: Path, dataset: str, arch: str) -> Path:
    return Path(results) / "runs" / dataset / arch.replace(":", "__")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        os.chmod(tmp, FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def atomic_write_parquet(path: Path, df: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".parquet")
    os.close(fd)
    try:
        os.chmod(tmp, FILE_MODE)
        df.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_sidecar(path: Path) -> dict[str, Any] | None:
    """The sidecar at ``path``, or None if absent or unreadable (an interrupted write leaves none)."""
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def sidecars(results: Path | str = DEFAULT_RESULTS) -> list[dict[str, Any]]:
    """Every job sidecar under ``results/runs`` (finished, failed or running), sorted by path."""
    out = []
    for path in sorted((Path(results) / "runs").glob("*/*/*.json")):
        side = read_sidecar(path)
        if side is not None:
            side["_path"] = str(path)
            out.append(side)
    return out


def is_done(sidecar_path: Path, key: str) -> bool:
    side = read_sidecar(sidecar_path)
    return bool(side and side.get("status") == "ok" and side.get("key") == key
                and sidecar_path.with_suffix(".parquet").exists())


def load_all(results: Path | str = DEFAULT_RESULTS) -> pd.DataFrame:
    """One tidy DataFrame of every finished job: one row per (job, image). Empty if nothing ran."""
    frames = []
    for side in sidecars(results):
        if side.get("status") != "ok":
            continue
        df = pd.read_parquet(Path(side["_path"]).with_suffix(".parquet"))
        if len(df) and (df["job_key"] != side["key"]).any():
            continue  # a stale Parquet next to a newer sidecar: never mix them
        frames.append(df)
    frames += evaluation_frames(results)
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def evaluation_frames(results: Path | str = DEFAULT_RESULTS) -> list[pd.DataFrame]:
    """Rows of finished ``bench evaluate`` runs (``runs/*/*/evaluations/``): external cohorts and
    native-resolution scores. Same rule as jobs: sidecar ``status: ok`` naming the Parquet's ``eval_key``."""
    frames = []
    for path in sorted((Path(results) / "runs").glob("*/*/evaluations/*.json")):
        side = read_sidecar(path)
        parquet = path.with_suffix(".parquet")
        if not side or side.get("status") != "ok" or not parquet.exists():
            continue
        df = pd.read_parquet(parquet)
        if len(df) and (df["eval_key"] != side["key"]).any():
            continue
        frames.append(df)
    return frames


def failures(results: Path | str = DEFAULT_RESULTS) -> pd.DataFrame:
    """Failed jobs (dataset, arch, protocol, fold, seed, error), one row each."""
    rows = [{**{k: s["job"].get(k) for k in ("dataset", "arch", "protocol", "fold", "seed")},
             "error": s.get("error", ""), "key": s.get("key")}
            for s in sidecars(results) if s.get("status") == "failed"]
    return pd.DataFrame(rows, columns=["dataset", "arch", "protocol", "fold", "seed", "error", "key"])


def export(results: Path | str, out: Path | str, fmt: str = "csv") -> Path:
    """Write the tidy table for other tools (csv or parquet)."""
    df, out = load_all(results), Path(out)
    if fmt == "csv":
        df.to_csv(out, index=False)
    elif fmt == "parquet":
        df.to_parquet(out, index=False)
    else:
        raise ValueError(f"format must be csv or parquet, got {fmt!r}")
    return out
