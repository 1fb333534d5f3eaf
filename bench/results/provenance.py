"""Where a result comes from: the code's git commit and the run's software and machine.

``git_sha`` is the one place the project asks git; ``environment`` is what every job's sidecar
records (``environment`` key) and what ``bench check`` stamps on a baseline.
"""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path
from typing import Any

from bench import __version__


def git_sha(where: Path | None = None) -> str:
    """The commit checked out at ``where`` (default: this package's folder); '' outside a git checkout
    or without git (an installed wheel has no repository)."""
    folder = Path(__file__).parent if where is None else Path(where)
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=folder, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""


def environment() -> dict[str, Any]:
    """The run's provenance: git sha, library versions, host, torch threads and CPU capability."""
    import numpy as np
    import pandas as pd
    import torch

    versions = {
        "bench": __version__,
        "torch": str(torch.__version__),  # a plain str: a record read elsewhere must not need torch
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "python": platform.python_version(),
    }
    return {
        "git_sha": git_sha(),
        "versions": versions,
        "host": platform.node(),
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows of it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
