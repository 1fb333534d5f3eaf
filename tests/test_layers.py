"""The layering of bench/ is a contract (pyproject.toml, ``[tool.importlinter]``; docs/architecture.md).

``tox -e lint`` runs ``lint-imports`` on the installed package. These tests run the same contracts on a
copy of the checkout laid out as installed (architectures/ and datasets/ inside bench/), to show that
they hold today and that they break, naming the contract, when a forbidden import or a circle is added.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(
    not (ROOT / "pyproject.toml").is_file() or shutil.which("lint-imports") is None,
    reason="needs the checkout's pyproject.toml and import-linter (the test extra)",
)


def installed_layout(tmp_path: Path) -> Path:
    """``tmp_path/bench`` as a wheel installs it: bench/ with architectures/ and datasets/ inside."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "bench", tmp_path / "bench", ignore=skip)
    for folder in ("architectures", "datasets"):
        shutil.copytree(ROOT / folder, tmp_path / "bench" / folder, ignore=skip)
    return tmp_path


def lint_imports(where: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(where)}
    cmd = [shutil.which("lint-imports") or "lint-imports", str(ROOT / "pyproject.toml"), "--no-cache"]
    return subprocess.run(cmd, cwd=where, env=env, capture_output=True, text=True, timeout=120, check=False)


def add_import(path: Path, line: str) -> None:
    text = path.read_text()
    head, sep, rest = text.partition("from __future__ import annotations\n")
    path.write_text(head + sep + line + "\n" + rest if sep else line + "\n" + text)


def test_the_contracts_hold(tmp_path: Path) -> None:
    out = lint_imports(installed_layout(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 kept, 0 broken" in out.stdout


@pytest.mark.parametrize(
    ("module", "line", "named"),
    [
        ("analysis/stats.py", "import bench.run.plan", "bench.analysis is not allowed to import bench.run"),
        ("report/figures.py", "import bench.run.runner", "bench.report is not allowed to import bench.run"),
        ("results/store.py", "import bench.analysis.tables", "bench.results is not allowed to import bench.analysis"),
        ("datasets/base.py", "import bench.config", "bench.datasets is not allowed to import bench.config"),
        (
            "architectures/_blocks.py",
            "import bench.results.store",
            "bench.architectures is not allowed to import bench.results",
        ),
    ],
)
def test_an_import_against_the_layers_breaks_the_contract(tmp_path: Path, module: str, line: str, named: str) -> None:
    where = installed_layout(tmp_path)
    add_import(where / "bench" / module, line)
    out = lint_imports(where)
    assert out.returncode != 0
    assert "bench by stage" in out.stdout and "BROKEN" in out.stdout
    assert named in out.stdout, out.stdout


def test_a_circle_between_siblings_breaks_the_contract(tmp_path: Path) -> None:
    """analysis/floors.py is imported by analysis/tables.py; the reverse import closes a circle."""
    where = installed_layout(tmp_path)
    add_import(where / "bench" / "analysis" / "floors.py", "import bench.analysis.tables")
    out = lint_imports(where)
    assert out.returncode != 0
    assert "no import circles" in out.stdout and "BROKEN" in out.stdout


def test_bench_top_level_keeps_only_the_shared_vocabulary() -> None:
    """Every stage is a package; bench/ itself holds the entry point and a few shared modules."""
    top = sorted(p.name for p in (ROOT / "bench").glob("*.py"))
    assert len(top) <= 8, top
    stages = {"run", "results", "analysis", "report", "models", "commands"}
    assert stages <= {p.parent.name for p in (ROOT / "bench").glob("*/__init__.py")}


def test_the_command_line_starts_without_numeric_libraries() -> None:
    """``bench --help`` builds every command's parser and imports none of torch, pandas, scipy, the plotting
    libraries or yaml: the imports that stay inside functions keep them out of start-up. (numpy and cv2 come
    with bench.metrics, whose names the --metric choices list.)"""
    code = (
        "import sys, bench.cli; bench.cli.build_parser(); "
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    heavy = {"torch", "pandas", "scipy", "matplotlib", "seaborn", "pyarrow", "yaml", "albumentations", "timm"}
    assert not heavy & set(out.stdout.split()), out.stdout


def _top_level_imports(args: list[str], cwd: Path) -> set[str]:
    """The top-level packages ``python -X importtime -m bench.cli ARGS`` imported (its stderr); the command
    may exit 0 or with a user error (2), never with a traceback."""
    env = {**os.environ, "MPLBACKEND": "Agg"}
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "bench.cli", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
    )
    assert out.returncode in (0, 2) and "Traceback" not in out.stderr, (args, out.stderr[-2000:])
    names = {line.rsplit("|", 1)[1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
    return {n.split(".")[0] for n in names if n and not n.startswith("import time")}


def test_commands_that_train_nothing_import_neither_torch_nor_seaborn(tmp_path: Path) -> None:
    """``bench report --table 5`` (display names from the registry's stored metadata, figures' plotting
    only where a figure is drawn), ``bench export`` and ``bench list`` (counts from the stored metadata)
    load no torch and no plotting library."""
    from test_learning import HISTORY_FLAT, HISTORY_IMPROVES, learning_job, trivial_job, write_job

    for fold in (0, 1):
        write_job(tmp_path, learning_job(fold), HISTORY_IMPROVES)
        write_job(tmp_path, trivial_job(fold), HISTORY_FLAT)
    heavy = {"torch", "seaborn", "matplotlib"}
    for args in (
        ["report", "--table", "5", "--results", str(tmp_path)],
        ["report", "--table", "compute", "--results", str(tmp_path)],
        ["export", "--results", str(tmp_path), "--out", str(tmp_path / "all.csv")],
        ["ttest", "--dataset", "dsb2018", "--results", str(tmp_path)],
        ["status", "--results", str(tmp_path)],
        ["list"],
    ):
        loaded = _top_level_imports(args, tmp_path)
        assert "bench" in loaded and not heavy & loaded, (args, heavy & loaded)


def test_the_drift_gates_scoring_layer_imports_no_torch() -> None:
    """``bench check --layer scoring`` re-scores the committed baseline's stored predictions with numpy
    alone: its environment line reads torch's version from the package metadata."""
    root = Path(__file__).resolve().parents[1]
    loaded = _top_level_imports(["check", "--layer", "scoring"], root)
    assert "bench" in loaded and "torch" not in loaded


#: A driver that reports whether it imported torch (``-c``: the worker processes do not re-run it).
DRIVER = (
    "import sys; from bench.cli import main; rc = main(sys.argv[1:]); "
    "print('driver imported torch:', 'torch' in sys.modules); raise SystemExit(rc)"
)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_the_driver_of_a_sweep_imports_no_torch(tmp_path: Path, jobs: str) -> None:
    """``bench run`` plans (architecture names from the stored metadata), times the steps and runs every job
    in worker processes forked from the pool's fork server, at --jobs 1 too: the driver never loads torch."""
    tiny = ["--set", "epochs=1", "--set", "image_size=32", "--set", "width=4", "--set", "depth=3"]
    args = ["run", "--arch", "unet,mildnet", "--dataset", "dsb2018", "--folds", "0", *tiny, "--jobs", jobs]
    out = subprocess.run(
        [sys.executable, "-c", DRIVER, *args, "--results", str(tmp_path), "--quiet"],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "2 jobs in" in out.stdout and "driver imported torch: False" in out.stdout, out.stdout[-2000:]
