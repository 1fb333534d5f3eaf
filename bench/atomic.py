"""Atomic file writes: the one way the project writes a file that another process may read meanwhile.

``atomic_write(path, write)`` fills a uniquely named temporary file ``.tmp-<target name>.<random>.tmp``
in the target's folder, flushes it to disk and renames it onto ``path`` (atomic on POSIX), so a reader
sees the old file or the new one, never half of one; on any error the temporary file is removed and
the error propagates. Results, sidecars, checkpoints, predictions, split files, the preprocessing
cache and baselines all go through it. Standard library only, so every package of the project can use it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

#: Temporary files are ``.tmp-<target file name>.<random>.tmp``: never matched as results.
TMP_PREFIX, TMP_SUFFIX = ".tmp-", ".tmp"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Permissions of written files: what a plain ``open()`` would give (mkstemp's are owner-only).
FILE_MODE = 0o666 & ~_umask()


def atomic_write(path: Path | str, write: Callable[[IO[bytes]], Any]) -> None:
    """Write ``path`` atomically: ``write(fh)`` fills a unique temporary file in the same folder, which
    is then renamed into place; on any error the temporary file is removed and the error re-raised."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TMP_PREFIX}{path.name}.", suffix=TMP_SUFFIX)
    try:
        os.chmod(tmp, FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.filename is None and exc.errno is not None:  # a failed write or flush names no file: name ours
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: Path | str, text: str) -> None:
    """``text`` encoded as UTF-8."""
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path | str, obj: Any) -> None:
    """``obj`` as indented JSON with sorted keys (non-JSON values written with ``str``) and a final newline."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
