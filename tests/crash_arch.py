"""Test helper: an architecture whose forward pass kills its own process (a stand-in for a segfault or
the out-of-memory killer), and a ``Job`` subclass whose pickle imports this module, so a worker
process that unpickles the job knows the architecture too."""

from __future__ import annotations

import os
from typing import Any

from torch import Tensor, nn

from bench.architectures import ARCHITECTURES
from bench.config import Job


class ProcessKiller(nn.Module):
    def __init__(self, in_channels: int = 1, classes: int = 1, **_: Any) -> None:
        super().__init__()
        self.head = nn.Conv2d(in_channels, classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        os._exit(70)


if "crash_test" not in ARCHITECTURES:
    ARCHITECTURES.register("crash_test", ProcessKiller)


class CrashJob(Job):
    """A ``Job`` defined here: unpickling one imports this module (and registers ``crash_test``)."""

    __slots__ = ()
