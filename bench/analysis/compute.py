"""Compute beside accuracy: what each job cost, measured while it ran, and a table per architecture.

Stored per job in the sidecar under ``compute``:

- ``parameters``: trainable parameters; ``gmacs``: multiply-accumulates (1e9) of one forward pass of
  one image at the job's ``image_size`` (``architectures._blocks.count_macs``);
- ``train_seconds_per_epoch``: wall seconds of one training epoch (including its selection pass),
  averaged over the job's epochs; ``n_train`` images per epoch;
- ``infer_ms_per_image``: wall milliseconds per scored image, batched as in training;
- ``peak_memory_mb``: on CPU the peak resident set size of the whole process that ran the job, from its
  start (``memory_kind`` ``rss_process``): what the machine had to hold for it, including the cache build
  when that happened in the same process (``bench run --jobs 1`` builds it in the process that then runs
  the jobs) and anything an earlier job of the same worker left; ``job_peak_memory_mb`` is the peak
  during the job alone (where the kernel can reset the counter; else equal). On CUDA
  ``torch.cuda.max_memory_allocated`` during the job (``cuda_allocated``);
- ``estimated_train_seconds`` and ``estimate_error``: the plan's estimate of the job's training time
  (``bench.run.estimate``) and its relative error against the measured ``fit`` time
  (estimated / measured - 1), when this machine had measured the job's step;
- ``device``, ``precision``, ``channels_last``, ``threads``: the conditions of those numbers.
"""

from __future__ import annotations

import contextlib
import resource
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    import torch

CAPTION = (
    "Compute beside accuracy: mean over each architecture's finished jobs. dice: mean per image (holdout "
    "test set, cv out of fold); gmacs: one forward pass of one image at the job's image size; train s/epoch "
    "and infer ms/image: wall clock on the job's device and threads; peak_memory_mb: peak RSS of the whole "
    "process on CPU (the cache build included where it ran in it), torch.cuda.max_memory_allocated on GPU; "
    "estimate error: the plan's training-time estimate against the measured time (estimated / measured - 1), "
    "mean over the jobs that have one."
)
COMPUTE_COLUMNS = ["parameters", "gmacs", "train_seconds_per_epoch", "infer_ms_per_image", "peak_memory_mb"]
#: The plan's training-time error (``bench.run.estimate``), empty for jobs run without a plan's estimate.
ESTIMATE_COLUMN = "estimate_error"


def _vm_hwm_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux: ``5`` into clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """Peak memory between ``start()`` and ``stop()``, in MiB, after ``stop()``: ``.mb`` and ``.kind``.

    On CPU ``.mb`` is the whole process's peak resident set size since it started (``kind``
    ``rss_process``), which includes what came before ``start()`` in the same process (a cache build),
    and ``.job_mb`` the peak between ``start()`` and ``stop()`` where the kernel lets the counter be reset
    (Linux), else the same as ``.mb``. On CUDA ``.mb`` is ``torch.cuda.max_memory_allocated`` since ``start()``."""

    def __init__(self, device: str) -> None:
        self.device = str(device)
        self.mb = self.job_mb = self.process_mb = float("nan")
        self.kind = ""
        self._before = 0.0

    def _cuda(self) -> bool:
        return self.device.startswith("cuda")

    def start(self) -> PeakMemory:
        self._before = _vm_hwm_mb() or 0.0  # the process's peak so far, before the counter is reset
        self._reset = _reset_peak_rss()
        if self._cuda():
            import torch

            torch.cuda.reset_peak_memory_stats(self.device)
            self.kind = "cuda_allocated"
        else:
            self.kind = "rss_process"
        return self

    def stop(self) -> None:
        now = _vm_hwm_mb()
        if now is None:
            now = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        self.process_mb = max(now, self._before)
        self.job_mb = now if self._reset else self.process_mb
        if self._cuda():
            import torch

            self.mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            self.mb = self.process_mb


@contextlib.contextmanager
def timed() -> Iterator[list[float]]:
    """``with timed() as t: ...`` then ``t[0]`` holds the block's wall seconds."""
    import time

    out: list[float] = []
    start = time.perf_counter()
    try:
        yield out
    finally:
        out.append(time.perf_counter() - start)


def model_cost(model: torch.nn.Module, in_channels: int, image_size: int) -> dict[str, float]:
    """Trainable parameters and GMACs of one ``in_channels x image_size x image_size`` forward pass."""
    from bench.architectures._blocks import count_macs

    return {
        "parameters": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
        "gmacs": count_macs(model, in_channels, image_size) / 1e9,
    }


def compute_info(
    cost: dict[str, float],
    train_seconds: float,
    epochs: int,
    infer_seconds: float,
    n_scored: int,
    memory: PeakMemory,
    **conditions: Any,
) -> dict[str, Any]:
    """The sidecar's ``compute`` record of one job (see the module docstring)."""
    return {
        **cost,
        "train_seconds_per_epoch": train_seconds / max(1, epochs),
        "infer_ms_per_image": 1e3 * infer_seconds / max(1, n_scored),
        "peak_memory_mb": memory.mb,
        "memory_kind": memory.kind,
        **({"job_peak_memory_mb": memory.job_mb} if memory.kind == "rss_process" else {}),
        **conditions,
    }


def compute_table(df: pd.DataFrame, sidecars: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per (dataset, arch): mean Dice (test set for holdout, out-of-fold for cv) beside the
    mean compute of its finished jobs, and the number of jobs. Jobs without a ``compute`` record
    (written before it existed) are left out of the compute columns, never guessed."""
    columns = [*COMPUTE_COLUMNS, ESTIMATE_COLUMN]  # the estimate's error: the mean over the jobs with one
    rows = []
    for side in sidecars:
        if side.get("status") != "ok" or "compute" not in side:
            continue
        c = side["compute"]
        rows.append(
            {
                "dataset": side["job"]["dataset"],
                "arch": side["job"]["arch"],
                "device": c.get("device", ""),
                "precision": c.get("precision", ""),
                **{k: c.get(k, float("nan")) for k in columns},
            }
        )
    cost = pd.DataFrame(rows, columns=["dataset", "arch", "device", "precision", *columns])
    keys = ["dataset", "arch"]
    agg = (
        cost.groupby(keys)
        .agg(
            jobs=("parameters", "size"),
            device=("device", lambda s: ",".join(sorted(set(s)))),
            precision=("precision", lambda s: ",".join(sorted(set(s)))),
            **{k: (k, "mean") for k in columns},
        )
        .reset_index()
    )
    if df.empty:
        df = pd.DataFrame(columns=[*keys, "protocol", "split", "dice"])
    scored = df[(df["protocol"] == "cv") | (df["split"] == "test")]
    dice = scored.groupby(keys)["dice"].mean().rename("dice").reset_index()
    out = dice.merge(agg, on=keys, how="outer")
    cols = ["dataset", "arch", "dice", "jobs", "device", "precision", *columns]
    out = out[cols].sort_values(keys).reset_index(drop=True)
    out["parameters"] = out["parameters"].astype("Int64")
    out["jobs"] = out["jobs"].fillna(0).astype(int)
    out.attrs["caption"] = CAPTION
    return out
