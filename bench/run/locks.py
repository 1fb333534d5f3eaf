"""Job locks need ``flock`` where the results are: a probe at the start of a run.

Each job is claimed with a ``filelock.FileLock`` on ``<stem>.lock`` (``bench.results.store.job_lock``), an
``flock`` the operating system drops when its holder dies; that is what lets concurrent runs share a folder
and lets a free lock beside a ``running`` sidecar mean "crashed". Some shared filesystems have no working
``flock`` (Lustre mounted without ``flock``; some NFS setups): there filelock either raises or falls back to
a soft lock file that a crash leaves behind, so one run would wait on a dead job and the crash rule would
break. ``probe_flock`` finds out before any job starts, in the results folder itself, and stops the run
with what to do.
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

from bench.errors import UserError

#: errno values of ``flock`` on a filesystem that does not implement it.
NO_FLOCK = frozenset(
    e for e in (errno.ENOLCK, errno.ENOSYS, errno.EINVAL, getattr(errno, "ENOTSUP", None), errno.EOPNOTSUPP) if e
)


class LocksUnavailable(UserError, OSError):
    """The results folder's filesystem cannot hold the job locks (no working ``flock``)."""


def _advice(results: Path) -> str:
    return (
        f"put --results on a filesystem with working flock (local disk for one machine; on a cluster NFSv4, "
        f"GPFS, BeeGFS, or Lustre mounted with -o flock), or ask your admins to enable it for {results}"
    )


def probe_flock(results: Path) -> None:
    """Raise ``LocksUnavailable`` unless an ``flock`` taken in ``results`` excludes a second one there.

    Two open descriptions of one probe file: the first takes the lock, the second must be refused. A
    filesystem without ``flock`` fails the first; one that accepts both would let two runs train one job.
    (Windows has no ``flock``; filelock locks with ``msvcrt`` there and nothing is probed.)"""
    try:
        import fcntl
    except ImportError:
        return
    results = Path(results)
    results.mkdir(parents=True, exist_ok=True)
    probe = results / f".flock-probe-{socket.gethostname()}-{os.getpid()}"
    try:
        with open(probe, "w") as first, open(probe, "w") as second:
            try:
                fcntl.flock(first, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in NO_FLOCK:
                    raise LocksUnavailable(
                        f"--results {results}: its filesystem does not support flock ({exc.strerror}), which bench's "
                        f"job locks need; {_advice(results)}"
                    ) from None
                raise
            try:
                fcntl.flock(second, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # the second lock was refused: flock excludes
            raise LocksUnavailable(
                f"--results {results}: flock on its filesystem does not exclude a second holder (a lock that "
                f"always succeeds), so two runs could train one job; {_advice(results)}"
            )
    finally:
        probe.unlink(missing_ok=True)
