"""Test helper: architectures for a worker process that dies mid-sweep (a stand-in for a segfault or
the out-of-memory killer), and a ``Job`` subclass that registers them in the process that unpickles
it (a worker), never in the test process itself (where ``bench list`` would build them).

``crash_test`` exits its process on its first forward pass; ``wait_test`` is a tiny working network.
Each waits first (at most 60 s) until a sidecar matching its ``wait_for`` argument (a glob pattern)
shows the other job started, so a test can have both jobs in flight when the process dies, without
relying on timing.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from bench.architectures import ARCHITECTURES
from bench.config import Job


def _started(path: Path) -> bool:
    try:
        return json.loads(path.read_text()).get("status") in ("running", "ok", "failed")
    except (FileNotFoundError, json.JSONDecodeError):
        return False


def wait_until_started(pattern: str | None, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while pattern and time.time() < deadline:
        if any(_started(p) for p in Path("/").glob(pattern.lstrip("/"))):
            return
        time.sleep(0.05)


class ProcessKiller(nn.Module):
    def __init__(self, in_channels: int = 1, classes: int = 1, wait_for: str | None = None, **_: Any) -> None:
        super().__init__()
        self.head = nn.Conv2d(in_channels, classes, 1)
        self.wait_for = wait_for

    def forward(self, x: Tensor) -> Tensor:
        wait_until_started(self.wait_for)
        os._exit(70)


class Waiter(nn.Module):
    def __init__(self, in_channels: int = 1, classes: int = 1, wait_for: str | None = None, **_: Any) -> None:
        super().__init__()
        self.head = nn.Conv2d(in_channels, classes, 3, padding=1)
        self.wait_for = wait_for

    def forward(self, x: Tensor) -> Tensor:
        wait_until_started(self.wait_for)
        self.wait_for = None
        return self.head(x)


def register() -> None:
    for name, factory in (("crash_test", ProcessKiller), ("wait_test", Waiter)):
        if name not in ARCHITECTURES:
            ARCHITECTURES.register(name, factory)


class CrashJob(Job):
    """A ``Job`` defined here: unpickling one (in a worker) imports this module and registers its
    architectures."""

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        register()
        super().__setstate__(state)
