"""Which device a run may ask for (``auto|cpu|cuda|cuda:N``), checked before planning without torch here.

A driver that sends its jobs to worker processes never imports torch, so the CUDA devices torch sees are
asked of one process of the worker pool's context (``bench.run.workers.pool_context``: forked from the
fork server the workers will come from) when this process has not imported torch itself. A CUDA request
without the device is an error (never a silent CPU run). ``bench.run.devices`` (torch) resolves a job's
device where the job runs, with the same rule.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from multiprocessing.context import BaseContext

from bench.errors import InvalidInput, UserError

_DEVICE = re.compile(r"^(auto|cpu|cuda(:[0-9]+)?)$")


class DeviceUnavailable(UserError, RuntimeError):
    """A CUDA device was asked for that this machine does not have."""


@dataclass(frozen=True)
class CudaFacts:
    """What torch sees: ``count`` CUDA devices (0 without CUDA), its version and CUDA build (None: CPU-only)."""

    count: int
    torch: str
    cuda_build: str | None


def validate_device(name: str) -> str:
    if not isinstance(name, str) or not _DEVICE.match(name):
        raise InvalidInput(f"device must be auto, cpu, cuda or cuda:N, got {name!r}")
    return name


def cuda_facts_here() -> CudaFacts:
    """``CudaFacts`` of this process (imports torch)."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return CudaFacts(count, str(torch.__version__), torch.version.cuda and str(torch.version.cuda))


_asked: dict[int, CudaFacts] = {}


def cuda_facts(context: BaseContext | None = None) -> CudaFacts:
    """``CudaFacts`` here when torch is already imported in this process or no ``context`` is given; else asked
    once of one process of ``context`` (and remembered), so this process need not import torch."""
    if context is None or "torch" in sys.modules:
        return cuda_facts_here()
    if id(context) not in _asked:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(1, mp_context=context) as pool:
            _asked[id(context)] = pool.submit(cuda_facts_here).result()
    return _asked[id(context)]


def resolve_device(name: str, facts: CudaFacts | None = None) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; ``cuda``/``cuda:N`` checked against what torch
    sees (``facts``, default: this process's). ``cpu`` needs no facts (and no torch)."""
    validate_device(name)
    if name == "cpu":
        return name
    facts = facts if facts is not None else cuda_facts_here()
    if name == "auto":
        return "cuda" if facts.count else "cpu"
    if facts.count == 0:
        raise DeviceUnavailable(
            f"device {name!r} requested but torch sees no CUDA device "
            f"(torch {facts.torch}, CUDA build: {facts.cuda_build or 'no'})"
        )
    if ":" in name and int(name.split(":")[1]) >= facts.count:
        raise DeviceUnavailable(f"device {name!r} requested but only {facts.count} CUDA device(s) are visible")
    return name
