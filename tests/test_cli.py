"""The command line as a user runs it: list, data check, run -> report / ttest."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.cli import main

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TINY = ["--set", "epochs=1", "--set", "image_size=32", "--set", "width=4", "--set", "depth=3", "--quiet", "--jobs", "1"]


def test_bench_list_prints_the_eight_entries_with_spec_parameter_counts(capsys: pytest.CaptureFixture) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name, params in [
        ("unet", "7,760,097"),
        ("residual_unet", "8,118,599"),
        ("resdunet", "10,523,293"),
        ("unetpp", "9,042,177"),
        ("multiresunet", "7,238,228"),
        ("mildnet", "25,381,447"),
        ("unet_mlr", "10,899,297"),
        ("mildnet_no_mlr", "22,242,247"),
    ]:
        line = next(ln for ln in out.splitlines() if ln.split()[:1] == [name])
        assert params in line
        assert line.endswith(
            {
                "unet": "Table 4, Table 5",
                "mildnet": "Table 4, Table 5",
                "unet_mlr": "Table 4",
                "mildnet_no_mlr": "Table 4",
            }.get(name, "Table 5")
        )
    for dataset in ["isic2018", "isbi2012", "lgg_mri", "glas2015", "dsb2018"]:
        assert dataset in out


def test_console_script_is_installed() -> None:
    exe = shutil.which("bench") or str(Path(sys.executable).with_name("bench"))
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("bench ")


@pytest.mark.real_data
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="the real samples (../shared/data) are not present")
def test_data_check_on_the_real_samples(capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "check", "lgg_mri", "--root", str(SHARED_DATA / "lgg_mri")]) == 0
    out = capsys.readouterr().out
    assert "66" in out and "OK" in out


def test_data_check_names_broken_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import numpy as np
    from PIL import Image

    root = tmp_path / "dsb2018" / "stage1_train" / "abc"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "images" / "abc.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "masks" / "m1.png")
    assert main(["data", "check", "--data-root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert str(root / "images" / "abc.png") in out


def test_data_check_needs_a_folder(capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "check"]) == 2
    assert "--data-root" in capsys.readouterr().err


@pytest.mark.slow
def test_run_then_report_and_ttest(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    res = str(tmp_path / "results")
    base = ["run", "--results", res, *TINY, "--arch", "unet,mildnet", "--dataset", "mri"]
    assert main([*base, "--folds", "0,1"]) == 0
    assert main([*base, "--protocol", "cv", "--folds", "0,1,2,3,4"]) == 0
    capsys.readouterr()
    assert main(["report", "--table", "5", "--results", res]) == 0
    out = capsys.readouterr().out
    assert "SYNTHETIC" in out and "MILDNet" in out and "All foreground" in out
    assert main(["report", "--table", "2", "--results", res]) == 0
    assert "343" in capsys.readouterr().out  # the paper's MRI test-set count beside ours
    assert main(["ttest", "--dataset", "mri", "--results", res]) == 0
    out = capsys.readouterr().out
    assert "unet" in out and "holm" in out.lower() and "out-of-fold" in out
    assert main(["report", "--figure", "8", "--results", res, "--out", str(tmp_path / "fig")]) == 0
    assert (tmp_path / "fig" / "fig8.png").stat().st_size > 1000
    assert main(["report", "--all", "--results", res, "--out", str(tmp_path / "rep")]) == 0
    index = (tmp_path / "rep" / "index.md").read_text()
    assert "synthetic" in index.lower() and "quick" in index
    for table in ("table1", "table2", "table3", "table4", "table5"):
        assert (tmp_path / "rep" / "tables" / f"{table}.tex").stat().st_size > 0


def test_report_without_results_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["report", "--table", "5", "--results", str(tmp_path)]) == 2
    assert "bench run" in capsys.readouterr().err


# ------------------------------------------------------------------------------------- errors: input vs bug


@pytest.mark.parametrize(
    "args, says",
    [
        (["run", "--arch", "unet", "--dataset", "dsb2018", "--set", "epochs=many", "--dry-run"], "epochs"),
        (["run", "--arch", "unet", "--dataset", "nosuchdata", "--dry-run"], "unknown dataset 'nosuchdata'"),
        (["run", "--arch", "unet", "--dataset", "dsb2018", "--set", "epochs", "--dry-run"], "--set expects key=value"),
        (["run", "--arch", "unet", "--dataset", "dsb2018", "--set", "nosuchkey=1", "--dry-run"], "unknown setting"),
        (
            ["run", "--arch", "unet", "--dataset", "dsb2018", "--data-root", "/nonexistent/data", "--dry-run"],
            "--data-root /nonexistent/data is not a folder",
        ),
    ],
)
def test_bad_input_is_one_clear_line_and_status_2(
    args: list[str], says: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main([*args, "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench run: error: ") and says in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err and "bug" not in err


@pytest.mark.parametrize("exc", [KeyError("internal_key"), ValueError("internal value"), FileNotFoundError("x.bin")])
def test_an_internal_error_shows_its_traceback_and_says_it_is_a_bug(
    exc: Exception, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import bench.run.plan

    def broken(*args: object, **kwargs: object) -> None:
        raise exc

    monkeypatch.setattr(bench.run.plan, "select", broken)
    assert main(["run", "--arch", "unet", "--dataset", "dsb2018", "--dry-run", "--results", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and f"{type(exc).__name__}: " in err
    assert "in broken" in err  # the frame that raised, not just the message
    assert err.strip().splitlines()[-1].startswith("bench run: internal error: this is a bug in bench")


def test_user_errors_keep_the_builtin_types_callers_catch() -> None:
    from bench.errors import InvalidInput, MissingInput, NoResults, UnknownName, UserError

    assert issubclass(InvalidInput, ValueError) and issubclass(NoResults, ValueError)
    assert issubclass(UnknownName, KeyError) and issubclass(MissingInput, FileNotFoundError)
    assert all(issubclass(c, UserError) for c in (InvalidInput, MissingInput, NoResults, UnknownName))
    assert str(UnknownName("unknown dataset 'x'")) == "unknown dataset 'x'"  # not quoted like a KeyError


def test_every_command_comes_from_a_small_module_of_bench_commands() -> None:
    """bench/cli.py only wires the commands up; each lives in bench/commands/, no module over 400 lines."""
    import argparse

    import bench.cli
    from bench.cli import PARSERS, build_parser

    package = Path(bench.cli.__file__).parent / "commands"
    modules = [Path(bench.cli.__file__), *sorted(package.glob("*.py"))]
    assert len(modules) > 3
    too_long = {m.name: n for m in modules if (n := len(m.read_text().splitlines())) > 400}
    assert not too_long, f"split these modules (lines): {too_long}"
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(PARSERS) and len(PARSERS) >= 13
    for name in sub.choices:
        add, cmd, _ = PARSERS[name]
        for function in (add, cmd):
            module = function.__module__
            assert module.startswith("bench.commands.") and module != "bench.commands.common", (name, module)
            assert (package / f"{module.rsplit('.', 1)[1]}.py").is_file()


# ------------------------------------------------------------------ errors from the environment


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0] and "internal error" not in err[0], err
    return err[0]


def test_a_results_folder_that_cannot_exist_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("x")
    code = main(
        ["run", "--dataset", "dsb2018", "--arch", "unet", "--dry-run", "--results", str(tmp_path / "file" / "r")]
    )
    assert code == 2
    assert _one_error_line(capsys).startswith("bench run: error: not a folder:")


def test_a_missing_profile_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    assert main(["run", "--dataset", "dsb2018", "--arch", "unet", "--dry-run", "--profile", str(missing)]) == 2
    assert f"profile file {missing} does not exist" in _one_error_line(capsys)


@pytest.mark.parametrize(
    ("code", "said"),
    [
        (errno.ENOSPC, "no space left on device while writing /r/x.parquet"),
        (errno.EROFS, "read-only file system: /r/x.parquet"),
    ],
)
def test_a_full_disk_or_read_only_folder_is_one_line(
    code: int, said: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench import cli

    def fail(args: object) -> int:
        raise OSError(code, "strerror", "/r/x.parquet")

    monkeypatch.setitem(cli.PARSERS, "status", (cli.PARSERS["status"][0], fail, "status"))
    assert main(["status"]) == 2
    assert _one_error_line(capsys) == f"bench status: error: {said}"


def test_any_other_os_error_is_still_a_bug_with_its_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench import cli

    def fail(args: object) -> int:
        raise OSError(22, "Invalid argument")  # no path, not an environment condition

    monkeypatch.setitem(cli.PARSERS, "status", (cli.PARSERS["status"][0], fail, "status"))
    assert main(["status"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "internal error" in err


def test_a_closed_output_pipe_ends_quietly(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """``bench run --dry-run | head -1``: the reader goes away; bench stops with 0 and says nothing."""

    class Closed:
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self) -> None:
            pass

    monkeypatch.setattr(sys, "stdout", Closed())
    assert main(["list", "unet"]) == 0
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------- environment errors, for real


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """Mount a small tmpfs (``size``, optionally read-only) under ``tmp_path``; skipped where mounting is
    not allowed (not root, or a sandbox without mount)."""
    mounted: list[Path] = []

    def mount(size: str = "5m", read_only: bool = False) -> Path:
        where = tmp_path / f"mnt{len(mounted)}"
        where.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], check=False, capture_output=True
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(where)
        return where

    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    yield mount
    for where in mounted:  # lazily: this process may still map a cache file from it
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(folder: Path, leave: int) -> None:
    """Fill the filesystem of ``folder`` until ``leave`` bytes are free."""
    free = shutil.disk_usage(folder).free
    with open(folder / "filler", "wb") as fh:
        fh.write(b"\0" * max(free - leave, 0))


def test_a_results_path_under_proc_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    if not Path("/proc/self").exists():
        pytest.skip("no /proc on this system")
    assert main(["run", "--dataset", "dsb2018", "--arch", "unet", "--dry-run", "--results", "/proc/x"]) == 2
    assert _one_error_line(capsys) == (
        "bench run: error: no such file or folder (and it cannot be created there): /proc/x"
    )


def test_a_nonexistent_profile_path_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--dataset", "dsb2018", "--arch", "unet", "--dry-run", "--profile", "/nonexistent.yaml"]) == 2
    assert _one_error_line(capsys).startswith("bench run: error: profile file /nonexistent.yaml does not exist")


def test_a_read_only_results_folder_is_one_line(tmpfs: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    ro = tmpfs("1m", read_only=True)
    assert main(["run", "--dataset", "dsb2018", "--arch", "unet", "--results", str(ro / "res"), *TINY]) == 2
    assert _one_error_line(capsys) == f"bench run: error: read-only file system: {ro / 'res'}"


def test_a_full_disk_stops_the_run_in_one_line_and_records_where(
    tmpfs: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A 5 MB tmpfs filled to its last 30 kB: the job fails on its first write past that, the run stops
    with one line naming the file, and the job's sidecar (or the error line) says so."""
    full = tmpfs("5m")
    results = full / "res"
    assert (
        main(
            [
                "run",
                "--dataset",
                "dsb2018",
                "--arch",
                "unet",
                "--folds",
                "0",
                "--dry-run",
                "--results",
                str(results),
                *TINY,
            ]
        )
        == 0
    )
    capsys.readouterr()
    _fill(full, 30_000)
    code = main(["run", "--dataset", "dsb2018", "--arch", "unet", "--folds", "0", "--results", str(results), *TINY])
    line = _one_error_line(capsys)
    assert code == 2 and line.startswith(f"bench run: error: no space left on device while writing {results}"), line


def test_a_checkpoint_written_to_a_full_disk_says_so_with_its_path(tmpfs: Callable[..., Path]) -> None:
    """torch's own writer reports a full disk as "enforce fail ... unexpected pos"; bench's says what and where."""
    import torch

    from bench.errors import environment_error
    from bench.results import checkpoint

    full = tmpfs("1m")
    _fill(full, 4096)
    meta = checkpoint.CheckpointMeta(
        "unet", {}, checkpoint.Preprocessing(32, 1), "dsb2018", "synthetic", "{}", "f", "k", "holdout", 0, 0, "quick"
    )
    with pytest.raises(OSError) as caught:
        checkpoint.save_checkpoint(full / "x.pt", torch.nn.Linear(200, 200), meta)
    assert environment_error(caught.value) == f"no space left on device while writing {full / 'x.pt'}"
    assert not list(full.glob(".tmp-*"))  # the temporary file is removed


def test_dry_run_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    """`bench run --dry-run | head -1` where head has already gone: exit 0, nothing on stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.cli", "run", "--dry-run", "--all", "--results", str(tmp_path), *TINY],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[1],
    )
    proc.stdout.close()  # the reader is gone before bench writes
    err = proc.stderr.read().decode()
    assert proc.wait() == 0 and err == "", err
