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
