"""bench: a benchmark harness for 2D biomedical segmentation (MILDNet, Gudhe et al., Sci Rep 2021).

Kept light on purpose: importing ``bench`` imports no torch. The one side effect is switching off
albumentations' network update check, which otherwise runs in every worker process.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

# Installed, `architectures/` and `datasets/` are mapped to bench.architectures and bench.datasets
# (setuptools package-dir). When Python runs from the repository root (`python -m bench.cli`,
# `python -c ...`), this folder shadows the installed package; let it find the sibling folders too.
_source_root = Path(__file__).resolve().parent.parent
if (_source_root / "pyproject.toml").is_file() and (_source_root / "datasets" / "base.py").is_file():
    __path__.append(str(_source_root))

__version__ = "0.1.0"
