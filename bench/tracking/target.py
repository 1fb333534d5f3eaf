"""Where tracked results go: the tracking server's URI, the experiment, and whether MLflow can be used.

``mlflow`` is an optional extra (``pip install -e .[tracking]``); nothing here imports it at module level,
so command parsers may import this module.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench.errors import InvalidInput, MissingInput

INSTALL_HINT = "pip install -e .[tracking] (or pip install mlflow)"
#: Seconds to wait for a tracking server's ``/health`` answer before calling it unreachable.
HEALTH_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Tracking:
    """An MLflow tracking server (``uri``), the experiment runs are logged in, and the engine the jobs ran
    on when it is known (``bench run --track`` knows it; an export of a results folder does not)."""

    uri: str
    experiment: str
    engine: str = ""


def tracking_target(
    results: Path | str, uri: str | None = None, experiment: str | None = None, engine: str = ""
) -> Tracking:
    """The target named by ``--tracking-uri`` (else ``MLFLOW_TRACKING_URI``) and ``--experiment`` (else the
    results folder's name)."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri:
        raise InvalidInput(
            "MLflow needs a tracking server: give --tracking-uri URI (e.g. http://127.0.0.1:5000) or set "
            "MLFLOW_TRACKING_URI"
        )
    name = experiment or Path(results).resolve().name
    return Tracking(uri=uri, experiment=name, engine=engine)


def require_mlflow(command: str) -> None:
    """Raise ``MissingInput`` (exit 2) saying how to install MLflow when it is not importable."""
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise MissingInput(f"{command} needs MLflow, which is not installed: {INSTALL_HINT}") from None


def unreachable(uri: str, timeout: float = HEALTH_TIMEOUT_S) -> str | None:
    """Why the tracking server at ``uri`` cannot be used now, or None when it answers. Only HTTP(S) servers
    are asked (their ``/health`` endpoint); any other URI (a local ``file:`` or database store) is taken
    as usable."""
    if not uri.startswith(("http://", "https://")):
        return None
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as answer:
            if answer.status == 200:
                return None
            return f"{uri} answered /health with HTTP {answer.status}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"{uri} cannot be reached ({reason})"
