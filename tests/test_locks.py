"""The job locks need flock in the results folder: probed at the start of a run, refused with what to do."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from bench.cli import main
from bench.run.locks import LocksUnavailable, probe_flock

RUN = ["--arch", "unet", "--dataset", "dsb2018", "--folds", "0", "--set", "epochs=1", "--set", "image_size=32"]


def test_the_probe_passes_where_flock_works_and_leaves_nothing(tmp_path: Path) -> None:
    probe_flock(tmp_path / "results")
    assert list((tmp_path / "results").iterdir()) == []


@pytest.mark.parametrize("code", [errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS])
def test_a_filesystem_without_flock_stops_the_run_before_any_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, code: int
) -> None:
    """No filesystem without flock can be mounted here, so ``flock`` is made to fail as Lustre without
    ``-o flock`` does (ENOLCK / EOPNOTSUPP / ENOSYS)."""
    import fcntl

    def no_flock(fd: object, op: int) -> None:
        raise OSError(code, "Function not implemented")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    with pytest.raises(LocksUnavailable, match="does not support flock"):
        probe_flock(tmp_path)
    if code != errno.ENOLCK:
        return  # the command line once is enough
    assert main(["run", "--results", str(tmp_path / "r"), *RUN, "--quiet", "--jobs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"bench run: error: --results {tmp_path / 'r'}: its filesystem does not support flock")
    assert "-o flock" in err and len(err.strip().splitlines()) == 1
    assert not list((tmp_path / "r").glob("runs/**/*.json"))  # no job started
    assert not list((tmp_path / "r").glob(".flock-probe-*"))


def test_a_flock_that_never_excludes_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fcntl

    monkeypatch.setattr(fcntl, "flock", lambda fd, op: None)
    with pytest.raises(LocksUnavailable, match="does not exclude a second holder"):
        probe_flock(tmp_path)
