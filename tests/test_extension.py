"""A user's own dataset and architecture, each one file outside the package, pass the suite's generic tests.

``extension/busi_like.py`` is a BUSI-like breast ultrasound dataset (several mask files per case, the
layout docs/datasets.md says a user writes as one file) and ``extension/unet_bn.py`` the architecture of
docs/extending.md. Both are copied to a temporary folder and registered the way the package registers its
own files, by importing them (``@register_dataset`` / ``@register_arch`` run on import): a pytest run in a
subprocess loads them with ``-p <module>`` before it collects, so the registry-parametrised tests of
``test_datasets_native.py``, ``test_architectures.py`` and ``test_synthetic.py`` include them. (In the
package, a file in ``datasets/`` or ``architectures/`` is imported when its package is.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATASET, ARCH = "busi", "unet_bn"
GENERIC = ("tests/test_datasets_native.py", "tests/test_architectures.py", "tests/test_synthetic.py")


def _with_extensions(tmp_path: Path) -> dict[str, str]:
    """The two user files, copied to ``tmp_path/user``; the environment that puts them on the path."""
    folder = tmp_path / "user"
    folder.mkdir()
    for module in ("busi_like.py", "unet_bn.py"):
        shutil.copy(HERE / "extension" / module, folder / module)
    path = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def _run(args: list[str], cwd: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``python args`` with the user's files importable; the output is kept for the failure message."""
    env = _with_extensions(tmp_path)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)


def _outcomes(report: Path) -> dict[tuple[str, str], list[tuple[list[str], str]]]:
    """(module, test function) -> [(parameter id parts, outcome)] from a JUnit XML report."""
    out: dict[tuple[str, str], list[tuple[list[str], str]]] = {}
    for case in ET.parse(report).iter("testcase"):
        func, _, params = case.get("name", "").partition("[")
        failed = case.find("failure") is not None or case.find("error") is not None
        outcome = "failed" if failed else "skipped" if case.find("skipped") is not None else "passed"
        parts = params.rstrip("]").split("-") if params else []
        out.setdefault((case.get("classname", ""), func), []).append((parts, outcome))
    return out


def test_a_users_dataset_and_architecture_pass_every_generic_test(tmp_path: Path) -> None:
    report = tmp_path / "report.xml"
    plugins = ["-p", "no:cacheprovider", "-p", "busi_like", "-p", "unet_bn"]
    run = _run(["-m", "pytest", "-q", *plugins, f"--junitxml={report}", *GENERIC], REPO, tmp_path)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    outcomes = _outcomes(report)
    for new, at_least in ((DATASET, 8), (ARCH, 5)):  # the registry-parametrised tests ran on each
        ran = {key: [o for parts, o in cases if new in parts] for key, cases in outcomes.items()}
        ran = {key: found for key, found in ran.items() if found}
        assert len(ran) >= at_least, sorted(outcomes)
        assert all(o == "passed" for found in ran.values() for o in found), ran  # none skipped


PREDICT = textwrap.dedent(
    """
    import shutil, sys
    from pathlib import Path

    import busi_like, unet_bn  # registers both
    from bench.cli import main

    data, out = Path(sys.argv[1]), Path(sys.argv[2])
    layout = busi_like.BUSILike.make_fixture(data / "busi")
    image, masks = layout.files["benign (2)"]  # two mask files
    for n in range(3, 9):  # 10 cases: enough for a holdout split with 2 folds
        shutil.copy(image, image.with_name(f"benign ({n}).png"))
        for mask in masks:
            shutil.copy(mask, mask.with_name(mask.name.replace("(2)", f"({n})")))
    tiny = ["--set", "epochs=1", "--set", "image_size=32", "--set", "width=4", "--set", "depth=3"]
    run = ["run", "--results", str(out / "r"), "--data-root", str(data), "--dataset", "busi", "--arch", "unet_bn"]
    assert main([*run, *tiny, "--set", "n_folds=2", "--folds", "0", "--quiet", "--jobs", "1"]) == 0
    images = ["--images", str(data / "busi"), "--out", str(out / "masks")]
    assert main(["predict", "--from", str(out / "r"), "--dataset", "busi", "--arch", "unet_bn", *images]) == 0
    """
)


@pytest.mark.slow
def test_bench_predict_skips_every_mask_file_of_a_users_dataset(tmp_path: Path) -> None:
    """``bench run`` trains the user's architecture on the user's dataset; ``bench predict --images`` on its
    folder writes one mask per image, none for its ``_mask`` / ``_mask_1`` / ``_mask_2`` files."""
    data, out = tmp_path / "data", tmp_path / "out"
    run = _run(["-c", PREDICT, str(data), str(out)], tmp_path, tmp_path)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    files = sorted(data.rglob("*.png"))
    images = [p.relative_to(data / "busi") for p in files if "_mask" not in p.stem]
    assert len(images) == 10 and len(files) == 29  # 19 mask files: 1, 2 (x 7 cases), 3 and 1 empty
    written = sorted(p.relative_to(out / "masks" / "fold0") for p in (out / "masks" / "fold0").rglob("*.png"))
    assert written == sorted(p.with_name(f"{p.stem}_mask.png") for p in images)
