"""bench: a benchmark harness for 2D biomedical segmentation (MILDNet, Gudhe et al., Sci Rep 2021).

Kept light on purpose: importing ``bench`` imports no torch. The one side effect is switching off
albumentations' network update check, which otherwise runs in every worker process.
"""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
