"""Devices: validate ``auto|cpu|cuda|cuda:N``, share several GPUs between jobs, bind a job to its GPU,
pick the precision.

On CPU nothing here changes the recipe: fp32, contiguous tensors. On a CUDA device the defaults are
mixed precision (bf16 where the card supports it, else fp16 with a gradient scaler) and channels-last
memory format; ``amp`` and ``channels_last`` in the profile turn either off. With several GPUs on one
machine, a job asking for ``cuda`` holds one GPU's lock file for its whole run (``device_slot``), so
``--jobs N`` worker processes share N GPUs one job per GPU at a time. A job binds its process to its GPU
(``bind_device``: ``torch.cuda.set_device``) before any CUDA call, so pinned memory, the caching
allocator and library handles live on that GPU, not on GPU 0; bf16 support is asked of that GPU.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.errors import InvalidInput
from bench.run.device_check import DeviceUnavailable, cuda_facts_here, validate_device  # noqa: F401  (their home for importers of devices)
from bench.run.device_check import resolve_device as check_device

AMP_CHOICES = ("auto", "off", "bf16", "fp16")
CHANNELS_LAST_CHOICES = ("auto", "on", "off")


def cuda_devices() -> list[str]:
    return [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def resolve_device(name: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; a CUDA request without the device
    is an error (never a silent CPU run): ``bench.run.device_check.resolve_device`` on this process."""
    return check_device(name, cuda_facts_here())


@contextlib.contextmanager
def device_slot(name: str, lock_dir: Path, devices: Sequence[str] | None = None, poll_s: float = 0.5) -> Iterator[str]:
    """The device a job runs on, held for the ``with`` block.

    A plain ``cuda`` (or ``auto`` on a GPU machine) with several visible GPUs takes the first free one
    of ``devices`` (default: every visible GPU), holding ``<lock_dir>/<host>-cuda-<i>.lock`` until the
    block ends, and waits while all are busy. Any other device is returned as is.
    """
    from filelock import FileLock, Timeout

    resolved = resolve_device(name) if devices is None else name
    pool = list(devices) if devices is not None else cuda_devices()
    if resolved not in ("cuda", "auto") or len(pool) <= 1:
        yield pool[0] if resolved in ("cuda", "auto") and pool else resolved
        return
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    host = platform.node() or "host"
    while True:
        for dev in pool:
            lock = FileLock(lock_dir / f"{host}-gpu-{physical_gpu(dev)}.lock")
            try:
                lock.acquire(timeout=0)
            except Timeout:
                continue
            try:
                yield dev
            finally:
                lock.release()
            return
        time.sleep(poll_s)


def physical_gpu(device: str) -> str:
    """The GPU behind ``cuda:i`` on this host: entry i of ``CUDA_VISIBLE_DEVICES`` where that is set (SLURM
    sets it per job, so two jobs' ``cuda:0`` are different GPUs), else ``i``."""
    index = torch.device(device).index or 0
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    return re.sub(r"[^A-Za-z0-9_.-]", "_", visible[index]) if index < len(visible) else str(index)


def bind_device(device: str) -> None:
    """Make ``device`` this process's current CUDA device (``torch.cuda.set_device``) before any CUDA
    call of the job; nothing on a CPU. A plain ``cuda`` means the current device (``cuda:0`` unless bound)."""
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is not None:
        torch.cuda.set_device(dev)


def bf16_native(device: str) -> bool:
    """Whether the GPU ``device`` computes bf16 natively (compute capability 8.0 or later; ROCm: yes).
    Asked of that GPU, not of the current one, and without counting emulation (which
    ``torch.cuda.is_bf16_supported()`` does by default, slowly, on older cards)."""
    if torch.version.hip:
        return True
    index = torch.device(device).index
    return torch.cuda.get_device_properties(torch.cuda.current_device() if index is None else index).major >= 8


@dataclass(frozen=True, slots=True)
class Precision:
    """How a job trains on its device. ``dtype`` None: plain fp32."""

    dtype: torch.dtype | None
    scaler: bool
    channels_last: bool

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def autocast(self, device: str) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=torch.device(device).type, dtype=self.dtype)

    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def to_dict(self) -> dict[str, object]:
        return {"precision": self.name, "grad_scaler": self.scaler, "channels_last": self.channels_last}


def precision_for(
    device: str, amp: str = "auto", channels_last: str = "auto", bf16_supported: bool | None = None
) -> Precision:
    """The precision of a job on ``device`` (already resolved). On CPU ``auto`` means fp32 and
    contiguous; on CUDA, bf16 autocast where supported (else fp16 with a gradient scaler) and
    channels-last. An explicit ``bf16``/``fp16``/``on`` applies on any device."""
    if amp not in AMP_CHOICES:
        raise InvalidInput(f"amp must be one of {', '.join(AMP_CHOICES)}, got {amp!r}")
    if channels_last not in CHANNELS_LAST_CHOICES:
        raise InvalidInput(f"channels_last must be one of {', '.join(CHANNELS_LAST_CHOICES)}, got {channels_last!r}")
    gpu = torch.device(device).type == "cuda"
    if amp == "auto" and gpu:
        if bf16_supported is None:
            bf16_supported = bf16_native(device)
        amp = "bf16" if bf16_supported else "fp16"
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    last = channels_last == "on" or (channels_last == "auto" and gpu)
    return Precision(dtype, scaler=dtype is torch.float16, channels_last=last)
